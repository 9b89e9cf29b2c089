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
def apply_fill(a: Record, signed_qty: float, price: float, fee_rate: float) -> None:
    """Book a maker fill of ``signed_qty`` (+ agent buys) at ``price``, against ``a.mark``."""
    fee = fee_rate * price * abs(signed_qty)
    a.pnl_spread += signed_qty * (a.mark - price)
    a.pnl_fees -= fee
    a.fill_notional += price * abs(signed_qty)
    if signed_qty > 0.0:
        a.bid_notional += price * signed_qty
    else:
        a.ask_notional -= price * signed_qty
    _trade(a, signed_qty, price, fee)


@nb.njit(cache=True, error_model="numpy", inline="always")
def _trade(a: Record, signed_qty: float, price: float, cost: float) -> None:
    """Move cash and inventory, keeping the entry price and realised PnL."""
    a.cash -= signed_qty * price + cost
    q = a.inventory
    new_q = q + signed_qty
    if q == 0.0 or (q > 0.0) == (signed_qty > 0.0):
        # opening or adding: volume-weighted entry price
        a.entry_price = (a.entry_price * abs(q) + price * abs(signed_qty)) / abs(new_q)
    else:
        closed = min(abs(signed_qty), abs(q))
        direction = 1.0 if q > 0.0 else -1.0
        a.realised_pnl += closed * (price - a.entry_price) * direction
        if abs(signed_qty) > abs(q):
            a.entry_price = price  # flipped through zero: the rest opens at this price
        elif new_q == 0.0:
            a.entry_price = 0.0
    a.inventory = new_q
    a.fills += 1


@nb.njit(cache=True, error_model="numpy", inline="always")
def apply_forced_fill(
    a: Record, signed_qty: float, price: float, fee_rate: float, penalty: float
) -> None:
    """Book a liquidation fill (the agent takes liquidity) with its fee and penalty."""
    notional = price * abs(signed_qty)
    cost = (fee_rate + penalty) * notional
    a.pnl_liquidation += signed_qty * (a.mark - price) - cost
    _trade(a, signed_qty, price, cost)


@nb.njit(cache=True, error_model="numpy", inline="always")
def mark_to(a: Record, new_mark: float) -> None:
    """Move the marking price to ``new_mark``, booking the inventory revaluation."""
    a.pnl_inventory += a.inventory * (new_mark - a.mark)
    a.mark = new_mark


@nb.njit(cache=True, error_model="numpy", inline="always")
def asset_equity(a: Record) -> float:
    """Cash plus inventory at the mark, plus the hedge leg at the oracle."""
    return a.cash + a.inventory * a.mark + a.hedge_cash + a.hedge_position * a.fair_price
