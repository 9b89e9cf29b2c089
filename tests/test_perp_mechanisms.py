"""Statistical and accounting checks of the PerpMM market mechanisms against their theory.

Every stochastic test is seeded, and its tolerance is a fixed multiple (4) of a standard error
derived from the sample size and the model; the SE is stated next to each check. Parameters are
chosen so that a wrong mechanism moves the statistic by many SEs, not so that a test passes.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numba as nb
import numpy as np
import pytest
from numpy.typing import NDArray

import mmgym  # noqa: F401  (registers the env ids)
from mmgym.core.layout import asset_dtype, pack_params
from mmgym.core.orders import encode_action, submit
from mmgym.core.params import (
    REGIMES,
    MarketParams,
    hawkes_stationary_rate,
    regime_generator,
    regime_stationary_law,
    regime_transition_matrix,
)
from mmgym.core.rng import seed_streams
from mmgym.scenarios import make_params

ENV_ID = "mmgym/PerpMM-v0"
Z = 4.0  # tolerance in standard errors
NO_SWITCH = ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0))
ACTION_DIM = 5  # per perp: skew, half_spread, bid_size, ask_size, hedge
NO_QUOTES = np.array([0.0, 0.0, -1.0, -1.0, -1.0])  # sizes 0, no hedge: the agent stays out
STATE_FIELDS = ("hedge_cash", "position_limit")
"""Asset-record fields that ``info`` does not carry, read from the simulator after each call."""


def _make_vec(num_envs: int, **params: Any) -> Any:
    return gym.make_vec(
        ENV_ID, num_envs=num_envs, vectorization_mode="vector_entry_point", copy=True, **params
    )


def _state(env: Any) -> dict[str, NDArray[Any]]:
    """Copies of :data:`STATE_FIELDS` and the account's collateral, shaped like ``info``."""
    sim = env.unwrapped.sim
    one = sim.assets.shape[1] == 1
    out = {
        name: (sim.assets[name][:, 0] if one else sim.assets[name]).copy() for name in STATE_FIELDS
    }
    out["collateral"] = sim.accounts["collateral"].copy()
    return out


def _run(
    num_envs: int,
    seed: int,
    actions: NDArray[np.floating] | None = None,
    allow_termination: bool = False,
    **params: Any,
) -> dict[str, NDArray[Any]]:
    """Run one full episode; return each info field (and :func:`_state`, ``reward``,
    ``terminated``) stacked as (steps + 1, num_envs), row 0 the reset. ``actions`` is (steps,
    num_envs, 5 x num_assets), or None for no quotes. Unless ``allow_termination``, no env may be
    liquidated (terminated); if one is, the row after its last holds its new episode's reset."""
    env = _make_vec(num_envs, **params)
    steps = env.unwrapped.params.decisions_per_episode
    _, info = env.reset(seed=seed)
    no_end = np.zeros(num_envs, dtype=np.bool_)
    rows = [dict(info, reward=np.zeros(num_envs), terminated=no_end, **_state(env))]
    for t in range(steps):
        a = np.tile(NO_QUOTES, (num_envs, 1)) if actions is None else actions[t]
        _, reward, terminated, truncated, info = env.step(a.astype(np.float32))
        rows.append(dict(info, reward=reward, terminated=terminated, **_state(env)))
        if not allow_termination:
            assert not terminated.any()
            assert truncated.all() == (t == steps - 1)
    env.close()
    return {k: np.stack([r[k] for r in rows]) for k in rows[-1]}


