"""Taker flow: bivariate Hawkes arrivals, heavy-tailed sizes and an informed fraction.

Arrivals per tick are Poisson with the current intensities ``mu_r + e_buy`` and ``mu_r + e_sell``.
After the tick each excitation decays by ``d = exp(-beta dt)`` and jumps by ``J_self`` per event of
its own side and ``J_cross`` per event of the other, with ``J = n (1 - d) / dt``: each event has
exactly ``n_self + n_cross`` expected offspring, so the stationary rate is ``mu / (1 - n)``.
"""

from __future__ import annotations

import numba as nb
import numpy as np
from numpy.typing import NDArray

from mmgym.core.records import Record
from mmgym.core.rng import uniform, uniform_open


@nb.njit(cache=True, error_model="numpy", inline="always")
def order_size(rng: NDArray[np.uint64], i: int, P: Record) -> float:
    """Pareto order size ``size_min * U^(-1/tail)``, capped."""
    size = P.order_size_min * uniform_open(rng, i) ** (-P.order_size_inv_tail)
    return min(size, P.order_size_cap)


@nb.njit(cache=True, error_model="numpy", inline="always")
def order_side(
    rng: NDArray[np.uint64], i: int, hawkes_side: int, signal: float, informed_fraction: float
) -> int:
    """+1 buy / -1 sell: an informed order follows the sign of the latent drift."""
    if uniform(rng, i) < informed_fraction and signal != 0.0:
        return 1 if signal > 0.0 else -1
    return hawkes_side


@nb.njit(cache=True, error_model="numpy", inline="always")
def update_excitation(a: Record, P: Record, buys: int, sells: int) -> None:
    """Decay both excitations by one tick and add this tick's events."""
    d = P.excitation_decay_per_tick
    eb = (
        a.excitation_buy * d
        + P.excitation_self_per_second * buys
        + P.excitation_cross_per_second * sells
    )
    es = (
        a.excitation_sell * d
        + P.excitation_self_per_second * sells
        + P.excitation_cross_per_second * buys
    )
    a.excitation_buy = eb
    a.excitation_sell = es
