"""Shared fixtures: tiny SB3 training runs (conf/train/smoke.yaml) and their bundles, trained
and exported once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from agents.config import TrainJob, to_job

CONF = str(Path(__file__).resolve().parent.parent / "conf")
QUIET = ["logger=none", "train.eval_every_steps=0", "train.checkpoint_every_steps=0"]
RUNS: dict[str, list[str]] = {
    "ppo": ["agent=ppo"],
    # A larger learning rate than the stock 3e-4 moves the correction visibly away from its
    # zero start within the smoke budget, so the residual composition is exercised.
    "ppo_residual": ["agent=ppo_residual", "agent.learning_rate=3e-3"],
    "sac": [
        "agent=sac",
        "train.total_steps=512",
        "agent.learning_starts=64",
        "agent.buffer_size=1000",
    ],
}


def train_smoke_run(name: str, run_dir: Path) -> Path:
    """Train the smoke run ``name`` of :data:`RUNS` into ``run_dir``."""
    from agents.sb3.train import train

    with initialize_config_dir(config_dir=CONF, version_base=None):
        cfg = compose(config_name="train", overrides=["train=smoke", *QUIET, *RUNS[name]])
    train(to_job(cfg, TrainJob), run_dir)
    return run_dir


@pytest.fixture(scope="session")
def ppo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plain PPO smoke run (read-only: copy it before changing anything)."""
    return train_smoke_run("ppo", tmp_path_factory.mktemp("runs") / "ppo")


@pytest.fixture(scope="session")
def residual_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A residual PPO smoke run on ``adaptive`` (read-only)."""
    return train_smoke_run("ppo_residual", tmp_path_factory.mktemp("runs") / "ppo_residual")


@pytest.fixture(scope="session")
def sac_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SAC smoke run (read-only)."""
    return train_smoke_run("sac", tmp_path_factory.mktemp("runs") / "sac")


@pytest.fixture(scope="session")
def ppo_bundle(ppo_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The PPO smoke run exported with ``force=True`` (read-only: copy it to tamper)."""
    from agents.deploy.export import export_bundle

    out = tmp_path_factory.mktemp("bundles") / "ppo"
    export_bundle(ppo_run, out, force=True)
    return out


@pytest.fixture(scope="session")
def residual_bundle(residual_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The residual smoke run exported with ``force=True`` (read-only)."""
    from agents.deploy.export import export_bundle

    out = tmp_path_factory.mktemp("bundles") / "ppo_residual"
    export_bundle(residual_run, out, force=True)
    return out


@pytest.fixture(scope="session")
def sac_bundle(sac_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The SAC smoke run exported with ``force=True`` (read-only)."""
    from agents.deploy.export import export_bundle

    out = tmp_path_factory.mktemp("bundles") / "sac"
    export_bundle(sac_run, out, force=True)
    return out
