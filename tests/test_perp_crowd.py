"""The leveraged crowd: forced flow, its price impact, staged closes and the liquidation trigger.

Comparisons between crowd settings are paired: envs with identical seeds draw the same random
numbers whatever the book's depth or the crowd's leverage (every opening draws a fixed set of
uniforms from its own key: tests/test_crowd_pairing.py), so the same fair-price path and taker
flow hit each variant and only the forced flow differs. SEs are those of the paired differences
across independent envs. The trigger is checked exactly, tick by tick,
against an independent evaluation of every account's linear threshold.
"""

from __future__ import annotations

import math
from typing import Any

import numba as nb
import numpy as np
import pytest
from numpy.typing import NDArray

import mmgym  # noqa: F401  (registers the env ids)
from mmgym.core.crowd import PARTIAL_FIRST
from mmgym.core.kernel import tick_env
from mmgym.envs.perp_mm import PerpMMVectorEnv

Z = 4.0
NO_SWITCH = ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0))
NEVER_RENEW = 1e12  # crowd_holding_seconds: renewals have probability ~1e-12 per tick


@nb.njit(cache=True)
def _tick_all(Pa, accounts, assets, windows, rng, t):  # type: ignore[no-untyped-def]
    for i in range(accounts.shape[0]):
        tick_env(rng, i, accounts[i], assets[i], windows[i], Pa[0], t)


def _no_quotes(num_envs: int, assets: int = 1) -> NDArray[np.float32]:
    a = np.zeros((num_envs, 5 * assets), dtype=np.float32)
    for k in range(assets):
        a[:, 5 * k + 2 : 5 * k + 5] = -1.0
    return a


def _account_slack(sim: Any) -> NDArray[np.float64]:
    """value - threshold of every crowd account at the current marks, (envs, accounts)."""
    e = sim.accounts
    value = np.einsum("njk,nk->nj", e["crowd_coef"], sim.assets["mark"])
    return value - e["crowd_threshold"]


def _shock(sim: Any, size: float) -> None:
    """Move every perp's fair price by ``size`` (log) at once: an exogenous jump."""
    sim.assets["fair_ticks"] *= math.exp(size)
    sim.assets["fair_price"] = sim.assets["fair_ticks"] * 0.01


# A market whose prices do not move: no diffusion to speak of, no jumps, no takers; the initial
# price is half a tick off the grid so the background quotes do not flicker.
FROZEN_MARKET = dict(
    initial_price=100.005,
    volatility=(1e-9, 1e-9, 1e-9),
    jump_rate_per_hour=(0.0, 0.0, 0.0),
    taker_rate=(0.0, 0.0, 0.0),
    signal_move=(0.0, 0.0, 0.0),
    regime_switch_per_hour=NO_SWITCH,
)


# --- the crowd opens above maintenance -----------------------------------------------------------


@pytest.mark.parametrize("scenario", ["calm", "liquidation_cascade"])
def test_crowd_accounts_open_above_their_maintenance_margin(scenario: str) -> None:
    # An account opens at the marks with margin = notional / leverage; its slack to the
    # liquidation threshold is then notional x (1 / leverage - maintenance rate), which must be
    # positive: no venue lets a position open below maintenance margin (leverage is capped at
    # the max leverage of the first tier, 20x in calm and 50x in liquidation_cascade, i.e. half
    # the maintenance leverage; entries dispersed around the mark are drawn conditioned on
    # opening above maintenance).
    num_envs = 64
    env = PerpMMVectorEnv(num_envs=num_envs, scenario=scenario, **FROZEN_MARKET)
    env.reset(seed=1)
    sim = env.sim
    slack = _account_slack(sim)
    born_liquidatable = int(np.sum(slack < 0.0))
    # And in a market that does not move no account can be liquidated.
    for _ in range(60):
        env.step(_no_quotes(num_envs))
    liquidations = int(sim.accounts["crowd_liquidations"].sum())
    assert born_liquidatable == 0 and liquidations == 0, (
        f"{born_liquidatable} of {slack.size} crowd accounts open below their maintenance "
        f"margin (leverage 1 + (L - 1) Exp(1) exceeds 1 / crowd_maintenance_rate = "
        f"{1 / sim._packed[0]['crowd_maintenance_rate']:.0f}); {liquidations} liquidations "
        "in a market that never moves"
    )


