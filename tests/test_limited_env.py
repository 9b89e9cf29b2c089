"""RiskLimitedVectorEnv: the limiter around the native PerpMM vector env, and its config."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import (
    check_reset_options,
    check_reset_return_type,
    check_reset_seed_determinism,
    check_space_limit,
)
from gymnasium.utils.passive_env_checker import check_obs
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException

from agents.config import TrainJob, to_job
from agents.deploy import RiskLimitedVectorEnv
from agents.deploy.fuzz import POLICIES, TIGHT
from agents.deploy.limited_env import RiskLimitedSimulator, limit_env
from agents.deploy.risk import Reason, RiskLimits, TradingMode
from agents.deploy.risk.simulator_inputs import read_decision_state
from mmgym.core.orders import decode_actions, encode_quotes
from mmgym.envs.perp_mm import PerpMMVectorEnv

ROOT = Path(__file__).resolve().parent.parent
SHORT = {"episode_seconds": 30.0}
LOOSE = RiskLimits(
    estimator_warmup=0,
    max_order_size=1e9,
    max_order_notional=1e12,
    max_position=1e9,
    max_gross_notional=1e12,
    max_net_notional=1e12,
    min_margin_coverage=0.0,
    reducing_margin_coverage=1.0,
    halt_margin_coverage=1.0,
    volatility_cap_annual=1e9,
    tail_correlation=1.0,
    tail_move_bp=1e9,
    max_orders_per_second=1e9,
    order_burst=1e9,
    max_cancels_per_second=1e9,
    cancel_burst=1e9,
    reducing_window_loss_fraction=1e9,
    halt_window_loss_fraction=1e9,
    reducing_drawdown_fraction=1e9,
    halt_drawdown_fraction=1e9,
    halt_rejects_per_window=10**9,
    price_collar_fraction=1e9,
)
"""Limits that never bind (post-only and validity still apply)."""


def _env(n: int = 4, scenario: str = "calm", limits: RiskLimits | None = None, **kw: object):
    return RiskLimitedVectorEnv(PerpMMVectorEnv(n, scenario=scenario, **{**SHORT, **kw}), limits)


def _passive_actions(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Random actions that never quote through the book (skew 0, half-spread >= 1.5 ticks)."""
    a = rng.uniform(-1, 1, size=shape).astype(np.float32)
    a[:, 0::5] = 0.0
    a[:, 1::5] = np.abs(a[:, 1::5]) - 0.9
    return a


def test_spaces_are_those_of_the_wrapped_env_and_the_checkers_pass() -> None:
    inner = PerpMMVectorEnv(3, **SHORT)  # type: ignore[arg-type]
    env = RiskLimitedVectorEnv(PerpMMVectorEnv(3, **SHORT))  # type: ignore[arg-type]
    assert env.observation_space == inner.observation_space
    assert env.action_space == inner.action_space
    assert env.single_action_space == inner.single_action_space
    assert env.metadata["autoreset_mode"] == inner.metadata["autoreset_mode"]
    check_reset_seed_determinism(env)  # type: ignore[arg-type]
    check_reset_options(env)  # type: ignore[arg-type]
    check_reset_return_type(env)  # type: ignore[arg-type]
    check_space_limit(env.single_action_space, "action")
    check_space_limit(env.single_observation_space, "observation")
    obs, info = env.reset(seed=1)
    check_obs(obs, env.observation_space, "reset")
    env.action_space.seed(0)
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    check_obs(obs, env.observation_space, "step")
    assert reward.dtype == np.float64 and terminated.dtype == truncated.dtype == np.bool_
    assert info["risk_mode"].shape == (3,)
    assert info["risk_denials"].shape == (3, len(Reason))
    assert env.reason_names[Reason.CROSSES_BOOK] == "CROSSES_BOOK"


@pytest.mark.parametrize("scenario", ["calm", "cross_margin_event"])
def test_with_limits_that_never_bind_it_is_the_bare_env_bit_for_bit(scenario: str) -> None:
    """Decoding, limiting and encoding back change nothing when nothing binds: the encoder
    is exact, over autoresets too (30-decision episodes)."""
    bare = PerpMMVectorEnv(6, scenario=scenario, **SHORT)  # type: ignore[arg-type]
    limited = _env(6, scenario, LOOSE)
    np.testing.assert_array_equal(bare.reset(seed=4)[0], limited.reset(seed=4)[0])
    rng = np.random.default_rng(0)
    for _ in range(70):
        a = _passive_actions(rng, bare.action_space.shape)
        for x, y in zip(bare.step(a)[:4], limited.step(a)[:4], strict=True):
            np.testing.assert_array_equal(x, y)
    assert (
        limited.limiter.state.denials.sum() == limited.limiter.state.counts()[Reason.ACCOUNT_OPENED]
    )


