"""The rolling window of the kill switch: highest equity, venue rejects and the market index's
high and low over the last ``rolling_window_seconds``, in a fixed ring of time buckets.

Each bucket keeps the maxima, minima and sums of its samples, so memory and cost do not depend
on how often the limiter is called. The window spans the current bucket and the
``WINDOW_BUCKETS`` before it: at least ``rolling_window_seconds``, never less, which can only
make the loss, the reject count and the move larger (the conservative side).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from numpy.typing import NDArray

from agents.deploy.risk.jit import JIT, JIT_INLINE
from agents.deploy.risk.layout import (
    WINDOW_BUCKETS,
    WINDOW_EQUITY_HIGH,
    WINDOW_ID,
    WINDOW_INDEX_HIGH,
    WINDOW_INDEX_LOW,
    WINDOW_REJECTS,
    WINDOW_RING,
)
from mmgym.core.records import Record

_EMPTY = -(2.0**62)


@nb.njit(**JIT)
def clear_window(s: Record) -> None:
    """Forget every sample."""
    s.window_cached_bucket = -(2**62)
    for j in range(WINDOW_RING):
        _clear_bucket(s.window[j], _EMPTY)


@nb.njit(**JIT, inline="always")
def _clear_bucket(row: NDArray[np.float64], bucket: float) -> None:
    row[WINDOW_ID] = bucket
    row[WINDOW_EQUITY_HIGH] = -np.inf
    row[WINDOW_REJECTS] = 0.0
    row[WINDOW_INDEX_HIGH] = -np.inf
    row[WINDOW_INDEX_LOW] = np.inf


@nb.njit(**JIT, inline="always")
def _bucket(L: Record, t: float) -> int:
    return math.floor(t * WINDOW_BUCKETS / L.rolling_window_seconds)


@nb.njit(**JIT)
def window_push(
    s: Record, L: Record, t: float, equity: float, rejects: float, index: float
) -> None:
    """Add one decision's sample (NaN equity or index: not known, skipped)."""
    b = _bucket(L, t)
    row = s.window[b % WINDOW_RING]
    if row[WINDOW_ID] != b:
        _clear_bucket(row, b)
    if math.isfinite(equity):
        row[WINDOW_EQUITY_HIGH] = max(row[WINDOW_EQUITY_HIGH], equity)
    if rejects > 0.0 and math.isfinite(rejects):
        row[WINDOW_REJECTS] += rejects
    if math.isfinite(index):
        row[WINDOW_INDEX_HIGH] = max(row[WINDOW_INDEX_HIGH], index)
        row[WINDOW_INDEX_LOW] = min(row[WINDOW_INDEX_LOW], index)


@nb.njit(**JIT_INLINE)
def window_stats(s: Record, L: Record, t: float) -> tuple[float, float, float, float]:
    """(highest equity, rejects, index high, index low) within the window ending at ``t``.

    The buckets before the current one only change when the current bucket does, so their
    aggregate is cached and the ring is scanned once per bucket, not once per decision."""
    b = _bucket(L, t)
    c = s.window_cached
    if s.window_cached_bucket != b:
        c[0] = -np.inf
        c[1] = 0.0
        c[2] = -np.inf
        c[3] = np.inf
        for j in range(WINDOW_RING):
            row = s.window[j]
            if b - WINDOW_BUCKETS <= row[WINDOW_ID] < b:
                c[0] = max(c[0], row[WINDOW_EQUITY_HIGH])
                c[1] += row[WINDOW_REJECTS]
                c[2] = max(c[2], row[WINDOW_INDEX_HIGH])
                c[3] = min(c[3], row[WINDOW_INDEX_LOW])
        s.window_cached_bucket = b
    row = s.window[b % WINDOW_RING]
    if row[WINDOW_ID] != b:
        return c[0], c[1], c[2], c[3]
    return (
        max(c[0], row[WINDOW_EQUITY_HIGH]),
        c[1] + row[WINDOW_REJECTS],
        max(c[2], row[WINDOW_INDEX_HIGH]),
        min(c[3], row[WINDOW_INDEX_LOW]),
    )


@nb.njit(**JIT)
def window_restore(
    s: Record,
    L: Record,
    times: NDArray[np.float64],
    equities: NDArray[np.float64],
    rejects: NDArray[np.float64],
    indices: NDArray[np.float64],
) -> None:
    """Push earlier decisions' samples (times in order, the limiter's clock; NaN equity or
    index: not known) into the window, as their decisions did; the cached aggregate is
    dropped."""
    for j in range(times.shape[0]):
        window_push(s, L, times[j], equities[j], rejects[j], indices[j])
    s.window_cached_bucket = -(2**62)
