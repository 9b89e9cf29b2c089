"""Endogenous liquidity and the stress feedback, against their closed forms.

The makers' liquidity (:mod:`mmgym.core.liquidity`): its relaxation after a shock, its
stationary level 1 when nothing is toxic, the herding's total withdrawal ``s0 / (1 - n)``, the
cancels and the wider quotes of a side the makers leave. The stress feedback
(:mod:`mmgym.core.stress`, :func:`mmgym.core.regime.next_regime_scaled`): its memories, the
chain with the feedback off (bit-identical to ``exp(Q dt)`` sampling, one uniform per tick),
the scaled switching probabilities against ``1 - exp(-m q dt)``, and determinism through the
env.
"""

from __future__ import annotations

import math
from typing import Any

import numba as nb
import numpy as np
import pytest
from numpy.typing import NDArray

from mmgym.analysis.market_record import simulate
from mmgym.core.book import recentre
from mmgym.core.layout import account_dtype, asset_dtype, pack_params
from mmgym.core.liquidity import half_spread, step_liquidity
from mmgym.core.params import MarketParams, depth_profile, regime_generator
from mmgym.core.regime import next_regime, next_regime_scaled
from mmgym.core.rng import new_streams, seed_streams
from mmgym.core.stress import step_stress

BASE = MarketParams()
CALM, VOLATILE, STRESSED = 0, 1, 2
OFF: dict[str, Any] = {
    "liquidity_toxicity_rate": 0.0,
    "liquidity_move_sensitivity": 0.0,
    "stress_volatility_sensitivity": 0.0,
    "stress_liquidation_sensitivity": 0.0,
}
"""The overrides that switch the mechanism off (the book and the chain as without it)."""


@nb.njit(cache=True)
def _steps(state, Pa, r, net, move):  # type: ignore[no-untyped-def]
    """Step the liquidity of perp record 0 once per entry of ``net`` / ``move``; return the bid
    and ask liquidity after each tick."""
    out = np.empty((net.shape[0], 2))
    for t in range(net.shape[0]):
        step_liquidity(state[0], Pa[0], r, net[t], move[t])
        out[t, 0] = state[0].liquidity_bid
        out[t, 1] = state[0].liquidity_ask
    return out


@nb.njit(cache=True)
def _recentre(state, Pa, r, anchor):  # type: ignore[no-untyped-def]
    recentre(state[0], Pa[0], r, anchor)


@nb.njit(cache=True)
def _half_spread(Pa, r, level):  # type: ignore[no-untyped-def]
    return half_spread(Pa[0], r, level)


@nb.njit(cache=True)
def _stress(accounts, Pa, z2, liquidations):  # type: ignore[no-untyped-def]
    out = np.empty((z2.shape[0], 3))
    e = accounts[0]
    for t in range(z2.shape[0]):
        e.crowd_liquidations += liquidations[t]
        step_stress(e, Pa[0], z2[t], 1)
        out[t, 0] = e.stress_variance
        out[t, 1] = e.stress_liquidations
        out[t, 2] = e.stress_multiplier
    return out


@nb.njit(cache=True)
def _chain(rng, regime, cdf, rates, multiplier, n):  # type: ignore[no-untyped-def]
    """``n`` one-tick moves from ``regime`` (restarting there each time)."""
    out = np.empty(n, dtype=np.int64)
    for t in range(n):
        out[t] = next_regime_scaled(rng, 0, regime, cdf, rates, multiplier)
    return out


@nb.njit(cache=True)
def _chain_plain(rng, regime, cdf, n):  # type: ignore[no-untyped-def]
    out = np.empty(n, dtype=np.int64)
    for t in range(n):
        out[t] = next_regime(rng, 0, regime, cdf)
    return out


