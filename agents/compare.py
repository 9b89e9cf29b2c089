"""Compare training runs (and baselines) from their TensorBoard event files and summaries.

``find_runs(paths)`` finds the run directories at or below the paths given (a run, a multirun
folder, the demo's ``runs/demo/<time>/``) and says why it leaves any out: no ``summary.json``
(the run did not finish), a summary without a final evaluation, or one without the keys this
comparison reads. ``load_runs`` reads each run's summary and every scalar of its
``tensorboard/`` event files into one tidy DataFrame, with the policy each scalar belongs to
(``tensorboard/eval/<policy>/`` holds a policy's ``eval/*``; the trainer's own scalars belong
to the run's policy). A run without event files (``logger=none``) is in the final table but
draws no curve.

``learning_curves`` plots tags against env steps: each learned policy's mean over seeds with a
min-max band, each baseline as a labelled horizontal reference line, one column per market set.
``final_table`` gives the final evaluation of the learned policies and of the baselines on the
same held-out markets, per market set: mean with a 95 % CI across seeds (Student's t; none from
one seed).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from agents import metrics
from agents.baselines.registry import BASELINES, load_all
from agents.evaluation.plots import figure, legend_below, save_figure
from agents.evaluation.report import compact_section, metric_label, metrics_table
from agents.evaluation.tensorboard import EVAL_PREFIX, EVAL_RUNS
from agents.market import MarketSet
from agents.market_scalars import tag_label

RUN_FILES = ("summary.json", "config.yaml")
"""A directory holding either file is a training run's (finished or not)."""
SUMMARY_KEYS = ("scenario", "algo", "seed", "policy", "eval_markets")
"""What this comparison reads from a run's ``summary.json``."""
DEFAULT_TAGS = ("eval/pnl", "eval/cvar_5", "mm/pnl", "train/value_loss")
"""Tags plotted when none are asked for (those present in the runs' event files)."""
SCALAR_COLUMNS = ("tag", "step", "value", "policy", "scenario", "markets", "seed", "run")


def read_scalars(log_dir: Path) -> pd.DataFrame:
    """Every scalar of every event file under ``log_dir``: columns tag, step, value and source
    (the event file's folder relative to ``log_dir``: ``sb3``, ``eval/ppo+adaptive``)."""
    frames = []
    for events_dir in sorted({p.parent for p in log_dir.rglob("events.out.tfevents.*")}):
        acc = EventAccumulator(str(events_dir), size_guidance={"scalars": 0})
        acc.Reload()
        source = events_dir.relative_to(log_dir).as_posix()
        for tag in acc.Tags()["scalars"]:
            data = acc.Scalars(tag)
            frames.append(
                pd.DataFrame(
                    {
                        "tag": tag,
                        "step": [e.step for e in data],
                        "value": [e.value for e in data],
                        "source": source,
                    }
                )
            )
    if not frames:
        return pd.DataFrame(columns=["tag", "step", "value", "source"])
    scalars = pd.concat(frames, ignore_index=True)
    return scalars.drop_duplicates(["source", "tag", "step"], keep="last")


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
    missing = [key for key in SUMMARY_KEYS if key not in summary]
    if missing:
        return f"summary.json lacks {missing}"
    if not summary.get("final_eval"):
        return "summary.json has no final evaluation: the run stopped before or during it"
    return None


def markets_of(summary: dict[str, Any]) -> MarketSet:
    """The held-out markets a run's evaluations were measured on."""
    return MarketSet.from_dict(summary["eval_markets"])


def is_learned(summary: dict[str, Any]) -> bool:
    """Whether the run trained its policy (a baseline's run only evaluates it)."""
    load_all()
    return summary["algo"] not in BASELINES