# --- 1. Hawkes taker flow ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("regime", "informed"), [("calm", 0.0), ("stressed", 0.0), ("volatile", 0.0), ("volatile", 0.6)]
)
def test_hawkes_counts_match_stationary_intensity(regime: str, informed: float) -> None:
    num_envs, seconds = 128, 600.0
    params = dict(
        scenario="calm",
        episode_seconds=seconds,
        regime_switch_per_hour=NO_SWITCH,
        initial_regime=regime,
        informed_fraction=(informed,) * 3,
        # No crowd: its forced orders are not counted in taker_*_orders but do walk the book;
        # without it the only taker flow is the Hawkes flow under test.
        crowd_open_interest=0.0,
    )
    out = _run(num_envs, seed=100 + int(10 * informed), **params)
    p = make_params(**params)
    r = REGIMES.index(regime)
    assert np.all(out["regime"] == r)
    lam = hawkes_stationary_rate(p, r)  # per side per second: mu / (1 - n)
    n = p.hawkes_self + p.hawkes_cross
    m = p.hawkes_self - p.hawkes_cross
    assert lam == pytest.approx(p.taker_rate[r] / (1.0 - n))
    buys = out["taker_buy_orders"][1:].sum(axis=0).astype(float)  # per env, over the episode
    sells = out["taker_sell_orders"][1:].sum(axis=0).astype(float)
    total = buys + sells

    # The excitation starts at its stationary mean, so E[count] = lam T exactly from t = 0.
    # Total count: a univariate Hawkes with branching n (informed flips of side do not change
    # it): Var ~ 2 lam T / (1 - n)^2 over a long window (an upper bound at finite T).
    var_total = 2.0 * lam * seconds / (1.0 - n) ** 2
    se_total = math.sqrt(var_total / num_envs)  # calm: sqrt(3000 * 6.25 / 128) = 12.1 (0.4 %)
    assert abs(total.mean() - 2.0 * lam * seconds) < Z * se_total, (total.mean(), se_total)

    if informed == 0.0:
        # Per side: Var/T = lam * (a^2 + b^2) / 2 with a = 1/(1-n), b = 1/(1-(self-cross)),
        # from (I - K)^-1 diag(lam) (I - K)^-T for the symmetric branching matrix K.
        var_side = lam * seconds * (1.0 / (1.0 - n) ** 2 + 1.0 / (1.0 - m) ** 2) / 2.0
        se_side = math.sqrt(var_side / num_envs)  # calm: sqrt(1500 * 3.9 / 128) = 6.8
        for count in (buys, sells):
            assert abs(count.mean() - lam * seconds) < Z * se_side, (count.mean(), se_side)
        # Clustering: the spread of the total across envs matches the Hawkes variance (a Poisson
        # flow with the same rate would have 1 / 6.25 of it). Under normality the ratio
        # s^2 / var has SE sqrt(2 / (N - 1)) = 0.125.
        ratio = total.var(ddof=1) / var_total
        assert abs(ratio - 1.0) < Z * math.sqrt(2.0 / (num_envs - 1)), ratio
    else:
        # Informed orders follow the latent drift, whose law is symmetric: each side still has
        # mean lam T, but its variance now includes the drift's; SE from the spread across envs.
        for count in (buys, sells):
            se = count.std(ddof=1) / math.sqrt(num_envs)
            assert abs(count.mean() - lam * seconds) < Z * se, (count.mean(), se)


# --- 2. Regime chain ---------------------------------------------------------------------------


FAST_SWITCH = ((0.0, 1800.0, 360.0), (3600.0, 0.0, 1800.0), (1800.0, 5400.0, 0.0))  # per hour
MEDIUM_SWITCH = ((0.0, 240.0, 30.0), (60.0, 0.0, 60.0), (60.0, 240.0, 0.0))  # volatile x 60


@pytest.mark.parametrize("rates", [NO_SWITCH, MEDIUM_SWITCH, FAST_SWITCH, None])
def test_transition_matrix_is_stochastic_with_stationary_pi(rates: Any) -> None:
    p = MarketParams() if rates is None else MarketParams().replace(regime_switch_per_hour=rates)
    P = regime_transition_matrix(p)
    assert np.all(P >= 0.0)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=0, atol=1e-14)
    # exp(Q dt) from an independent eigen-decomposition of the generator.
    q = regime_generator(p) * p.tick_seconds
    w, v = np.linalg.eig(q)
    expm = (v @ np.diag(np.exp(w)) @ np.linalg.inv(v)).real
    np.testing.assert_allclose(P, expm, rtol=0, atol=1e-13)
    pi = regime_stationary_law(p)
    assert pi.sum() == pytest.approx(1.0, abs=1e-14)
    if rates is not NO_SWITCH:
        np.testing.assert_allclose(pi @ P, pi, rtol=0, atol=1e-14)
        np.testing.assert_allclose(pi @ regime_generator(p), 0.0, rtol=0, atol=1e-15)


