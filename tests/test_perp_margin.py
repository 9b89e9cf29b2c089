"""Mark price, tiered maintenance margin, liquidation and the full PnL decomposition.

Deterministic checks are exact (to float round-off, bound stated); the liquidation trigger is
located by running the same market twice from a saved state: once with ample collateral to read
the margin slack, then with collateral just above and just below the crossing.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numba as nb
import numpy as np
import pytest
from numpy.typing import NDArray

import mmgym  # noqa: F401  (registers the env ids)
from mmgym.core.kernel import tick_env
from mmgym.core.margin import tier_margin, update_account
from mmgym.core.params import MarketParams, maintenance_margin, maintenance_tiers
from mmgym.envs.perp_mm import PerpMMVectorEnv
from mmgym.scenarios import SCENARIOS

NO_SWITCH = ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0))
# A market that does not move: no diffusion to speak of, no jumps, no takers, no crowd. The
# initial price sits half a tick off the grid so the background quotes never flicker.
FROZEN = dict(
    scenario="calm",
    initial_price=100.005,
    volatility=(1e-9, 1e-9, 1e-9),
    jump_rate_per_hour=(0.0, 0.0, 0.0),
    taker_rate=(0.0, 0.0, 0.0),
    signal_move=(0.0, 0.0, 0.0),
    crowd_leverage=0.0,
    regime_switch_per_hour=NO_SWITCH,
    initial_regime="calm",
)


# --- numba wrappers ------------------------------------------------------------------------------


@nb.njit(cache=True)
def _tick(Pa, accounts, assets, windows, rng, i, t):  # type: ignore[no-untyped-def]
    tick_env(rng, i, accounts[i], assets[i], windows[i], Pa[0], t)


@nb.njit(cache=True)
def _revalue(Pa, accounts, assets, i):  # type: ignore[no-untyped-def]
    update_account(accounts[i], assets[i], Pa[0])
    accounts[i].equity_before = accounts[i].equity


@nb.njit(cache=True)
def _tier(notional, tiers):  # type: ignore[no-untyped-def]
    return tier_margin(notional, tiers)


# --- helpers -------------------------------------------------------------------------------------


def _no_quotes(num_envs: int, assets: int = 1) -> NDArray[np.float32]:
    a = np.zeros((num_envs, 5 * assets), dtype=np.float32)
    for k in range(assets):
        a[:, 5 * k + 2 : 5 * k + 5] = -1.0
    return a


def _random_actions(seed: int, steps: int, num_envs: int, assets: int) -> NDArray[np.float32]:
    """Uniform actions (hedges included); a quarter of the envs buy hard in every perp, another
    quarter plays the corners of the box."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(-1.0, 1.0, size=(steps, num_envs, assets, 5))
    q = num_envs // 4
    a[:, :q, :, 1] = rng.uniform(-1.0, -0.8, size=(steps, q, assets))
    a[:, :q, :, 2] = 1.0
    a[:, :q, :, 3] = -1.0
    a[:, q : 2 * q] = rng.choice([-1.0, 1.0], size=(steps, q, assets, 5))
    return a.reshape(steps, num_envs, 5 * assets).astype(np.float32)


def _save(sim: Any) -> list[NDArray[Any]]:
    return [x.copy() for x in (sim.accounts, sim.assets, sim.windows, sim.account_windows, sim.rng)]


def _restore(sim: Any, saved: list[NDArray[Any]]) -> None:
    for dst, src in zip(
        (sim.accounts, sim.assets, sim.windows, sim.account_windows, sim.rng), saved, strict=True
    ):
        dst[...] = src


def _median3(a: NDArray[Any], b: NDArray[Any], c: NDArray[Any]) -> NDArray[Any]:
    return np.median(np.stack([a, b, c]), axis=0)


def _expected_mark(s: NDArray[np.void], tick: float) -> NDArray[np.float64]:
    """mark = 0.5 x (oracle + basis EMA + median(best bid, best ask, last trade))."""
    book = _median3(s["best_bid"] * tick, s["best_ask"] * tick, s["last_trade"])
    return 0.5 * (s["fair_price"] + s["basis_ema"] + book)


def _walk(depth: NDArray[np.float64], best: int, side: int, volume: float, tick: float):
    """Fills (volume, price) of a market order of ``volume`` walked through ``depth``."""
    fills = []
    remaining = volume
    for j, d in enumerate(depth):
        take = min(remaining, d)
        if take > 0.0:
            fills.append((take, (best + side * j) * tick))
            remaining -= take
        if remaining <= 0.0:
            break
    assert remaining <= 1e-12, "the test position must fit in the simulated book"
    return fills


