"""Deterministic rules of the PerpMM book, queues and orders.

Each test builds one perp's asset record by hand (``asset_dtype``), drives a single kernel
component through a small ``@numba.njit`` wrapper and checks the exact outcome: queue priority
and the walk of taker orders (``sell_into_bids``, ``buy_from_asks``), recentring and
replenishment, placement rules at arrival (``activate``: post-only, queue position) and the
latency of orders in flight (``submit``, ``tick_env``). The post-only rule is also checked
end to end through the vector env.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import gymnasium as gym
import numba as nb
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

import mmgym  # noqa: F401  (registers the env ids)
from mmgym.core.book import buy_from_asks, recentre, replenish, sell_into_bids
from mmgym.core.kernel import reset_markets, tick_env
from mmgym.core.layout import (
    ACCOUNT_WINDOW_DTYPE,
    account_dtype,
    asset_dtype,
    pack_params,
    window_dtype,
)
from mmgym.core.orders import activate, submit
from mmgym.core.params import MarketParams, depth_profile
from mmgym.core.rng import MARKET_STREAM, STREAMS, new_streams

ENV_ID = "mmgym/PerpMM-v0"
ACTION_DIM = 5  # one perp: skew, half_spread, bid_size, ask_size, hedge
NO_HEDGE = -1.0  # hedge component: hedge fraction 0
TOL = 1e-12  # float round-off of a handful of additions of O(1) volumes

# A book of L levels per side around 100.00 (10000 ticks): best bid 9998, best ask 10002.
PARAMS = MarketParams()
L = PARAMS.book_levels
PROFILE = depth_profile(PARAMS)  # (regimes, L)
BEST_BID, BEST_ASK = 9998, 10002
CALM, STRESSED = 0, 2


# --- numba wrappers: one perp's record of an asset array, the packed parameters -----------------


@nb.njit(cache=True)
def _sell(state, Pa, r, volume):  # type: ignore[no-untyped-def]
    return sell_into_bids(state[0], Pa[0], r, volume)[0]


@nb.njit(cache=True)
def _buy(state, Pa, r, volume):  # type: ignore[no-untyped-def]
    return buy_from_asks(state[0], Pa[0], r, volume)[0]


@nb.njit(cache=True)
def _recentre(state, Pa, r, anchor):  # type: ignore[no-untyped-def]
    recentre(state[0], Pa[0], r, anchor)


@nb.njit(cache=True)
def _replenish(state, Pa, r):  # type: ignore[no-untyped-def]
    replenish(state[0], Pa[0], r)


@nb.njit(cache=True)
def _activate(state, Pa):  # type: ignore[no-untyped-def]
    activate(state[0], Pa[0])


@nb.njit(cache=True)
def _submit(rng, state, Pa, action, regime, tick):  # type: ignore[no-untyped-def]
    submit(rng, 0, state[0], Pa[0], action, regime, tick)


@nb.njit(cache=True)
def _tick(rng, accounts, assets, windows, Pa):  # type: ignore[no-untyped-def]
    # One market tick of env 0, written to tick 0 of its event windows (not inspected here).
    tick_env(rng, 0, accounts[0], assets[0], windows[0], Pa[0], 0)


def _packed(**overrides: Any) -> NDArray[np.void]:
    return pack_params(PARAMS.replace(**overrides) if overrides else PARAMS)


def _book(regime: int = CALM) -> NDArray[np.void]:
    """One perp's asset record: a book at the ``regime`` profile, best bid 9998 / best ask 10002,
    no agent orders, marked at the mid, position limit ``max_inventory``. The regime itself is
    an argument of every component (it lives in the account record), not part of this record."""
    state = np.zeros(1, dtype=asset_dtype(L))
    state["best_bid"][0] = BEST_BID
    state["best_ask"][0] = BEST_ASK
    state["bid_depth"][0] = PROFILE[regime]
    state["ask_depth"][0] = PROFILE[regime]
    mid = 0.5 * (BEST_BID + BEST_ASK) * PARAMS.tick_size
    state["mid"][0] = mid
    state["mark"][0] = mid
    state["fair_ticks"][0] = 0.5 * (BEST_BID + BEST_ASK)
    state["fair_price"][0] = mid
    state["last_trade"][0] = mid
    state["position_limit"][0] = PARAMS.max_inventory
    state["pending_tick"][0] = -1
    state["liquidity_bid"][0] = 1.0  # the makers' full liquidity: the configured book
    state["liquidity_ask"][0] = 1.0
    return state


def _rest(state: NDArray[np.void], side: str, px: int, qty: float, ahead: float) -> None:
    """Put a resting agent order on ``side`` ("bid" or "ask")."""
    state[f"{side}_px"][0] = px
    state[f"{side}_qty"][0] = qty
    state[f"{side}_ahead"][0] = ahead


def _get(state: NDArray[np.void], name: str) -> Any:
    value = state[name][0]
    return value.copy() if isinstance(value, np.ndarray) else value.item()


# --- 5. queue priority and the walk ------------------------------------------------------------


def test_bid_at_best_fills_only_after_the_volume_ahead() -> None:
    P = _packed()
    state = _book()
    q_ahead, size = 3.0, 1.0  # 4.0 at the level: 3.0 ahead of the agent, 1.0 behind it
    _rest(state, "bid", BEST_BID, size, q_ahead)

    # Sells totalling 2.5 < Q: no fill, the queue ahead shrinks by exactly 2.5.
    for v in (1.0, 1.5):
        assert _sell(state, P, CALM, v) == pytest.approx(v, abs=TOL)
    assert _get(state, "bid_filled") == 0.0
    assert _get(state, "bid_qty") == size
    assert _get(state, "bid_ahead") == pytest.approx(q_ahead - 2.5, abs=TOL)
    assert _get(state, "inventory") == 0.0
    assert _get(state, "best_bid") == BEST_BID

    # Cumulative V = 3.6 > Q: the agent fills exactly V - Q = 0.6, the volume behind is untouched.
    _sell(state, P, CALM, 1.1)
    assert _get(state, "bid_filled") == pytest.approx(0.6, abs=TOL)
    assert _get(state, "bid_qty") == pytest.approx(0.4, abs=TOL)
    assert _get(state, "bid_ahead") == 0.0
    assert _get(state, "bid_depth")[0] == pytest.approx(PROFILE[CALM, 0] - q_ahead, abs=TOL)
    assert _get(state, "inventory") == pytest.approx(0.6, abs=TOL)

    # V = 5.6: the fill is capped at the size (1.0); the rest takes the 1.0 behind, empties the
    # level (best bid moves one tick) and 0.6 trades at the next level.
    _sell(state, P, CALM, 2.0)
    assert _get(state, "bid_filled") == pytest.approx(size, abs=TOL)  # accumulates: 0.6 + 0.4
    assert _get(state, "bid_qty") == pytest.approx(0.0, abs=TOL)
    assert _get(state, "inventory") == pytest.approx(size, abs=TOL)
    assert _get(state, "best_bid") == BEST_BID - 1
    assert _get(state, "bid_depth")[0] == pytest.approx(PROFILE[CALM, 1] - 0.6, abs=TOL)
    price = BEST_BID * PARAMS.tick_size
    assert _get(state, "cash") == pytest.approx(-size * price * (1 + PARAMS.maker_fee), rel=1e-14)
    # Booked against the mark (here the mid): the edge of the fill, and the fee on its price.
    mark = _get(state, "mark")
    assert _get(state, "pnl_spread") == pytest.approx(size * (mark - price), rel=1e-12)
    assert _get(state, "pnl_fees") == pytest.approx(-PARAMS.maker_fee * size * price, rel=1e-14)


@pytest.mark.parametrize(
    ("q_ahead", "size", "volume"),
    [(2.0, 1.0, 1.999), (2.0, 1.0, 2.0), (2.0, 1.0, 2.25), (2.0, 1.0, 3.0), (0.0, 0.5, 0.3)],
)
@pytest.mark.parametrize("side", ["bid", "ask"])
def test_single_taker_order_fill_is_volume_minus_ahead(
    side: str, q_ahead: float, size: float, volume: float
) -> None:
    P = _packed()
    state = _book()
    best = BEST_BID if side == "bid" else BEST_ASK
    _rest(state, side, best, size, q_ahead)
    taker = _sell if side == "bid" else _buy
    executed = taker(state, P, CALM, volume)
    expected = min(size, max(0.0, volume - q_ahead))
    assert executed == pytest.approx(volume, abs=TOL)
    assert _get(state, f"{side}_filled") == pytest.approx(expected, abs=TOL)
    assert _get(state, f"{side}_ahead") == pytest.approx(max(0.0, q_ahead - volume), abs=TOL)
    sign = 1.0 if side == "bid" else -1.0
    assert _get(state, "inventory") == pytest.approx(sign * expected, abs=TOL)


@pytest.mark.parametrize("side", ["bid", "ask"])
def test_quote_inside_the_spread_fills_first(side: str) -> None:
    P = _packed()
    state = _book()
    inside = BEST_BID + 1 if side == "bid" else BEST_ASK - 1
    _rest(state, side, inside, 1.0, 0.0)
    taker = _sell if side == "bid" else _buy
    depth_name = f"{side}_depth"
    best_name = f"best_{side}"

    taker(state, P, CALM, 0.4)
    assert _get(state, f"{side}_filled") == pytest.approx(0.4, abs=TOL)
    assert np.array_equal(_get(state, depth_name), PROFILE[CALM])  # background untouched
    assert _get(state, best_name) == (BEST_BID if side == "bid" else BEST_ASK)
    assert _get(state, "last_trade") == pytest.approx(inside * PARAMS.tick_size, rel=1e-15)

    taker(state, P, CALM, 2.0)  # 0.6 more for the agent, then 1.4 from the best level
    assert _get(state, f"{side}_filled") == pytest.approx(1.0, abs=TOL)
    assert _get(state, f"{side}_qty") == pytest.approx(0.0, abs=TOL)
    assert _get(state, depth_name)[0] == pytest.approx(PROFILE[CALM, 0] - 1.4, abs=TOL)


@pytest.mark.parametrize("side", ["bid", "ask"])
@pytest.mark.parametrize("levels_emptied", [1, 2, 5])
@pytest.mark.parametrize("extra", [0.0, 0.3])
def test_emptied_level_moves_best_price_one_tick_per_level(
    side: str, levels_emptied: int, extra: float
) -> None:
    P = _packed()
    state = _book()
    taker = _sell if side == "bid" else _buy
    direction = -1 if side == "bid" else 1
    best0 = BEST_BID if side == "bid" else BEST_ASK
    volume = float(PROFILE[CALM, :levels_emptied].sum()) + extra
    executed = taker(state, P, CALM, volume)
    assert executed == pytest.approx(volume, abs=TOL)
    assert _get(state, f"best_{side}") == best0 + direction * levels_emptied
    depth = _get(state, f"{side}_depth")
    # The surviving levels shifted to the top; new levels at the deep end sit at their profile.
    expected = np.concatenate([PROFILE[CALM, levels_emptied:], PROFILE[CALM, L - levels_emptied :]])
    expected[0] -= extra
    np.testing.assert_allclose(depth, expected, rtol=0, atol=1e-12)
    assert _get(state, "last_trade") == pytest.approx(
        (best0 + direction * (levels_emptied - (extra == 0.0))) * PARAMS.tick_size, rel=1e-15
    )


@nb.njit(cache=True)
def _walk_notional(state, Pa, r, volume, buy):  # type: ignore[no-untyped-def]
    if buy:
        return buy_from_asks(state[0], Pa[0], r, volume)
    return sell_into_bids(state[0], Pa[0], r, volume)


@pytest.mark.parametrize("side", ["bid", "ask"])
def test_a_taker_walk_returns_its_notional_level_by_level(side: str) -> None:
    # Two full levels and half of the third: the notional (ticks x units) is each level's
    # price times what it gave, so the taker's cost over the mid is known in closed form.
    state = _book()
    step, best = (-1, BEST_BID) if side == "bid" else (1, BEST_ASK)
    depth = PROFILE[CALM]
    volume = depth[0] + depth[1] + 0.5 * depth[2]
    executed, notional = _walk_notional(state, _packed(), CALM, volume, side == "ask")
    expected = depth[0] * best + depth[1] * (best + step) + 0.5 * depth[2] * (best + 2 * step)
    assert executed == pytest.approx(volume, rel=1e-14)
    assert notional == pytest.approx(expected, rel=1e-14)


def test_taker_order_larger_than_the_book_executes_the_book_only() -> None:
    P = _packed()
    state = _book()
    executed = _sell(state, P, CALM, 1e6)
    assert executed == pytest.approx(PROFILE[CALM].sum(), rel=1e-14)
    assert _get(state, "best_bid") == BEST_BID - L


@pytest.mark.parametrize("side", ["bid", "ask"])
def test_depth_cancellation_shrinks_volume_ahead_in_proportion(side: str) -> None:
    # The book holds calm depth but the regime is stressed: every level relaxes toward the thin
    # stressed profile, i.e. background makers cancel, evenly through each queue.
    P = _packed()
    state = _book(STRESSED)
    state["bid_depth"][0] = PROFILE[CALM]
    state["ask_depth"][0] = PROFILE[CALM]
    level = 3
    px = BEST_BID - level if side == "bid" else BEST_ASK + level
    ahead = 0.6 * PROFILE[CALM, level]
    _rest(state, side, px, 1.0, ahead)
    _replenish(state, P, STRESSED)
    f = 1.0 - math.exp(-PARAMS.tick_seconds / PARAMS.depth_refill_seconds[STRESSED])
    old = PROFILE[CALM, level]
    new = old + (PROFILE[STRESSED, level] - old) * f
    assert _get(state, f"{side}_depth")[level] == pytest.approx(new, rel=1e-14)
    assert _get(state, f"{side}_ahead") == pytest.approx(ahead * new / old, rel=1e-14)
    assert _get(state, f"{side}_qty") == 1.0


@pytest.mark.parametrize("side", ["bid", "ask"])
def test_depth_growth_leaves_volume_ahead_unchanged(side: str) -> None:
    # Refill adds volume behind the agent: the queue ahead does not change.
    P = _packed()
    state = _book(CALM)
    state["bid_depth"][0] = 0.5 * PROFILE[CALM]
    state["ask_depth"][0] = 0.5 * PROFILE[CALM]
    px = BEST_BID - 1 if side == "bid" else BEST_ASK + 1
    _rest(state, side, px, 1.0, 0.7)
    _replenish(state, P, CALM)
    assert _get(state, f"{side}_depth")[1] > 0.5 * PROFILE[CALM, 1]
    assert _get(state, f"{side}_ahead") == 0.7


def test_recentring_that_cancels_the_agents_level_clears_its_queue() -> None:
    P = _packed()
    h = PARAMS.background_half_spread[CALM]
    # Anchor 10000 -> 9997: the bids 9998..9996 are cancelled, three thin asks are added.
    state = _book()
    _rest(state, "bid", BEST_BID, 1.0, 2.5)  # its level is cancelled
    _rest(state, "ask", BEST_ASK, 1.0, 2.5)  # its level survives, now three levels deep
    _recentre(state, P, CALM, 9997.0)
    assert _get(state, "best_bid") == math.floor(9997.0 - h) == BEST_BID - 3
    assert _get(state, "best_ask") == math.ceil(9997.0 + h) == BEST_ASK - 3
    assert _get(state, "bid_ahead") == 0.0
    assert _get(state, "bid_qty") == 1.0
    assert _get(state, "ask_ahead") == 2.5
    np.testing.assert_array_equal(
        _get(state, "ask_depth")[:4],
        np.concatenate([PARAMS.new_level_fraction * PROFILE[CALM, :3], PROFILE[CALM, :1]]),
    )
    np.testing.assert_array_equal(_get(state, "bid_depth")[: L - 3], PROFILE[CALM, 3:])

    # Mirror: anchor 10000 -> 10003 cancels the asks 10002..10004.
    state = _book()
    _rest(state, "ask", BEST_ASK, 1.0, 2.5)
    _rest(state, "bid", BEST_BID - 2, 1.0, 2.5)  # survives, now five levels deep
    _recentre(state, P, CALM, 10003.0)
    assert _get(state, "best_ask") == BEST_ASK + 3
    assert _get(state, "ask_ahead") == 0.0
    assert _get(state, "bid_ahead") == 2.5


def test_volume_ahead_never_exceeds_the_level_when_a_deep_quote_enters_the_book() -> None:
    """Queue invariant: the volume ahead of the agent is part of its level's background depth.

    A quote beyond the simulated levels is queued behind ``depth[L - 1]`` (``_queue_depth``).
    When the book then moves by several levels at once, its level enters the book at its
    (smaller) profile depth, so ``bid_ahead`` must be capped at that depth. Otherwise volume
    that joins the level after the agent is later executed ahead of it.
    """
    P = _packed()
    state = _book()
    deep = BEST_BID - (L + 5)  # 25 levels below the best bid: beyond the book
    _pending(state, deep, 1.0, BEST_ASK + 3, 0.0)
    _activate(state, P)
    assert _get(state, "bid_ahead") == PROFILE[CALM, L - 1]  # 15.4: the deepest level
    # The anchor falls by 10 ticks: the 10 best bids are cancelled, the quote is now at level 15,
    # whose depth is its profile 13.0.
    _recentre(state, P, CALM, 10000.0 - 10)
    level = _get(state, "best_bid") - deep
    assert level == L + 5 - 10
    depth_at_level = _get(state, "bid_depth")[level]
    assert _get(state, "bid_ahead") <= depth_at_level + TOL, (
        f"bid_ahead {_get(state, 'bid_ahead')} > depth {depth_at_level} of the agent's level"
    )


def test_volume_behind_a_deep_quote_does_not_trade_ahead_of_it() -> None:
    """Consequence of the invariant above: new depth at the agent's level queues behind it."""
    P = _packed()
    state = _book()
    deep = BEST_BID - (L + 5)
    _pending(state, deep, 1.0, BEST_ASK + 3, 0.0)
    _activate(state, P)
    _recentre(state, P, CALM, 10000.0 - 10)
    level = _get(state, "best_bid") - deep
    # Sell through every level down to the agent's, all of its background depth, and 0.5 more.
    volume = float(_get(state, "bid_depth")[: level + 1].sum()) + 0.5
    _sell(state, P, CALM, volume)
    assert _get(state, "bid_filled") == pytest.approx(0.5, abs=1e-9)
    assert _get(state, "best_bid") == deep  # the agent's level is now the best, no background
    assert _get(state, "bid_depth")[0] == 0.0
    # Makers refill the level: they join behind the agent, so the next sell fills the agent.
    _replenish(state, P, CALM)
    assert _get(state, "bid_depth")[0] > 0.1
    _sell(state, P, CALM, 0.1)
    assert _get(state, "bid_filled") == pytest.approx(0.6, abs=1e-9)


