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


@nb.njit(cache=True, error_model="numpy", inline="always")
def clip_action(x: float) -> float:
    """``x`` held within [-1, 1], NaN kept (``np.clip``'s semantics)."""
    if x > 1.0:
        return 1.0
    if x < -1.0:
        return -1.0
    return x


@nb.njit(cache=True, error_model="numpy")
def encode_block(
    skew_ticks: float,
    half_spread_ticks: float,
    bid_size: float,
    ask_size: float,
    hedge_fraction: float,
    max_skew_ticks: float,
    max_half_spread_ticks: float,
    max_quote_size: float,
) -> tuple[float, float, float, float, float]:
    """The action block of one perp (skew, half-spread, bid size, ask size, hedge; see the
    module docstring) that decodes to these quotes and hedge target: the inverse mapping, with
    values beyond the action's range clipped to it as the decoder would. Compiled code (the
    baselines' kernels) calls it per perp; :func:`encode_action` over arrays."""
    return (
        clip_action(skew_ticks / max(max_skew_ticks, 1e-12)),
        clip_action(2.0 * (half_spread_ticks - 0.5) / (max_half_spread_ticks - 0.5) - 1.0),
        clip_action(2.0 * bid_size / max_quote_size - 1.0),
        clip_action(2.0 * ask_size / max_quote_size - 1.0),
        clip_action(2.0 * hedge_fraction - 1.0),
    )


@nb.njit(cache=True, error_model="numpy")
def _encode_blocks(
    components: NDArray[np.float64],
    max_skew_ticks: float,
    max_half_spread_ticks: float,
    max_quote_size: float,
    out: NDArray[np.float32],
) -> None:
    """``out[i]`` = :func:`encode_block` of ``components[:, i]`` (skew, half-spread, sizes,
    hedge)."""
    for i in range(out.shape[0]):
        skew, half, bid, ask, hedge = components[:, i]
        out[i, SKEW], out[i, HALF_SPREAD], out[i, BID_SIZE], out[i, ASK_SIZE], out[i, HEDGE] = (
            encode_block(
                skew,
                half,
                bid,
                ask,
                hedge,
                max_skew_ticks,
                max_half_spread_ticks,
                max_quote_size,
            )
        )


def encode_action(
    P: MarketParams,
    skew_ticks: ArrayLike,
    half_spread_ticks: ArrayLike,
    bid_size: ArrayLike,
    ask_size: ArrayLike,
    hedge_fraction: ArrayLike = 0.0,
) -> NDArray[np.float32]:
    """The action blocks (``(*batch, 5)``, the inputs broadcast together) of one perp that
    decode to these quotes and hedge targets (:func:`encode_block` elementwise). Values beyond
    the action's range are clipped to it, as the decoder would.
    """
    values = (skew_ticks, half_spread_ticks, bid_size, ask_size, hedge_fraction)
    shape = np.broadcast(*values).shape
    components = np.empty((len(values), *shape))  # float64
    for i, value in enumerate(values):
        components[i] = value
    out = np.empty((*shape, len(ACTION_NAMES)), dtype=np.float32)
    _encode_blocks(
        components.reshape(len(values), -1),
        float(P.max_skew_ticks),
        float(P.max_half_spread_ticks),
        float(P.max_quote_size),
        out.reshape(-1, len(ACTION_NAMES)),
    )
    return out


# --- the vectorised decoder shared by the simulator's limiter, vetting and the live side ------

ACTION_PER_ASSET = len(ACTION_NAMES)

QUOTE_DTYPE = np.dtype(
    [
        ("bid_px", "i8"),
        ("bid_size", "f8"),
        ("ask_px", "i8"),
        ("ask_size", "f8"),
        ("hedge_fraction", "f8"),
    ],
    align=True,
)
"""One perp's decoded quotes: bid price (ticks), bid size (base units), ask price (ticks), ask
size (base units) and hedge fraction (the share of the inventory to offset on the hedge venue,
in [0, 1]). A size of 0 places no order on that side. An action block that cannot be decoded (a
non-finite component, or an unknown book) decodes to NaN sizes and hedge fraction: no order."""


