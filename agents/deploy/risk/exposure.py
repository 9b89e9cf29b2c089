"""Worst-case exposure: positions with every resting and new order counted as filled.

Per perp, the worst long position is ``position + resting bid + new bid`` (every bid fills and
no ask does) and the worst short ``position - resting ask - new ask``. A resting order counts
even when the new one replaces it, because it can fill before its cancel arrives (an order that
races a fill). Gross notional sums each perp's worse side, ``max(long, -short, 0) x mark``; net
notional takes every bid (or every ask) filling across perps. The margin coverage of the worst
case is margin equity, less the fills' adverse edge to the mark and their maker fees, over the
maintenance margin of each perp's worse side (the venue's tiers).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from numpy.typing import NDArray

from agents.deploy.risk.estimators import mark_known
from agents.deploy.risk.jit import JIT
from mmgym.core.margin import tier_margin
from mmgym.core.records import Record


@nb.njit(**JIT, inline="always")
def position_known(a: Record) -> bool:
    """The perp's position and resting orders are known (finite, sizes >= 0, priced)."""
    return (
        math.isfinite(a.position)
        and a.bid_resting >= 0.0
        and a.ask_resting >= 0.0
        and math.isfinite(a.bid_resting)
        and math.isfinite(a.ask_resting)
        and (a.bid_resting == 0.0 or math.isfinite(a.bid_resting_px))
        and (a.ask_resting == 0.0 or math.isfinite(a.ask_resting_px))
    )


@nb.njit(**JIT, inline="always")
def market_known(a: Record) -> bool:
    """The perp's book and mark are known: finite, the bid under the ask, not flagged stale."""
    return (
        mark_known(a)
        and math.isfinite(a.best_bid)
        and math.isfinite(a.best_ask)
        and a.best_bid < a.best_ask
    )


@nb.njit(**JIT, inline="always")
def fill_cost(size: float, price: float, mark: float, buy: bool, fee: float) -> float:
    """Equity lost against the mark if ``size`` fills at ``price``: adverse edge plus fee."""
    if not size > 0.0:
        return 0.0
    edge = price - mark if buy else mark - price
    return size * (max(edge, 0.0) + fee * price)


@nb.njit(**JIT, inline="always")
def fill_costs(
    L: Record, a: Record, q: Record, new_bid: float, new_ask: float, fee: float
) -> float:
    """Equity lost against the mark if every new (``q``'s prices) and resting order of one perp
    fills: adverse edges plus maker fees."""
    tick = L.venue_tick_size
    m = a.mark
    return (
        fill_cost(new_bid, q.bid_px * tick, m, True, fee)
        + fill_cost(new_ask, q.ask_px * tick, m, False, fee)
        + fill_cost(a.bid_resting, a.bid_resting_px * tick, m, True, fee)
        + fill_cost(a.ask_resting, a.ask_resting_px * tick, m, False, fee)
    )


@nb.njit(**JIT)
def worst_case(
    L: Record,
    A: NDArray[np.void],
    Q: NDArray[np.void],
    s: Record,
    scale: float,
    margin_equity: float,
) -> tuple[float, float]:
    """(gross notional, margin coverage) of the worst case with new orders ``base + scale x
    extra`` per side (the parts in ``s``); every perp's position and market must be known."""
    fee = max(L.venue_maker_fee, 0.0)
    gross = 0.0
    maintenance = 0.0
    cost = 0.0
    for k in range(A.shape[0]):
        a = A[k]
        m = a.mark
        new_bid = s.bid_base[k] + scale * s.bid_extra[k]
        new_ask = s.ask_base[k] + scale * s.ask_extra[k]
        worst = max(a.position + a.bid_resting + new_bid, a.ask_resting + new_ask - a.position)
        notional = max(worst, 0.0) * m
        gross += notional
        maintenance += tier_margin(notional, L.venue_margin_tiers)
        cost += fill_costs(L, a, Q[k], new_bid, new_ask, fee)
    coverage = (margin_equity - cost) / maintenance if maintenance > 0.0 else np.inf
    return gross, coverage