def test_volume_ahead_within_level_depth_on_random_episodes() -> None:
    """The same invariant end to end: random quotes, checked on the state after every step."""
    num_envs, steps = 64, 300
    env = _make_vec(num_envs, scenario="volatile", episode_seconds=float(steps))
    env.reset(seed=13)
    state = env.unwrapped.sim.assets[:, 0]  # the kernel's asset records of the one perp (a view)
    rng = np.random.default_rng(13)
    checked = 0
    for _ in range(steps):
        env.step(rng.uniform(-1.0, 1.0, size=(num_envs, ACTION_DIM)).astype(np.float32))
        for side, sign in (("bid", 1), ("ask", -1)):
            level = sign * (state[f"best_{side}"] - state[f"{side}_px"])
            live = np.nonzero((state[f"{side}_qty"] > 0.0) & (level >= 0) & (level < L))[0]
            depth = state[f"{side}_depth"][live, level[live]]
            excess = state[f"{side}_ahead"][live] - depth
            assert np.all(excess <= 1e-9), f"{side}_ahead exceeds its level by {excess.max()}"
            checked += live.size
    assert checked > 10_000
    env.close()


@given(
    side=st.sampled_from(["bid", "ask"]),
    level=st.integers(min_value=-1, max_value=3),  # -1: inside the spread
    depth=st.lists(st.floats(0.05, 5.0), min_size=L, max_size=L),
    ahead_fraction=st.floats(0.0, 1.0),
    size=st.floats(0.01, 3.0),
    orders=st.lists(st.floats(0.001, 6.0), min_size=1, max_size=20),
)
@settings(max_examples=300, deadline=None)
def test_queue_property_fill_and_volume_conservation(
    side: str,
    level: int,
    depth: list[float],
    ahead_fraction: float,
    size: float,
    orders: list[float],
) -> None:
    """Agent fill = min(size, max(0, volume through its price - ahead)); volume is conserved."""
    P = _packed()
    state = _book()
    depth_arr = np.array(depth)
    state[f"{side}_depth"][0] = depth_arr
    direction = -1 if side == "bid" else 1
    best = BEST_BID if side == "bid" else BEST_ASK
    px = best + direction * level
    ahead = ahead_fraction * depth_arr[level] if level >= 0 else 0.0
    better = depth_arr[:level].sum() if level > 0 else 0.0  # background at better prices
    _rest(state, side, px, size, ahead)
    taker = _sell if side == "bid" else _buy

    cumulative = 0.0
    fill = 0.0
    for v in orders:
        before, best_before = _depth_by_price(state, side), _get(state, f"best_{side}")
        filled_before = _get(state, f"{side}_filled")
        executed = taker(state, P, CALM, v)
        step_fill = _get(state, f"{side}_filled") - filled_before
        after = _depth_by_price(state, side)
        # Background consumed at the prices that existed before (levels that enter at the deep
        # end are new volume, not part of this order's walk).
        consumed = sum(d - after.get(p, 0.0) for p, d in before.items())
        assert executed == pytest.approx(consumed + step_fill, abs=1e-9)
        if abs(_get(state, f"best_{side}") - best_before) < L:  # the book was not exhausted
            assert executed == pytest.approx(v, abs=1e-9)
        else:
            assert executed <= v + 1e-12
        cumulative += executed
        fill += step_fill
        through = max(0.0, cumulative - better)  # volume that reached the agent's price
        assert fill == pytest.approx(min(size, max(0.0, through - ahead)), abs=1e-9)
        assert _get(state, f"{side}_qty") == pytest.approx(size - fill, abs=1e-9)
        if _get(state, f"{side}_qty") > 1e-9:
            assert _get(state, f"{side}_ahead") == pytest.approx(
                max(0.0, ahead - through), abs=1e-9
            )
    sign = 1.0 if side == "bid" else -1.0
    assert _get(state, "inventory") == pytest.approx(sign * fill, abs=1e-9)