def test_same_seed_same_trajectory_and_sub_env_i_matches_a_one_env_twin_seeded_s_plus_i() -> None:
    rng = np.random.default_rng(1)
    actions = rng.uniform(-1, 1, size=(80, 3, 5)).astype(np.float32)

    def run(n: int, seed: int, columns: slice) -> list[np.ndarray]:
        limits = RiskLimits(reducing_drawdown_fraction=0.001, halt_drawdown_fraction=0.003)
        env = _env(n, "volatile", limits)
        out = [env.reset(seed=seed)[0]]
        for a in actions[:, columns]:
            obs, rew, _, _, info = env.step(a)
            out += [obs, rew, info["risk_mode"], info["risk_denials"]]
        return out

    first, second = run(3, 7, slice(None)), run(3, 7, slice(None))
    for x, y in zip(first, second, strict=True):
        np.testing.assert_array_equal(x, y)
    for i in range(3):
        twin = run(1, 7 + i, slice(i, i + 1))
        for x, y in zip(first, twin, strict=True):
            np.testing.assert_array_equal(x[i : i + 1], y)


def test_checking_envs_on_all_cores_gives_the_same_results() -> None:
    limits = RiskLimits(reducing_window_loss_fraction=2e-5, halt_window_loss_fraction=5e-5)
    envs = [
        RiskLimitedVectorEnv(PerpMMVectorEnv(64, scenario="volatile", **SHORT), limits, parallel)  # type: ignore[arg-type]
        for parallel in (False, True)
    ]
    rng = np.random.default_rng(5)
    first = [env.reset(seed=2)[0] for env in envs]
    np.testing.assert_array_equal(*first)
    for _ in range(60):
        a = rng.uniform(-1, 1, size=(64, 5)).astype(np.float32)
        serial, parallel = (env.step(a) for env in envs)
        for x, y in zip(serial[:4], parallel[:4], strict=True):
            np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(serial[4]["risk_denials"], parallel[4]["risk_denials"])
    states = [env.limiter.state.records.tobytes() for env in envs]
    assert states[0] == states[1]  # bit for bit (NaN fields included)
    counts = envs[0].limiter.state.counts()
    assert counts[Reason.WINDOW_LOSS] > 0 and counts[Reason.FLATTEN_REQUESTED] > 0


def _separate_passes(self: RiskLimitedSimulator, actions: Any, autoreset: Any) -> int:
    """The step as separate passes over all envs, each a public function: read the state,
    decode, limit (:meth:`RiskLimiter.limit`), encode, count the unrepresentable sides."""
    sim, n = self.inner, self.num_envs
    best_bid, best_ask = sim.assets["best_bid"], sim.assets["best_ask"]
    inputs = self.inputs
    read_decision_state(sim._packed, sim.accounts, sim.assets, inputs.accounts, inputs.assets)
    decode_actions(actions, best_bid, best_ask, sim._packed, self.quotes)
    self.limiter.limit(self.quotes, inputs, ~autoreset)
    np.copyto(self.actions, actions)
    cancelled = np.zeros(n, dtype=np.int64)
    encode_quotes(self.quotes, best_bid, best_ask, sim._packed, self.actions, cancelled)
    self.limiter.add_counts(Reason.UNREPRESENTABLE_QUOTE, cancelled)
    bad = sim.step(self.actions, autoreset)
    if autoreset.any():
        self.limiter.open_accounts(autoreset)
    self.last_transitions = self.limiter.drain_transitions()
    return bad


NARROW = {"max_skew_ticks": 0.0, "max_half_spread_ticks": 0.5}
"""Quotes only next to the mid: flatten orders at a wider touch cannot be expressed."""