DECODER_FIELDS: tuple[str, ...] = ("max_skew_ticks", "max_half_spread_ticks", "max_quote_size")
"""The packed parameters :func:`decode_actions` and :func:`encode_quotes` read."""


def decoder_params(Pa: NDArray[np.void]) -> NDArray[np.void]:
    """The fields of the packed parameters ``Pa`` (:func:`mmgym.core.layout.pack_params`) that
    the decoder and the encoder read (:data:`DECODER_FIELDS`), as a one-element record they
    accept in place of ``Pa``, with identical results. Numba types a record argument at every
    call, in time that grows with the record's fields: about 6 us for the kernel's whole
    record, well under 1 us for this one, which counts at batch 1 (the live side)."""
    dtype = np.dtype([(name, Pa.dtype[name]) for name in DECODER_FIELDS], align=True)
    out = np.zeros(1, dtype=dtype)
    for name in DECODER_FIELDS:
        out[0][name] = Pa[0][name]
    return out


@nb.njit(cache=True, error_model="numpy", inline="always")
def hedge_fraction(hedge_action: float) -> float:
    """The hedge fraction in [0, 1] of an action's hedge component (as the hedge plan reads it)."""
    return 0.5 * (_clip1(hedge_action) + 1.0)


@nb.njit(cache=True, error_model="numpy", inline="always")
def decode_env(
    action: NDArray[np.floating],
    best_bid_ticks: NDArray[np.number],
    best_ask_ticks: NDArray[np.number],
    P: Record,
    out: NDArray[np.void],
) -> int:
    """:func:`decode_actions` of one env: its action ``(5 K,)`` into its quotes ``out``
    ``(K,)`` at its books (``(K,)`` each); returns the blocks that could not be decoded."""
    bad = 0
    for k in range(out.shape[0]):
        base = k * ACTION_PER_ASSET
        block = action[base : base + ACTION_PER_ASSET]
        mid = 0.5 * (best_bid_ticks[k] + best_ask_ticks[k])
        finite = math.isfinite(mid)
        for j in range(ACTION_PER_ASSET):
            finite = finite and math.isfinite(block[j])
        q = out[k]
        if not finite:
            q.bid_px = 0
            q.bid_size = np.nan
            q.ask_px = 0
            q.ask_size = np.nan
            q.hedge_fraction = np.nan
            bad += 1
            continue
        bid_px, bid_size, ask_px, ask_size = decode_quotes(block, mid, P)
        q.bid_px = bid_px
        q.bid_size = bid_size
        q.ask_px = ask_px
        q.ask_size = ask_size
        q.hedge_fraction = hedge_fraction(block[HEDGE])
    return bad


@nb.njit(cache=True, error_model="numpy")
def decode_actions(
    actions: NDArray[np.floating],
    best_bid_ticks: NDArray[np.number],
    best_ask_ticks: NDArray[np.number],
    Pa: NDArray[np.void],
    out: NDArray[np.void],
) -> int:
    """Decode a batch of actions ``(n, 5 K)`` into quotes ``out`` ``(n, K)`` of
    :data:`QUOTE_DTYPE`, each perp at its decision-time mid ``(best_bid + best_ask) / 2`` ticks,
    with :func:`decode_quotes` (the simulator's own mapping). ``Pa`` is the packed parameter
    record (:func:`mmgym.core.layout.pack_params`). Allocates nothing.

    Returns the number of action blocks that could not be decoded: those with a non-finite
    component or a non-finite book decode to NaN sizes and hedge fraction (no order).
    """
    P = Pa[0]
    bad = 0
    for i in range(out.shape[0]):
        bad += decode_env(actions[i], best_bid_ticks[i], best_ask_ticks[i], P, out[i])
    return bad


