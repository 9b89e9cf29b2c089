"""Agent accounting: cash, inventory, average entry price, realised PnL and the PnL decomposition.

Equity is ``cash + inventory x mid``. Every change of equity is booked to exactly one term:
``spread`` (a fill's edge against the mid just before it: ``signed_qty x (mid - price)``),
``inventory`` (``inventory x`` each change of mid) or ``fees``; the three sum to the equity change.
"""

from __future__ import annotations

import numba as nb

from mmgym.core.records import Record


@nb.njit(cache=True, error_model="numpy", inline="always")
def apply_fill(s: Record, signed_qty: float, price: float, fee_rate: float) -> None:
    """Book a fill of ``signed_qty`` (+ agent buys) at ``price``, marked against ``s.mid``."""
    fee = fee_rate * price * abs(signed_qty)
    s.cash -= signed_qty * price + fee
    s.pnl_spread += signed_qty * (s.mid - price)
    s.pnl_fees -= fee
    s.fill_notional += price * abs(signed_qty)
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
def mark_to(s: Record, new_mid: float) -> None:
    """Move the marking price to ``new_mid``, booking the inventory revaluation."""
    s.pnl_inventory += s.inventory * (new_mid - s.mid)
    s.mid = new_mid


@nb.njit(cache=True, error_model="numpy", inline="always")
def equity(s: Record) -> float:
    """Cash plus inventory at the mid."""
    return s.cash + s.inventory * s.mid