def _book(p: MarketParams, regime: int = CALM) -> NDArray[np.void]:
    """One perp at the regime's profile around 100.00, the makers at full liquidity."""
    state = np.zeros(1, dtype=asset_dtype(p.book_levels))
    profile = depth_profile(p)[regime]
    state["best_bid"][0] = 9998
    state["best_ask"][0] = 10002
    state["bid_depth"][0] = profile
    state["ask_depth"][0] = profile
    state["liquidity_bid"][0] = 1.0
    state["liquidity_ask"][0] = 1.0
    return state


def _sigma_tick(p: MarketParams, regime: int) -> float:
    return float(pack_params(p)["sigma_per_tick"][0][regime])


def test_liquidity_relaxes_to_one_with_its_time_constant() -> None:
    # After a shock and no further impulse: 1 - L_t = (1 - L_0) exp(-t dt / tau) exactly, with
    # the herding memory at 0 (n = 0) so that the shock does not echo.
    p = BASE.replace(liquidity_herding=0.0, liquidity_recovery_seconds=7.0)
    P = pack_params(p)
    state = _book(p)
    state["liquidity_bid"][0] = 0.3
    state["liquidity_ask"][0] = 0.8
    ticks = 400
    path = _steps(state, P, CALM, np.zeros(ticks), np.zeros(ticks))
    t = np.arange(1, ticks + 1) * p.tick_seconds
    decay = np.exp(-t / 7.0)
    np.testing.assert_allclose(path[:, 0], 1.0 - 0.7 * decay, rtol=0, atol=1e-12)
    np.testing.assert_allclose(path[:, 1], 1.0 - 0.2 * decay, rtol=0, atol=1e-12)


def test_liquidity_stays_exactly_one_below_the_thresholds() -> None:
    # Flow whose memory stays under the toxicity threshold and moves under the move threshold:
    # no impulse ever, so L = 1 exactly and the depth is untouched (the configured book).
    p = BASE
    P = pack_params(p)
    state = _book(p)
    depth = state["bid_depth"][0].copy()
    rng = np.random.default_rng(1)
    near = float(P["near_depth"][0][CALM])
    d = math.exp(-p.tick_seconds / p.liquidity_flow_seconds)
    # |memory| <= max|net| / (1 - d) stays below the threshold x near depth
    net = rng.uniform(-1, 1, 5000) * 0.9 * p.liquidity_toxicity_threshold * near * (1 - d)
    move = rng.uniform(-1, 1, 5000) * p.liquidity_move_threshold * _sigma_tick(p, CALM)
    path = _steps(state, P, CALM, net, move)
    assert np.all(path == 1.0)
    assert np.array_equal(state["bid_depth"][0], depth)


def test_herding_withdraws_s0_over_one_minus_n_in_all() -> None:
    # One move impulse s0 on the bid side, then quiet, no recovery: every unit of withdrawal
    # triggers n more through the herding kernel, so log L -> -s0 / (1 - n) (a geometric sum;
    # the kernel's jump n (1 - d) makes each unit's offspring sum to exactly n).
    n = 0.6
    p = BASE.replace(
        liquidity_herding=n,
        liquidity_recovery_seconds=1e15,
        liquidity_floor=1e-12,
        liquidity_move_sensitivity=0.1,
    )
    P = pack_params(p)
    state = _book(p)
    z = p.liquidity_move_threshold + 5.0  # s0 = 0.1 x 5 = 0.5
    move = np.zeros(3000)  # 300 s: herding decays over 2 s
    move[0] = -z * _sigma_tick(p, CALM)  # a down move: the bids withdraw
    path = _steps(state, P, CALM, np.zeros_like(move), move)
    assert math.log(path[-1, 0]) == pytest.approx(-0.5 / (1.0 - n), rel=1e-9)
    assert path[-1, 1] == 1.0  # the asks were not hit
    assert math.log(path[0, 0]) == pytest.approx(-0.5, rel=1e-12)  # the first tick: s0 alone