@nb.njit(cache=True, error_model="numpy", inline="always")
def _decoded(block: NDArray[np.floating], index: int, mid: float, P: Record) -> float:
    """The value that component ``index`` of ``block`` decodes to (sizes and hedge fraction)."""
    if index == HEDGE:
        return hedge_fraction(block[HEDGE])
    _, bid_size, _, ask_size = decode_quotes(block, mid, P)
    return bid_size if index == BID_SIZE else ask_size


@nb.njit(cache=True, error_model="numpy")
def _encode_monotone(
    block: NDArray[np.floating], index: int, target: float, scale: float, mid: float, P: Record
) -> None:
    """Set ``block[index]`` to the largest action whose decoded value is <= ``target`` (the
    decoded value is non-decreasing in the action, from 0 at -1 to ``scale`` at +1)."""
    if not target > 0.0:
        block[index] = -1.0
        return
    y = min(1.0, 2.0 * target / scale - 1.0) if scale > 0.0 else 1.0
    block[index] = y
    for _ in range(64):
        if _decoded(block, index, mid, P) <= target or block[index] <= -1.0:
            break
        block[index] = max(-1.0, np.nextafter(block[index], -np.inf))
    for _ in range(64):
        current = block[index]
        if current >= 1.0:
            break
        block[index] = np.nextafter(current, np.inf)
        if _decoded(block, index, mid, P) > target:
            block[index] = current
            break