def _open_position(env: Any, i: int, k: int, qty: float) -> None:
    """Give env i a position of ``qty`` in perp k bought at the mark (equity unchanged)."""
    s = env.sim.assets[i, k]
    s["inventory"] = qty
    s["cash"] = -qty * s["mark"]
    s["entry_price"] = s["mark"]
    _revalue(env.sim._packed, env.sim.accounts, env.sim.assets, i)


# --- maintenance margin tiers --------------------------------------------------------------------

# Binance BTCUSDT brackets (2021): notional floor, maintenance rate and the published
# "maintenance amount" (the deduction): 0.4 % / 0, 0.5 % / 50, 1 % / 1,300, 2.5 % / 16,300,
# 5 % / 266,300. As max leverages: rate = 1 / (2 x leverage).
BINANCE = (
    ((0.0, 125.0), (50_000.0, 100.0), (250_000.0, 50.0), (1_000_000.0, 20.0), (10_000_000.0, 10.0)),
    [(0.0, 0.004, 0.0), (50_000.0, 0.005, 50.0), (250_000.0, 0.01, 1_300.0),
     (1_000_000.0, 0.025, 16_300.0), (10_000_000.0, 0.05, 266_300.0)],
)  # fmt: skip
DEFAULT = (((0.0, 20.0), (500_000.0, 10.0)), [(0.0, 0.025, 0.0), (500_000.0, 0.05, 12_500.0)])


@pytest.mark.parametrize(("tiers", "table"), [BINANCE, DEFAULT], ids=["binance", "default"])
def test_tier_margin_matches_the_hand_computed_brackets(
    tiers: tuple[tuple[float, float], ...], table: list[tuple[float, float, float]]
) -> None:
    p = MarketParams().replace(margin_tiers=tiers)
    np.testing.assert_allclose(maintenance_tiers(p), np.array(table), rtol=1e-12, atol=1e-9)

    def by_hand(n: float) -> float:
        _bound, rate, deduction = [row for row in table if row[0] <= n][-1]
        return n * rate - deduction

    rng = np.random.default_rng(0)
    bounds = [row[0] for row in table]
    grid = np.concatenate(
        [
            rng.uniform(0.0, 2.0 * bounds[-1] + 1e5, 500),
            [b + e for b in bounds for e in (-1e-6, 0.0, 1e-6)],
        ]
    )
    packed = maintenance_tiers(p)
    for n in grid[grid >= 0.0]:
        expected = by_hand(n)
        assert maintenance_margin(p, n) == pytest.approx(expected, rel=1e-12, abs=1e-9)
        assert _tier(n, packed) == pytest.approx(expected, rel=1e-12, abs=1e-9)
    # Continuity at each bound: the lower tier's formula meets the upper tier's (the deduction
    # is exactly what makes them meet), so margin moves by at most rate x 1e-6 across it.
    for (_, r0, d0), (b1, r1, d1) in itertools.pairwise(table):
        assert b1 * r0 - d0 == pytest.approx(b1 * r1 - d1, rel=1e-15, abs=1e-9)
        jump = _tier(b1 + 1e-6, packed) - _tier(b1 - 1e-6, packed)
        assert 0.0 <= jump <= 2e-6 * r1 + 1e-9