@pytest.mark.parametrize(
    ("num_assets", "parallel", "market"), [(1, False, {}), (1, True, {}), (3, False, NARROW)]
)
def test_the_fused_step_equals_the_separate_passes_on_random_and_adversarial_actions(
    num_assets: int, parallel: bool, market: dict[str, float]
) -> None:
    """Every fuzz policy (uniform, NaN/inf/1e300 garbage, creep, dust, races, crossing quotes)
    under tight limits on a small account: denials, halts, flattens, unrepresentable quotes and
    autoresets, bit for bit."""
    n = 36
    settings = {"episode_seconds": 40.0, "collateral": 1_000.0, "num_assets": num_assets}
    envs = [
        RiskLimitedVectorEnv(
            PerpMMVectorEnv(n, "volatile", parallel=parallel, **settings, **market), TIGHT
        )
        for _ in range(2)
    ]
    reference = envs[1].sim
    reference.step = types.MethodType(_separate_passes, reference)  # type: ignore[method-assign]
    rng = np.random.default_rng(11)
    firsts = [env.reset(seed=4)[0] for env in envs]
    np.testing.assert_array_equal(*firsts)
    for env in envs:
        env.sim.inner.assets["inventory"][1:3] = 1.0  # positions to flatten
        env.limiter.flatten_then_halt([1, 2], operator="test")
    names = list(POLICIES)
    for t in range(90):
        a = np.concatenate(
            [POLICIES[names[i % len(names)]](rng, 1, num_assets, t) for i in range(n)]
        )
        if t % 3 == 0:
            with np.errstate(over="ignore"):
                a = a.astype(np.float32)  # 1e300 becomes inf
        fused, separate = (env.step(a) for env in envs)
        for x, y in zip(fused[:4], separate[:4], strict=True):
            np.testing.assert_array_equal(x, y)
        for key in ("risk_denials", "risk_mode", "inventory", "bid_qty", "ask_qty"):
            np.testing.assert_array_equal(fused[4][key], separate[4][key])
        assert repr(envs[0].last_transitions) == repr(envs[1].last_transitions)  # NaN times
        np.testing.assert_array_equal(envs[0].sim.actions, reference.actions)
    states = [env.limiter.state for env in envs]
    assert states[0].records.tobytes() == states[1].records.tobytes()  # NaN fields included
    np.testing.assert_array_equal(states[0].denials, states[1].denials)
    np.testing.assert_array_equal(states[0].rng, states[1].rng)
    counts = states[0].counts()
    # a narrow market cannot express the flatten orders; a wide one lets quotes cross the book
    seen = [Reason.UNREPRESENTABLE_QUOTE] if market else [Reason.CROSSES_BOOK, Reason.FLATTENED]
    for reason in (
        Reason.NON_FINITE_ORDER, Reason.MODE_HALTED, Reason.ACCOUNT_OPENED, *seen
    ):  # fmt: skip
        assert counts.get(reason, 0) > 0, (reason, counts)


def test_non_finite_and_huge_actions_never_raise_and_are_denied() -> None:
    env = _env(4)
    env.reset(seed=0)
    a = np.zeros((4, 5))
    a[0, 0] = np.nan
    a[1, 2] = np.inf
    a[2, :] = 1e300
    a[3, 4] = -np.inf
    obs, reward, *_, info = env.step(a)
    assert np.isfinite(obs).all() and np.isfinite(reward).all()
    denied = info["risk_denials"][:, Reason.NON_FINITE_ORDER]
    np.testing.assert_array_equal(denied, [3, 3, 0, 3])  # bid, ask and hedge of the block
    np.testing.assert_array_equal(env.sim.actions[[0, 1, 3], 2:4], -1.0)  # no orders


@pytest.mark.parametrize(
    ("halt_at", "modes"), [(0.002, {0, 1}), (0.0005, {0, 2})]
)  # drawdowns (fractions) that HALT: one the policy never reaches, one it reaches at once
def test_the_kill_switch_acts_on_the_equity_path_and_reducing_never_grows_inventory(
    halt_at: float, modes: set[int]
) -> None:
    limits = RiskLimits(reducing_drawdown_fraction=0.0005, halt_drawdown_fraction=halt_at)
    env = _env(32, "volatile", limits, episode_seconds=300.0)
    env.reset(seed=3)
    rng = np.random.default_rng(3)
    previous_mode = np.zeros(32, dtype=np.int64)
    inventory = np.zeros(32)
    seen = set()
    for _ in range(299):
        a = rng.uniform(-1, 1, size=(32, 5)).astype(np.float32)
        a[:, 2:4] = 1.0  # the largest quotes: inventory builds quickly
        _, _, _, _, info = env.step(a)
        mode = info["risk_mode"]
        steady = (previous_mode != TradingMode.ACTIVE) & (mode != TradingMode.ACTIVE)
        new = info["inventory"]
        assert (np.abs(new[steady]) <= np.abs(inventory[steady]) + 1e-12).all()
        assert (new[steady] * inventory[steady] >= -1e-12).all()  # never flips
        halted = mode == TradingMode.HALTED
        flattening = env.limiter.state.flattening
        assert (info["bid_qty"][halted & ~flattening & (previous_mode == 2)] == 0).all()
        assert (info["ask_qty"][halted & ~flattening & (previous_mode == 2)] == 0).all()
        seen.update(int(m) for m in mode)
        previous_mode, inventory = mode.copy(), new.copy()
    assert seen == modes
    counts = env.limiter.state.counts()
    assert counts[Reason.DRAWDOWN] > 0
    if 2 in modes:  # the kill switch flattened before halting
        assert counts[Reason.FLATTEN_REQUESTED] == counts[Reason.DRAWDOWN]
        assert counts[Reason.FLATTENED] > 0


