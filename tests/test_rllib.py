"""RLlib on Ray: config groups, a tiny PPO run's directory and TensorBoard, the trained module
behind the Policy interface, ``scripts/train.py agent=rllib_ppo`` joining a running Ray, and a
two-trial Tune sweep. One local Ray instance (2 CPUs) serves the whole module."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException

pytest.importorskip("ray.rllib")
pytest.importorskip("ray.tune")

from faults import EVALUATION_FAULT, fail_evaluating_the_learned_policy
from markdown_tables import assert_tables_render
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from agents.config import RLlibPPOConfig, SweepConfig, TrainJob, TuneJob, to_job
from agents.evaluation import run_batch
from agents.policy import Policy
from agents.rllib.policy import RLlibPolicy
from agents.rllib.tune import base_job, grid_points, register_primary_config, trial_job
from mmgym.envs.perp_mm import PerpMMVectorEnv
from mmgym.scenarios import make_params

# RLlib registers its env with Gymnasium again each time an EnvRunner is built in this process.
pytestmark = pytest.mark.filterwarnings("ignore:.*rllib-single-agent-env-v0:UserWarning")

ROOT = Path(__file__).resolve().parent.parent
CONF = str(ROOT / "conf")
SB3_SUMMARY_KEYS = {
    "scenario",
    "algo",
    "residual_on",
    "observation_dim",
    "action_dim",
    "seed",
    "steps",
    "seconds",
    "steps_per_second",
    "final_eval",
    "eval_history",
    "run_dir",
}
TINY = (
    "agent=rllib_ppo",
    "train=smoke",
    "train.total_steps=1024",
    "train.num_envs=8",
    "train.episode_seconds=30",
    "train.eval_every_steps=512",
    "train.eval_num_envs=4",
    "train.checkpoint_every_steps=1024",
    "agent.train_batch_size=512",
    "agent.minibatch_size=128",
    "agent.num_epochs=2",
)
"""Two PPO iterations of 512 env steps on 30 s episodes."""


def _compose(*overrides: str) -> TrainJob:
    with initialize_config_dir(config_dir=CONF, version_base=None):
        return to_job(compose(config_name="train", overrides=list(overrides)), TrainJob)


def _compose_tune(*overrides: str) -> TuneJob:
    register_primary_config()
    with initialize_config_dir(config_dir=CONF, version_base=None):
        return to_job(compose(config_name="tune", overrides=list(overrides)), TuneJob)


@pytest.fixture(scope="module")
def ray_local() -> Iterator[str]:
    """One local Ray instance for the module; yields its address (for subprocesses to join)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def trained_run(ray_local: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny RLlib PPO run (one EnvRunner actor) on the module's Ray instance."""
    from agents.rllib.train import train

    run = tmp_path_factory.mktemp("rllib") / "run"
    train(_compose(*TINY, "agent.num_env_runners=1"), run)
    return run


def test_agent_and_sweep_groups_compose_into_their_schemas() -> None:
    job = _compose("agent=rllib_ppo", "agent.ray_address=auto", "agent.lr=1e-4")
    assert isinstance(job.agent, RLlibPPOConfig)
    assert job.agent.ray_address == "auto" and job.agent.lr == 1e-4
    tune_job = _compose_tune("sweep=ppo_lr", "train=smoke")
    assert isinstance(tune_job.sweep, SweepConfig) and isinstance(tune_job.agent, RLlibPPOConfig)
    assert len(grid_points(tune_job.sweep)) == 12
    logged = _compose_tune("sweep=smoke", "logger=csv", "logger.markout_seconds=5")
    assert base_job(logged).logger == logged.logger  # trials log as the sweep says
    assert base_job(logged).logger.formats == ["csv"]
    with (
        initialize_config_dir(config_dir=CONF, version_base=None),
        pytest.raises(ConfigCompositionException) as err,
    ):
        compose(config_name="train", overrides=["agent=rllib_ppo", "agent.num_env_runner=2"])
    assert "num_env_runner" in str(err.value) + str(err.value.__cause__)


def test_sweep_keys_are_checked_against_the_job_before_ray_starts() -> None:
    base = _compose("agent=rllib_ppo")
    job = trial_job(base, {"agent.lr": 1e-3, "env.scenario": "volatile", "seed": 2})
    assert (job.agent.lr, job.env.scenario, job.seed) == (1e-3, "volatile", 2)
    with pytest.raises(ValueError, match=r"agent\.learning_rate"):
        trial_job(base, {"agent.learning_rate": 1e-3})  # an SB3 key, not RLlib's
    with pytest.raises(Exception, match="num_epochs"):
        trial_job(base, {"agent.num_epochs": "many"})


def test_env_creator_builds_the_native_vector_env_with_its_own_seeds() -> None:
    from ray.rllib.env.env_context import EnvContext

    from agents.rllib.env import make_vector_env

    def make(worker_index: int) -> Any:
        config = {"scenario": "calm", "overrides": {"episode_seconds": 3.0}, "seed": 1}
        config |= {"num_env_runners": 2, "num_envs": 4}
        return make_vector_env(EnvContext(config, worker_index=worker_index))

    first, second = make(1), make(2)
    assert isinstance(first.unwrapped, PerpMMVectorEnv)  # the vector entry point, no SyncVectorEnv
    assert first.unwrapped.sim._step_kernel.__name__ == "step_markets"  # parallel=False
    obs1, info = first.reset(seed=2)  # RLlib's seed (config.seed + worker_index) is replaced
    obs2, _ = second.reset(seed=3)
    assert info == {}
    native = PerpMMVectorEnv(num_envs=4, episode_seconds=3.0)
    assert np.array_equal(obs1, native.reset(seed=(1 * 3 + 1) * 4)[0])
    assert not np.array_equal(obs1, obs2)  # runners never share markets
    actions = np.zeros((4, 5), np.float32)
    pnl = []
    for _ in range(4):  # 3 steps to the end of the episode, then the NEXT_STEP autoreset
        _, _, _, truncated, info = first.step(actions)
        assert info == {}
        pnl.append(first.unwrapped.sim.info(True)["pnl"].mean())
    assert truncated.sum() == 0 and pnl[-1] == 0.0
    sums, steps = first.pop_sums()
    assert steps == 3  # the autoreset step is not a market step
    assert sums["mm/pnl"] == pytest.approx(sum(pnl[:3]))


def test_tiny_training_writes_its_run_directory_and_tensorboard(trained_run: Path) -> None:
    run = trained_run
    for name in ("config.yaml", "summary.json"):
        assert (run / name).is_file(), name
    assert (run / "checkpoint" / "rllib_checkpoint.json").is_file()
    assert (run / "checkpoints" / "step_1024").is_dir()
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary) == SB3_SUMMARY_KEYS
    assert summary["algo"] == "rllib_ppo" and summary["steps"] >= 1024
    assert set(summary["final_eval"]) == {"learned", "linear_skew"}
    assert all(math.isfinite(v) for v in summary["final_eval"]["learned"].values())
    assert [h["steps"] for h in summary["eval_history"]] == [512, 1024]

    event_dirs = list((run / "tensorboard").iterdir())
    assert len(event_dirs) == 1
    events = EventAccumulator(str(event_dirs[0]))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    expected = {
        "mm/pnl",
        "mm/inventory_abs",
        "mm/funding_pnl",
        "mm/spread_pnl",
        "mm/inventory_pnl",
        "mm/fees",
        "mm/adverse_selection",
        "eval/learned/pnl",
        "eval/learned/sharpe",
        "eval/linear_skew/pnl",
        "rllib/learners/default_policy/total_loss",
        "rllib/learners/default_policy/entropy",
        "rllib/env_runners/episode_return_mean",
        "rllib/env_runners/num_env_steps_sampled",
    }
    assert expected <= tags, expected - tags
    assert [e.step for e in events.Scalars("mm/pnl")] == [512, 1024]
    assert all(math.isfinite(e.value) for e in events.Scalars("mm/inventory_abs"))
    last = events.Scalars("eval/learned/pnl")[-1].value
    assert last == pytest.approx(summary["final_eval"]["learned"]["pnl"], rel=1e-5, abs=1e-9)


