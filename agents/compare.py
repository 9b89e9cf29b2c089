"""Compare training runs (and baselines) from their TensorBoard event files and summaries.

``find_runs(paths)`` finds the run directories at or below the paths given (a run, a multirun
folder, the demo's ``runs/demo/<time>/``) and says why it leaves any out: no ``summary.json``
(the run did not finish) or a summary without a final evaluation. ``load_runs`` reads each
run's summary and every scalar of its ``tensorboard/`` event files into one tidy DataFrame; a run
without event files (``logger=none``) is in the final table but draws no curve.
``learning_curves`` plots a tag against env steps, averaged over seeds with a band (min-max over
seeds) per (scenario, algo); ``final_table`` gives the final evaluation metrics of the learned
policies and of the baselines evaluated on the same held-out markets, mean with a 95 % CI
across seeds (Student's t; none from one seed).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from agents import metrics
from agents.evaluation.report import mean_ci_text, metric_label
from mmgym.markdown import table as markdown_table

RUN_FILES = ("summary.json", "config.yaml")
"""A directory holding either file is a training run's (finished or not)."""
DEFAULT_TAGS = ("eval/learned/pnl", "mm/pnl", "train/value_loss")
"""Tags plotted when none are asked for (those present in the runs' event files)."""
SCALAR_COLUMNS = ("tag", "step", "value", "scenario", "seed", "algo", "run")


def read_scalars(log_dir: Path) -> pd.DataFrame:
    """Every scalar of every event file under ``log_dir``: columns tag, step, value."""
    frames = []
    for events_file in sorted(log_dir.rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events_file.parent), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            data = acc.Scalars(tag)
            frames.append(
                pd.DataFrame(
                    {"tag": tag, "step": [e.step for e in data], "value": [e.value for e in data]}
                )
            )
    if not frames:
        return pd.DataFrame(columns=["tag", "step", "value"])
    return pd.concat(frames, ignore_index=True).drop_duplicates(["tag", "step"], keep="last")


def agent_label(summary: dict[str, Any]) -> str:
    """A run's agent: its algorithm, with ``+<baseline>`` for a residual agent."""
    base = summary.get("residual_on")
    return str(summary["algo"]) if base is None else f"{summary['algo']}+{base}"