def _depth_by_price(state: NDArray[np.void], side: str) -> dict[int, float]:
    """Background depth of ``side`` keyed by price (ticks)."""
    best = _get(state, f"best_{side}")
    direction = -1 if side == "bid" else 1
    depth = _get(state, f"{side}_depth")
    return {best + direction * j: float(depth[j]) for j in range(L)}


# --- 6. post-only ------------------------------------------------------------------------------


def _pending(
    state: NDArray[np.void], bid_px: int, bid_qty: float, ask_px: int, ask_qty: float
) -> None:
    state["pending_tick"][0] = 0
    state["pending_bid_px"][0] = bid_px
    state["pending_bid_qty"][0] = bid_qty
    state["pending_ask_px"][0] = ask_px
    state["pending_ask_qty"][0] = ask_qty


@pytest.mark.parametrize(
    ("bid_px", "ask_px", "bid_ok", "ask_ok"),
    [
        (BEST_ASK, BEST_ASK + 5, False, True),  # bid at the best ask crosses
        (BEST_ASK + 7, BEST_ASK + 9, False, True),  # bid through the best ask
        (BEST_BID - 6, BEST_BID, True, False),  # ask at the best bid crosses
        (BEST_BID - 9, BEST_BID - 3, True, False),  # ask through the best bid
        (BEST_ASK - 1, BEST_BID + 1, True, True),  # both inside the spread: fine
        (BEST_ASK, BEST_BID, False, False),  # both cross
    ],
)
def test_activate_post_only(bid_px: int, ask_px: int, bid_ok: bool, ask_ok: bool) -> None:
    P = _packed()
    state = _book()
    _rest(state, "bid", BEST_BID - 1, 0.5, 1.0)  # resting orders that the replace cancels
    _rest(state, "ask", BEST_ASK + 1, 0.5, 1.0)
    _pending(state, bid_px, 1.0, ask_px, 1.0)
    _activate(state, P)
    assert _get(state, "pending_tick") == -1
    assert _get(state, "rejected_post_only") == (not bid_ok) + (not ask_ok)
    for side, ok, px in (("bid", bid_ok, bid_px), ("ask", ask_ok, ask_px)):
        if ok:
            assert _get(state, f"{side}_qty") == 1.0
            assert _get(state, f"{side}_px") == px
        else:
            assert _get(state, f"{side}_qty") == 0.0
    # A rejected order never trades as a taker and the book is untouched.
    assert _get(state, "fills") == 0
    assert _get(state, "inventory") == 0.0
    assert _get(state, "cash") == 0.0
    np.testing.assert_array_equal(_get(state, "bid_depth"), PROFILE[CALM])
    np.testing.assert_array_equal(_get(state, "ask_depth"), PROFILE[CALM])