def test_rllib_policy_acts_on_the_env_and_evaluates(trained_run: Path) -> None:
    policy = RLlibPolicy.load(trained_run / "policy")
    assert isinstance(policy, Policy)
    env = PerpMMVectorEnv(num_envs=4, episode_seconds=30.0)
    obs, _ = env.reset(seed=7)
    for _ in range(5):
        actions = policy.act(obs)
        assert actions.shape == (4, 5) and actions.dtype == np.float32
        assert np.all(np.abs(actions) <= 1.0)
        obs, reward, _, _, _ = env.step(actions)
        assert np.all(np.isfinite(reward))
    assert np.array_equal(policy.act(obs), policy.act(obs))  # deterministic
    params = make_params("calm", episode_seconds=30.0)
    rows, _ = run_batch(policy, params, 4, 3, [10], overrides={"episode_seconds": 30.0})
    assert len(rows) == 4 and all(math.isfinite(r["pnl"]) for r in rows)


def test_rllib_policy_matches_the_env_runners_inference_pipeline(ray_local: str) -> None:
    """RLlibPolicy.act equals what RLlib's EnvRunner sends to the env when not exploring:
    MeanStdFilter (frozen), forward_inference, deterministic action, NormalizeAndClipActions."""
    from ray.rllib.connectors.env_to_module import MeanStdFilter
    from ray.rllib.core.columns import Columns
    from ray.rllib.env.single_agent_episode import SingleAgentEpisode

    from agents.rllib.train import build_config, register_env, stop_algorithm

    register_env()
    job = _compose(*TINY, "agent.num_env_runners=0", "train.num_envs=4")
    algo = build_config(job).build_algo()
    try:
        algo.train()
        policy = RLlibPolicy.from_algorithm(algo)
        runner = algo.env_runner
        for piece in runner._env_to_module.connectors:
            if isinstance(piece, MeanStdFilter):
                piece._update_stats = False
        obs = 2.0 * np.random.default_rng(0).normal(size=(6, 25)).astype(np.float32)
        episodes = [
            SingleAgentEpisode(
                observations=[o],
                observation_space=runner.env.single_observation_space,
                action_space=runner.env.single_action_space,
            )
            for o in obs
        ]
        shared: dict[str, Any] = {}
        batch = runner._env_to_module(
            episodes=episodes, batch={}, rl_module=runner.module, explore=False,
            shared_data=shared, metrics=None,
        )  # fmt: skip
        out = runner.module.forward_inference(batch)
        to_env = runner._module_to_env(
            rl_module=runner.module, batch=out, episodes=episodes, explore=False,
            shared_data=shared, metrics=None,
        )  # fmt: skip
        expected = np.asarray(to_env.get(Columns.ACTIONS_FOR_ENV, to_env[Columns.ACTIONS]))
    finally:
        stop_algorithm(algo)
    np.testing.assert_allclose(policy.act(obs), expected, atol=1e-5)


