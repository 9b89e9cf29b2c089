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

from agents.deploy.risk.layout import WINDOW_BUCKETS, WINDOW_RING
from mmgym.core.records import Record

_EMPTY = -(2**62)


@nb.njit(cache=True, error_model="numpy")
def clear_window(s: Record) -> None:
    """Forget every sample."""
    s.window_cached_bucket = _EMPTY
    for j in range(WINDOW_RING):
        s.window_id[j] = _EMPTY
        s.window_equity_high[j] = -np.inf
        s.window_rejects[j] = 0.0
        s.window_index_high[j] = -np.inf
        s.window_index_low[j] = np.inf


@nb.njit(cache=True, error_model="numpy", inline="always")
def _bucket(L: Record, t: float) -> int:
    return math.floor(t * WINDOW_BUCKETS / L.rolling_window_seconds)


@nb.njit(cache=True, error_model="numpy")
def window_push(
    s: Record, L: Record, t: float, equity: float, rejects: float, index: float
) -> None:
    """Add one decision's sample (NaN equity or index: not known, skipped)."""
    b = _bucket(L, t)
    slot = b % WINDOW_RING
    if s.window_id[slot] != b:
        s.window_id[slot] = b
        s.window_equity_high[slot] = -np.inf
        s.window_rejects[slot] = 0.0
        s.window_index_high[slot] = -np.inf
        s.window_index_low[slot] = np.inf
    if math.isfinite(equity):
        s.window_equity_high[slot] = max(s.window_equity_high[slot], equity)
    if rejects > 0.0 and math.isfinite(rejects):
        s.window_rejects[slot] += rejects
    if math.isfinite(index):
        s.window_index_high[slot] = max(s.window_index_high[slot], index)
        s.window_index_low[slot] = min(s.window_index_low[slot], index)


@nb.njit(cache=True, error_model="numpy")
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
            if b - WINDOW_BUCKETS <= s.window_id[j] < b:
                c[0] = max(c[0], s.window_equity_high[j])
                c[1] += s.window_rejects[j]
                c[2] = max(c[2], s.window_index_high[j])
                c[3] = min(c[3], s.window_index_low[j])
        s.window_cached_bucket = b
    slot = b % WINDOW_RING
    if s.window_id[slot] != b:
        return c[0], c[1], c[2], c[3]
    return (
        max(c[0], s.window_equity_high[slot]),
        c[1] + s.window_rejects[slot],
        max(c[2], s.window_index_high[slot]),
        min(c[3], s.window_index_low[slot]),
    )