def test_a_new_episode_is_a_new_account() -> None:
    env = _env(2, episode_seconds=5.0)
    env.reset(seed=0)
    env.limiter.halt([0], operator="test")
    a = np.zeros((2, 5))
    for _ in range(5):
        _, _, _, truncated, info = env.step(a)
    assert truncated.all() and info["risk_mode"][0] == TradingMode.HALTED
    _, _, _, _, info = env.step(a)  # the autoreset step
    assert (info["risk_mode"] == TradingMode.ACTIVE).all()
    assert [t.reason for t in env.last_transitions] == [Reason.ACCOUNT_OPENED] * 2


def test_reset_mask_opens_only_the_masked_accounts() -> None:
    env = _env(3)
    env.reset(seed=0)
    env.limiter.halt([0, 1], operator="test")
    env.reset(options={"reset_mask": np.array([True, False, False])})
    np.testing.assert_array_equal(env.limiter.state.mode, [0, 2, 0])


def test_unrepresentable_flatten_quotes_are_cancelled_and_counted() -> None:
    """No skew and a fixed half-spread of 0.5 tick: the only quotes are next to the mid, so a
    flatten order at a touch 2 ticks away cannot be expressed by an action."""
    env = _env(1, max_skew_ticks=0.0, max_half_spread_ticks=0.5, initial_regime="calm")
    env.reset(seed=0)
    env.sim.inner.assets["inventory"] = 1.0  # a position to flatten
    env.limiter.flatten_then_halt(0, operator="test")
    _, _, _, _, info = env.step(np.zeros((1, 5)))
    spread = env.sim.inputs.assets["best_ask"][0, 0] - env.sim.inputs.assets["best_bid"][0, 0]
    assert spread >= 3  # the calm book at reset
    assert info["risk_denials"][0, Reason.UNREPRESENTABLE_QUOTE] == 1
    assert env.limiter.state.denials[0, Reason.UNREPRESENTABLE_QUOTE] == 1


def test_limit_env_is_the_identity_without_limits() -> None:
    env = PerpMMVectorEnv(2, **SHORT)  # type: ignore[arg-type]
    assert limit_env(env, None) is env
    assert isinstance(limit_env(env, RiskLimits()), RiskLimitedVectorEnv)
    with pytest.raises(TypeError, match="PerpMMVectorEnv"):
        RiskLimitedVectorEnv(gym.make_vec("CartPole-v1", num_envs=2))  # type: ignore[arg-type]


def _compose(*overrides: str) -> TrainJob:
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        return to_job(compose(config_name="train", overrides=list(overrides)), TrainJob)


def test_risk_config_group_switches_the_limiter() -> None:
    assert _compose().risk.to_limits() is None  # the default: none
    assert _compose("risk=none").risk.to_limits() is None
    assert _compose("risk=default").risk.to_limits() == RiskLimits()
    job = _compose("risk=default", "+risk.limits.max_position=5")
    assert job.risk.to_limits() == RiskLimits(max_position=5.0)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("+risk.limits.max_postion=5", "max_postion"),
        ("+risk.limits.max_position=-1", "max_position"),
        ("risk.enabled=maybe", "enabled"),
    ],
)
def test_bad_risk_config_fails_at_composition_naming_the_key(override: str, message: str) -> None:
    with pytest.raises((ValueError, ConfigCompositionException), match=message):
        _compose("risk=default", override)


def test_training_runs_behind_the_limiter(tmp_path: Path) -> None:
    from agents.sb3.train import train

    job = _compose(
        "risk=default", "train=smoke", "train.total_steps=512", "train.num_envs=4",
        "train.eval_every_steps=0", "train.checkpoint_every_steps=0", "train.eval_num_envs=2",
        "train.eval_baselines=[]", "logger=none", "train.progress_bar=false",
    )  # fmt: skip
    summary = train(job, tmp_path / "run")
    assert summary["steps"] >= 512
    config = (tmp_path / "run" / "config.yaml").read_text()
    assert "enabled: true" in config