# --- mark price ----------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", ["volatile", "cross_margin_event"])
def test_margin_and_unrealised_pnl_use_the_mark(scenario: str) -> None:
    num_envs, steps = 16, 300
    env = PerpMMVectorEnv(num_envs=num_envs, scenario=scenario, episode_seconds=float(steps))
    p = env.params
    k = p.num_assets
    env.reset(seed=1)
    actions = _random_actions(1, steps, num_envs, k)
    fees = np.zeros((num_envs, k))
    funding = np.zeros((num_envs, k))
    fills = 0
    for t in range(steps):
        _, _, terminated, _, _ = env.step(actions[t])
        assert not terminated.any()
        s = env.sim.assets
        e = env.sim.accounts
        fees += s["pnl_fees"]
        funding += s["pnl_funding"]
        fills += int(s["fills"].sum())
        np.testing.assert_allclose(s["mark"], _expected_mark(s, p.tick_size), rtol=1e-15, atol=0)
        margin_equity = e["collateral"] + (s["cash"] + s["inventory"] * s["mark"]).sum(axis=1)
        np.testing.assert_allclose(e["margin_equity"], margin_equity, rtol=1e-13)
        equity = margin_equity + (s["hedge_cash"] + s["hedge_position"] * s["fair_price"]).sum(1)
        np.testing.assert_allclose(e["equity"], equity, rtol=1e-13)
        notional = np.abs(s["inventory"]) * s["mark"]
        mm = np.array([[maintenance_margin(p, n) for n in row] for row in notional]).sum(axis=1)
        np.testing.assert_allclose(e["maintenance_margin"], mm, rtol=1e-13, atol=1e-12)
        np.testing.assert_allclose(e["margin_ratio"], mm / margin_equity, rtol=1e-12)
        # Unrealised PnL is at the mark: average-cost books agree with the cash account.
        unrealised = s["inventory"] * (s["mark"] - s["entry_price"])
        np.testing.assert_allclose(
            s["cash"] + s["inventory"] * s["mark"],
            s["realised_pnl"] + unrealised + fees + funding,
            rtol=0,
            atol=1e-9 * p.max_inventory * p.initial_price,
        )
    assert fills > 1000  # the books above are not trivially empty


def test_basis_ema_and_mark_tick_by_tick() -> None:
    env = PerpMMVectorEnv(num_envs=1, scenario="funding_squeeze")  # a basis that moves
    p = env.params
    env.reset(seed=2)
    sim = env.sim
    w = -math.expm1(-p.tick_seconds / p.mark_ema_seconds)
    ema = float(sim.assets["basis_ema"][0, 0])
    deviations = []
    for t in range(3000):
        _tick(sim._packed, sim.accounts, sim.assets, sim.windows, sim.rng, 0, t % 10)
        s = sim.assets[0, 0]
        deviation = s["mid"] - s["fair_price"]
        ema += w * (deviation - ema)
        assert s["basis_ema"] == pytest.approx(ema, rel=1e-9, abs=1e-12)
        assert s["mid"] == 0.5 * (s["best_bid"] + s["best_ask"]) * p.tick_size
        assert s["mark"] == pytest.approx(float(_expected_mark(s, p.tick_size)), rel=1e-15)
        deviations.append(deviation)
    # the EMA is checked on an input that really moves (over several ticks)
    assert np.ptp(deviations) > 3 * p.tick_size, np.ptp(deviations)


