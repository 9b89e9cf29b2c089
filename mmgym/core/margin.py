"""The agent's cross-margined account: equity at mark, tiered maintenance margin, liquidation.

Margin equity is the collateral plus every perp's cash and position at its mark (the hedge
venue is a separate account). Maintenance margin is ``sum_k (notional_k x rate - deduction)``
by the tier of each position's notional. When margin equity falls below it, every resting order
is cancelled and every position is closed by market orders walked through the book (taker fee,
the impact of the walk, and ``liquidation_penalty`` on the notional) down to
``liquidation_max_slippage`` from the mark; the venue's backstop takes the rest at that limit;
the episode terminates.
"""

from __future__ import annotations

import numba as nb
import numpy as np
from numpy.typing import NDArray

from mmgym.core.accounting import apply_forced_fill, asset_equity
from mmgym.core.book import liquidation_limit, remove_top, volume_within, walk
from mmgym.core.codes import NO_TICK, Reason
from mmgym.core.impact import add_flow_impact
from mmgym.core.records import Record


@nb.njit(cache=True, error_model="numpy", inline="always")
def tier_margin(notional: float, tiers: NDArray[np.float64]) -> float:
    """Maintenance margin of one position: ``notional x rate - deduction`` of its tier."""
    row = 0
    for t in range(1, tiers.shape[0]):
        if notional >= tiers[t, 0]:
            row = t
    return notional * tiers[row, 1] - tiers[row, 2]


@nb.njit(cache=True, error_model="numpy", inline="always")
def update_account(e: Record, A: NDArray[np.void], P: Record) -> None:
    """Recompute equity, margin equity, maintenance margin and margin ratio from the assets."""
    total = e.collateral
    margin_equity = e.collateral
    maintenance = 0.0
    for k in range(A.shape[0]):
        a = A[k]
        total += asset_equity(a)
        margin_equity += a.cash + a.inventory * a.mark
        maintenance += tier_margin(abs(a.inventory) * a.mark, P.maintenance_tiers)
    e.equity = total
    e.margin_equity = margin_equity
    e.maintenance_margin = maintenance
    e.margin_ratio = maintenance / margin_equity if margin_equity > 0.0 else np.inf


@nb.njit(cache=True, error_model="numpy", inline="always")
def below_maintenance(e: Record) -> bool:
    """The liquidation trigger: margin equity under maintenance margin, with a position open."""
    return e.maintenance_margin > 0.0 and e.margin_equity < e.maintenance_margin


@nb.njit(cache=True, error_model="numpy")
def close_at_market(a: Record, P: Record, r: int) -> float:
    """Close this asset's position by market orders walked through its book, down to
    ``liquidation_max_slippage`` from the mark (taker fee and penalty); the backstop takes the
    rest at the band's limit price (penalty, no taker fee). Return the volume the book took."""
    a.bid_qty = 0.0
    a.ask_qty = 0.0
    a.pending_tick = NO_TICK
    if a.inventory == 0.0:
        return 0.0
    side = -1 if a.inventory > 0.0 else 1
    limit = liquidation_limit(a, P, side)
    remaining = abs(a.inventory)
    closed = 0.0
    for _ in range(100):
        take = min(remaining, volume_within(a, side, limit))
        if take <= 1e-12:
            break
        if side < 0:
            executed, cleared, _, _, last, notional = walk(
                a.bid_depth, a.best_bid, -1, 0, 0.0, 0.0, take
            )
            if cleared > 0:
                remove_top(a.bid_depth, cleared, P.depth_profile[r], a.liquidity_bid)
                a.best_bid -= cleared
            a.forced_sell_volume += executed
        else:
            executed, cleared, _, _, last, notional = walk(
                a.ask_depth, a.best_ask, 1, 0, 0.0, 0.0, take
            )
            if cleared > 0:
                remove_top(a.ask_depth, cleared, P.depth_profile[r], a.liquidity_ask)
                a.best_ask += cleared
            a.forced_buy_volume += executed
        if executed <= 0.0:
            break
        price = notional / executed * P.tick_size
        apply_forced_fill(a, side * executed, price, P.taker_fee, P.liquidation_penalty)
        a.last_trade = last * P.tick_size
        add_flow_impact(a, P, r, side * executed)
        remaining -= executed
        closed += executed
    if a.inventory != 0.0:  # beyond the band (or rounding dust): the backstop takes it
        rest = -a.inventory  # exactly the remaining position, so the agent ends flat
        a.backstop_volume += abs(rest)
        apply_forced_fill(a, rest, limit * P.tick_size, 0.0, P.liquidation_penalty)
    return closed


@nb.njit(cache=True, error_model="numpy")
def liquidate_agent(e: Record, A: NDArray[np.void], P: Record, r: int) -> None:
    """Close every position at market and flag the episode as ended by liquidation."""
    for k in range(A.shape[0]):
        close_at_market(A[k], P, r)
    e.reason = Reason.LIQUIDATED
