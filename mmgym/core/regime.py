"""Volatility regime: a continuous-time Markov chain (calm, volatile, stressed) sampled per tick."""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from numpy.typing import NDArray

from mmgym.core.rng import uniform


@nb.njit(cache=True, error_model="numpy", inline="always")
def sample_from_cdf(rng: NDArray[np.uint64], i: int, cdf: NDArray[np.float64]) -> int:
    """Index drawn from a cumulative distribution (last entry 1)."""
    u = uniform(rng, i)
    n = cdf.shape[0]
    for j in range(n - 1):
        if u < cdf[j]:
            return j
    return n - 1


@nb.njit(cache=True, error_model="numpy", inline="always")
def next_regime(
    rng: NDArray[np.uint64], i: int, regime: int, transition_cdf: NDArray[np.float64]
) -> int:
    """Regime after one tick, from the exact one-tick transition matrix exp(Q dt)."""
    return sample_from_cdf(rng, i, transition_cdf[regime])


@nb.njit(cache=True, error_model="numpy", inline="always")
def next_regime_scaled(
    rng: NDArray[np.uint64],
    i: int,
    regime: int,
    transition_cdf: NDArray[np.float64],
    rate_per_tick: NDArray[np.float64],
    multiplier: float,
) -> int:
    """Regime after one tick when the rates into more stressed regimes (``j > regime``) are
    multiplied by ``multiplier``; one uniform whatever the multiplier.

    At ``multiplier == 1`` this is :func:`next_regime` (the same uniform, the same result, bit
    for bit). Otherwise the row's scaled rates ``m_j q_j dt`` are held over the tick and the
    chain leaves with probability ``1 - exp(-sum_j m_j q_j dt)``, to ``j`` in proportion to its
    rate (the first jump; a second jump within the tick is ``O((q dt)^2)`` and neglected).
    """
    if multiplier == 1.0:
        return sample_from_cdf(rng, i, transition_cdf[regime])
    u = uniform(rng, i)
    n = rate_per_tick.shape[1]
    total = 0.0
    for j in range(n):
        if j != regime:
            total += rate_per_tick[regime, j] * (multiplier if j > regime else 1.0)
    leave = -math.expm1(-total)
    if u >= leave:
        return regime
    target = u / leave * total  # uniform on [0, total) given that the chain leaves
    cumulative = 0.0
    last = regime
    for j in range(n):
        if j != regime:
            rate = rate_per_tick[regime, j] * (multiplier if j > regime else 1.0)
            if rate > 0.0:
                last = j
            cumulative += rate
            if target < cumulative:
                return j
    return last