def _make_vec(num_envs: int, **params: Any) -> Any:
    return gym.make_vec(
        ENV_ID, num_envs=num_envs, vectorization_mode="vector_entry_point", copy=True, **params
    )


@pytest.mark.parametrize("side", ["bid", "ask"])
def test_env_post_only_rejects_crossing_quote(side: str) -> None:
    # skew = +/-1 (20 ticks) with the narrowest half-spread (0.5 ticks): the bid (ask) lands far
    # through the best ask (bid), whose background half-spread is 2 ticks in calm.
    # crowd_leverage = 0: no crowd liquidations, so no forced sweep can move the book by the ~18
    # levels that would let the crossing quote through (the count below is exact).
    num_envs, steps = 8, 60
    env = _make_vec(num_envs, scenario="calm", episode_seconds=float(steps), crowd_leverage=0.0)
    env.reset(seed=11)
    skew = 1.0 if side == "bid" else -1.0
    action = np.tile(np.array([skew, -1.0, 1.0, 1.0, NO_HEDGE], dtype=np.float32), (num_envs, 1))
    for _ in range(steps):
        _, _, _, _, info = env.step(action)
        # Submitted every step, rejected every step, exactly once (the other side is valid).
        np.testing.assert_array_equal(info["rejected_post_only"], 1)
        np.testing.assert_array_equal(info[f"{side}_qty"], 0.0)
        np.testing.assert_array_equal(info[f"{side}_filled"], 0.0)
        # Any fee comes from the other side's fills (this side never fills); fees are charged
        # on the fill price.
        np.testing.assert_allclose(
            info["pnl_fees"], -PARAMS.maker_fee * info["fill_notional"], rtol=1e-12, atol=0
        )
        assert not info["liquidated"].any()
        if side == "bid":
            assert np.all(info["inventory"] <= 0.0)
        else:
            assert np.all(info["inventory"] >= 0.0)
    env.close()