def _occupancy_z(regimes: NDArray[np.integer], pi: NDArray[np.float64]) -> NDArray[np.float64]:
    """Per-regime z-scores of the fraction of envs in each regime (multinomial SE)."""
    n = regimes.shape[0]
    frac = np.bincount(regimes, minlength=3) / n
    return (frac - pi) / np.sqrt(pi * (1.0 - pi) / n)


def test_regime_occupancy_from_the_stationary_law() -> None:
    num_envs, seconds = 4000, 60.0
    params = dict(
        scenario="calm",
        episode_seconds=seconds,
        regime_switch_per_hour=MEDIUM_SWITCH,
        initial_regime="stationary",
    )
    p = make_params(**params)
    pi = regime_stationary_law(p)  # (0.18, 0.67, 0.15): far from the calm scenario's (0.89, ...)
    out = _run(num_envs, seed=200, **params)
    # SE of a fraction: sqrt(pi (1 - pi) / 4000) <= 0.0075.
    for t in (0, out["regime"].shape[0] // 2, -1):
        z = _occupancy_z(out["regime"][t], pi)
        assert np.all(np.abs(z) < Z), (t, z)
    # The chain really moves (a frozen chain would also keep pi): in stationarity the regime
    # differs between consecutive decisions with probability 1 - sum_i pi_i (P^10)_ii, i.e.
    # ~2.8 changes per env in 60 s. SE from the spread of the per-env counts across envs.
    p10 = np.linalg.matrix_power(regime_transition_matrix(p), p.ticks_per_decision)
    expected = p.decisions_per_episode * (1.0 - float(pi @ np.diag(p10)))
    changes = (np.diff(out["regime"], axis=0) != 0).sum(axis=0)
    se = changes.std(ddof=1) / math.sqrt(num_envs)  # ~0.03
    assert abs(changes.mean() - expected) < Z * se, (changes.mean(), expected, se)


def test_regime_occupancy_converges_from_calm() -> None:
    num_envs, seconds = 4000, 30.0
    params = dict(
        scenario="calm",
        episode_seconds=seconds,
        regime_switch_per_hour=FAST_SWITCH,
        initial_regime="calm",
    )
    p = make_params(**params)
    pi = regime_stationary_law(p)
    # Theory: the slowest mode of Q decays as exp(-1.42 t / s), so after 30 s (~40 mixing times)
    # the law started at calm is pi to round-off.
    ticks = p.decisions_per_episode * p.ticks_per_decision
    law = np.linalg.matrix_power(regime_transition_matrix(p), ticks)[0]
    np.testing.assert_allclose(law, pi, rtol=0, atol=1e-12)
    out = _run(num_envs, seed=300, **params)
    assert np.all(out["regime"][0] == 0)
    z = _occupancy_z(out["regime"][-1], pi)  # SE = sqrt(pi (1 - pi) / 4000) <= 0.0079
    assert np.all(np.abs(z) < Z), z
    # The transient too: at 1 s the law is row "calm" of P^10, (0.69, 0.24, 0.07), not yet pi.
    t1 = np.linalg.matrix_power(regime_transition_matrix(p), p.ticks_per_decision)[0]
    z1 = _occupancy_z(out["regime"][1], t1)
    assert np.all(np.abs(z1) < Z), z1


# --- 3. Informed flow --------------------------------------------------------------------------


def _flow_return_correlations(informed: float, seed: int) -> NDArray[np.float64]:
    """Per-env correlation of step t's signed order flow with step t+1's fair log return."""
    out = _run(
        32,
        seed=seed,
        scenario="calm",
        episode_seconds=600.0,
        regime_switch_per_hour=NO_SWITCH,
        initial_regime="calm",
        informed_fraction=(informed,) * 3,
        # A clear drift (0.2 % over 5 s) against little diffusion and no jumps, so the return of
        # one step is mostly drift: the mechanism, not its realistic size, is under test.
        signal_timescale=5.0,
        signal_move=(0.002, 0.002, 0.002),
        volatility=(0.05, 0.05, 0.05),
        jump_rate_per_hour=(0.0, 0.0, 0.0),
    )
    flow = (out["taker_buy_orders"] - out["taker_sell_orders"])[1:-1].astype(float)
    log_fair = np.log(out["fair_price"])
    next_return = log_fair[2:] - log_fair[1:-1]
    return np.array(
        [np.corrcoef(flow[:, i], next_return[:, i])[0, 1] for i in range(flow.shape[1])]
    )


def test_informed_flow_predicts_the_fair_price() -> None:
    corr = _flow_return_correlations(0.8, seed=400)
    # Envs are independent: SE of the mean correlation from its spread across the 32 envs
    # (measured 0.005; 1/sqrt(599 * 32) = 0.0072 is the no-signal value).
    se = corr.std(ddof=1) / math.sqrt(corr.size)
    assert corr.mean() > Z * se, (corr.mean(), se)


def test_uninformed_flow_does_not_predict_the_fair_price() -> None:
    corr = _flow_return_correlations(0.0, seed=401)
    # SE from the spread across the 32 independent envs; ~ 1 / sqrt(599 * 32) = 0.0072 (the
    # series are autocorrelated, which can inflate it by Bartlett's factor: measured 0.0095, a
    # factor ~1.3). Guard that the SE is not so large that the check would be vacuous.
    se = corr.std(ddof=1) / math.sqrt(corr.size)
    assert se < 3.0 / math.sqrt(599 * 32)
    assert abs(corr.mean()) < Z * se, (corr.mean(), se)


# --- 4. Jumps ----------------------------------------------------------------------------------


@pytest.mark.parametrize("down_prob", [0.7, 0.25])
def test_jumps_direction_and_rate(down_prob: float) -> None:
    num_envs, seconds, rate_per_hour = 64, 600.0, 360.0
    out = _run(
        num_envs,
        seed=500 + int(100 * down_prob),
        scenario="calm",
        episode_seconds=seconds,
        regime_switch_per_hour=NO_SWITCH,
        initial_regime="calm",
        volatility=(1e-9, 1e-9, 1e-9),  # diffusion ~ 2e-13 per step: only jumps move the price
        signal_move=(0.0, 0.0, 0.0),
        jump_rate_per_hour=(rate_per_hour,) * 3,
        jump_down_prob=down_prob,
        impact_memory_shares=(0.0, 0.0, 0.0),  # order flow does not move the fair price
        impact_permanent_share=0.0,
    )
    r = np.diff(np.log(out["fair_price"]), axis=0).ravel()
    jumps = r[np.abs(r) > 1e-8]  # |jump| ~ Exp(mean 1e-3): P(|jump| < 1e-8) = 1e-5
    steps = r.size
    # Per tick a jump has probability rate dt; a 1 s step has 10 ticks.
    p_tick = rate_per_hour * 0.1 / 3600.0
    p_step = 1.0 - (1.0 - p_tick) ** 10
    se_rate = math.sqrt(p_step * (1 - p_step) / steps)  # sqrt(0.096 * 0.904 / 38400) = 0.0015
    assert abs(jumps.size / steps - p_step) < Z * se_rate, (jumps.size / steps, p_step)
    # Direction: binomial SE sqrt(p (1 - p) / n_jumps) ~ sqrt(0.21 / 3670) = 0.0076. Steps with
    # two jumps keep P(down) = p exactly; three or more (0.1 % of jump steps) bias it by < 1e-4.
    down = float(np.mean(jumps < 0.0))
    se = math.sqrt(down_prob * (1 - down_prob) / jumps.size)
    assert abs(down - down_prob) < Z * se, (down, down_prob, se)


# --- 8. Latency jitter -------------------------------------------------------------------------


@nb.njit(cache=True)
def _sample_delays(rng, state, Pa, action, regime, tick, n):  # type: ignore[no-untyped-def]
    out = np.empty(n, np.int64)
    s = state[0]
    for k in range(n):
        submit(rng, 0, s, Pa[0], action, regime, tick)
        out[k] = s.pending_tick - tick
    return out


@pytest.mark.parametrize("regime", [0, 1, 2])
def test_latency_jitter_mean(regime: int) -> None:
    # A fine tick (0.1 ms) makes the rounding up to whole ticks negligible; the exact mean of the
    # rounded delay is also computed below.
    dt, latency, cap, n = 1e-4, 0.05, 0.5, 20000
    jitter = (0.01, 0.05, 0.2)
    p = MarketParams().replace(
        tick_seconds=dt,
        latency_seconds=latency,
        latency_jitter_seconds=jitter,
        latency_cap_seconds=cap,
    )
    P = pack_params(p)
    state = np.zeros(1, dtype=asset_dtype(p.book_levels))  # one perp's record
    state["best_bid"][0] = 9998
    state["best_ask"][0] = 10002
    rng = np.zeros(1, dtype=np.uint64)
    seed_streams(rng, np.array([600 + regime], dtype=np.uint64), np.ones(1, dtype=np.bool_))
    ticks = _sample_delays(rng, state, P, np.zeros(ACTION_DIM), regime, 123, n)
    delay = ticks * dt
    j, c = jitter[regime], cap - latency
    # D = min(latency + J E, cap), E ~ Exp(1): E[D] = latency + J (1 - exp(-c / J)) and
    # E[min(J E, c)^2] = 2 J^2 (1 - exp(-c / J) (1 + c / J)).
    mean = latency + j * (1.0 - math.exp(-c / j))
    second = 2.0 * j * j * (1.0 - math.exp(-c / j) * (1.0 + c / j))
    sd = math.sqrt(second - (mean - latency) ** 2)
    se = sd / math.sqrt(n)  # regime 2: 0.18 / sqrt(20000) = 1.3 ms; regime 0: 0.07 ms
    # Exact mean of the delay rounded up to whole ticks: sum_k P(D / dt > k).
    k = np.arange(round(cap / dt))
    survival = np.where(k * dt < latency, 1.0, np.exp(-(k * dt - latency) / j))
    mean_ticks = survival.sum() * dt
    assert abs(mean_ticks - mean) < 1e-4 + 1e-12  # rounding adds < 1 tick (0.1 ms)
    assert abs(delay.mean() - mean_ticks) < Z * se, (delay.mean(), mean_ticks, se)
    assert delay.min() >= latency - 1e-12
    assert delay.max() <= cap + 1e-12
    # The cap binds with probability exp(-c / J) (regime 2: 0.105; SE 0.002).
    p_cap = math.exp(-c / j)
    at_cap = float(np.mean(ticks == round(cap / dt)))
    assert abs(at_cap - p_cap) < Z * math.sqrt(p_cap * (1 - p_cap) / n) + 1e-12


# --- 9-11. Fees, PnL decomposition, inventory limit --------------------------------------------


def _random_actions(seed: int, steps: int, num_envs: int, assets: int = 1) -> NDArray[np.float64]:
    """Uniform actions (hedge component included); a quarter of the envs buy hard in every perp,
    another quarter plays corners of the box (crossing quotes rejected by post-only, quotes
    beyond fair value picked off, full sizes, no hedge or a full one)."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(-1.0, 1.0, size=(steps, num_envs, assets, ACTION_DIM))
    k = num_envs // 4
    a[:, :k, :, 1] = rng.uniform(-1.0, -0.8, size=(steps, k, assets))  # tight quotes
    a[:, :k, :, 2] = 1.0  # full bid size
    a[:, :k, :, 3] = -1.0  # no ask: accumulates inventory up to the limit
    a[:, k : 2 * k] = rng.choice([-1.0, 1.0], size=(steps, k, assets, ACTION_DIM))
    return a.reshape(steps, num_envs, assets * ACTION_DIM)


PNL_TERMS = (
    "pnl_spread",
    "pnl_inventory",
    "pnl_fees",
    "pnl_funding",
    "pnl_hedge",
    "pnl_liquidation",
)
"""Every term of the PnL decomposition: they sum to the change of the account's equity."""


def _perp_equity(out: dict[str, NDArray[Any]]) -> NDArray[np.float64]:
    """Each perp's share of the equity: cash + inventory x mark + the hedge leg at the oracle."""
    return (
        out["cash"]
        + out["inventory"] * out["mark"]
        + out["hedge_cash"]
        + out["hedge_position"] * out["fair_price"]
    )


@pytest.mark.parametrize("maker_fee", [0.00015, -0.0001])
def test_fees_are_exact(maker_fee: float) -> None:
    num_envs, steps = 16, 120
    params = dict(scenario="volatile", episode_seconds=float(steps), initial_regime="stationary")
    actions = _random_actions(700, steps, num_envs)
    with_fee = _run(num_envs, seed=700, actions=actions, maker_fee=maker_fee, **params)
    no_fee = _run(num_envs, seed=700, actions=actions, maker_fee=0.0, **params)
    assert with_fee["fills"].sum() > 500  # the check below is not vacuous (1103 fills)
    # Fees are charged on the fill price: fill_notional is sum |qty| x price.
    np.testing.assert_allclose(
        with_fee["pnl_fees"], -maker_fee * with_fee["fill_notional"], rtol=1e-12, atol=0
    )
    np.testing.assert_array_equal(no_fee["pnl_fees"], 0.0)
    # The fee changes nothing but cash: identical fills, book, prices, funding and hedge (the
    # leverage cap on the position limit, ~2000 units here, never binds below max_inventory).
    for name in (
        "fills",
        "bid_filled",
        "ask_filled",
        "inventory",
        "fill_notional",
        "mid",
        "mark",
        "pnl_funding",
        "hedge_position",
        "hedge_cash",
        "position_limit",
    ):
        np.testing.assert_array_equal(with_fee[name], no_fee[name], err_msg=name)
    cumulative_fees = np.cumsum(with_fee["pnl_fees"], axis=0)
    scale = np.cumsum(with_fee["fill_notional"], axis=0) + 1.0
    np.testing.assert_array_less(
        np.abs(with_fee["cash"] - no_fee["cash"] - cumulative_fees), 1e-12 * scale
    )


def test_pnl_decomposition_sums_to_equity_change() -> None:
    num_envs, steps = 32, 300
    params = dict(
        scenario="volatile",
        episode_seconds=float(steps),
        initial_regime="stationary",
        # Funding every minute (not every hour), so that every env pays or earns it several
        # times in the episode and the funding term is exercised.
        funding_interval_seconds=60.0,
    )
    out = _run(num_envs, seed=800, actions=_random_actions(800, steps, num_envs), **params)
    p = make_params(**params)
    notional = p.initial_price * p.max_inventory
    assert out["fills"].sum() > 1000
    assert out["toxic_filled"].sum() > 0.0  # pick-offs are booked too
    assert out["hedge_filled"].sum() > 0.0  # so are hedge fills
    assert np.count_nonzero(out["pnl_funding"]) > num_envs  # and funding payments
    d_equity = np.diff(out["equity"], axis=0)
    parts = sum(out[name] for name in PNL_TERMS)[1:]
    np.testing.assert_array_less(np.abs(parts - d_equity), 1e-9 * notional)
    np.testing.assert_array_less(np.abs(out["reward"][1:] - d_equity), 1e-9 * notional)
    np.testing.assert_array_less(np.abs(out["pnl"][1:] - d_equity), 1e-9 * notional)
    # No liquidation in this episode (``_run`` checks), so the liquidation term is exactly 0.
    np.testing.assert_array_equal(out["pnl_liquidation"], 0.0)
    np.testing.assert_allclose(
        out["equity"],
        out["collateral"] + _perp_equity(out),
        rtol=0,
        atol=1e-12 * notional,
    )
    assert np.all(out["equity"][0] == p.collateral)
    np.testing.assert_array_equal(out["collateral"], p.collateral)
    # Average-cost books agree: realised + inventory x (mark - entry) is the perp's equity
    # (without the hedge leg) plus the fees and funding paid.
    fees_paid = -np.cumsum(out["pnl_fees"], axis=0)
    funding_paid = np.cumsum(out["funding_paid"], axis=0)
    np.testing.assert_array_equal(out["funding_paid"], -out["pnl_funding"])
    booked = out["realised_pnl"] + out["inventory"] * (out["mark"] - out["entry_price"])
    perp = out["cash"] + out["inventory"] * out["mark"]
    np.testing.assert_array_less(np.abs(booked - perp - fees_paid - funding_paid), 1e-9 * notional)


def test_inventory_never_exceeds_the_limit() -> None:
    num_envs, steps, limit = 32, 300, 1.0
    out = _run(
        num_envs,
        seed=900,
        actions=_random_actions(900, steps, num_envs),
        scenario="volatile",
        episode_seconds=float(steps),
        initial_regime="stationary",
        max_inventory=limit,  # the 2.0 maximal quote size must be cut to respect it
    )
    q = out["inventory"]
    assert np.abs(q).max() <= limit + 1e-9
    assert np.abs(q).max() >= 0.99 * limit  # the limit is reached, so it is really tested
    # A resting quote can never take inventory past the limit even if it fills in full.
    assert np.all(q + out["bid_qty"] <= limit + 1e-9)
    assert np.all(q - out["ask_qty"] >= -limit - 1e-9)
    # The per-perp limit min(max_inventory, margin equity x max leverage / (mark x K)) is
    # max_inventory here: the leverage cap (10000 x 20 / 100 = 2000 units) is far away.
    np.testing.assert_array_equal(out["position_limit"], limit)


def test_pnl_decomposition_includes_liquidation() -> None:
    """The same decomposition through liquidations: forced closes are booked to
    ``pnl_liquidation`` (slippage against the mark, taker fee and penalty) and still sum up."""
    num_envs, steps = 32, 300
    params = dict(
        scenario="volatile",
        episode_seconds=float(steps),
        initial_regime="stationary",
        # 200x leverage on 2.0 of collateral: maintenance margin is 0.25 % of the notional, so
        # an adverse move of a fraction of a percent liquidates the envs that buy hard.
        collateral=2.0,
        margin_tiers=((0.0, 200.0),),
    )
    actions = _random_actions(1000, steps, num_envs)
    out = _run(num_envs, seed=1000, actions=actions, allow_termination=True, **params)
    p = make_params(**params)
    notional = p.initial_price * p.max_inventory
    liquidated = out["liquidated"]
    np.testing.assert_array_equal(liquidated, out["terminated"])
    assert liquidated.sum() >= 5  # not vacuous (14 liquidations)
    parts = sum(out[name] for name in PNL_TERMS)
    np.testing.assert_array_less(np.abs(parts - out["pnl"]), 1e-9 * notional)
    np.testing.assert_array_less(np.abs(out["reward"] - out["pnl"]), 1e-9 * notional)
    # Step to step, except across an autoreset (the row after a liquidation is a new episode).
    d_equity = np.diff(out["equity"], axis=0)
    same_episode = ~liquidated[:-1]
    np.testing.assert_array_less(np.abs(parts[1:] - d_equity)[same_episode], 1e-9 * notional)
    np.testing.assert_allclose(
        out["equity"], out["collateral"] + _perp_equity(out), rtol=0, atol=1e-12 * notional
    )
    # A liquidation closes the position in full, cancels the quotes and costs something.
    assert np.all(out["inventory"][liquidated] == 0.0)
    assert np.all(out["bid_qty"][liquidated] == 0.0)
    assert np.all(out["ask_qty"][liquidated] == 0.0)
    assert np.all(out["pnl_liquidation"][liquidated] < 0.0)
    np.testing.assert_array_equal(out["pnl_liquidation"][~liquidated], 0.0)


def test_inventory_limit_under_the_leverage_cap() -> None:
    """Where the leverage cap binds, each step's per-perp limit is min(max_inventory, margin
    equity x max leverage / (mark x K)) at the step's start, and quotes are cut to it."""
    num_envs, steps, assets = 32, 300, 2
    params = dict(
        scenario="volatile",
        episode_seconds=float(steps),
        initial_regime="stationary",
        num_assets=assets,
        collateral=5.0,  # 5 x 20 / (100 x 2): about 0.5 unit per perp, far below max_inventory
    )
    out = _run(num_envs, seed=900, actions=_random_actions(900, steps, num_envs, assets), **params)
    p = make_params(**params)
    max_leverage = p.margin_tiers[0][1]
    q, limit = out["inventory"], out["position_limit"]  # (steps + 1, num_envs, K)
    room = np.maximum(out["margin_equity"][:-1], 0.0)[..., None] * max_leverage
    expected = np.minimum(p.max_inventory, room / (out["mark"][:-1] * assets))
    np.testing.assert_allclose(limit[1:], expected, rtol=1e-15, atol=0)
    assert limit[1:].max() < 0.5 * p.max_inventory  # the cap binds throughout
    assert np.abs(q).max() <= p.max_inventory + 1e-9
    # The limit moves with equity and marks, so a position can end above a limit that fell
    # after it was taken; it can only grow into a limit in force (the last or this step's).
    assert (np.abs(q) / limit)[1:].max() >= 0.99  # the limit is reached, so it is really tested
    assert np.all(np.abs(q[1]) <= limit[1] + 1e-9)
    upper = np.maximum(np.maximum(q[1:-1], limit[1:-1]), limit[2:])
    lower = np.minimum(np.minimum(q[1:-1], -limit[1:-1]), -limit[2:])
    assert np.all(q[2:] <= upper + 1e-9)
    assert np.all(q[2:] >= lower - 1e-9)
    # A resting quote (placed this step, under this step's limit) never takes the position past
    # it even if it fills in full.
    bid, ask = out["bid_qty"] > 0.0, out["ask_qty"] > 0.0
    assert bid[1:].any() and ask[1:].any()
    assert np.all((q + out["bid_qty"])[1:][bid[1:]] <= limit[1:][bid[1:]] + 1e-9)
    assert np.all((q - out["ask_qty"])[1:][ask[1:]] >= -limit[1:][ask[1:]] - 1e-9)


def test_encode_action_broadcasts_clips_and_keeps_nan() -> None:
    P = MarketParams()  # max_skew_ticks 20, max_half_spread_ticks 20, max_quote_size 2
    skew = np.array([[0.0, 5.0, -40.0]])  # ticks; -40 is beyond the range
    bid = np.array([[0.5], [1.0]])  # base units
    out = encode_action(P, skew, 2.0, bid, 3.0, np.nan)
    assert out.shape == (2, 3, 5) and out.dtype == np.float32
    np.testing.assert_array_equal(out[..., 0], np.broadcast_to([0.0, 0.25, -1.0], (2, 3)))
    np.testing.assert_allclose(out[..., 1], 2.0 * 1.5 / 19.5 - 1.0, rtol=1e-6)
    np.testing.assert_array_equal(out[..., 2], np.broadcast_to([[-0.5], [0.0]], (2, 3)))
    np.testing.assert_array_equal(out[..., 3], 1.0)  # 3 > max_quote_size: clipped
    assert np.isnan(out[..., 4]).all()  # NaN stays NaN (no order, as the decoder reads it)
    single = encode_action(P, 0.0, 0.5, 0.0, 2.0, 1.0)
    np.testing.assert_array_equal(single, np.array([0.0, -1.0, -1.0, 1.0, 1.0], np.float32))