# --- liquidation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("qty", [8.0, -8.0])
def test_liquidation_exactly_at_the_maintenance_crossing(qty: float) -> None:
    env = PerpMMVectorEnv(num_envs=1, **FROZEN)
    p = env.params
    sim = env.sim
    env.reset(seed=3)
    for _ in range(3):
        env.step(_no_quotes(1))
    _open_position(env, 0, 0, qty)
    saved = _save(sim)
    # 1. Ample collateral: the slack S = margin equity - maintenance at the end of the step.
    # The market is frozen, so the slack of every tick is the same to ~1e-10 (the oracle moves
    # by ~1e-13 relative per tick).
    *_, info = env.step(_no_quotes(1))
    assert not info["liquidated"][0]
    slack = info["margin_equity"][0] - info["maintenance_margin"][0]
    mm = info["maintenance_margin"][0]
    mark = info["mark"][0]
    assert mm == pytest.approx(maintenance_margin(p, abs(qty) * mark), rel=1e-12)
    book = sim.assets[0, 0].copy()  # the book the liquidation will walk
    crossing = sim.accounts["collateral"][0] - slack  # collateral at which equity = maintenance
    delta = 1e-6

    # 2. Just above the crossing: nothing happens.
    _restore(sim, saved)
    sim.accounts["collateral"][0] = crossing + delta
    _revalue(sim._packed, sim.accounts, sim.assets, 0)
    _, reward, terminated, truncated, info = env.step(_no_quotes(1))
    assert not info["liquidated"][0] and not terminated[0] and not truncated[0]
    assert info["inventory"][0] == qty
    assert info["margin_equity"][0] - info["maintenance_margin"][0] == pytest.approx(
        delta, abs=1e-8
    )

    # 3. Just below: liquidated on the first tick, the position closed through the book.
    _restore(sim, saved)
    sim.accounts["collateral"][0] = crossing - delta
    _revalue(sim._packed, sim.accounts, sim.assets, 0)
    cash_before = sim.assets["cash"][0, 0]
    _, reward, terminated, truncated, info = env.step(_no_quotes(1))
    assert info["liquidated"][0] and terminated[0] and not truncated[0]
    assert info["inventory"][0] == 0.0
    assert info["bid_qty"][0] == 0.0 and info["ask_qty"][0] == 0.0
    if qty > 0:  # a long is sold into the bids, a short bought from the asks
        fills = _walk(book["bid_depth"], book["best_bid"], -1, qty, p.tick_size)
        assert info["forced_sell_volume"][0] == qty and info["forced_buy_volume"][0] == 0.0
        assert sim.assets["best_bid"][0, 0] < book["best_bid"]  # the walk moved the best bid
        assert sim.assets["best_ask"][0, 0] == book["best_ask"]
    else:
        fills = _walk(book["ask_depth"], book["best_ask"], 1, -qty, p.tick_size)
        assert info["forced_buy_volume"][0] == -qty and info["forced_sell_volume"][0] == 0.0
        assert sim.assets["best_ask"][0, 0] > book["best_ask"]
        assert sim.assets["best_bid"][0, 0] == book["best_bid"]
    assert len(fills) >= 2  # the order is larger than the best level
    volume = sum(v for v, _ in fills)
    notional = sum(v * px for v, px in fills)
    vwap = notional / volume
    cost = (p.taker_fee + p.liquidation_penalty) * notional
    slippage = -qty * (mark - vwap)  # against the mark: what the walk cost
    assert info["pnl_liquidation"][0] == pytest.approx(slippage - cost, rel=1e-12, abs=1e-9)
    assert sim.assets["cash"][0, 0] == pytest.approx(cash_before + qty * vwap - cost, abs=1e-9)
    parts = sum(info[f"pnl_{x}"][0] for x in PNL_PARTS)
    assert parts == pytest.approx(info["pnl"][0], abs=1e-9)
    assert reward[0] == pytest.approx(info["pnl"][0], abs=1e-12)
    # The tape stops at the liquidation tick.
    mids = sim.windows["mid"][0, 0]
    assert np.all(mids == mids[0])
    assert np.all(sim.windows["sell_volume"][0, 0][1:] == 0.0)
    # Next step: a fresh episode (NEXT_STEP autoreset).
    _, reward, terminated, _, info = env.step(_no_quotes(1))
    assert not terminated[0] and not info["liquidated"][0]
    assert info["inventory"][0] == 0.0 and info["equity"][0] == p.collateral


@pytest.mark.parametrize("qty", [8.0, -8.0, 6000.0])
def test_liquidation_trigger_in_a_moving_market(qty: float) -> None:
    # The same crossing check one tick at a time in a live market (liquidation_cascade: the
    # kernel's tick path with crowd flow), over many states. 6000 units (600k notional) sit in
    # the second margin tier.
    env = PerpMMVectorEnv(num_envs=1, scenario="liquidation_cascade")
    p = env.params
    sim = env.sim
    args = (sim._packed, sim.accounts, sim.assets, sim.windows, sim.rng, 0)
    rich = 1e7
    for trial in range(25):
        env.reset(seed=100 + trial)
        for t in range(10 * (1 + trial % 7)):
            _tick(*args, t % 10)
        sim.accounts["collateral"][0] = rich
        _open_position(env, 0, 0, qty)
        tick = int(sim.accounts["tick"][0]) % 10
        saved = _save(sim)
        _tick(*args, tick)
        e = sim.accounts[0]
        assert e["reason"] == 0
        slack = e["margin_equity"] - e["maintenance_margin"]
        mm = e["maintenance_margin"]
        assert mm == pytest.approx(maintenance_margin(p, abs(qty) * sim.assets["mark"][0, 0]))
        basis_ema = sim.assets["basis_ema"][0, 0]
        delta = 1e-9 * (abs(qty) * p.initial_price)
        for sign in (1.0, -1.0):
            _restore(sim, saved)
            sim.accounts["collateral"][0] = rich - slack + sign * delta
            _tick(*args, tick)
            liquidated = sim.accounts["reason"][0] != 0
            assert liquidated == (sign < 0), (trial, sign)
            assert (sim.assets["inventory"][0, 0] == 0.0) == liquidated
            # The mark is refreshed after the forced walk, with the basis EMA stepped once.
            s = sim.assets[0, 0]
            assert s["basis_ema"] == basis_ema
            assert s["mark"] == pytest.approx(float(_expected_mark(s, p.tick_size)), rel=1e-15)


