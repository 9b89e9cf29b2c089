"""Smoke tests of the entry points not covered elsewhere: the demo, compare, console scripts."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

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
    ])  # fmt: skip
    assert "tensorboard --logdir" in done.stdout
    out = Path(done.stdout.split("Results: ")[1].splitlines()[0].strip())
    try:
        for path in (
            "train/model.zip",
            "train/summary.json",
            "evaluation/report.md",
            "evaluation/episodes.parquet",
            "comparison/comparison.md",
            "comparison/learning_curves.png",
        ):
            assert (out / path).is_file(), path
        policies = set(pd.read_parquet(out / "evaluation" / "episodes.parquet")["policy"])
        assert {"ppo_residual", "linear_skew", "adaptive", "cartea_jaimungal"} == policies
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
    final = pd.read_csv(out / "final_metrics.csv")
    ppo = final[final["policy"] == "ppo"].iloc[0]
    assert ppo["seeds"] == 2
    scalars = pd.read_csv(out / "scalars.csv")
    curve = scalars[scalars["tag"] == "eval/learned/pnl"]
    assert set(curve["seed"]) == {0, 1} and curve["step"].nunique() >= 2
    assert (out / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"


def test_console_scripts_are_installed_and_pass_arguments_through() -> None:
    exe = Path(sys.executable).parent / "mmgym-train"
    if not exe.exists():  # installed by `make` (pip install -e .); a bare checkout lacks it
        exe = None
    args = [str(exe)] if exe else [sys.executable, "-c", "from agents.cli import train; train()"]
    done = _run([*args, "--help"], timeout=300)
    assert "train" in done.stdout and "env" in done.stdout
