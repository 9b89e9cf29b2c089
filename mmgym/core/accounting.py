"""Agent accounting: cash, inventory, average entry price, realised PnL and the PnL decomposition.

An asset's equity is ``cash + inventory x mark + hedge_cash + hedge_position x oracle``; the
account's is the collateral plus the sum over assets. Every change of equity is booked to
exactly one term: ``spread`` (a maker fill's edge against the mark: ``signed_qty x (mark -
price)``), ``inventory`` (``inventory x`` each change of mark), ``fees``, ``funding``, ``hedge``
(the hedge leg's revaluation and costs) or ``liquidation`` (a forced close's slippage, fee and
penalty); they sum to the equity change.
"""

from __future__ import annotations

import numba as nb

from mmgym.core.records import Record


@nb.njit(cache=True, error_model="numpy", inline="always")
def apply_fill(s: Record, signed_qty: float, price: float, fee_rate: float) -> None:
    """Book a maker fill of ``signed_qty`` (+ agent buys) at ``price``, against ``s.mark``."""
    fee = fee_rate * price * abs(signed_qty)
    s.pnl_spread += signed_qty * (s.mark - price)
    s.pnl_fees -= fee
    s.fill_notional += price * abs(signed_qty)
    if signed_qty > 0.0:
        s.bid_notional += price * signed_qty
    else:
        s.ask_notional -= price * signed_qty
    _trade(s, signed_qty, price, fee)


@nb.njit(cache=True, error_model="numpy", inline="always")
def _trade(s: Record, signed_qty: float, price: float, cost: float) -> None:
    """Move cash and inventory, keeping the entry price and realised PnL."""
    s.cash -= signed_qty * price + cost
    q = s.inventory
    new_q = q + signed_qty
    if q == 0.0 or (q > 0.0) == (signed_qty > 0.0):
        # opening or adding: volume-weighted entry price
        s.entry_price = (s.entry_price * abs(q) + price * abs(signed_qty)) / abs(new_q)
    else:
        closed = min(abs(signed_qty), abs(q))
        direction = 1.0 if q > 0.0 else -1.0
        s.realised_pnl += closed * (price - s.entry_price) * direction
        if abs(signed_qty) > abs(q):
            s.entry_price = price  # flipped through zero: the rest opens at this price
        elif new_q == 0.0:
            s.entry_price = 0.0
    s.inventory = new_q
    s.fills += 1


@nb.njit(cache=True, error_model="numpy", inline="always")
def apply_forced_fill(
    s: Record, signed_qty: float, price: float, fee_rate: float, penalty: float
) -> None:
    """Book a liquidation fill (the agent takes liquidity) with its fee and penalty."""
    notional = price * abs(signed_qty)
    cost = (fee_rate + penalty) * notional
    s.pnl_liquidation += signed_qty * (s.mark - price) - cost
    _trade(s, signed_qty, price, cost)


@nb.njit(cache=True, error_model="numpy", inline="always")
def mark_to(s: Record, new_mark: float) -> None:
    """Move the marking price to ``new_mark``, booking the inventory revaluation."""
    s.pnl_inventory += s.inventory * (new_mark - s.mark)
    s.mark = new_mark


@nb.njit(cache=True, error_model="numpy", inline="always")
def asset_equity(s: Record) -> float:
    """Cash plus inventory at the mark, plus the hedge leg at the oracle."""
    return s.cash + s.inventory * s.mark + s.hedge_cash + s.hedge_position * s.fair_price