def test_env_ordinary_quote_is_not_rejected() -> None:
    num_envs, steps = 8, 60
    env = _make_vec(num_envs, scenario="calm", episode_seconds=float(steps), crowd_leverage=0.0)
    env.reset(seed=12)
    action = np.zeros((num_envs, ACTION_DIM), dtype=np.float32)  # ~10 ticks either side, size 1
    action[:, 4] = NO_HEDGE
    resting = 0
    for _ in range(steps):
        _, _, _, _, info = env.step(action)
        np.testing.assert_array_equal(info["rejected_post_only"], 0)
        resting += int(np.sum((info["bid_qty"] > 0) & (info["ask_qty"] > 0)))
    assert resting > 0.9 * num_envs * steps
    env.close()


# --- 7. queue position on replace --------------------------------------------------------------


@pytest.mark.parametrize("side", ["bid", "ask"])
def test_replace_keeps_or_loses_queue_position(side: str) -> None:
    P = _packed()
    state = _book()
    direction = -1 if side == "bid" else 1
    best = BEST_BID if side == "bid" else BEST_ASK
    px = best + direction * 1  # level 1
    other_px = BEST_ASK + 3 if side == "bid" else BEST_BID - 3

    def replace(price: int, qty: float) -> None:
        if side == "bid":
            _pending(state, price, qty, other_px, 0.0)
        else:
            _pending(state, other_px, 0.0, price, qty)
        _activate(state, P)

    _rest(state, side, px, 1.0, 0.7)  # 0.7 of the level's 4.6 is still ahead
    replace(px, 1.0)  # same price, same size: keeps its place
    assert (_get(state, f"{side}_ahead"), _get(state, f"{side}_qty")) == (0.7, 1.0)
    replace(px, 0.6)  # same price, smaller: keeps its place
    assert (_get(state, f"{side}_ahead"), _get(state, f"{side}_qty")) == (0.7, 0.6)
    replace(px, 0.8)  # same price, larger: back of the queue
    assert _get(state, f"{side}_ahead") == PROFILE[CALM, 1]
    assert _get(state, f"{side}_qty") == 0.8

    _rest(state, side, px, 1.0, 0.7)
    replace(px + direction, 1.0)  # one tick deeper: back of that level's queue
    assert _get(state, f"{side}_px") == px + direction
    assert _get(state, f"{side}_ahead") == PROFILE[CALM, 2]

    _rest(state, side, px, 1.0, 0.7)
    replace(best, 0.5)  # improves to the best level, smaller: still back of the queue
    assert _get(state, f"{side}_ahead") == PROFILE[CALM, 0]

    _rest(state, side, px, 1.0, 0.7)
    replace(best - direction, 0.5)  # inside the spread: nobody ahead
    assert _get(state, f"{side}_ahead") == 0.0
    assert _get(state, "rejected_post_only") == 0


