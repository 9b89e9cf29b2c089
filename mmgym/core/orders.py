"""Agent orders: action decoding, latency, placement rules and stale-quote pick-off.

The action holds one block of the components below per perp (``5 x num_assets`` values in
[-1, 1]; out-of-range values are clipped). Within a block:

=====  ===========  ==========================================================================
index  name         meaning
=====  ===========  ==========================================================================
0      skew         reservation-price offset from mid: ``skew x max_skew_ticks`` ticks
1      half_spread  ``0.5 + (a + 1) / 2 x (max_half_spread_ticks - 0.5)`` ticks around it
2      bid_size     ``(a + 1) / 2 x max_quote_size``, cut so a full fill keeps |q| <= limit
3      ask_size     same for the ask; a size under ``min_quote_size`` places no order
4      hedge        target hedge: ``(a + 1) / 2`` of the inventory, offset on the hedge venue
                    (see :mod:`mmgym.core.hedge`); -1 hedges nothing
=====  ===========  ==========================================================================

The position limit is ``max_inventory``, or less when the leverage cap binds:
``margin equity x max leverage / (mark x num_assets)`` per perp.

Prices are rounded outward to the tick grid (bid down, ask up) from the mid seen at decision
time. The orders reach the book after ``latency + Exp(jitter_regime)`` (capped), as a cancel and
replace of both sides. At arrival:

- a quote that keeps its price and does not grow keeps its place in the queue;
- any other quote joins the back of the queue at its price (all background depth is ahead);
- post-only: a bid at or above the best ask (an ask at or below the best bid) is rejected and
  counted, and that side is left without an order; it never executes as a taker.

A resting quote that ends up beyond the anchor (a bid above fair value) is picked off in full
by arbitrageurs at its price: the stale-quote risk of a book that gaps.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from numpy.typing import ArrayLike, NDArray

from mmgym.core.accounting import apply_fill
from mmgym.core.codes import NO_TICK, QuoteOutcome
from mmgym.core.params import MarketParams
from mmgym.core.records import Record
from mmgym.core.rng import exponential

ACTION_NAMES: tuple[str, ...] = ("skew", "half_spread", "bid_size", "ask_size", "hedge")
SKEW, HALF_SPREAD, BID_SIZE, ASK_SIZE, HEDGE = range(5)


@nb.njit(cache=True, error_model="numpy", inline="always")
def _clip1(x: float) -> float:
    return min(1.0, max(-1.0, x))


@nb.njit(cache=True, error_model="numpy")
def decode_quotes(
    action: NDArray[np.floating], mid_ticks: float, P: Record
) -> tuple[int, float, int, float]:
    """Bid price (ticks), bid size, ask price (ticks), ask size for one env's action."""
    skew = _clip1(action[SKEW]) * P.max_skew_ticks
    half = 0.5 + 0.5 * (_clip1(action[HALF_SPREAD]) + 1.0) * (P.max_half_spread_ticks - 0.5)
    bid_size = 0.5 * (_clip1(action[BID_SIZE]) + 1.0) * P.max_quote_size
    ask_size = 0.5 * (_clip1(action[ASK_SIZE]) + 1.0) * P.max_quote_size
    centre = mid_ticks + skew
    bid_px = math.floor(centre - half + 1e-9)
    ask_px = math.ceil(centre + half - 1e-9)
    if ask_px <= bid_px:
        ask_px = bid_px + 1
    return bid_px, bid_size, ask_px, ask_size


@nb.njit(cache=True, error_model="numpy")
def submit(
    rng: NDArray[np.uint64],
    i: int,
    a: Record,
    P: Record,
    action: NDArray[np.floating],
    regime: int,
    tick: int,
) -> None:
    """Decode ``action`` at the current mid and put the orders in flight."""
    bid_px, bid_size, ask_px, ask_size = decode_quotes(action, 0.5 * (a.best_bid + a.best_ask), P)
    delay = P.latency_ticks + exponential(rng, i) * P.latency_jitter_ticks[regime]
    delay = min(delay, P.latency_cap_ticks)
    a.pending_tick = tick + math.ceil(delay - 1e-9)
    a.pending_bid_px = bid_px
    a.pending_bid_qty = bid_size
    a.pending_ask_px = ask_px
    a.pending_ask_qty = ask_size


@nb.njit(cache=True, error_model="numpy", inline="always")
def _queue_depth(depth: NDArray[np.float64], level: int) -> float:
    """Background volume at ``level``: none inside the spread, the deepest level beyond the book."""
    if level < 0:
        return 0.0
    if level >= depth.shape[0]:
        return depth[depth.shape[0] - 1]
    return depth[level]


