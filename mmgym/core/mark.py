"""Mark price: the price margin and unrealised PnL use.

``mark = median(oracle + EMA(mid - oracle), median(best bid, best ask, last trade))``, the
simulator form of Hyperliquid's rule (its third input, other venues' mids, is absent here, so
the median of the two remaining inputs is their mean). The EMA has time ``mark_ema_seconds``.
"""

from __future__ import annotations

import numba as nb

from mmgym.core.accounting import mark_to
from mmgym.core.book import book_mid
from mmgym.core.records import Record


@nb.njit(cache=True, error_model="numpy", inline="always")
def _median3(x: float, y: float, z: float) -> float:
    return max(min(x, y), min(max(x, y), z))


@nb.njit(cache=True, error_model="numpy", inline="always")
def mark_price(a: Record, P: Record) -> float:
    """The mark from the current book, last trade and basis EMA."""
    tick = P.tick_size
    book = _median3(a.best_bid * tick, a.best_ask * tick, a.last_trade)
    return 0.5 * (a.fair_price + a.basis_ema + book)


@nb.njit(cache=True, error_model="numpy", inline="always")
def remark(a: Record, P: Record) -> None:
    """Re-mark after a book change within the same tick (the basis EMA already stepped)."""
    a.mid = book_mid(a, P)
    mark_to(a, mark_price(a, P))


@nb.njit(cache=True, error_model="numpy", inline="always")
def update_mark(a: Record, P: Record) -> None:
    """Refresh the mid and the basis EMA, then mark the agent's position to the new mark."""
    a.mid = book_mid(a, P)
    a.basis_ema += P.mark_ema_weight_per_tick * ((a.mid - a.fair_price) - a.basis_ema)
    mark_to(a, mark_price(a, P))