# --- 8. latency without jitter -----------------------------------------------------------------


@pytest.mark.parametrize("latency", [0.0, 0.05, 0.1, 0.25, 0.3, 0.45, 0.7, 0.9])
def test_latency_without_jitter_is_exact(latency: float) -> None:
    tick = 0.1
    params = PARAMS.replace(
        tick_seconds=tick,
        latency_seconds=latency,
        latency_jitter_seconds=(0.0, 0.0, 0.0),
        latency_cap_seconds=0.95,
        regime_switch_per_hour=((0.0,) * 3,) * 3,
        initial_regime="calm",
    )
    expected = math.ceil(Fraction(str(latency)) / Fraction(str(tick)))
    P = pack_params(params)
    accounts = np.zeros(1, dtype=account_dtype(params.num_assets, params.crowd_accounts))
    assets = np.zeros((1, params.num_assets), dtype=asset_dtype(L))
    windows = np.zeros((1, params.num_assets), dtype=window_dtype(params.ticks_per_decision))
    account_windows = np.zeros(1, dtype=ACCOUNT_WINDOW_DTYPE)
    rng = new_streams(1, STREAMS)  # the market and the agent stream
    one = np.ones(1, dtype=np.bool_)
    markets = (P, accounts, assets, windows, account_windows, rng)
    outputs = (np.zeros(1), np.zeros((3, 1), dtype=np.bool_))  # reward, end flags
    reset_markets(markets, one, np.array([5], dtype=np.uint64), True, *outputs)
    state = assets[0]  # the one perp's record, as a one-element array (a view)
    for _ in range(3):  # advance a little so that submit does not happen at tick 0
        _tick(rng, accounts, assets, windows, P)
    t0 = accounts["tick"][0].item()
    assert t0 == 3
    action = np.array([0.0, 0.0, 0.0, 0.0, NO_HEDGE])  # size 1 both sides, ~10 ticks away
    _submit(rng[MARKET_STREAM], state, P, action, accounts["regime"][0].item(), t0)
    assert _get(state, "pending_tick") - t0 == expected
    pending_bid = _get(state, "pending_bid_px")
    # The orders reach the book during the tick that starts at t0 + expected.
    for k in range(expected):
        _tick(rng, accounts, assets, windows, P)
        assert _get(state, "pending_tick") == t0 + expected, f"activated early after {k + 1}"
        assert _get(state, "bid_qty") == 0.0
    _tick(rng, accounts, assets, windows, P)
    assert _get(state, "pending_tick") == -1
    assert _get(state, "bid_px") == pending_bid
    assert _get(state, "bid_qty") > 0.0 or _get(state, "bid_filled") > 0.0
