"""Rolling estimates of the perps' mark-return volatility and correlation (EWMA), and the
market-wide index the tail override watches.

The covariance of log mark returns per second is an exponentially weighted average with a
half-life of ``volatility_halflife_seconds`` over whatever the time between decisions is, with
its start-up bias divided out (the weight of the average so far, as in Adam's moment
estimates). A decision with any unknown mark breaks the chain: the next known one starts anew,
with no return across the gap.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from numpy.typing import NDArray

from agents.deploy.risk.jit import JIT, JIT_INLINE
from mmgym.core.params import SECONDS_PER_YEAR
from mmgym.core.records import Record

_LN2 = math.log(2.0)


@nb.njit(**JIT)
def clear_estimates(s: Record) -> None:
    """Forget every observation."""
    s.estimate_time = np.nan
    s.estimate_count = 0
    s.estimate_weight = 0.0
    s.estimate_dt = np.nan
    s.estimate_alpha = 0.0
    k = s.log_mark.shape[0]
    for j in range(k):
        s.log_mark[j] = np.nan
        s.log_return[j] = 0.0
        s.volatility[j] = np.nan
        for m in range(k):
            s.covariance[j, m] = 0.0


@nb.njit(**JIT, inline="always")
def mark_known(a: Record) -> bool:
    """A perp's mark is a finite price > 0 and not flagged stale."""
    return math.isfinite(a.mark) and a.mark > 0.0 and not a.stale


@nb.njit(**JIT_INLINE)
def update_estimates(s: Record, A: NDArray[np.void], t: float, halflife: float) -> float:
    """Fold the marks at time ``t`` into the estimates; return the market index, the
    equal-weighted log price of the perps (NaN when a mark is unknown)."""
    k = A.shape[0]
    for j in range(k):
        if not mark_known(A[j]):
            s.estimate_time = np.nan
            return np.nan
    index = 0.0
    for j in range(k):
        log_mark = math.log(A[j].mark)
        s.log_return[j] = log_mark - s.log_mark[j]
        s.log_mark[j] = log_mark
        index += log_mark
    if math.isfinite(s.estimate_time) and t > s.estimate_time:
        dt = t - s.estimate_time
        if dt != s.estimate_dt:  # decisions are usually evenly spaced: reuse the weight
            s.estimate_dt = dt
            s.estimate_alpha = -math.expm1(-dt * _LN2 / halflife)
        alpha = s.estimate_alpha
        for j in range(k):
            for m in range(j + 1):
                value = (1.0 - alpha) * s.covariance[j, m] + alpha * (
                    s.log_return[j] * s.log_return[m] / dt
                )
                s.covariance[j, m] = value
                s.covariance[m, j] = value
        s.estimate_weight = (1.0 - alpha) * s.estimate_weight + alpha
        s.estimate_count += 1
    s.estimate_time = t
    return index / k


@nb.njit(**JIT, inline="always")
def annual_volatility(s: Record, k: int) -> float:
    """Annualised volatility of perp ``k``'s mark (NaN before the first return)."""
    if s.estimate_weight <= 0.0:
        return np.nan
    return math.sqrt(max(s.covariance[k, k], 0.0) / s.estimate_weight * SECONDS_PER_YEAR)


@nb.njit(**JIT)
def mean_correlation(s: Record) -> float:
    """Mean pairwise correlation of the perps' mark returns (0 with one perp or no moves)."""
    k = s.covariance.shape[0]
    total = 0.0
    pairs = 0
    for j in range(k):
        for m in range(j):
            scale = s.covariance[j, j] * s.covariance[m, m]
            if scale > 0.0:
                total += s.covariance[j, m] / math.sqrt(scale)
                pairs += 1
    return total / pairs if pairs > 0 else 0.0