# --- forced flow and its price impact ------------------------------------------------------------


def test_zero_crowd_leverage_sends_no_forced_flow() -> None:
    num_envs = 64
    env = PerpMMVectorEnv(
        num_envs=num_envs, scenario="liquidation_cascade", crowd_leverage=0.0, episode_seconds=60.0
    )
    env.reset(seed=2)
    sim = env.sim
    assert np.all(sim.accounts["crowd_threshold"] == -np.inf)
    for t in range(60):
        if t == 5:
            _shock(sim, -0.05)  # a 5 % crash: would wipe out any leveraged long
        *_, info = env.step(_no_quotes(num_envs))
        assert np.all(info["forced_sell_volume"] == 0.0)
        assert np.all(info["forced_buy_volume"] == 0.0)
        assert np.all(info["crowd_liquidations"] == 0)


def _shock_response(
    leverage: float, depth: tuple[float, float, float], seed: int, num_envs: int = 128
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Log change of the mid over 10 s after a 4 % fall of the fair price, and the forced
    selling it caused, per env (calm regime held fixed, 10 s of warm-up). At the venue's 20x cap
    an account needs a 2.5 % move to reach maintenance; 4 % liquidates leverage above ~15x."""
    env = PerpMMVectorEnv(
        num_envs=num_envs,
        scenario="calm",
        crowd_leverage=leverage,
        depth_top=depth,
        regime_switch_per_hour=NO_SWITCH,
        initial_regime="calm",
    )
    env.reset(seed=seed)
    sim = env.sim
    a = _no_quotes(num_envs)
    for _ in range(10):
        env.step(a)
    mid_before = sim.assets["mid"][:, 0].copy()
    _shock(sim, math.log(0.96))
    forced = np.zeros(num_envs)
    for _ in range(10):
        *_, info = env.step(a)
        forced += info["forced_sell_volume"]
    return np.log(sim.assets["mid"][:, 0] / mid_before), forced


DEEP = (4.0, 2.0, 0.6)
THIN = (2.0, 1.0, 0.3)


def test_the_same_shock_moves_the_price_more_as_crowd_leverage_rises() -> None:
    # Leverage 1: the crowd cannot be liquidated by a 4 % move (it would take ~100 %), yet it
    # draws the same random numbers as leverage 10 and 25: paired envs.
    moves = {}
    for leverage in (1.0, 10.0, 25.0):
        moves[leverage], forced = _shock_response(leverage, DEEP, seed=3)
        if leverage == 1.0:
            assert np.all(forced == 0.0)
        else:
            assert forced.mean() > 0.0
    for low, high in ((1.0, 10.0), (10.0, 25.0)):
        diff = moves[high] - moves[low]
        # SE of the paired mean difference across 128 envs (measured 0.9e-5 and 1.3e-5 in log
        # price, against mean differences of -2.0e-4 and -3.3e-4).
        se = diff.std(ddof=1) / math.sqrt(diff.size)
        assert diff.mean() < -Z * se, (low, high, diff.mean(), se)


def test_the_same_shock_moves_the_price_more_as_depth_falls() -> None:
    # The crowd's excess move (leverage 25 minus the unlevered crowd, same seeds) is larger on
    # a book of half the depth. Depth changes no random draw, so all four runs are paired.
    excess = {}
    for depth in (DEEP, THIN):
        levered, _ = _shock_response(25.0, depth, seed=4)
        unlevered, _ = _shock_response(1.0, depth, seed=4)
        excess[depth] = levered - unlevered
    diff = excess[THIN] - excess[DEEP]
    se = diff.std(ddof=1) / math.sqrt(diff.size)  # paired SE across 128 envs
    assert excess[DEEP].mean() < 0.0
    assert diff.mean() < -Z * se, (diff.mean(), se)


# --- staged closes -------------------------------------------------------------------------------


@pytest.mark.parametrize("cooldown", [30.0, 12.3])
def test_large_positions_close_twenty_percent_first_then_the_rest(cooldown: float) -> None:
    env = PerpMMVectorEnv(
        num_envs=1,
        scenario="calm",
        crowd_holding_seconds=NEVER_RENEW,
        crowd_cooldown_seconds=cooldown,
        episode_seconds=60.0,
    )
    p = env.params
    env.reset(seed=5)
    sim = env.sim
    e = sim.accounts[0]
    rate = sim._packed[0]["crowd_maintenance_rate"]
    e["crowd_threshold"][:] = -np.inf  # every account out of play ...
    e["crowd_release_tick"][:] = -1
    n = e["crowd_side"].size
    long_j, short_j = 0, n // 2
    large, small = 40.0, -10.0  # crowd_large_position = 20
    for j, size in ((long_j, large), (short_j, small)):  # ... but these two, under water
        e["crowd_size"][j, 0] = size
        e["crowd_coef"][j, 0] = size - rate * abs(size)
        e["crowd_threshold"][j] = 1e300
    e["crowd_min_slack"] = -np.inf
    cooldown_ticks = round(cooldown / p.tick_seconds)
    release_step = cooldown_ticks // p.ticks_per_decision + 1  # step holding tick cooldown_ticks
    sells, buys = [], []
    for _ in range(40):
        *_, info = env.step(_no_quotes(1))
        sells.append(info["forced_sell_volume"][0])
        buys.append(info["forced_buy_volume"][0])
        if len(sells) == 1:
            assert info["crowd_liquidations"][0] == 2
            assert e["crowd_release_tick"][long_j] == cooldown_ticks  # liquidated at tick 0
            assert e["crowd_size"][long_j, 0] == pytest.approx((1 - PARTIAL_FIRST) * large)
            assert e["crowd_size"][short_j, 0] == 0.0
    expected_sells = np.zeros(40)
    expected_sells[0] = PARTIAL_FIRST * large  # 8 units at once ...
    expected_sells[release_step - 1] = (1 - PARTIAL_FIRST) * large  # ... 32 after the cooldown
    np.testing.assert_allclose(sells, expected_sells, rtol=1e-12, atol=0)
    expected_buys = np.zeros(40)
    expected_buys[0] = -small  # a small position closes in full at once
    np.testing.assert_allclose(buys, expected_buys, rtol=1e-12, atol=0)
    assert info["crowd_liquidations"][0] == 2  # the final close is not a new liquidation
    assert e["crowd_size"][long_j, 0] == 0.0 and e["crowd_threshold"][long_j] == -np.inf
    assert e["crowd_release_tick"][long_j] == -1


# --- the trigger, tick by tick -------------------------------------------------------------------


@pytest.mark.parametrize("scenario", ["liquidation_cascade", "cross_margin_event"])
def test_liquidations_happen_exactly_when_an_account_crosses_its_threshold(scenario: str) -> None:
    # Every tick, every account: liquidated iff sum_k coef_k x mark_k < threshold at the marks
    # the crowd sees (those of the previous tick's end), partial iff its gross size exceeds
    # crowd_large_position, final close exactly at its release tick. Renewals are switched off
    # so that an account's state changes only through the crowd's forced closes. Without
    # renewals each account can be liquidated once, and in 300 s only those opened nearest their
    # threshold are: ~1 liquidation per env in liquidation_cascade, ~0.5 in cross_margin_event
    # (measured with these seeds: 163 and 70 over 128 envs).
    num_envs, ticks = 128, 3000
    env = PerpMMVectorEnv(num_envs=num_envs, scenario=scenario, crowd_holding_seconds=NEVER_RENEW)
    p = env.params
    env.reset(seed=6)
    sim = env.sim
    cooldown = round(p.crowd_cooldown_seconds / p.tick_seconds)
    counts = {"liquidations": 0, "partial": 0, "final": 0, "skipped_checks": 0}
    for t in range(ticks):
        before = sim.accounts.copy()
        marks = sim.assets["mark"].copy()
        _tick_all(sim._packed, sim.accounts, sim.assets, sim.windows, sim.rng, t % 10)
        after = sim.accounts
        tick = before["tick"][:, None]
        value = np.einsum("njk,nk->nj", before["crowd_coef"], marks)
        threshold = before["crowd_threshold"]
        pending = before["crowd_release_tick"] >= 0
        active = (threshold > -np.inf) & ~pending
        crossed = active & (value < threshold)
        now_inactive = (after["crowd_threshold"] == -np.inf) | (after["crowd_release_tick"] >= 0)
        np.testing.assert_array_equal(active & now_inactive, crossed, err_msg=f"tick {t}")
        np.testing.assert_array_equal(
            after["crowd_liquidations"] - before["crowd_liquidations"], crossed.sum(axis=1)
        )
        gross = np.abs(before["crowd_size"]).sum(axis=2)
        large = crossed & (gross > p.crowd_large_position)
        small = crossed & ~large
        release = np.broadcast_to(tick + cooldown, large.shape)
        np.testing.assert_array_equal(after["crowd_release_tick"][large], release[large])
        np.testing.assert_allclose(
            after["crowd_size"][large],
            (1 - PARTIAL_FIRST) * before["crowd_size"][large],
            rtol=1e-12,
        )
        assert np.all(after["crowd_size"][small] == 0.0)
        due = pending & (tick >= before["crowd_release_tick"])
        assert np.all(after["crowd_size"][due] == 0.0)
        assert np.all(after["crowd_release_tick"][due] == -1)
        waiting = pending & ~due
        np.testing.assert_array_equal(after["crowd_size"][waiting], before["crowd_size"][waiting])
        untouched = ~crossed & ~due
        np.testing.assert_array_equal(
            after["crowd_size"][untouched], before["crowd_size"][untouched]
        )
        counts["liquidations"] += int(crossed.sum())
        counts["partial"] += int(large.sum())
        counts["final"] += int(due.sum())
    assert counts["liquidations"] >= 20 and counts["partial"] > 0 and counts["final"] > 0, counts


@pytest.mark.parametrize("scenario", ["liquidation_cascade", "cross_margin_event"])
def test_forced_closes_execute_in_full(scenario: str) -> None:
    # Every unit a crowd account closes must trade: the forced volume of a tick plus what the
    # backstop took beyond the slippage band equals the reduction of the crowd's positions, and
    # without the backstop the book took it all. (The agent's own liquidation repeats its walk
    # when the simulated levels run out; a forced close must not lose the rest of its order.)
    # Measured with these seeds: ~2.8e4 units closed in liquidation_cascade, 3 % of them by the
    # backstop in 6 perp-ticks; ~1.9e4 in cross_margin_event, 2 % in 3 perp-ticks.
    num_envs, ticks = 128, 3000
    env = PerpMMVectorEnv(num_envs=num_envs, scenario=scenario, crowd_holding_seconds=NEVER_RENEW)
    env.reset(seed=6)
    sim = env.sim
    requested_total = executed_total = backstop_total = 0.0
    short_ticks = 0
    for t in range(ticks):
        sizes = sim.accounts["crowd_size"].copy()
        sim.assets["forced_sell_volume"] = 0.0
        sim.assets["forced_buy_volume"] = 0.0
        sim.assets["backstop_volume"] = 0.0
        _tick_all(sim._packed, sim.accounts, sim.assets, sim.windows, sim.rng, t % 10)
        change = sizes - sim.accounts["crowd_size"]  # + : longs sold, - : shorts bought
        sold = np.where(change > 0, change, 0.0).sum(axis=1)
        bought = np.where(change < 0, -change, 0.0).sum(axis=1)
        executed = sim.assets["forced_sell_volume"] + sim.assets["forced_buy_volume"]
        backstop = sim.assets["backstop_volume"]
        requested = sold + bought
        short_ticks += int(np.sum(np.abs(executed + backstop - requested) > 1e-9 * (1 + requested)))
        requested_total += requested.sum()
        executed_total += executed.sum()
        backstop_total += backstop.sum()
    assert requested_total > 1000.0
    assert short_ticks == 0, (
        f"{short_ticks} perp-ticks where a forced close's volume (book and backstop) differed "
        f"from what it closed: {executed_total:.0f} + {backstop_total:.0f} of "
        f"{requested_total:.0f} units"
    )
