"""The order book: background depth on a tick grid, taker walks, recentring and replenishment.

Each side holds ``L`` levels of background depth, level 0 at the best price. The agent's resting
order on a side is tracked apart from the background: its price, remaining size and the
background volume queued ahead of it (``*_ahead``), which must trade or cancel before it fills.
At its level the queue is: volume ahead, then the agent, then volume behind.

- A taker order walks the book level by level; an emptied level moves the best price.
- Background makers keep their best quotes at ``anchor +/- half_spread`` (anchor = fair price
  times one plus the leverage-demand premium, plus impact, in ticks): new levels they quote
  start thin (``new_level_fraction``) and levels they abandon are cancelled, so the agent there
  loses everyone ahead of it.
- Depth relaxes toward a regime-dependent profile times the side's maker liquidity (1 unless
  they withdraw, :mod:`mmgym.core.liquidity`); a shrinking level is a cancellation spread
  evenly through its queue, so the volume ahead of the agent shrinks in proportion.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from numpy.typing import NDArray

from mmgym.core.accounting import apply_fill
from mmgym.core.liquidity import half_spread
from mmgym.core.records import Record

EMPTY = 1e-12
"""Depth at or below which a level counts as empty."""


@nb.njit(cache=True, error_model="numpy", inline="always")
def remove_top(
    depth: NDArray[np.float64], k: int, profile: NDArray[np.float64], scale: float
) -> None:
    """Drop the best ``k`` levels; levels entering at the deep end sit at ``scale`` x their
    profile depth (``scale``: the makers' liquidity)."""
    n = depth.shape[0]
    k = min(k, n)
    for j in range(n - k):
        depth[j] = depth[j + k]
    for j in range(n - k, n):
        depth[j] = scale * profile[j]


@nb.njit(cache=True, error_model="numpy", inline="always")
def insert_top(
    depth: NDArray[np.float64], k: int, profile: NDArray[np.float64], fraction: float
) -> None:
    """Insert ``k`` new best levels, each at ``fraction`` of its profile depth."""
    n = depth.shape[0]
    k = min(k, n)
    for j in range(n - 1, k - 1, -1):
        depth[j] = depth[j - k]
    for j in range(k):
        depth[j] = fraction * profile[j]


@nb.njit(cache=True, error_model="numpy", inline="always")
def anchor_ticks(a: Record, P: Record) -> float:
    """Price (in ticks) around which background makers quote: fair price plus impact plus the
    leverage-demand premium (:mod:`mmgym.core.carry`)."""
    return a.fair_ticks * (1.0 + a.carry) + a.impact


@nb.njit(cache=True, error_model="numpy", inline="always")
def book_mid(a: Record, P: Record) -> float:
    """Mid of the background book (the agent's own quotes excluded), in price units."""
    return 0.5 * (a.best_bid + a.best_ask) * P.tick_size


@nb.njit(cache=True, error_model="numpy", inline="always")
def clamp_ahead(a: Record) -> None:
    """Volume ahead of a quote never exceeds its level's depth (its level may have just entered
    the simulated book, or shrunk by more than its queue)."""
    n = a.bid_depth.shape[0]
    if a.bid_qty > 0.0:
        j = a.best_bid - a.bid_px
        if 0 <= j < n and a.bid_ahead > a.bid_depth[j]:
            a.bid_ahead = a.bid_depth[j]
    if a.ask_qty > 0.0:
        j = a.ask_px - a.best_ask
        if 0 <= j < n and a.ask_ahead > a.ask_depth[j]:
            a.ask_ahead = a.ask_depth[j]


@nb.njit(cache=True, error_model="numpy")
def recentre(a: Record, P: Record, r: int, anchor: float) -> None:
    """Move background best quotes to ``anchor -/+ half_spread``, adding or cancelling levels
    (the half-spread widens as the makers' liquidity of the thinner side falls, around the
    anchor: :mod:`mmgym.core.liquidity`)."""
    bid_scale = a.liquidity_bid
    ask_scale = a.liquidity_ask
    h = half_spread(P, r, min(bid_scale, ask_scale))
    target_bid = math.floor(anchor - h)
    target_ask = math.ceil(anchor + h)
    if target_ask <= target_bid:
        target_ask = target_bid + 1
    profile = P.depth_profile[r]
    shift = target_bid - a.best_bid
    if shift > 0:
        insert_top(a.bid_depth, shift, profile, bid_scale * P.new_level_fraction)
    elif shift < 0:
        remove_top(a.bid_depth, -shift, profile, bid_scale)
        if a.bid_qty > 0.0 and a.bid_px > target_bid:
            a.bid_ahead = 0.0
    a.best_bid = target_bid
    shift = a.best_ask - target_ask
    if shift > 0:
        insert_top(a.ask_depth, shift, profile, ask_scale * P.new_level_fraction)
    elif shift < 0:
        remove_top(a.ask_depth, -shift, profile, ask_scale)
        if a.ask_qty > 0.0 and a.ask_px < target_ask:
            a.ask_ahead = 0.0
    a.best_ask = target_ask
    clamp_ahead(a)


@nb.njit(cache=True, error_model="numpy", inline="always")
def _relax(
    depth: NDArray[np.float64], profile: NDArray[np.float64], scale: float, f: float
) -> None:
    for j in range(depth.shape[0]):
        depth[j] += (scale * profile[j] - depth[j]) * f


@nb.njit(cache=True, error_model="numpy")
def replenish(a: Record, P: Record, r: int) -> None:
    """Relax each side's depth toward the profile times that side's maker liquidity;
    cancellations thin the queue ahead of the agent evenly."""
    f = P.refill_fraction_per_tick[r]
    profile = P.depth_profile[r]
    n = a.bid_depth.shape[0]
    jb = a.best_bid - a.bid_px
    ja = a.ask_px - a.best_ask
    track_bid = a.bid_qty > 0.0 and 0 <= jb < n
    track_ask = a.ask_qty > 0.0 and 0 <= ja < n
    old_bid = a.bid_depth[jb] if track_bid else 0.0
    old_ask = a.ask_depth[ja] if track_ask else 0.0
    _relax(a.bid_depth, profile, a.liquidity_bid, f)
    _relax(a.ask_depth, profile, a.liquidity_ask, f)
    if track_bid and a.bid_depth[jb] < old_bid:
        a.bid_ahead *= a.bid_depth[jb] / old_bid
    if track_ask and a.ask_depth[ja] < old_ask:
        a.ask_ahead *= a.ask_depth[ja] / old_ask


@nb.njit(cache=True, error_model="numpy", inline="always")
def walk(
    depth: NDArray[np.float64],
    best: int,
    step: int,
    agent_px: int,
    agent_qty: float,
    agent_ahead: float,
    volume: float,
) -> tuple[float, int, float, float, int, float]:
    """Walk one side with a taker order of ``volume``; prices move by ``step`` ticks per level.

    Returns (executed volume, levels emptied, agent fill, agent volume ahead, last trade tick,
    executed notional in ticks). An agent order priced better than the background best is hit
    first.
    """
    remaining = volume
    fill = 0.0
    last_px = best
    notional = 0.0
    if agent_qty > 0.0 and (agent_px - best) * step < 0:
        fill = min(remaining, agent_qty)
        remaining -= fill
        last_px = agent_px
        notional += fill * agent_px
    n = depth.shape[0]
    j = 0
    while remaining > 0.0 and j < n:
        px = best + step * j
        d = depth[j]
        before = remaining
        if agent_qty - fill > 0.0 and agent_px == px:
            taken = min(remaining, agent_ahead, d)
            agent_ahead -= taken
            d -= taken
            remaining -= taken
            f = min(remaining, agent_qty - fill)
            fill += f
            remaining -= f
        b = min(remaining, d)
        d -= b
        remaining -= b
        last_px = px
        notional += (before - remaining) * px
        if d <= EMPTY:
            d = 0.0
        depth[j] = d
        if d > 0.0 or (agent_qty - fill > 0.0 and agent_px == px):
            break
        j += 1
    return volume - remaining, j, fill, agent_ahead, last_px, notional


@nb.njit(cache=True, error_model="numpy")
def volume_within(a: Record, side: int, limit_px: int) -> float:
    """Volume a taker order on ``side`` (+1 buy, -1 sell) can fill at prices no worse than
    ``limit_px`` (ticks), the agent's resting quote included."""
    total = 0.0
    if side < 0:
        n = a.bid_depth.shape[0]
        for j in range(min(n, a.best_bid - limit_px + 1)):
            total += a.bid_depth[j]
        if a.bid_qty > 0.0 and a.bid_px >= limit_px:
            total += a.bid_qty
    else:
        n = a.ask_depth.shape[0]
        for j in range(min(n, limit_px - a.best_ask + 1)):
            total += a.ask_depth[j]
        if a.ask_qty > 0.0 and a.ask_px <= limit_px:
            total += a.ask_qty
    return total


@nb.njit(cache=True, error_model="numpy", inline="always")
def liquidation_limit(a: Record, P: Record, side: int) -> int:
    """Worst price (ticks) a forced order on ``side`` may trade at: the slippage band."""
    band = P.liquidation_max_slippage
    if side < 0:
        return math.ceil(a.mark * (1.0 - band) / P.tick_size - 1e-9)
    return math.floor(a.mark * (1.0 + band) / P.tick_size + 1e-9)


@nb.njit(cache=True, error_model="numpy")
def impact_price(
    depth: NDArray[np.float64], best: int, step: int, notional: float, tick: float
) -> float:
    """Average price of a taker order of ``notional`` (quote currency) walked through background
    depth, without touching the book. Beyond the last level the rest fills at its price."""
    remaining = notional
    volume = 0.0
    px = best
    for j in range(depth.shape[0]):
        px = best + step * j
        level_notional = depth[j] * px * tick
        take = min(remaining, level_notional)
        volume += take / (px * tick)
        remaining -= take
        if remaining <= 0.0:
            break
    if remaining > 0.0:
        volume += remaining / (px * tick)
    return notional / volume


@nb.njit(cache=True, error_model="numpy")
def sell_into_bids(a: Record, P: Record, r: int, volume: float) -> tuple[float, float]:
    """A taker sell of ``volume`` walks the bids; return the volume executed and its notional
    (ticks x base units)."""
    executed, cleared, fill, ahead, last_px, notional = walk(
        a.bid_depth, a.best_bid, -1, a.bid_px, a.bid_qty, a.bid_ahead, volume
    )
    a.bid_ahead = ahead
    if fill > 0.0:
        a.bid_qty -= fill
        a.bid_filled += fill
        apply_fill(a, fill, a.bid_px * P.tick_size, P.maker_fee)
    if cleared > 0:
        remove_top(a.bid_depth, cleared, P.depth_profile[r], a.liquidity_bid)
        a.best_bid -= cleared
        clamp_ahead(a)
    a.last_trade = last_px * P.tick_size
    return executed, notional


@nb.njit(cache=True, error_model="numpy")
def buy_from_asks(a: Record, P: Record, r: int, volume: float) -> tuple[float, float]:
    """A taker buy of ``volume`` walks the asks; return the volume executed and its notional
    (ticks x base units)."""
    executed, cleared, fill, ahead, last_px, notional = walk(
        a.ask_depth, a.best_ask, 1, a.ask_px, a.ask_qty, a.ask_ahead, volume
    )
    a.ask_ahead = ahead
    if fill > 0.0:
        a.ask_qty -= fill
        a.ask_filled += fill
        apply_fill(a, -fill, a.ask_px * P.tick_size, P.maker_fee)
    if cleared > 0:
        remove_top(a.ask_depth, cleared, P.depth_profile[r], a.liquidity_ask)
        a.best_ask += cleared
        clamp_ahead(a)
    a.last_trade = last_px * P.tick_size
    return executed, notional
