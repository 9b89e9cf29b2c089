"""The kill switch: the account's measures at each decision move its trading mode.

Triggers (thresholds in :class:`~agents.deploy.risk.limits.RiskLimits`):

- loss from the highest equity within the rolling window, and drawdown from the PEAK equity
  since the account opened (or since an operator reset): REDUCING past the ``reducing_*``
  threshold, HALTED past ``halt_*`` (Hummingbot's kill switch measured from the start, not the
  peak, so a strategy that first gained could lose it all);
- margin coverage (margin equity / maintenance margin) under ``reducing_margin_coverage`` or
  ``halt_margin_coverage``;
- stale market data (older than ``halt_stale_data_seconds``) or an account state unknown for
  that long, and reject storms (``halt_rejects_per_window`` venue rejects in the window): HALTED;
- untrusted orders (the guarded policy's bad observations or model outputs, a guard
  :class:`~agents.deploy.risk.reasons.Reason`): REDUCING at once, HALTED once the account has
  been untrusted or unknown for ``halt_stale_data_seconds``.

REDUCING returns to ACTIVE once no trigger has held for ``reducing_hold_seconds``. HALTED is
left only by an operator reset (:meth:`RiskLimiter.operator_reset`), never here. With
``flatten_on_halt`` a halt starts a flatten-then-halt sequence: the limiter places its own
reducing orders until every position is flat, then stays HALTED with nothing working (no manual
HALTED -> REDUCING -> close -> HALTED dance, as NautilusTrader needs). Every transition is
recorded with its reason and time, and counted.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from numpy.typing import NDArray

from agents.deploy.risk.exposure import position_known
from agents.deploy.risk.jit import JIT, JIT_INLINE
from agents.deploy.risk.modes import TradingMode
from agents.deploy.risk.reasons import Reason
from agents.deploy.risk.tally import tally
from mmgym.core.records import Record

ACTIVE = int(TradingMode.ACTIVE)
REDUCING = int(TradingMode.REDUCING)
HALTED = int(TradingMode.HALTED)

_MARGIN = int(Reason.MARGIN_COVERAGE)
_DRAWDOWN = int(Reason.DRAWDOWN)
_WINDOW_LOSS = int(Reason.WINDOW_LOSS)
_REJECTS = int(Reason.REJECT_STORM)
_STALE = int(Reason.STALE_MARKET_DATA)
_UNKNOWN = int(Reason.UNKNOWN_ACCOUNT)
_RECOVERED = int(Reason.RECOVERED)
_FLATTEN = int(Reason.FLATTEN_REQUESTED)
_FLATTENED = int(Reason.FLATTENED)


@nb.njit(**JIT)
def record_transition(
    trans: NDArray[np.void],
    s: Record,
    counts: NDArray[np.int64],
    i: int,
    t: float,
    previous: int,
    mode: int,
    reason: int,
) -> None:
    """Record one transition of account ``i`` at ``t`` in its row ``trans`` and count it."""
    tally(counts, reason)
    n = s.transitions
    if n < trans.shape[0]:
        r = trans[n]
        r.account = i
        r.time_s = t
        r.previous = previous
        r.mode = mode
        r.reason = reason
    s.transitions = n + 1


@nb.njit(**JIT)
def all_flat(A: NDArray[np.void], tolerance: float) -> bool:
    """Every position is known and smaller than ``tolerance`` (the venue's smallest order)."""
    for k in range(A.shape[0]):
        a = A[k]
        if not position_known(a) or not abs(a.position) < tolerance:
            return False
    return True


@nb.njit(**JIT)
def _fraction_lost(reference: float, equity: float) -> float:
    """Loss from ``reference`` to ``equity`` as a fraction of it (1 once equity is gone)."""
    if reference <= 0.0:
        return 1.0 if equity < reference else 0.0
    return max(0.0, (reference - equity) / reference)


@nb.njit(**JIT_INLINE)
def evaluate(
    L: Record,
    s: Record,
    a: Record,
    A: NDArray[np.void],
    t: float,
    account_known: bool,
    data_age: float,
    equity_high: float,
    rejects: float,
    counts: NDArray[np.int64],
    trans: NDArray[np.void],
    i: int,
    untrusted: int,
) -> None:
    """Update the measures of account ``i`` at ``t`` and its mode (transitions into ``trans``).

    ``data_age`` is the age of the market data (s; NaN when unknown); ``equity_high`` and
    ``rejects`` are the window's (:func:`~agents.deploy.risk.window.window_stats`);
    ``untrusted`` is the guard's reason when the account's own orders are not to be used (else
    0). An unknown account or data age, or untrusted orders, halt once they have lasted
    ``halt_stale_data_seconds``."""
    halt = 0
    reduce = 0
    if account_known and math.isfinite(data_age) and untrusted == 0:
        s.unknown_since = np.nan
    elif not math.isfinite(s.unknown_since):
        s.unknown_since = t
    if account_known:
        equity = a.equity
        if not s.peak_equity >= equity:
            s.peak_equity = equity
        s.drawdown = _fraction_lost(s.peak_equity, equity)
        s.window_loss = _fraction_lost(max(equity_high, equity), equity)
        mm = a.maintenance_margin
        s.margin_coverage = a.margin_equity / mm if mm > 0.0 else np.inf
        if s.margin_coverage < L.halt_margin_coverage:
            halt = _MARGIN
        elif s.drawdown >= L.halt_drawdown_fraction:
            halt = _DRAWDOWN
        elif s.window_loss >= L.halt_window_loss_fraction:
            halt = _WINDOW_LOSS
        if s.margin_coverage < L.reducing_margin_coverage:
            reduce = _MARGIN
        elif s.drawdown >= L.reducing_drawdown_fraction:
            reduce = _DRAWDOWN
        elif s.window_loss >= L.reducing_window_loss_fraction:
            reduce = _WINDOW_LOSS
    if reduce == 0:
        reduce = untrusted
    if halt == 0:
        if rejects >= L.halt_rejects_per_window:
            halt = _REJECTS
        elif data_age > L.halt_stale_data_seconds:
            halt = _STALE
        elif t - s.unknown_since > L.halt_stale_data_seconds:
            unknown = _STALE if account_known else _UNKNOWN
            halt = untrusted if untrusted != 0 else unknown

    mode = s.mode
    if halt != 0 and mode != HALTED:
        record_transition(trans, s, counts, i, t, mode, HALTED, halt)
        s.mode = HALTED
        if L.flatten_on_halt:
            s.flattening = True
            record_transition(trans, s, counts, i, t, HALTED, HALTED, _FLATTEN)
    elif mode == ACTIVE and reduce != 0:
        record_transition(trans, s, counts, i, t, ACTIVE, REDUCING, reduce)
        s.mode = REDUCING
        s.reducing_until = t + L.reducing_hold_seconds
    elif mode == REDUCING:
        if reduce != 0:
            s.reducing_until = t + L.reducing_hold_seconds
        elif t >= s.reducing_until:
            record_transition(trans, s, counts, i, t, REDUCING, ACTIVE, _RECOVERED)
            s.mode = ACTIVE
    if s.mode == HALTED and s.flattening and all_flat(A, max(L.venue_min_order_size, 1e-12)):
        s.flattening = False
        record_transition(trans, s, counts, i, t, HALTED, HALTED, _FLATTENED)
