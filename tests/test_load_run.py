"""``agents.learned.load_run`` on a real training run: what it accepts, and the clear errors on
a run directory that is incomplete or whose config no longer matches the trained model."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from agents.config import TrainJob, to_job
from agents.learned import SB3Policy, load_run
from agents.sb3.train import train
from mmgym.envs.perp_mm import PerpMMVectorEnv

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        cfg = compose(
            config_name="train",
            overrides=[
                "train=smoke", "train.total_steps=256", "train.eval_every_steps=0",
                "train.checkpoint_every_steps=0", "train.episode_seconds=30",
                "train.eval_num_envs=2",
            ],
        )  # fmt: skip
    run = tmp_path_factory.mktemp("load") / "run"
    train(to_job(cfg, TrainJob), run)
    return run


@pytest.fixture
def copy(trained: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    return run


def _edit_config(run: Path, key: str, value: object) -> None:
    cfg = OmegaConf.load(run / "config.yaml")
    OmegaConf.update(cfg, key, value, merge=False)
    (run / "config.yaml").write_text(OmegaConf.to_yaml(cfg))


def test_a_str_path_loads_the_normalised_policy(trained: Path) -> None:
    policy = load_run(str(trained))
    assert isinstance(policy, SB3Policy) and policy.obs_mean is not None
    env = PerpMMVectorEnv(num_envs=2, episode_seconds=30.0)
    obs, _ = env.reset(seed=0)
    assert policy.act(obs).shape == (2, 5)


def test_missing_observation_statistics_are_an_error_naming_the_file(copy: Path) -> None:
    (copy / "vecnormalize.pkl").unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(str(copy / "vecnormalize.pkl"))):
        load_run(copy)


def test_a_missing_model_is_named_as_it_is_on_disk(copy: Path) -> None:
    (copy / "model.zip").unlink()
    with pytest.raises(FileNotFoundError) as err:
        load_run(copy)
    assert str(copy / "model.zip") in str(err.value) and "model.zip.zip" not in str(err.value)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("env.scenario", "volatile", "scenario: config.yaml says 'volatile', summary.json 'calm'"),
        ("agent.residual_on", "adaptive", "residual_on: config.yaml says 'adaptive', summary"),
        ("agent.algo", "sac", "algo: config.yaml says 'sac', summary.json 'ppo'"),
    ],
)
def test_a_config_edited_after_training_is_refused_naming_the_mismatch(
    copy: Path, key: str, value: object, message: str
) -> None:
    _edit_config(copy, key, value)
    with pytest.raises(ValueError, match=re.escape(message)):
        load_run(copy)


def test_a_market_with_other_shapes_is_refused_before_acting(copy: Path) -> None:
    _edit_config(copy, "env.overrides", {"num_assets": 3})
    with pytest.raises(ValueError, match=r"observations of 69 values.*the model takes 25"):
        load_run(copy)


def test_a_directory_that_is_not_a_run_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"not a training run directory \(no config\.yaml\)"):
        load_run(tmp_path)
