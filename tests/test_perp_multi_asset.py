"""Several perps per env: correlated shocks, cross-margined forced flow, action and observation
blocks, and determinism with three perps.

Correlations of pooled returns are compared with SEs from the Gaussian formula where returns
are Gaussian (fair-price shocks: SE ~ (1 - rho^2) / sqrt(n)), and otherwise from a delete-one-env
jackknife: envs are independent, returns within an env are not, and mid returns are heavy-tailed.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from numpy.typing import NDArray

import mmgym
from mmgym.core.crowd import PARTIAL_FIRST
from mmgym.core.params import REGIMES
from mmgym.envs.perp_mm import PerpMMEnv, PerpMMVectorEnv
from mmgym.features.observation import ACCOUNT_FEATURES, ASSET_FEATURES, OBS_NAMES
from mmgym.scenarios import make_params

Z = 4.0
K = 3
NO_SWITCH = ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0))
PAIRS = ((0, 1), (0, 2), (1, 2))


def _no_quotes(num_envs: int) -> NDArray[np.float32]:
    a = np.zeros((num_envs, 5 * K), dtype=np.float32)
    for k in range(K):
        a[:, 5 * k + 2 : 5 * k + 5] = -1.0
    return a


def _run(num_envs: int, steps: int, seed: int, **overrides: Any) -> dict[str, NDArray[Any]]:
    """One episode without quotes; info fields stacked as (steps, num_envs, ...)."""
    env = PerpMMVectorEnv(num_envs=num_envs, episode_seconds=float(steps), **overrides)
    env.reset(seed=seed)
    a = _no_quotes(num_envs)
    rows = []
    for _ in range(steps):
        *_, info = env.step(a)
        rows.append(info)
    return {k: np.stack([r[k] for r in rows]) for k in ("mid", "fair_price", "crowd_liquidations",
                                                          "forced_sell_volume", "forced_buy_volume",
                                                          "regime")}  # fmt: skip


def _ranks(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """Average ranks (ties share their mean rank): mid returns on a tick grid have many ties."""
    _values, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)
    return ((upper - counts + 1 + upper) / 2.0)[inverse]


def _mean_pair_correlation(r: NDArray[np.float64], rank: bool) -> float:
    """Mean over the three pairs of the correlation of pooled returns r (n, 3)."""
    if rank:
        r = np.column_stack([_ranks(r[:, k]) for k in range(K)])
    c = np.corrcoef(r.T)
    return float(np.mean([c[i, j] for i, j in PAIRS]))


def _jackknife(
    returns: NDArray[np.float64], mask: NDArray[np.bool_], rank: bool
) -> tuple[float, NDArray[np.float64]]:
    """Correlation of the returns (steps, envs, 3) where mask (steps, envs), and its
    delete-one-env replicates."""
    full = _mean_pair_correlation(returns[mask], rank)
    n = returns.shape[1]
    reps = np.array(
        [
            _mean_pair_correlation(np.delete(returns, i, 1)[np.delete(mask, i, 1)], rank)
            for i in range(n)
        ]
    )
    return full, reps


def _jackknife_se(reps: NDArray[np.float64]) -> float:
    n = reps.size
    return float(math.sqrt((n - 1) / n * np.sum((reps - reps.mean()) ** 2)))


# --- correlated shocks ---------------------------------------------------------------------------


def _assert_equicorrelated(r: NDArray[np.float64], rho: float) -> None:
    """Every pair of columns of the Gaussian sample r (n, K) has correlation rho, within Z
    standard errors (1 - rho^2) / sqrt(n)."""
    c = np.corrcoef(r.T)
    se = (1.0 - rho**2) / math.sqrt(r.shape[0])
    for i, j in PAIRS:
        assert abs(c[i, j] - rho) < Z * se, (i, j, c[i, j], rho, se)


@pytest.mark.parametrize("regime", REGIMES)
def test_fair_price_returns_have_the_regime_correlation(regime: str) -> None:
    # Regime held fixed. asset_correlation is the correlation of the diffusive shocks; the
    # jumps (market-wide: every perp takes them), the latent drift, the stochastic volatility
    # multiplier (tested in test_stochastic_vol.py) and the slow and permanent parts of the
    # impact (each perp's own flow) are switched off so that the fair-price return of a step is
    # exactly the correlated Gaussian shock with the regime's variance.
    num_envs, steps = 32, 600
    out = _run(
        num_envs,
        steps,
        seed=1 + 1000 * REGIMES.index(regime),
        scenario="calm",
        num_assets=K,
        initial_regime=regime,
        regime_switch_per_hour=NO_SWITCH,
        jump_rate_per_hour=(0.0, 0.0, 0.0),
        signal_move=(0.0, 0.0, 0.0),
        vol_of_vol=(0.0, 0.0, 0.0),
        impact_memory_shares=(0.0, 0.0, 0.0),
        impact_permanent_share=0.0,
    )
    p = PerpMMVectorEnv(num_envs=1, scenario="calm", num_assets=K).params
    r_index = REGIMES.index(regime)
    rho = p.asset_correlation[r_index]
    assert np.all(out["regime"] == r_index)
    log_fair = np.log(
        np.concatenate([np.full((1, num_envs, K), p.initial_price), out["fair_price"]])
    )
    r = np.diff(log_fair, axis=0).reshape(-1, K)
    n = r.shape[0]  # 19,200 returns per perp
    _assert_equicorrelated(r, rho)  # SE calm 0.0066, volatile 0.0054, stressed 0.0014
    # Each perp's variance per 1 s step is sigma_r^2 x 1 s / year; its ratio has SE sqrt(2 / n).
    var = p.volatility[r_index] ** 2 * p.decision_interval / (365.0 * 24.0 * 3600.0)
    for k in range(K):
        ratio = r[:, k].var() / var
        assert abs(ratio - 1.0) < Z * math.sqrt(2.0 / n), (k, ratio)


@pytest.mark.parametrize("regime", REGIMES)
def test_latent_drift_innovations_have_the_regime_signal_correlation(regime: str) -> None:
    # Regime held fixed, volatility multiplier constant. Over one decision (10 ticks) the latent
    # drift's innovation s(t + 1 s) - d s(t), d = exp(-1 s / signal_timescale), is a fixed
    # linear combination of the ticks' equicorrelated shocks, so it is Gaussian with exactly
    # the regime's signal_correlation between perps and independent across decisions.
    num_envs, steps = 32, 600
    env = PerpMMVectorEnv(
        num_envs=num_envs,
        scenario="calm",
        num_assets=K,
        initial_regime=regime,
        regime_switch_per_hour=NO_SWITCH,
        vol_of_vol=(0.0, 0.0, 0.0),
        episode_seconds=2.0 * steps,
    )
    env.reset(seed=7 + 1000 * REGIMES.index(regime))
    p = env.params
    d = math.exp(-p.decision_interval / p.signal_timescale)
    a = _no_quotes(num_envs)
    before = env.sim.assets["signal"].copy()
    innovations = []
    for _ in range(steps):
        env.step(a)
        after = env.sim.assets["signal"].copy()
        innovations.append(after - d * before)
        before = after
    r = np.concatenate(innovations).reshape(-1, K)  # 19,200 innovations per perp
    rho = p.signal_correlation[REGIMES.index(regime)]
    _assert_equicorrelated(r, rho)  # SE calm 0.0072, volatile 0.0066, stressed 0.0007


def test_one_perp_does_not_depend_on_the_correlations() -> None:
    # With one perp the correlation matrices are 1 x 1: the trajectory is the same bit for bit
    # whatever asset_correlation and signal_correlation say.
    def mids(**overrides: Any) -> NDArray[np.float64]:
        env = PerpMMVectorEnv(num_envs=2, scenario="volatile", episode_seconds=200.0, **overrides)
        env.reset(seed=3)
        a = np.zeros((2, 5), dtype=np.float32)
        rows = [env.step(a)[4]["mid"].copy() for _ in range(150)]
        return np.stack(rows)

    default = mids()
    other = mids(asset_correlation=(0.1, 0.2, 0.3), signal_correlation=(0.5, 0.6, 0.7))
    assert np.array_equal(default, other)


def _mid_returns(out: dict[str, NDArray[Any]]) -> NDArray[np.float64]:
    return np.diff(np.log(out["mid"]), axis=0)  # (steps - 1, envs, 3)


@pytest.mark.parametrize("estimator", ["pearson", "spearman"])
def test_mid_return_correlation_is_higher_in_stress_than_in_calm(estimator: str) -> None:
    # cross_margin_event as configured, but with the regime held fixed in each run.
    # pearson: the realised correlation of 1 s mid returns; spearman: that of their ranks
    # (co-movement, insensitive to the size of the largest moves).
    rank = estimator == "spearman"
    num_envs, steps = 128, 600
    stats = {}
    for regime in ("calm", "stressed"):
        out = _run(
            num_envs,
            steps,
            seed=2 + 1000 * REGIMES.index(regime),
            scenario="cross_margin_event",
            initial_regime=regime,
            regime_switch_per_hour=NO_SWITCH,
        )
        r = _mid_returns(out)
        stats[regime] = _jackknife(r, np.ones(r.shape[:2], dtype=bool), rank)
    diff = stats["stressed"][0] - stats["calm"][0]
    # independent runs: SE of the difference from the two jackknife SEs (measured 0.010
    # pearson, 0.002 spearman, against differences of 0.20 and 0.15)
    se = math.hypot(_jackknife_se(stats["stressed"][1]), _jackknife_se(stats["calm"][1]))
    assert diff > Z * se, (
        f"{estimator}: stressed {stats['stressed'][0]:.3f} vs calm {stats['calm'][0]:.3f} "
        f"(SE of the difference {se:.3f}); "
        f"asset_correlation is {make_params('cross_margin_event').asset_correlation}"
    )


@pytest.mark.parametrize("estimator", ["pearson", "spearman"])
def test_mid_return_correlation_is_higher_during_crowd_liquidation_bursts(estimator: str) -> None:
    # cross_margin_event as configured (regimes switch). A burst step is one in which at least
    # one crowd account is liquidated; its cross-margined close sells or buys all three perps.
    # Bursts are rare (~1 step in 800: 314 of 255,872 here), hence the long episodes.
    rank = estimator == "spearman"
    num_envs, steps = 128, 2000
    out = _run(num_envs, steps, seed=3, scenario="cross_margin_event")
    r = _mid_returns(out)
    burst = np.diff(out["crowd_liquidations"], axis=0) > 0
    assert burst.sum() > 200
    in_burst, reps_in = _jackknife(r, burst, rank)
    outside, reps_out = _jackknife(r, ~burst, rank)
    # Same envs on both sides: the jackknife of the difference (measured: pearson 0.996 vs
    # 0.905, SE 0.0075; spearman 0.952 vs 0.823, SE 0.0086).
    se = _jackknife_se(reps_in - reps_out)
    assert in_burst - outside > Z * se, (
        f"{estimator}: bursts {in_burst:.3f} vs outside {outside:.3f} (SE {se:.3f})"
    )


# --- cross-margined forced flow ------------------------------------------------------------------


def test_a_crowd_liquidation_forces_flow_in_every_perp_at_once() -> None:
    # In a running cross_margin_event: every step with a new crowd liquidation shows forced
    # volume in all three perps (measured: 187 such steps of 153,600).
    num_envs, steps = 128, 1200
    out = _run(num_envs, steps, seed=4, scenario="cross_margin_event")
    new = np.diff(out["crowd_liquidations"], axis=0, prepend=0) > 0
    forced = out["forced_sell_volume"] + out["forced_buy_volume"]  # (steps, envs, 3)
    assert new.sum() > 100
    assert np.all(forced[new] > 0.0), np.argwhere(forced[new] <= 0.0)
    # Controlled: one long basket account under water, everything else out of play. Its
    # liquidation sells 20 % of its position in each of the three perps in the same step.
    env = PerpMMVectorEnv(num_envs=1, scenario="cross_margin_event", crowd_holding_seconds=1e12)
    env.reset(seed=5)
    e = env.sim.accounts[0]
    e["crowd_threshold"][:] = -np.inf
    e["crowd_release_tick"][:] = -1
    sizes = e["crowd_size"][0].copy()
    assert np.all(sizes > 0.0) and sizes.sum() > env.params.crowd_large_position
    e["crowd_threshold"][0] = 1e300
    e["crowd_min_slack"] = -np.inf
    *_, info = env.step(_no_quotes(1))
    np.testing.assert_allclose(info["forced_sell_volume"][0], PARTIAL_FIRST * sizes, rtol=1e-12)
    np.testing.assert_array_equal(info["forced_buy_volume"][0], 0.0)
    assert info["crowd_liquidations"][0] == 1


# --- actions and observations --------------------------------------------------------------------


def test_per_perp_action_and_observation_blocks() -> None:
    num_envs = 2
    env = gym.make_vec(
        mmgym.PERP_MM_ID,
        num_envs=num_envs,
        vectorization_mode="vector_entry_point",
        scenario="calm",
        num_assets=K,
    )
    assert env.single_action_space.shape == (5 * K,)
    assert env.single_observation_space.shape == (ASSET_FEATURES * K + ACCOUNT_FEATURES,)
    assert ASSET_FEATURES == 22 and ACCOUNT_FEATURES == 3  # 22 K + 3 = 69
    assert env.action_space.shape == (num_envs, 15)
    assert env.observation_space.shape == (num_envs, 69)
    assert env.unwrapped.action_names[5:10] == tuple(
        f"{n}[1]" for n in ("skew", "half_spread", "bid_size", "ask_size", "hedge")
    )
    env.reset(seed=6)
    sim = env.unwrapped.sim
    p = env.unwrapped.params
    # Quotes in perp 1 only: orders rest in perp 1's book and nowhere else.
    a = _no_quotes(num_envs)
    a[:, 5 + 2 : 5 + 4] = 0.0  # bid and ask of 1 unit
    a[:, 5 + 1] = 0.0
    obs, *_, info = env.step(a)
    assert np.all(info["bid_qty"][:, 1] > 0.0) and np.all(info["ask_qty"][:, 1] > 0.0)
    assert np.all(info["bid_qty"][:, [0, 2]] == 0.0) and np.all(info["ask_qty"][:, [0, 2]] == 0.0)
    base = ASSET_FEATURES
    assert np.all(obs[:, base + OBS_NAMES.index("bid_distance")] > 0.0)
    assert np.all(obs[:, OBS_NAMES.index("bid_distance")] == 0.0)
    # Inventories (1, -2, 3) and a hedge in perp 2 only: each shows in its own block.
    inventory = np.array([1.0, -2.0, 3.0])
    sim.assets["inventory"][:] = inventory
    a = _no_quotes(num_envs)
    a[:, 10 + 4] = 1.0  # hedge all of perp 2
    obs, *_, info = env.step(a)
    for k in range(K):
        block = obs[:, k * ASSET_FEATURES : (k + 1) * ASSET_FEATURES]
        np.testing.assert_array_equal(block[:, 0], np.float32(inventory[k] / p.max_inventory))
        hedge = info["hedge_position"][:, k]
        assert np.all(hedge != 0.0) if k == 2 else np.all(hedge == 0.0)
        np.testing.assert_array_equal(block[:, 21], (hedge / p.max_inventory).astype(np.float32))
    account = obs[:, K * ASSET_FEATURES :]
    np.testing.assert_allclose(
        account[:, 0], info["maintenance_margin"] / info["margin_equity"], rtol=1e-6
    )


def test_three_perps_are_deterministic_per_sub_env() -> None:
    def run(seed: int, num_envs: int = 3) -> list[NDArray[Any]]:
        env = PerpMMVectorEnv(
            num_envs=num_envs, scenario="cross_margin_event", episode_seconds=15.0
        )
        out = [env.reset(seed=seed)[0]]
        rng = np.random.default_rng(7)
        for _ in range(40):  # two autoresets
            a = rng.uniform(-1.0, 1.0, size=(num_envs, 5 * K)).astype(np.float32)
            obs, reward, terminated, truncated, info = env.step(a)
            out += [obs, reward, terminated, truncated]
            out += [info[k] for k in ("mid", "inventory", "hedge_position", "forced_sell_volume")]
        return out

    first = run(10)
    for x, y in zip(first, run(10), strict=True):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(first, run(11), strict=True))
    # Sub-env i of a batch seeded s is the single env seeded s + i, bit for bit.
    rng = np.random.default_rng(8)
    actions = rng.uniform(-1.0, 1.0, size=(30, 3, 5 * K)).astype(np.float32)
    batch = PerpMMVectorEnv(num_envs=3, scenario="cross_margin_event", episode_seconds=15.0)
    obs_b, _ = batch.reset(seed=20)
    singles = [PerpMMEnv(scenario="cross_margin_event", episode_seconds=15.0) for _ in range(3)]
    obs_s = [s.reset(seed=20 + i)[0] for i, s in enumerate(singles)]
    for i in range(3):
        np.testing.assert_array_equal(obs_b[i], obs_s[i])
    done = [False] * 3
    for t in range(30):
        obs_b, reward_b, *_, info_b = batch.step(actions[t])
        for i, single in enumerate(singles):
            if done[i]:  # the batch's NEXT_STEP autoreset: this step starts a new episode
                obs, info = single.reset()
                reward, terminated, truncated = 0.0, False, False
            else:
                obs, reward, terminated, truncated, info = single.step(actions[t, i])
            np.testing.assert_array_equal(obs_b[i], obs)
            assert reward_b[i] == reward
            np.testing.assert_array_equal(info_b["mid"][i], info["mid"])
            done[i] = terminated or truncated
    assert batch.sim.accounts["tick"].max() < 150  # the episodes did restart