def test_exploding_learning_rate_stops_cleanly_with_the_losses(
    ray_local: str, tmp_path: Path
) -> None:
    from agents.rllib.train import train
    from agents.training_run import TrainingDivergedError

    job = _compose(
        *TINY, "agent.num_env_runners=0", "agent.lr=1e12", "agent.grad_clip=null",
        "train.total_steps=4096", "train.eval_every_steps=0", "train.checkpoint_every_steps=0",
    )  # fmt: skip
    with pytest.raises(TrainingDivergedError, match=r"training stopped after \d+ steps: .*loss"):
        train(job, tmp_path / "nan")


def test_a_failed_final_evaluation_keeps_the_trained_policy(
    ray_local: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import agents.rllib.train as rllib_train
    from agents.training_run import FinalEvaluationError

    fail_evaluating_the_learned_policy(monkeypatch, rllib_train)
    job = _compose(
        *TINY, "agent.num_env_runners=0", "train.total_steps=512", "train.eval_every_steps=0",
        "train.checkpoint_every_steps=0",
    )  # fmt: skip
    run = tmp_path / "run"
    with pytest.raises(FinalEvaluationError) as err:
        rllib_train.train(job, run)
    assert EVALUATION_FAULT in str(err.value) and str(run / "policy") in str(err.value)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["final_eval"] is None and summary["steps"] >= 512
    assert (run / "checkpoint" / "rllib_checkpoint.json").is_file()
    policy = RLlibPolicy.load(run / "policy")
    obs = np.zeros((2, *PerpMMVectorEnv(num_envs=1).single_observation_space.shape), np.float32)
    assert policy.act(obs).shape == (2, 5)


def test_train_script_joins_a_running_ray_with_agent_ray_address(
    ray_local: str, tmp_path: Path
) -> None:
    run = tmp_path / "cli"
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "train.py"),
        *TINY,
        "train.total_steps=512",
        "train.eval_every_steps=0",
        "train.checkpoint_every_steps=0",
        "agent.num_env_runners=1",
        f"agent.ray_address={ray_local}",
        f"hydra.run.dir={run}",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "tensorboard --logdir" in done.stdout
    summary = json.loads((run / "summary.json").read_text())
    assert summary["algo"] == "rllib_ppo" and summary["steps"] >= 512
    assert RLlibPolicy.load(run / "policy").act(np.zeros((2, 25), np.float32)).shape == (2, 5)


def test_two_trial_sweep_completes_with_a_results_table(ray_local: str, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "tune.py"),
        "sweep=smoke",
        f"sweep.ray_address={ray_local}",
        f"hydra.run.dir={out}",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "eval/learned/pnl" in done.stdout
    import pandas as pd

    table = pd.read_csv(out / "results.csv")
    assert sorted(table["agent.lr"]) == [1e-4, 1e-3]
    assert list(table["status"]) == ["OK", "OK"]
    assert (table["steps"] >= 1024).all() and table["eval/learned/pnl"].notna().all()
    assert (out / "results.md").read_text().startswith("| trial | agent.lr |")
    assert_tables_render((out / "results.md").read_text(), "results.md")
    for path in table["path"]:
        trial = Path(path)
        summary = json.loads((trial / "summary.json").read_text())
        assert set(summary) == SB3_SUMMARY_KEYS
        events = EventAccumulator(str(next((trial / "tensorboard").iterdir())))
        events.Reload()
        tags = set(events.Tags()["scalars"])
        assert {"mm/pnl", "eval/learned/pnl", "eval/linear_skew/pnl"} <= tags