@nb.njit(cache=True, error_model="numpy", inline="always")
def _replace_quote(
    pending_px: int,
    pending_qty: float,
    room: float,
    crosses: bool,
    px: int,
    qty: float,
    ahead: float,
    depth_at_pending: float,
    min_qty: float,
) -> tuple[int, float, float, QuoteOutcome]:
    """One side's cancel/replace on arrival: new (price, size, volume ahead) and its outcome."""
    new_qty = min(pending_qty, max(0.0, room))
    if new_qty < min_qty:
        return px, 0.0, ahead, QuoteOutcome.NO_ORDER
    if qty > 0.0 and pending_px == px and new_qty <= qty + 1e-12:
        return px, new_qty, ahead, QuoteOutcome.KEPT_PLACE
    if crosses:
        return px, 0.0, ahead, QuoteOutcome.REJECTED_POST_ONLY  # never a taker
    return pending_px, new_qty, depth_at_pending, QuoteOutcome.QUEUED


@nb.njit(cache=True, error_model="numpy")
def activate(a: Record, P: Record) -> None:
    """Orders in flight reach the book (cancel/replace of both sides)."""
    a.pending_tick = NO_TICK
    px, qty, ahead, outcome = _replace_quote(
        a.pending_bid_px,
        a.pending_bid_qty,
        a.position_limit - a.inventory,
        a.pending_bid_px >= a.best_ask,
        a.bid_px,
        a.bid_qty,
        a.bid_ahead,
        _queue_depth(a.bid_depth, a.best_bid - a.pending_bid_px),
        P.min_quote_size,
    )
    a.bid_px, a.bid_qty, a.bid_ahead = px, qty, ahead
    if outcome == QuoteOutcome.REJECTED_POST_ONLY:
        a.rejected_post_only += 1
    px, qty, ahead, outcome = _replace_quote(
        a.pending_ask_px,
        a.pending_ask_qty,
        a.position_limit + a.inventory,
        a.pending_ask_px <= a.best_bid,
        a.ask_px,
        a.ask_qty,
        a.ask_ahead,
        _queue_depth(a.ask_depth, a.pending_ask_px - a.best_ask),
        P.min_quote_size,
    )
    a.ask_px, a.ask_qty, a.ask_ahead = px, qty, ahead
    if outcome == QuoteOutcome.REJECTED_POST_ONLY:
        a.rejected_post_only += 1


@nb.njit(cache=True, error_model="numpy")
def pick_off_stale(a: Record, P: Record, anchor: float) -> None:
    """Arbitrageurs take agent quotes that sit beyond the anchor (fair value plus impact)."""
    if a.bid_qty > 0.0 and a.bid_px > anchor + P.arb_threshold_ticks:
        qty = a.bid_qty
        a.bid_qty = 0.0
        a.bid_filled += qty
        a.toxic_filled += qty
        apply_fill(a, qty, a.bid_px * P.tick_size, P.maker_fee)
    if a.ask_qty > 0.0 and a.ask_px < anchor - P.arb_threshold_ticks:
        qty = a.ask_qty
        a.ask_qty = 0.0
        a.ask_filled += qty
        a.toxic_filled += qty
        apply_fill(a, -qty, a.ask_px * P.tick_size, P.maker_fee)


def encode_action(
    P: MarketParams,
    skew_ticks: ArrayLike,
    half_spread_ticks: ArrayLike,
    bid_size: ArrayLike,
    ask_size: ArrayLike,
    hedge_fraction: ArrayLike = 0.0,
) -> NDArray[np.float32]:
    """The action block (batch, 5) of one perp that decodes to these quotes and hedge target
    (inverse mapping). Values beyond the action's range are clipped to it, as the decoder would.
    """
    skew = np.asarray(skew_ticks, dtype=np.float64) / max(P.max_skew_ticks, 1e-12)
    half = (
        2.0
        * (np.asarray(half_spread_ticks, dtype=np.float64) - 0.5)
        / (P.max_half_spread_ticks - 0.5)
        - 1.0
    )
    bid = 2.0 * np.asarray(bid_size, dtype=np.float64) / P.max_quote_size - 1.0
    ask = 2.0 * np.asarray(ask_size, dtype=np.float64) / P.max_quote_size - 1.0
    hedge = 2.0 * np.asarray(hedge_fraction, dtype=np.float64) - 1.0
    out = np.stack(np.broadcast_arrays(skew, half, bid, ask, hedge), axis=-1)
    return np.clip(out, -1.0, 1.0).astype(np.float32)