def test_toxic_flow_thins_the_hit_side_and_the_makers_cancel_at_once() -> None:
    # A net sell of (threshold + 2) near-depths in one tick: the bid impulse is rate x 2 x dt;
    # depth and the volume ahead shrink by the liquidity's ratio; the asks are untouched.
    p = BASE.replace(liquidity_herding=0.0)
    P = pack_params(p)
    state = _book(p)
    state["bid_qty"][0] = 1.0
    state["bid_px"][0] = 9998
    state["bid_ahead"][0] = 2.0
    depth = state["bid_depth"][0].copy()
    near = float(P["near_depth"][0][CALM])
    tox = p.liquidity_toxicity_threshold + 2.0
    path = _steps(state, P, CALM, np.array([-tox * near]), np.zeros(1))
    impulse = p.liquidity_toxicity_rate * 2.0 * p.tick_seconds
    recovery = math.exp(-p.tick_seconds / p.liquidity_recovery_seconds)
    expected = 1.0 - (1.0 - math.exp(-impulse)) * recovery
    assert path[0, 0] == pytest.approx(expected, rel=1e-12)
    assert path[0, 1] == 1.0
    np.testing.assert_allclose(state["bid_depth"][0], depth * expected, rtol=1e-12)
    assert state["bid_ahead"][0] == pytest.approx(2.0 * expected, rel=1e-12)


def test_a_thin_side_widens_the_spread_around_the_anchor() -> None:
    # half-spread h / L^gamma of the thinner side: at L = 0.1 and gamma = 1 both best quotes
    # move 10x further from the anchor, and the levels they abandon are cancelled (the market
    # gaps away from resting orders).
    p = BASE.replace(liquidity_spread_elasticity=1.0)
    P = pack_params(p)
    h = p.background_half_spread[CALM]
    assert _half_spread(P, CALM, 1.0) == h
    assert _half_spread(P, CALM, 0.1) == pytest.approx(10 * h, rel=1e-12)
    assert _half_spread(pack_params(p.replace(liquidity_spread_elasticity=0.5)), CALM, 0.25) == (
        pytest.approx(2 * h, rel=1e-12)
    )
    state = _book(p)
    state["liquidity_bid"][0] = 0.1
    anchor = 10000.0
    _recentre(state, P, CALM, anchor)
    assert state["best_bid"][0] == math.floor(anchor - 10 * h)  # the thinner side sets it
    assert state["best_ask"][0] == math.ceil(anchor + 10 * h)


def test_stress_memories_and_multiplier() -> None:
    # Constant z^2 for N ticks: the variance memory is z^2 (1 - d^N); k liquidations at once
    # decay as k d^t; the multiplier is 1 + a max(sqrt(v) - x0, 0) + b l.
    p = BASE.replace(stress_feedback_seconds=10.0)
    P = pack_params(p)
    accounts = np.zeros(1, dtype=account_dtype(1, p.crowd_accounts))
    n = 300
    z2 = np.full(n, 25.0)
    liquidations = np.zeros(n, dtype=np.int64)
    liquidations[0] = 4
    path = _stress(accounts, P, z2, liquidations)
    d = math.exp(-p.tick_seconds / 10.0)
    t = np.arange(1, n + 1)
    np.testing.assert_allclose(path[:, 0], 25.0 * (1 - d**t), rtol=1e-12)
    np.testing.assert_allclose(path[:, 1], 4.0 * d ** (t - 1), rtol=1e-12)
    excess = np.maximum(np.sqrt(path[:, 0]) - p.stress_volatility_threshold, 0.0)
    m = 1 + p.stress_volatility_sensitivity * excess + p.stress_liquidation_sensitivity * path[:, 1]
    np.testing.assert_allclose(path[:, 2], m, rtol=1e-12)


