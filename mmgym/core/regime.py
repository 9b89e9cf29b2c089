"""Volatility regime: a continuous-time Markov chain (calm, volatile, stressed) sampled per tick."""

from __future__ import annotations

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