def test_no_termination_without_a_position() -> None:
    # Negative collateral, margin equity < 0, but no position: the maintenance margin is 0 and
    # the account is never liquidated (the leverage cap also keeps it from opening one).
    num_envs, steps = 16, 200
    env = PerpMMVectorEnv(num_envs=num_envs, scenario="volatile", episode_seconds=float(steps))
    env.reset(seed=4)
    sim = env.sim
    sim.accounts["collateral"] = -50.0
    for i in range(num_envs):
        _revalue(sim._packed, sim.accounts, sim.assets, i)
    actions = _random_actions(4, steps, num_envs, 1)
    for t in range(steps):
        _, _, terminated, _, info = env.step(actions[t])
        assert not terminated.any() and not info["liquidated"].any()
        assert np.all(info["inventory"] == 0.0) and np.all(info["maintenance_margin"] == 0.0)
        assert np.all(info["margin_equity"] < 0.0)


# --- the PnL decomposition -----------------------------------------------------------------------

PNL_PARTS = ("spread", "inventory", "fees", "funding", "hedge", "liquidation")


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_pnl_decomposition_sums_to_the_equity_change(scenario: str) -> None:
    # Small collateral at high leverage (1000x up to 500 notional, 500x above: a 10-unit
    # position has 0.75 of maintenance margin against 1 of collateral) so that random and
    # one-sided agents are liquidated often (measured: 17 to 82 liquidations per scenario,
    # 23 in funding_squeeze; with 2 of collateral as few as 4); hedges are random; funding
    # every minute.
    num_envs, steps = 16, 300
    env = PerpMMVectorEnv(
        num_envs=num_envs,
        scenario=scenario,
        episode_seconds=150.0,  # two episodes per env: autoresets are crossed too
        collateral=1.0,
        margin_tiers=((0.0, 1000.0), (500.0, 500.0)),
        funding_interval_seconds=60.0,
    )
    p = env.params
    k = p.num_assets
    scale = p.max_inventory * p.initial_price * k  # largest position notional
    env.reset(seed=5)
    actions = _random_actions(5, steps, num_envs, k)
    previous_equity = np.full(num_envs, p.collateral)
    was_done = np.zeros(num_envs, dtype=bool)
    counts = {"liquidations": 0, "funding": 0, "hedge": 0, "liquidation_steps_checked": 0}
    for t in range(steps):
        inventory_before = env.sim.assets["inventory"].copy()
        _, reward, terminated, truncated, info = env.step(actions[t])
        parts = sum(np.asarray(info[f"pnl_{x}"]).reshape(num_envs, k) for x in PNL_PARTS)
        parts = parts.sum(axis=1)
        assert np.all(np.isfinite(parts))
        np.testing.assert_array_less(np.abs(parts - info["pnl"]), 1e-9 * scale)
        np.testing.assert_allclose(reward, info["pnl"], rtol=0, atol=1e-12 * scale)
        # pnl is the change of equity since the last step (a reset step starts afresh)
        moved = ~was_done
        np.testing.assert_allclose(
            info["equity_before"][moved], previous_equity[moved], rtol=0, atol=1e-12 * scale
        )
        assert np.all(info["pnl"][was_done] == 0.0)
        assert np.all(info["equity"][was_done] == p.collateral)
        liquidation = np.asarray(info["pnl_liquidation"]).reshape(num_envs, k)
        inventory = np.asarray(info["inventory"]).reshape(num_envs, k)
        forced = np.asarray(info["forced_sell_volume"] + info["forced_buy_volume"])
        forced = forced.reshape(num_envs, k)
        assert np.all(liquidation[~info["liquidated"]] == 0.0)
        for i in np.flatnonzero(info["liquidated"]):
            assert terminated[i]
            assert np.all(inventory[i] == 0.0)
            held = inventory_before[i] != 0.0
            assert np.all(liquidation[i][held] != 0.0) and np.all(forced[i][held] > 0.0)
            counts["liquidation_steps_checked"] += 1
        counts["liquidations"] += int(info["liquidated"].sum())
        counts["funding"] += int(np.count_nonzero(info["pnl_funding"]))
        counts["hedge"] += int(np.count_nonzero(info["pnl_hedge"]))
        previous_equity = info["equity"].copy()
        was_done = terminated | truncated
    # Every term is exercised, liquidations included.
    assert counts["liquidations"] >= 5, counts
    assert counts["funding"] > 0 and counts["hedge"] > 0, counts
