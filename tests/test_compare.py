"""Comparing runs: the runs it finds below the paths given, the ones it leaves out (and says
why), and the report of what is left, read back from real run directories."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from markdown_tables import assert_tables_render

from agents.baseline_run import run_baseline
from agents.compare import compare, find_runs
from agents.config import TrainJob, to_job
from agents.sb3.train import train

ROOT = Path(__file__).resolve().parent.parent
TINY = (
    "train=smoke", "train.total_steps=256", "train.eval_every_steps=0",
    "train.checkpoint_every_steps=0", "train.episode_seconds=30", "train.eval_num_envs=2",
)  # fmt: skip


def _compose(*overrides: str) -> TrainJob:
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        return to_job(compose(config_name="train", overrides=list(overrides)), TrainJob)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A demo-like folder: a run with event files, one without (logger=none), a baseline's run,
    and an evaluation folder that is not a run."""
    root = tmp_path_factory.mktemp("demo") / "20260101-000000"
    out = {
        "logged": root / "train",
        "unlogged": root / "train_nolog",
        "baseline": root / "baseline",
    }
    train(_compose(*TINY), out["logged"])
    train(_compose(*TINY, "logger=none", "seed=1"), out["unlogged"])
    run_baseline(_compose(*TINY, "agent=adaptive"), out["baseline"])
    (root / "evaluation").mkdir()
    (root / "evaluation" / "summary.csv").write_text("scenario,policy\n")
    out["root"] = root
    return out


def test_a_run_without_event_files_is_compared_without_a_curve(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = compare([runs["unlogged"]], tmp_path / "out")
    said = capsys.readouterr().out
    assert str(runs["unlogged"]) in said and "no TensorBoard event files" in said
    report = paths["report"].read_text()
    assert_tables_render(report, "comparison.md")
    assert "| ppo | 1 |" in report and "[n/a (n=1)]" in report  # one seed: no CI
    assert "curves" not in paths and "learning_curves.png" not in report


def test_runs_with_and_without_event_files_compare_together(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    paths = compare([runs["logged"], runs["unlogged"]], tmp_path / "out")
    final = pd.read_csv(paths["final"])
    assert final.set_index("policy").loc["ppo", "seeds"] == 2
    assert paths["curves"].read_bytes()[:4] == b"\x89PNG"
    scalars = pd.read_csv(paths["scalars"])
    assert set(scalars["run"]) == {"train"}


def test_a_baseline_run_alone_compares_without_learning_curves(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    paths = compare([runs["baseline"]], tmp_path / "out")
    report = paths["report"].read_text()
    assert "| adaptive | 1 |" in report
    assert_tables_render(report, "comparison.md")


def test_the_demo_root_folder_is_searched_for_runs(runs: dict[str, Path], tmp_path: Path) -> None:
    found, skipped = find_runs([runs["root"]])
    assert sorted(p.name for p in found) == ["baseline", "train", "train_nolog"]
    assert skipped == []
    paths = compare([runs["root"]], tmp_path / "out")
    assert set(pd.read_csv(paths["final"])["policy"]) >= {"ppo", "adaptive", "linear_skew"}


def test_unfinished_and_missing_runs_are_left_out_naming_them_and_why(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unfinished = tmp_path / "unfinished"
    shutil.copytree(runs["logged"], unfinished)
    summary = json.loads((unfinished / "summary.json").read_text())
    (unfinished / "summary.json").write_text(json.dumps({**summary, "final_eval": None}))
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    (crashed / "config.yaml").write_text("seed: 0\n")
    missing = tmp_path / "missing"
    found, skipped = find_runs([runs["logged"], unfinished, crashed, missing])
    assert found == [runs["logged"]]
    reasons = dict(skipped)
    assert "no final evaluation" in reasons[unfinished]
    assert "no summary.json" in reasons[crashed]
    assert "does not exist" in reasons[missing]
    paths = compare([runs["logged"], unfinished, crashed, missing], tmp_path / "out")
    said = capsys.readouterr().out
    for path in (unfinished, crashed, missing):
        assert str(path) in said
    assert str(crashed) in paths["report"].read_text()  # the report says what it left out
    with pytest.raises(ValueError, match=r"no training run to compare.*no summary\.json"):
        compare([crashed], tmp_path / "none")