def load_runs(paths: list[Path]) -> tuple[pd.DataFrame, list[dict[str, Any]], list[Path]]:
    """Scalars of all runs (:data:`SCALAR_COLUMNS`), their summaries, and the runs without
    event files."""
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
        evaluated = scalars["source"].str.startswith(f"{EVAL_RUNS}/")
        scalars["policy"] = scalars["source"].str.removeprefix(f"{EVAL_RUNS}/")
        scalars.loc[~evaluated, "policy"] = summary["policy"]
        scalars["scenario"] = summary["scenario"]
        scalars["markets"] = markets_of(summary).describe()
        scalars["seed"] = summary["seed"]
        scalars["run"] = path.name if names.count(path.name) == 1 else str(path)
        frames.append(scalars[list(SCALAR_COLUMNS)])
    if not frames:
        return pd.DataFrame(columns=list(SCALAR_COLUMNS)), summaries, without_events
    return pd.concat(frames, ignore_index=True), summaries, without_events


def learning_curves(scalars: pd.DataFrame, tags: list[str], learned: set[str], path: Path) -> Path:
    """One panel per tag (row) and market set (column): each learned policy's mean over seeds
    (line, markers at the steps logged) with its min-max band across seeds, each baseline's
    value as a dashed horizontal line (``eval/*`` tags only: baselines are not trained)."""
    market_sets = list(dict.fromkeys(scalars["markets"]))
    policies = list(dict.fromkeys(scalars["policy"]))
    policies = [p for p in policies if p in learned] + [p for p in policies if p not in learned]
    colours = _colours(policies)
    fig, axes = figure(len(tags), len(market_sets), 6.4, 2.5, sharex="col")
    seen: dict[str, Any] = {}
    for i, tag in enumerate(tags):
        for j, markets in enumerate(market_sets):
            ax = axes[i, j]
            block = scalars[(scalars["tag"] == tag) & (scalars["markets"] == markets)]
            for policy in policies:
                rows = block[block["policy"] == policy]
                if rows.empty:
                    continue
                if policy in learned:
                    handle = _plot_learned(ax, rows, colours[policy])
                    seeds = rows["run"].nunique()
                    label = (
                        f"{policy}: mean of {seeds} seeds, band min-max"
                        if seeds > 1
                        else f"{policy} (1 seed)"
                    )
                else:
                    value = float(rows["value"].mean())
                    handle = ax.axhline(value, color=colours[policy], linestyle="--", lw=1.3)
                    label = f"{policy} (baseline)"
                seen.setdefault(label, handle)
            where = markets if tag.startswith(f"{EVAL_PREFIX}/") else "training envs"
            ax.set_title(f"{tag}: {where}", fontsize=9)
            ax.set_ylabel(tag_axis_label(tag), fontsize=8)
            ax.tick_params(labelsize=8)
            if i == len(tags) - 1:
                ax.set_xlabel("env steps", fontsize=8)
    handles = []
    for label, handle in seen.items():
        handle.set_label(label)
        handles.append(handle)
    if handles:
        legend_below(fig, handles, columns=min(len(handles), 2))
    return save_figure(fig, "Learning curves against env steps", path)


def _plot_learned(ax: Any, rows: pd.DataFrame, colour: str) -> Any:
    curves = rows.pivot_table(index="step", columns="run", values="value").sort_index()
    curves = curves.interpolate(limit_area="inside")
    mean = curves.mean(axis=1)
    marker = "o" if len(mean) <= 30 else None
    line = ax.plot(mean.index, mean.values, color=colour, marker=marker, ms=3, lw=1.4, zorder=3)[0]
    if curves.shape[1] > 1:
        low, high = curves.min(axis=1), curves.max(axis=1)
        ax.fill_between(curves.index, low, high, color=colour, alpha=0.15, linewidth=0)
    return line


def _colours(policies: list[str]) -> dict[str, str]:
    import matplotlib.pyplot as plt

    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {p: cycle[k % len(cycle)] for k, p in enumerate(policies)}


def tag_axis_label(tag: str) -> str:
    """The y-axis label of a tag, with its unit where it has one."""
    if tag.startswith(f"{EVAL_PREFIX}/"):
        return metric_label(tag.removeprefix(f"{EVAL_PREFIX}/"))
    return tag_label(tag)


