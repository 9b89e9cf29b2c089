"""A failed job removes its output folder when it wrote nothing worth keeping, never when it
holds a model, a checkpoint, a summary or logged scalars."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from stable_baselines3.common.logger import Logger, make_output_format

from agents.job_dir import discard_on_failure

ROOT = Path(__file__).resolve().parent.parent


def _started_job(out: Path) -> None:
    """What a job has written when it fails early: Hydra's files, its config, an event file
    without scalars."""
    (out / ".hydra").mkdir(parents=True)
    (out / ".hydra" / "config.yaml").write_text("seed: 0\n")
    (out / "train.log").write_text("")
    (out / "config.yaml").write_text("seed: 0\n")
    make_output_format("tensorboard", str(out / "tensorboard" / "sb3")).close()


def test_a_job_failing_before_any_result_removes_its_folder(tmp_path: Path) -> None:
    out = tmp_path / "run"
    _started_job(out)
    with pytest.raises(RuntimeError, match="early"), discard_on_failure(out):
        raise RuntimeError("early")
    assert not out.exists()


@pytest.mark.parametrize("artifact", ["model.zip", "summary.json", "checkpoints/rl_model.zip"])
def test_a_folder_with_a_result_is_kept(tmp_path: Path, artifact: str) -> None:
    out = tmp_path / "run"
    _started_job(out)
    (out / artifact).parent.mkdir(parents=True, exist_ok=True)
    (out / artifact).write_bytes(b"x")
    with pytest.raises(RuntimeError), discard_on_failure(out):
        raise RuntimeError("late")
    assert (out / artifact).is_file()


def test_logged_scalars_are_kept(tmp_path: Path) -> None:
    out = tmp_path / "run"
    _started_job(out)
    logger = Logger(str(out), [make_output_format("tensorboard", str(out / "tensorboard" / "x"))])
    logger.record("train/value_loss", 1.5)
    logger.dump(1)
    logger.close()
    with pytest.raises(RuntimeError), discard_on_failure(out):
        raise RuntimeError("diverged")
    assert out.is_dir()


def test_a_successful_job_keeps_its_folder(tmp_path: Path) -> None:
    out = tmp_path / "run"
    _started_job(out)
    with discard_on_failure(out):
        pass
    assert out.is_dir()


@pytest.mark.parametrize(
    ("script", "overrides", "error"),
    [
        # A zero budget used to train nothing, exit 0 and leave a model compare counted.
        ("train.py", ["train=smoke", "train.total_steps=0"], "train.total_steps must be at least"),
        ("evaluate.py", ["evaluation.policies=[best]"], "unknown policy 'best'"),
    ],
)
def test_scripts_remove_the_folder_of_a_job_that_failed_early(
    tmp_path: Path, script: str, overrides: list[str], error: str
) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, str(ROOT / "scripts" / script), *overrides, f"hydra.run.dir={out}"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode != 0 and error in done.stderr
    assert not out.exists(), sorted(p.name for p in out.rglob("*"))
    assert f"removed {out}" in done.stderr
