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
def _median3(a: float, b: float, c: float) -> float:
    return max(min(a, b), min(max(a, b), c))


@nb.njit(cache=True, error_model="numpy", inline="always")
def mark_price(s: Record, P: Record) -> float:
    """The mark from the current book, last trade and basis EMA."""
    tick = P.tick_size
    book = _median3(s.best_bid * tick, s.best_ask * tick, s.last_trade)
    return 0.5 * (s.fair_price + s.basis_ema + book)


@nb.njit(cache=True, error_model="numpy", inline="always")
def remark(s: Record, P: Record) -> None:
    """Re-mark after a book change within the same tick (the basis EMA already stepped)."""
    s.mid = book_mid(s, P)
    mark_to(s, mark_price(s, P))


@nb.njit(cache=True, error_model="numpy", inline="always")
def update_mark(s: Record, P: Record) -> None:
    """Refresh the mid and the basis EMA, then mark the agent's position to the new mark."""
    s.mid = book_mid(s, P)
    s.basis_ema += P.mark_ema_weight_per_tick * ((s.mid - s.fair_price) - s.basis_ema)
    mark_to(s, mark_price(s, P))