@nb.njit(cache=True, error_model="numpy")
def _try_prices(
    block: NDArray[np.floating],
    mid: float,
    P: Record,
    bid_px: int,
    ask_px: int,
    need_bid: bool,
    need_ask: bool,
) -> bool:
    """Set the skew and half-spread components of ``block`` so that the sides in ``need_*``
    decode to exactly these prices; False if no action does."""
    half_lo = min(0.5, P.max_half_spread_ticks)
    half_hi = max(0.5, P.max_half_spread_ticks)
    if need_bid and need_ask:
        if ask_px <= bid_px:
            return False
        half = min(half_hi, max(half_lo, 0.5 * (ask_px - bid_px - 1)))
        # the centre interval on which floor(c - h) = bid and ceil(c + h) = ask
        lo = max(bid_px + half, ask_px - 1.0 - half)
        hi = min(bid_px + 1.0 + half, ask_px - half)
    elif need_bid:
        half = min(half_hi, max(half_lo, mid - bid_px - 1.0))
        lo = bid_px + half
        hi = bid_px + 1.0 + half
    else:
        half = min(half_hi, max(half_lo, ask_px - mid - 1.0))
        lo = ask_px - 1.0 - half
        hi = ask_px - half
    lo = max(lo, mid - P.max_skew_ticks)
    hi = min(hi, mid + P.max_skew_ticks)
    if lo > hi:
        return False
    centre = 0.5 * (lo + hi)
    if P.max_half_spread_ticks != 0.5:
        block[HALF_SPREAD] = min(
            1.0, max(-1.0, 2.0 * (half - 0.5) / (P.max_half_spread_ticks - 0.5) - 1.0)
        )
    else:
        block[HALF_SPREAD] = -1.0
    skew = (centre - mid) / P.max_skew_ticks if P.max_skew_ticks > 0.0 else 0.0
    skew = min(1.0, max(-1.0, skew))
    # a one-tick spread has a single exact centre: search the neighbouring actions for it
    for step in range(9):
        candidate = skew
        for _ in range((step + 1) // 2):
            candidate = np.nextafter(candidate, np.inf if step % 2 else -np.inf)
        block[SKEW] = min(1.0, max(-1.0, candidate))
        got_bid, _, got_ask, _ = decode_quotes(block, mid, P)
        if (not need_bid or got_bid == bid_px) and (not need_ask or got_ask == ask_px):
            return True
    return False


@nb.njit(cache=True, error_model="numpy", inline="always")
def encode_env(
    quotes: NDArray[np.void],
    best_bid_ticks: NDArray[np.number],
    best_ask_ticks: NDArray[np.number],
    P: Record,
    out: NDArray[np.float64],
) -> int:
    """:func:`encode_quotes` of one env: its quotes ``(K,)`` into its action ``out`` ``(5 K,)``
    (holding a warm start) at its books; returns the sides cancelled as unrepresentable."""
    cancelled = 0
    for k in range(quotes.shape[0]):
        q = quotes[k]
        base = k * ACTION_PER_ASSET
        block = out[base : base + ACTION_PER_ASSET]
        mid = 0.5 * (best_bid_ticks[k] + best_ask_ticks[k])
        bid_size = q.bid_size if q.bid_size > 0.0 else 0.0
        ask_size = q.ask_size if q.ask_size > 0.0 else 0.0
        need_bid = bid_size > 0.0
        need_ask = ask_size > 0.0
        warm = math.isfinite(mid)
        for j in range(ACTION_PER_ASSET):
            warm = warm and math.isfinite(block[j])
        warm_bid = warm_ask = -1.0
        if warm:
            for j in range(ACTION_PER_ASSET):  # what the decoder clips to anyway
                block[j] = _clip1(block[j])
            got_bid, warm_bid, got_ask, warm_ask = decode_quotes(block, mid, P)
            warm = got_bid == q.bid_px and got_ask == q.ask_px
        represented = math.isfinite(mid) and (
            warm
            or _try_prices(block, mid, P, q.bid_px, q.ask_px, True, True)
            or (
                need_bid != need_ask
                and _try_prices(block, mid, P, q.bid_px, q.ask_px, need_bid, need_ask)
            )
        )
        dropped = 0
        if not represented:
            dropped = int(need_bid) + int(need_ask)
            bid_size = 0.0
            ask_size = 0.0
            block[SKEW] = 0.0
            block[HALF_SPREAD] = 1.0
            if not math.isfinite(mid):
                mid = 0.0
        if not (warm and warm_bid == bid_size):
            _encode_monotone(block, BID_SIZE, bid_size, P.max_quote_size, mid, P)
        if not (warm and warm_ask == ask_size):
            _encode_monotone(block, ASK_SIZE, ask_size, P.max_quote_size, mid, P)
        fraction = q.hedge_fraction if math.isfinite(q.hedge_fraction) else 1.0
        if math.isfinite(block[HEDGE]) and hedge_fraction(block[HEDGE]) == fraction:
            block[HEDGE] = _clip1(block[HEDGE])
        else:
            _encode_monotone(block, HEDGE, fraction, 1.0, mid, P)
        cancelled += dropped
    return cancelled


@nb.njit(cache=True, error_model="numpy")
def encode_quotes(
    quotes: NDArray[np.void],
    best_bid_ticks: NDArray[np.number],
    best_ask_ticks: NDArray[np.number],
    Pa: NDArray[np.void],
    out: NDArray[np.float64],
    cancelled: NDArray[np.int64],
) -> int:
    """The inverse of :func:`decode_actions`: write into ``out`` ``(n, 5 K)`` (float64) actions
    that decode, at the same book, to the quotes ``(n, K)``. Allocates nothing.

    ``out`` holds a warm start on entry (for instance the actions the quotes were decoded
    from): components that already decode to the wanted prices, size or hedge fraction are
    kept, which saves the search and never changes what ``out`` decodes to.

    On representable quotes (any output of the decoder) it is exact: decoding ``out`` gives back
    ``quotes`` field for field. Otherwise sizes and the hedge fraction decode to the largest
    representable value not above the one asked for, never above it. A side with a size whose
    price cannot be represented (an ask not above the bid, a price beyond the skew and
    half-spread range) is cancelled, never re-priced: both sides when the pair cannot be
    represented together. Non-finite or negative sizes encode as no order; a non-finite hedge
    fraction as 1 (the full offset). ``cancelled[i]`` counts the sides of env ``i`` cancelled
    this way; the total is returned.
    """
    P = Pa[0]
    total = 0
    for i in range(quotes.shape[0]):
        cancelled[i] = encode_env(quotes[i], best_bid_ticks[i], best_ask_ticks[i], P, out[i])
        total += cancelled[i]
    return total
