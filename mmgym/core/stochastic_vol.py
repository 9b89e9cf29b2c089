"""Multi-timescale stochastic volatility: a market-wide multiplier of the diffusive shocks.

``log v = sum_j x_j - V`` with ``V = sum_j s_j^2``, where each ``x_j`` is a stationary
Ornstein-Uhlenbeck process with time scale ``tau_j`` and stationary std ``s_j``
(``vol_timescales``, ``vol_of_vol``). ``x = sum_j x_j`` is Gaussian with variance ``V``, so
``E[v^2] = exp(-2V) E[exp(2x)] = 1``: the regime's ``sigma`` stays the mean variance of the
fair price. A superposition of OU processes with time scales spread over decades has an
autocovariance ``C(h) = sum_j s_j^2 exp(-h / tau_j)`` that decays like a power law over the
covered range, so volatility clusters at every horizon from a minute to a day, beyond what the
regime's persistence gives.

The components advance once every ``vol_update_ticks`` ticks (one second of market time) with
the exact OU step ``x <- a x + s sqrt(1 - a^2) Z``, ``a = exp(-update / tau)``; ``v`` is
constant in between. Two standard normal pairs are drawn per update from the market stream
whatever the parameters (all ``vol_of_vol`` zero: ``v = 1``, the draws still happen), so runs
that differ only in these parameters share their random numbers. Every perp of an env takes the
same ``v``: volatility co-moves across assets.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from numpy.typing import NDArray

from mmgym.core.records import Record
from mmgym.core.rng import standard_normal_pair

VOL_COMPONENTS = 3
"""Log-volatility components (fast, medium, slow)."""


@nb.njit(cache=True, error_model="numpy", inline="always")
def _set_vol(e: Record, P: Record) -> None:
    x = 0.0
    for j in range(VOL_COMPONENTS):
        x += e.vol_log[j]
    e.vol = math.exp(x - P.vol_log_variance)


@nb.njit(cache=True, error_model="numpy", inline="always")
def _normals(rng: NDArray[np.uint64], i: int) -> tuple[float, float, float]:
    """Three standard normals from two pairs (a fixed count of draws)."""
    z0, z1 = standard_normal_pair(rng, i)
    z2, _ = standard_normal_pair(rng, i)
    return z0, z1, z2


@nb.njit(cache=True, error_model="numpy", inline="always")
def reset_vol(rng: NDArray[np.uint64], i: int, e: Record, P: Record) -> None:
    """Draw every component from its stationary law N(0, s_j^2)."""
    z = _normals(rng, i)
    for j in range(VOL_COMPONENTS):
        e.vol_log[j] = P.vol_of_vol_std[j] * z[j]
    _set_vol(e, P)


@nb.njit(cache=True, error_model="numpy", inline="always")
def step_vol(rng: NDArray[np.uint64], i: int, e: Record, P: Record) -> None:
    """Advance every component by one update interval (exact OU step) and set ``e.vol``."""
    z = _normals(rng, i)
    for j in range(VOL_COMPONENTS):
        e.vol_log[j] = e.vol_log[j] * P.vol_decay_per_update[j] + P.vol_noise_per_update[j] * z[j]
    _set_vol(e, P)


# --- closed forms shared by the parameters and the tests ------------------------------------


def log_vol_autocovariance(
    vol_of_vol: tuple[float, ...], timescales: tuple[float, ...], lag_seconds: float
) -> float:
    """``C(h) = sum_j s_j^2 exp(-h / tau_j)``: autocovariance of ``log v`` at lag ``h`` (s)."""
    return float(
        sum(
            s * s * math.exp(-lag_seconds / tau)
            for s, tau in zip(vol_of_vol, timescales, strict=True)
        )
    )


def squared_vol_acf(
    vol_of_vol: tuple[float, ...], timescales: tuple[float, ...], lag_seconds: float
) -> float:
    """Autocorrelation of ``v^2`` at lag ``h``: ``(exp(4 C(h)) - 1) / (exp(4 V) - 1)``."""
    v = log_vol_autocovariance(vol_of_vol, timescales, 0.0)
    if v == 0.0:
        return 0.0
    return math.expm1(4.0 * log_vol_autocovariance(vol_of_vol, timescales, lag_seconds)) / (
        math.expm1(4.0 * v)
    )


def squared_return_acf(
    vol_of_vol: tuple[float, ...], timescales: tuple[float, ...], lag_seconds: float
) -> float:
    """Autocorrelation of squared returns ``r = v sigma sqrt(dt) Z`` (``v`` constant over each
    return, ``Z`` standard normal) at lag ``h > 0``: ``(exp(4 C(h)) - 1) / (3 exp(4 V) - 1)``."""
    v = log_vol_autocovariance(vol_of_vol, timescales, 0.0)
    c = log_vol_autocovariance(vol_of_vol, timescales, lag_seconds)
    return math.expm1(4.0 * c) / (3.0 * math.exp(4.0 * v) - 1.0)


def abs_return_acf_model(
    vol_of_vol: tuple[float, ...], timescales: tuple[float, ...], lag_seconds: float
) -> float:
    """Autocorrelation of ``|r|`` for ``r = v sigma sqrt(dt) Z`` at lag ``h > 0``:
    ``(2/pi) exp(-V) (exp(C(h)) - 1) / (1 - (2/pi) exp(-V))``."""
    v = log_vol_autocovariance(vol_of_vol, timescales, 0.0)
    c = log_vol_autocovariance(vol_of_vol, timescales, lag_seconds)
    k = 2.0 / math.pi * math.exp(-v)
    return k * math.expm1(c) / (1.0 - k)