def find_runs(paths: Sequence[Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The training run directories at or below ``paths`` that can be compared, and the paths
    left out with the reason for each."""
    found: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    for path in map(Path, paths):
        if not path.exists():
            skipped.append((path, "does not exist"))
            continue
        candidates = _run_dirs_at_or_below(path)
        if not candidates:
            skipped.append((path, "holds no training run (no summary.json or config.yaml)"))
        for run in candidates:
            reason = _unusable(run)
            if reason is not None:
                skipped.append((run, reason))
            elif run not in found:
                found.append(run)
    return found, skipped


def _run_dirs_at_or_below(path: Path) -> list[Path]:
    if not path.is_dir():
        return []
    if any((path / name).is_file() for name in RUN_FILES):
        return [path]
    runs = []
    for child in sorted(path.iterdir()):
        if child.is_dir() and not child.name.startswith("."):  # not Hydra's .hydra/
            runs += _run_dirs_at_or_below(child)
    return runs


def _unusable(run: Path) -> str | None:
    """Why ``run`` cannot be compared, or None."""
    summary_file = run / "summary.json"
    if not summary_file.is_file():
        return "no summary.json: the run did not finish"
    try:
        summary = json.loads(summary_file.read_text())
    except (OSError, json.JSONDecodeError) as err:
        return f"summary.json cannot be read ({err})"
    missing = [key for key in ("scenario", "algo", "seed") if key not in summary]
    if missing:
        return f"summary.json lacks {missing}"
    if not summary.get("final_eval"):
        return "summary.json has no final evaluation: the run stopped before or during it"
    return None


def load_runs(paths: list[Path]) -> tuple[pd.DataFrame, list[dict[str, Any]], list[Path]]:
    """Scalars of all runs (with scenario, algo, seed, run columns), their summaries, and the
    runs without event files."""
    frames = []
    summaries = []
    without_events = []
    names = [p.name for p in paths]
    for path in paths:
        summary = json.loads((path / "summary.json").read_text())
        summaries.append(summary)
        scalars = read_scalars(path / "tensorboard")
        if scalars.empty:
            without_events.append(path)
            continue
        for key in ("scenario", "seed"):
            scalars[key] = summary[key]
        scalars["algo"] = agent_label(summary)
        scalars["run"] = path.name if names.count(path.name) == 1 else str(path)
        frames.append(scalars)
    if not frames:
        return pd.DataFrame(columns=list(SCALAR_COLUMNS)), summaries, without_events
    return pd.concat(frames, ignore_index=True), summaries, without_events


def learning_curves(scalars: pd.DataFrame, tags: list[str], path: Path) -> Path:
    """Mean over seeds (line) and min-max band of each tag against env steps."""
    groups = list(scalars.groupby(["scenario", "algo"], sort=False))
    fig, axes = plt.subplots(
        len(tags), 1, figsize=(7.5, 3.2 * len(tags)), squeeze=False, sharex=True
    )
    for ax, tag in zip(axes[:, 0], tags, strict=True):
        for (scenario, algo), block in groups:
            curves = block[block["tag"] == tag].pivot_table(
                index="step", columns="run", values="value"
            )
            if curves.empty:
                continue
            curves = curves.sort_index().interpolate(limit_area="inside")
            mean = curves.mean(axis=1)
            line = ax.plot(mean.index, mean.values, label=f"{algo} on {scenario}")[0]
            if curves.shape[1] > 1:
                ax.fill_between(
                    curves.index,
                    curves.min(axis=1),
                    curves.max(axis=1),
                    color=line.get_color(),
                    alpha=0.2,
                    linewidth=0,
                )
        ax.set_title(tag)
        ax.set_ylabel(tag.split("/")[-1])
        ax.legend(fontsize=8)
    axes[-1, 0].set_xlabel("env steps")
    fig.suptitle("Learning curves: mean over seeds, band = min-max across seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def final_table(summaries: list[dict[str, Any]]) -> pd.DataFrame:
    """Final evaluation metrics per (scenario, policy): mean and 95 % CI across seeds."""
    rows = []
    for s in summaries:
        for policy, values in s["final_eval"].items():
            learned = policy == "learned"
            name = agent_label(s) if learned else policy
            # A baseline is deterministic on the shared held-out markets: every run that
            # evaluated it reports the same numbers, one measurement rather than one per seed.
            seed = s["seed"] if learned else -1
            rows.append({"scenario": s["scenario"], "policy": name, "seed": seed, **values})
    table = pd.DataFrame(rows).drop_duplicates()
    out = []
    metric_cols = [c for c in table.columns if c not in ("scenario", "policy", "seed")]
    for (scenario, policy), block in table.groupby(["scenario", "policy"], sort=False):
        row: dict[str, Any] = {"scenario": scenario, "policy": policy, "seeds": len(block)}
        for col in metric_cols:
            mean, lo, hi = metrics.mean_confidence_interval(block[col].to_numpy())
            row[col] = mean
            row[f"{col}_ci"] = (lo, hi)
        out.append(row)
    return pd.DataFrame(out)


def markdown(table: pd.DataFrame, curves: Path | None, notes: Sequence[str] = ()) -> str:
    """The comparison report; ``notes`` say which runs were left out and why."""
    metric_cols = [
        c
        for c in table.columns
        if c not in ("scenario", "policy", "seeds") and not c.endswith("_ci")
    ]
    lines = [
        "# Comparison report",
        "",
        "Final evaluation on held-out markets: mean [95 % CI across seeds, Student's t]; "
        "baselines are evaluated on the same markets as the learned policies (one measurement, "
        "so no CI).",
        "",
        f"![learning curves]({curves.name})" if curves else "No learning curves to draw.",
    ]
    if notes:
        lines += ["", *[f"- {note}" for note in notes]]
    for scenario, block in table.groupby("scenario", sort=False):
        rows = []
        for _, r in block.iterrows():
            cells = [r["policy"], r["seeds"]]
            for c in metric_cols:
                lo, hi = r[f"{c}_ci"]
                cells.append(mean_ci_text(r[c], lo, hi, int(r["seeds"])))
            rows.append(cells)
        header = ["policy", "seeds", *map(metric_label, metric_cols)]
        align = "lr" + "r" * len(metric_cols)
        lines += ["", f"## {scenario}", "", markdown_table(header, rows, align)]
    return "\n".join(lines) + "\n"


def compare(
    paths: Sequence[Path],
    out_dir: Path,
    tags: list[str] | None = None,
    say: Callable[[str], None] = print,
) -> dict[str, Path]:
    """Write the comparison report (markdown, learning curves PNG, tidy scalars CSV) of the
    runs at or below ``paths``; ``say`` receives what is left out and why."""
    runs, skipped = find_runs(paths)
    notes = [f"left out {path}: {reason}" for path, reason in skipped]
    if not runs:
        raise ValueError("no training run to compare: " + ("; ".join(notes) or "no paths given"))
    out_dir.mkdir(parents=True, exist_ok=True)
    scalars, summaries, without_events = load_runs(runs)
    notes += [
        f"{run}: no TensorBoard event files (logger=none?): in the table, not in the curves"
        for run in without_events
    ]
    present = set(scalars["tag"])
    wanted = list(tags or DEFAULT_TAGS)
    if tags:
        notes += [f"tag {t!r} is in no run's event files" for t in wanted if t not in present]
    plotted = [t for t in wanted if t in present]
    curves = None
    if plotted:
        curves = learning_curves(scalars, plotted, out_dir / "learning_curves.png")
    else:
        notes.append(f"no learning curves: none of the tags {wanted} is in the runs' event files")
    for note in notes:
        say(note)
    table = final_table(summaries)
    report = out_dir / "comparison.md"
    report.write_text(markdown(table, curves, notes))
    scalars.to_csv(out_dir / "scalars.csv", index=False)
    flat = table.copy()
    for col in [c for c in flat.columns if c.endswith("_ci")]:
        flat[col.replace("_ci", "_ci_low")] = [lo for lo, _ in flat[col]]
        flat[col.replace("_ci", "_ci_high")] = [hi for _, hi in flat[col]]
        flat = flat.drop(columns=col)
    flat.to_csv(out_dir / "final_metrics.csv", index=False)
    paths_out = {
        "report": report,
        "scalars": out_dir / "scalars.csv",
        "final": out_dir / "final_metrics.csv",
    }
    if curves is not None:
        paths_out["curves"] = curves
    return paths_out
