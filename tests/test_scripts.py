"""Smoke tests of the entry points not covered elsewhere: the demo, compare, console scripts."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from markdown_tables import assert_tables_render

ROOT = Path(__file__).resolve().parent.parent


def _run(args: list[str], timeout: int = 900) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_demo_trains_evaluates_and_compares_with_a_tiny_budget() -> None:
    done = _run([
        sys.executable, str(ROOT / "scripts" / "demo.py"),
        "train.total_steps=1024", "train.num_envs=8", "train.episode_seconds=30",
        "train.eval_every_steps=0", "train.checkpoint_every_steps=0", "train.progress_bar=false",
        "train.eval_num_envs=2", "train.eval_baselines=[linear_skew]",
        "vet.episode_seconds=8", "vet.baselines=[adaptive]",
    ])  # fmt: skip
    assert "| ppo+adaptive |" in done.stdout  # the compact tables on the console
    # Vetted, then exported when it passed, or the failed checks named and nothing exported.
    verdict = done.stdout.split("verdict: ")[-1].split()[0]
    if verdict == "pass":
        bundle = Path(done.stdout.split("bundle: ")[-1].splitlines()[0].strip())
        assert (bundle / "manifest.json").is_file() and (bundle / "vetting.json").is_file()
    else:
        assert verdict == "fail:" and "failed checks: " in done.stdout
        assert "nothing exported" in done.stdout
    assert "tensorboard --logdir" in done.stdout
    out = Path(done.stdout.split("Results: ")[1].splitlines()[0].strip())
    try:
        for path in (
            "report.md",
            "train/model.zip",
            "train/summary.json",
            "evaluation/report.md",
            "evaluation/episodes.parquet",
            "comparison/comparison.md",
            "comparison/learning_curves.png",
            "train/vetting/vetting.md",
            "train/vetting/vetting.json",
        ):
            assert (out / path).is_file(), path
        pages = ("report.md", "evaluation/report.md", "comparison/comparison.md")
        for page in (*pages, "train/vetting/vetting.md"):
            assert_tables_render((out / page).read_text(), page)
            assert "| ppo+adaptive |" in (out / page).read_text()
        # One name for the policy everywhere: episode table, comparison, TensorBoard runs.
        policies = set(pd.read_parquet(out / "evaluation" / "episodes.parquet")["policy"])
        assert {"ppo+adaptive", "linear_skew", "adaptive", "cartea_jaimungal"} == policies
        assert "ppo+adaptive" in set(
            pd.read_csv(out / "comparison" / "final_metrics.csv")["policy"]
        )
        assert (out / "train" / "tensorboard" / "eval" / "ppo+adaptive").is_dir()
        assert (out / "evaluation" / "tensorboard" / "ppo+adaptive").is_dir()
        # Both market sets are named next to their tables.
        page = (out / "report.md").read_text()
        assert "seeds 101, 102 x 32 envs" in page and "seed 10000 x 2 envs" in page
    finally:
        shutil.rmtree(out, ignore_errors=True)


def test_compare_reads_two_runs_back_from_their_event_files(tmp_path: Path) -> None:
    runs = []
    for seed in (0, 1):
        run = tmp_path / f"run{seed}"
        _run([
            sys.executable, str(ROOT / "scripts" / "train.py"), "train=smoke",
            "train.total_steps=1024", "train.eval_every_steps=512",
            "train.checkpoint_every_steps=0", f"seed={seed}", f"hydra.run.dir={run}",
        ])  # fmt: skip
        runs.append(run)
    out = tmp_path / "compare"
    done = _run(
        [sys.executable, str(ROOT / "scripts" / "compare.py"), *map(str, runs), "--out", str(out)]
    )
    assert "Comparison report" in done.stdout
    assert_tables_render((out / "comparison.md").read_text(), "comparison.md")
    final = pd.read_csv(out / "final_metrics.csv")
    ppo = final[final["policy"] == "ppo"].iloc[0]
    assert ppo["seeds"] == 2
    scalars = pd.read_csv(out / "scalars.csv")
    pnl = scalars[scalars["tag"] == "eval/pnl"]
    curve = pnl[pnl["policy"] == "ppo"]
    assert set(curve["seed"]) == {0, 1} and curve["step"].nunique() >= 2
    reference = pnl[pnl["policy"] == "linear_skew"]  # the baseline, at the same steps
    assert set(reference["step"]) == set(curve["step"])
    # Two seeds: a t interval (finite bounds, not n/a); zero width if both seeds stopped quoting.
    assert ppo["pnl_ci_low"] <= ppo["pnl"] <= ppo["pnl_ci_high"]
    assert np.isfinite([ppo["pnl_ci_low"], ppo["pnl_ci_high"]]).all()
    assert (out / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"


def test_console_scripts_are_installed_and_pass_arguments_through() -> None:
    exe = Path(sys.executable).parent / "mmgym-train"
    if not exe.exists():  # installed by `make` (pip install -e .); a bare checkout lacks it
        exe = None
    args = [str(exe)] if exe else [sys.executable, "-c", "from agents.cli import train; train()"]
    done = _run([*args, "--help"], timeout=300)
    assert "train" in done.stdout and "env" in done.stdout


def test_bench_writes_its_table_between_the_markers(tmp_path: Path) -> None:
    page = tmp_path / "bench.md"
    page.write_text("# page\n<!-- bench:begin -->\nold table\n<!-- bench:end -->\nkept\n")
    _run([
        sys.executable, str(ROOT / "scripts" / "bench.py"), "--envs", "AvellanedaStoikov",
        "PerpMM", "--sizes", "2", "--repeats", "1", "--seconds", "0.02", "--sb3-steps", "1024",
        "--write", str(page),
    ])  # fmt: skip
    text = page.read_text()
    assert "old table" not in text and text.startswith("# page\n") and text.endswith("kept\n")
    for row in ("| AvellanedaStoikov | 2 |", "| PerpMM | 2 |", "| SB3 PPO", "us ("):
        assert row in text, row
    assert "Commit unknown" not in text  # provenance finds the checkout from any directory
    assert_tables_render(text, "bench page")


def test_as2008_runner_prints_and_writes_the_table_with_published_values(tmp_path: Path) -> None:
    done = _run(
        [sys.executable, "-m", "experiments.as2008.run", "--gammas", "0.1", "--out", str(tmp_path)]
    )
    assert "| 0.1 | inventory |" in done.stdout and "(65.0)" in done.stdout
    assert (tmp_path / "results.md").read_text().strip() == done.stdout.strip()
    assert_tables_render(done.stdout, "as2008 table")


def test_stylized_facts_script_writes_its_page_and_figures(tmp_path: Path) -> None:
    out, img = tmp_path / "facts.md", tmp_path / "img"
    _run([
        sys.executable, str(ROOT / "scripts" / "stylized_facts.py"), "--envs", "2",
        "--hours", "0.1", "--out", str(out), "--img", str(img),
    ])  # fmt: skip
    assert out.read_text().startswith("#")
    assert_tables_render(out.read_text(), "stylized facts page")
    assert list(img.glob("*.png"))


def test_the_limiter_overhead_interval_is_students_t_on_paired_log_ratios() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from bench import overhead_interval
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    ratios = [1.02, 1.10, 1.05]  # limited / bare per block
    blocks = [{"bare": 1e-3, "limited": 1e-3 * r} for r in ratios]
    mid, low, high = overhead_interval(blocks)
    logs = np.log(ratios)
    half = 4.302652729911275 * logs.std(ddof=1) / np.sqrt(3)  # t(0.975, 2 dof)
    assert mid == pytest.approx(np.expm1(logs.mean()), rel=1e-12)
    assert (low, high) == pytest.approx(
        (np.expm1(logs.mean() - half), np.expm1(logs.mean() + half))
    )
    assert low < 0.05 < high
    assert np.isnan(overhead_interval(blocks[:1])[1])


def test_the_overhead_over_runs_pools_each_runs_paired_overhead() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from bench import IdleWaiter, risk_runs_table, run_interval
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    overheads = [0.06, 0.09, 0.07, 0.05]
    logs = np.log1p(overheads)
    half = 3.182446305284263 * logs.std(ddof=1) / 2.0  # t(0.975, 3 dof), sqrt(4) runs
    assert run_interval(overheads) == pytest.approx(
        (np.expm1(logs.mean()), np.expm1(logs.mean() - half), np.expm1(logs.mean() + half))
    )
    # two runs of 4 envs, each cell in its own worker process: the table renders, one row per
    # cell, each with both runs' overheads and a finite interval
    text = risk_runs_table(steps=2, runs=2, repeats=2, idle=IdleWaiter(0.0), num_envs=4)
    assert_tables_render(text, "overhead over runs")
    rows = [
        line for line in text.splitlines() if line.startswith("| both") or line.startswith("| one")
    ]
    assert len(rows) == 4
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells[2].split(",")) == 2
        assert "nan" not in cells[3]