def test_the_chain_without_feedback_is_bit_identical_and_draws_one_uniform() -> None:
    P = pack_params(BASE)
    cdf, rates = P["transition_cdf_per_tick"][0], P["regime_rate_per_tick"][0]
    for regime in (CALM, VOLATILE, STRESSED):
        a, b = new_streams(1), new_streams(1)
        seed_streams(a, np.array([7], dtype=np.uint64), np.ones(1, dtype=np.bool_))
        b[:] = a
        got = _chain(a, regime, cdf, rates, 1.0, 20000)
        want = _chain_plain(b, regime, cdf, 20000)
        assert np.array_equal(got, want)
        assert np.array_equal(a, b)
        c = b.copy()
        _chain(c, regime, cdf, rates, 3.0, 20000)
        assert np.array_equal(c, _advanced(b, 20000))  # one uniform per tick at m != 1 too


def _advanced(rng: NDArray[np.uint64], n: int) -> NDArray[np.uint64]:
    out = rng.copy()
    _chain_plain(out, CALM, np.array([[1.0, 1.0, 1.0]] * 3), n)  # one uniform per call
    return out


@pytest.mark.parametrize("regime", [CALM, VOLATILE])
def test_scaled_switching_probability_is_one_minus_exp_of_the_scaled_rates(regime: int) -> None:
    # Rates large enough for a sample to see them: q dt about 0.01-0.05 per tick. Leaving to a
    # more stressed j has probability (m q_j / L)(1 - exp(-L)), L the row's scaled rate sum, to
    # a calmer one (q_j / L)(1 - exp(-L)). 200 000 draws: SE = sqrt(p (1 - p) / N) < 5e-4.
    rates_per_hour = ((0.0, 1800.0, 600.0), (3600.0, 0.0, 900.0), (3600.0, 3600.0, 0.0))
    p = BASE.replace(regime_switch_per_hour=rates_per_hour)
    P = pack_params(p)
    m = 2.5
    q = regime_generator(p) * p.tick_seconds
    scaled = np.array([q[regime, j] * (m if j > regime else 1.0) for j in range(3)])
    scaled[regime] = 0.0
    total = scaled.sum()
    expected = scaled / total * -math.expm1(-total)
    expected[regime] = math.exp(-total)
    rng = new_streams(1)
    seed_streams(rng, np.array([11 + regime], dtype=np.uint64), np.ones(1, dtype=np.bool_))
    n = 200_000
    draws = _chain(rng, regime, P["transition_cdf_per_tick"][0], P["regime_rate_per_tick"][0], m, n)
    freq = np.bincount(draws, minlength=3) / n
    se = np.sqrt(expected * (1 - expected) / n)
    assert np.all(np.abs(freq - expected) < 4 * se + 1e-12), (freq, expected, se)
    # into the most stressed regime from calm: 1 - exp(-m q dt) to first order in the others
    if regime == CALM:
        assert expected[STRESSED] == pytest.approx(-math.expm1(-m * q[CALM, STRESSED]), rel=0.1)


TRANSIENT_IMPACT = {"impact_memory_shares": (0.0, 0.0, 0.0), "impact_permanent_share": 0.0}
"""Order flow off the fair price (the slow and permanent impact parts move it with the flow,
which the liquidity changes): then the fair price is the market draws' path alone."""


def test_feedback_off_keeps_the_book_configured_and_runs_are_deterministic() -> None:
    off = simulate("liquidation_cascade", num_envs=2, hours=0.1, seed=3, **OFF, **TRANSIENT_IMPACT)
    assert np.all(off.liquidity_bid == 1.0) and np.all(off.liquidity_ask == 1.0)
    assert np.all(off.stress_multiplier == 1.0)
    a = simulate("liquidation_cascade", num_envs=2, hours=0.1, seed=3, **TRANSIENT_IMPACT)
    b = simulate("liquidation_cascade", num_envs=2, hours=0.1, seed=3, **TRANSIENT_IMPACT)
    for name in ("mid", "liquidity_bid", "liquidity_ask", "best_bid", "stress_multiplier"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    # the same market draws: the oracle's path is the same with and without the feedback
    # until the regime paths part (they share the tick's uniforms)
    same = np.all(a.regime == off.regime, axis=1)
    first = int(np.argmin(same)) if not same.all() else same.size
    np.testing.assert_array_equal(a.fair[:first], off.fair[:first])
