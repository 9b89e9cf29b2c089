"""Residual agents: the mapping, the training wrapper and the policy agree; a zero correction is
the baseline bit for bit; a residual run trains and loads back as a ResidualPolicy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from numpy.typing import NDArray
from omegaconf import OmegaConf
from stable_baselines3.common.vec_env import VecNormalize

from agents.baselines.adaptive import AdaptivePolicy
from agents.baselines.registry import make_baseline
from agents.config import PPOConfig, SACConfig, TrainJob, to_job
from agents.evaluation import evaluate_policies, run_batch
from agents.learned import SB3Policy, load_run
from agents.policy import Policy
from agents.residual import ResidualPolicy, ResidualVecEnv, compose_policy, residual_action
from agents.sb3.callbacks import native_env
from agents.sb3.train import make_model, train
from agents.sb3.vec_env import NativeVecEnv
from mmgym.core.params import MarketParams
from mmgym.envs.perp_mm import PerpMMVectorEnv
from mmgym.scenarios import make_params

ROOT = Path(__file__).resolve().parent.parent
CONF = str(ROOT / "conf")
SCENARIO = "volatile"
SHORT = {"episode_seconds": 15.0}  # 15 decisions: rollouts below cross episode ends


def _params() -> MarketParams:
    return make_params(SCENARIO, **SHORT)


class Zeros:
    """A learned policy whose correction is always 0."""

    def act(self, obs: NDArray[np.float32]) -> NDArray[np.float32]:
        return np.zeros((obs.shape[0], 5), dtype=np.float32)

    def reset(self, mask: NDArray[np.bool_] | None = None) -> None:
        pass


class Wavy:
    """A deterministic correction that depends on the observation and leaves [-1, 1]."""

    def act(self, obs: NDArray[np.float32]) -> NDArray[np.float32]:
        x = np.asarray(obs, dtype=np.float64)
        return (2.0 * np.sin(3.0 * x[:, :5] + x[:, 5:10])).astype(np.float32)

    def reset(self, mask: NDArray[np.bool_] | None = None) -> None:
        pass


class Spy:
    """A policy that records its reset calls and acts like ``inner``."""

    def __init__(self, inner: Policy) -> None:
        self.inner = inner
        self.resets: list[NDArray[np.bool_] | None] = []

    def act(self, obs: NDArray[np.float32]) -> NDArray[np.float32]:
        return self.inner.act(obs)

    def reset(self, mask: NDArray[np.bool_] | None = None) -> None:
        self.resets.append(None if mask is None else np.array(mask, copy=True))
        self.inner.reset(mask)


def _wrapped(num_envs: int, base: Policy, scale: float, seed: int = 5) -> ResidualVecEnv:
    native = NativeVecEnv(PerpMMVectorEnv(num_envs=num_envs, scenario=SCENARIO, **SHORT))
    native.seed(seed)
    return ResidualVecEnv(native, base, scale)


def test_zero_correction_returns_the_baselines_actions_exactly() -> None:
    params = _params()
    residual = ResidualPolicy(make_baseline("adaptive", params), Zeros(), 0.5)
    scaled_out = ResidualPolicy(make_baseline("adaptive", params), Wavy(), 0.0)
    base = make_baseline("adaptive", params)
    env = PerpMMVectorEnv(num_envs=6, scenario=SCENARIO, **SHORT)
    obs, _ = env.reset(seed=3)
    for _ in range(40):
        expected = base.act(obs)
        np.testing.assert_array_equal(residual.act(obs), expected)
        np.testing.assert_array_equal(scaled_out.act(obs), expected)
        obs, *_ = env.step(expected)


def test_zero_correction_reproduces_the_baselines_episodes_bit_for_bit() -> None:
    params = make_params(SCENARIO, episode_seconds=60.0)
    overrides = {"episode_seconds": 60.0}
    args = (params, 8, 4, [10])
    base_rows, base_band = run_batch(
        make_baseline("adaptive", params), *args, scenario=SCENARIO, overrides=overrides
    )
    residual = ResidualPolicy(make_baseline("adaptive", params), Zeros(), 0.5)
    rows, band = run_batch(residual, *args, scenario=SCENARIO, overrides=overrides)
    assert [r["pnl"] for r in rows] == [r["pnl"] for r in base_rows]
    assert rows == base_rows
    assert band.equals(base_band)
    # The mapping matters: a nonzero correction changes the episodes.
    moved = ResidualPolicy(make_baseline("adaptive", params), Wavy(), 0.5)
    moved_rows, _ = run_batch(moved, *args, scenario=SCENARIO, overrides=overrides)
    assert [r["pnl"] for r in moved_rows] != [r["pnl"] for r in base_rows]


def test_wrapper_sends_what_the_residual_policy_would() -> None:
    params = _params()
    wrapped = _wrapped(5, make_baseline("adaptive", params), 0.5)
    policy = ResidualPolicy(make_baseline("adaptive", params), Wavy(), 0.5)
    network = Wavy()
    obs = wrapped.reset()
    policy.reset()
    boundaries = 0
    for _ in range(40):
        expected = policy.act(obs)
        obs, _, dones, _ = wrapped.step(network.act(obs))
        assert wrapped.last_action is not None
        np.testing.assert_array_equal(wrapped.last_action, expected)
        if dones.any():
            boundaries += 1
            policy.reset(dones)
    assert boundaries >= 2


def test_actions_stay_in_range_and_within_scale_of_the_base() -> None:
    rng = np.random.default_rng(0)
    base = rng.uniform(-1.0, 1.0, size=(1000, 5)).astype(np.float32)
    base[:10] = 1.0
    base[10:20] = -1.0
    correction = rng.normal(0.0, 3.0, size=(1000, 5))
    for scale in (0.0, 0.25, 0.5, 2.0):
        out = residual_action(base, correction, scale)
        assert out.dtype == np.float32 and out.shape == base.shape
        assert np.all(np.abs(out) <= 1.0)
        assert np.all(np.abs(out.astype(np.float64) - base) <= scale + 1e-6)
        # Inside the range, the correction is scale x clip(correction, -1, 1).
        exact = base.astype(np.float64) + scale * np.clip(correction, -1.0, 1.0)
        inside = np.abs(exact) < 1.0
        np.testing.assert_allclose(out[inside], exact[inside], atol=1e-6)
        np.testing.assert_array_equal(out[~inside], np.sign(exact[~inside]))
    with pytest.raises(ValueError, match="residual_scale"):
        ResidualPolicy(Zeros(), Zeros(), -0.1)
    with pytest.raises(ValueError, match="residual_scale"):
        ResidualPolicy(Zeros(), Zeros(), float("nan"))
    with pytest.raises(ValueError, match="differ in shape"):
        residual_action(base, correction[:, :4], 0.5)


def test_residual_action_is_the_numpy_expression_bit_for_bit() -> None:
    rng = np.random.default_rng(1)
    values = [np.nan, np.inf, -np.inf, 1e300, -1e300, 1.0, -1.0, 0.0, 1e-300]
    for dtype in (np.float32, np.float64):
        with np.errstate(over="ignore", under="ignore"):  # 1e300 is inf in float32
            special = np.array(values).astype(dtype)
        base = rng.uniform(-1.2, 1.2, size=(300, 10)).astype(dtype)
        correction = rng.normal(0.0, 2.0, size=(300, 10)).astype(dtype)
        base[rng.random(base.shape) < 0.05] = rng.choice(special)
        correction[rng.random(correction.shape) < 0.1] = rng.choice(special)
        correction[:9, 0] = special
        for scale in (0.0, 0.3, 1.0, 5.0):
            numpy_way = np.clip(
                base.astype(np.float64) + scale * np.clip(correction.astype(np.float64), -1, 1),
                -1.0,
                1.0,
            ).astype(np.float32)
            out = residual_action(base, correction, scale)
            assert out.dtype == np.float32 and out.shape == base.shape
            assert np.array_equal(out, numpy_way, equal_nan=True)
            assert np.array_equal(residual_action(base[3], correction[3], scale), numpy_way[3],
                                  equal_nan=True)  # fmt: skip


def test_the_baseline_is_reset_for_finished_envs_and_on_reset() -> None:
    spy = Spy(make_baseline("adaptive", _params()))
    wrapped = _wrapped(4, spy, 0.5)
    obs = wrapped.reset()
    assert len(spy.resets) == 1 and spy.resets[0] is None
    done_steps = 0
    for _ in range(35):
        calls = len(spy.resets)
        obs, _, dones, _ = wrapped.step(Wavy().act(obs))
        if dones.any():
            done_steps += 1
            assert len(spy.resets) == calls + 1
            np.testing.assert_array_equal(spy.resets[-1], dones)
        else:
            assert len(spy.resets) == calls
    assert done_steps == 2  # 15-decision episodes, 35 steps
    wrapped.reset()
    assert spy.resets[-1] is None


def test_wrapper_keeps_the_native_env_reachable_and_refuses_other_action_spaces() -> None:
    wrapped = _wrapped(2, Zeros(), 0.5)
    venv = VecNormalize(wrapped)
    assert native_env(venv) is wrapped.venv
    with pytest.raises(RuntimeError, match="before reset"):
        wrapped.step_async(np.zeros((2, 5), dtype=np.float32))


@pytest.mark.parametrize(
    "agent", [PPOConfig(residual_on="adaptive", batch_size=256), SACConfig(residual_on="adaptive")]
)
def test_an_untrained_residual_model_acts_as_the_baseline(
    agent: PPOConfig | SACConfig, tmp_path: Path
) -> None:
    params = _params()
    job = TrainJob(agent=agent)
    venv = VecNormalize(_wrapped(4, make_baseline("adaptive", params), 0.5))
    model = make_model(job, venv)
    rms = venv.obs_rms
    learned = ResidualPolicy(
        make_baseline("adaptive", params), SB3Policy(model, rms.mean, rms.var), 0.5
    )
    base = make_baseline("adaptive", params)
    env = PerpMMVectorEnv(num_envs=4, scenario=SCENARIO, **SHORT)
    obs, _ = env.reset(seed=9)
    for _ in range(20):
        expected = base.act(obs)
        np.testing.assert_array_equal(learned.act(obs), expected)
        obs, *_ = env.step(expected)


def _compose(*overrides: str) -> TrainJob:
    with initialize_config_dir(config_dir=CONF, version_base=None):
        return to_job(compose(config_name="train", overrides=list(overrides)), TrainJob)


def test_residual_smoke_run_trains_and_loads_back_as_a_residual_policy(tmp_path: Path) -> None:
    job = _compose(
        "agent=ppo_residual", "train=smoke", f"env={SCENARIO}", "train.checkpoint_every_steps=0"
    )
    assert isinstance(job.agent, PPOConfig) and job.agent.residual_on == "adaptive"
    run = tmp_path / "run"
    summary = train(job, run)
    assert summary["steps"] >= 2048 and summary["residual_on"] == "adaptive"
    assert OmegaConf.load(run / "config.yaml").agent.residual_on == "adaptive"

    policy = load_run(run)
    assert isinstance(policy, ResidualPolicy)
    assert isinstance(policy.base, AdaptivePolicy) and isinstance(policy.learned, SB3Policy)
    assert policy.scale == job.agent.residual_scale
    # The loaded policy is the one the run evaluated: same markets, same numbers.
    t = job.train
    assert summary["policy"] == "ppo+adaptive"
    again = evaluate_policies({"ppo+adaptive": policy}, job, t.eval_num_envs, t.eval_seed)
    assert again["ppo+adaptive"] == summary["final_eval"]["ppo+adaptive"]
    assert json.loads((run / "summary.json").read_text())["final_eval"] == summary["final_eval"]

    # The network alone loads from the run's files; editing residual_on away from what the
    # model was trained with is refused.
    network = SB3Policy.load(run / "model.zip", run / "vecnormalize.pkl")
    assert isinstance(network, SB3Policy) and network.obs_mean is not None
    config = OmegaConf.load(run / "config.yaml")
    config.agent.residual_on = None
    OmegaConf.save(config, run / "config.yaml")
    with pytest.raises(ValueError, match=r"residual_on: config\.yaml says None"):
        load_run(run)


def test_compose_policy_and_unknown_baselines(tmp_path: Path) -> None:
    learned = Zeros()
    assert compose_policy(learned, None, 0.5, _params()) is learned
    assert isinstance(compose_policy(learned, "adaptive", 0.5, _params()), ResidualPolicy)
    job = _compose("agent=ppo_residual", "train=smoke", "agent.residual_on=moon")
    with pytest.raises(ValueError, match="unknown baseline 'moon'"):
        train(job, tmp_path / "run")


def test_residual_policy_resets_both_parts() -> None:
    base, learned = Spy(Zeros()), Spy(Zeros())
    policy = ResidualPolicy(base, learned, 0.5)
    mask = np.array([True, False, True])
    policy.reset(mask)
    policy.reset()
    for spy in (base, learned):
        assert len(spy.resets) == 2 and spy.resets[1] is None
        np.testing.assert_array_equal(spy.resets[0], mask)


def test_learn_perp_runs_the_residual_agent(tmp_path: Path) -> None:
    from experiments.learn_perp import run as learn_perp

    out = tmp_path / "out"
    argv = ["--out", str(out), "--runs-dir", str(tmp_path / "runs"), "--agent", "ppo_residual"]
    argv += ["--scenarios", "calm", "--seeds", "0", "--steps", "1024", "--envs", "8"]
    argv += ["--episode-seconds", "30", "--eval-seeds", "1000", "--eval-envs", "4"]
    argv += ["--baselines", "adaptive", "linear_skew"]
    learn_perp.main(argv)
    data = json.loads((out / "results_ppo_residual.json").read_text())
    assert not (out / "results.json").exists()
    assert data["config"]["agent"] == "ppo_residual"
    assert data["agent_settings"]["residual_on"] == "adaptive"
    (scenario,) = data["scenarios"]
    assert {row["policy"] for row in scenario["league"]} == {
        "adaptive",
        "linear_skew",
        "ppo_residual_s0",
    }
    assert (tmp_path / "runs" / "calm-ppo_residual-s0" / "model.zip").is_file()
    assert "Agent: `ppo_residual`" in (out / "results_ppo_residual.md").read_text()


def test_exploration_noise_probe_moves_only_the_chosen_components() -> None:
    from experiments.learn_perp.residual_noise import GaussianCorrection, factory

    obs = np.zeros((64, 25), dtype=np.float32)
    noise = GaussianCorrection(0.5, (1, 4)).act(obs)
    assert np.all(noise[:, [0, 2, 3]] == 0.0) and np.all(noise[:, [1, 4]] != 0.0)
    params = _params()
    quiet = factory(0.0, (0, 1, 2, 3, 4), 0.5)(params)
    env = PerpMMVectorEnv(num_envs=4, scenario=SCENARIO, **SHORT)
    obs, _ = env.reset(seed=2)
    base = make_baseline("adaptive", params)
    for _ in range(10):
        expected = base.act(obs)
        np.testing.assert_array_equal(quiet.act(obs), expected)
        obs, *_ = env.step(expected)