def final_table(summaries: list[dict[str, Any]]) -> pd.DataFrame:
    """Final evaluation metrics per (market set, policy): mean and 95 % CI across seeds
    (columns ``<metric>``, ``<metric>_ci_low``, ``<metric>_ci_high``), with ``markets``,
    ``scenario``, ``learned`` and ``seeds``; learned policies first."""
    rows = []
    for s in summaries:
        markets = markets_of(s).describe()
        for policy, values in s["final_eval"].items():
            learned = is_learned(s) and policy == s["policy"]
            # A baseline is deterministic on the shared held-out markets: every run that
            # evaluated it reports the same numbers, one measurement rather than one per seed.
            seed = s["seed"] if learned else -1
            rows.append(
                {
                    "markets": markets,
                    "scenario": s["scenario"],
                    "policy": policy,
                    "learned": learned,
                    "seed": seed,
                    **values,
                }
            )
    table = pd.DataFrame(rows).drop_duplicates()
    keys = ("markets", "scenario", "policy", "learned", "seed")
    metric_cols = [c for c in table.columns if c not in keys]
    out = []
    for (markets, policy), block in table.groupby(["markets", "policy"], sort=False):
        row: dict[str, Any] = {
            "markets": markets,
            "scenario": block["scenario"].iloc[0],
            "policy": policy,
            "learned": bool(block["learned"].any()),
            "seeds": len(block),
        }
        for col in metric_cols:
            values = block[col].dropna().to_numpy()
            mean, lo, hi = (
                metrics.mean_confidence_interval(values) if len(values) else (math.nan,) * 3
            )
            row[col] = mean
            row[f"{col}_ci_low"] = lo
            row[f"{col}_ci_high"] = hi
        out.append(row)
    out.sort(key=lambda r: not r["learned"])  # learned policies first, then their baselines
    return pd.DataFrame(out)


def markdown(
    table: pd.DataFrame,
    summaries: list[dict[str, Any]],
    curves: Path | None,
    notes: Sequence[str] = (),
) -> str:
    """The comparison report: a compact table per market set, the details, the learning curves;
    ``notes`` say which runs were left out and why."""
    lines = [
        "# Comparison report",
        "",
        "Final evaluation of each run on its held-out markets (`train.eval_seed` x "
        "`train.eval_num_envs`): mean [95 % CI across training seeds, Student's t]. Baselines "
        "are evaluated on the same markets as the learned policies: one measurement however "
        "many runs report it, so no CI (n/a, n=1); nor has a policy trained with one seed. "
        "Numbers of different market sets are in different tables.",
    ]
    by_markets = {markets_of(s).describe(): markets_of(s) for s in summaries}
    blocks = list(table.groupby("markets", sort=False))
    for markets, block in blocks:
        lines += compact_section(by_markets[str(markets)], block, "seeds", ("policy", "seeds"))
    lines += ["", "## Details"]
    for markets, block in blocks:
        shown = [
            c
            for c in block.columns
            if c not in ("markets", "scenario", "policy", "learned", "seeds")
            and not c.endswith(("_ci_low", "_ci_high"))
        ]
        lines += [
            "",
            f"### {markets}",
            "",
            metrics_table(block, shown, "seeds", ("policy", "seeds")),
        ]
    lines += ["", f"![learning curves]({curves.name})" if curves else "No learning curves."]
    if notes:
        lines += ["", *[f"- {note}" for note in notes]]
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
    learned = {s["policy"] for s in summaries if is_learned(s)}
    curves = None
    if plotted and learned & set(scalars["policy"]):
        curves = learning_curves(scalars, plotted, learned, out_dir / "learning_curves.png")
    else:
        notes.append(
            f"no learning curves: no learned policy logs any of the tags {wanted} "
            "in the runs' event files"
        )
    for note in notes:
        say(note)
    table = final_table(summaries)
    report = out_dir / "comparison.md"
    report.write_text(markdown(table, summaries, curves, notes))
    scalars.to_csv(out_dir / "scalars.csv", index=False)
    table.to_csv(out_dir / "final_metrics.csv", index=False)
    paths_out = {
        "report": report,
        "scalars": out_dir / "scalars.csv",
        "final": out_dir / "final_metrics.csv",
    }
    if curves is not None:
        paths_out["curves"] = curves
    return paths_out
