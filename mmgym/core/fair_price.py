"""Fair (index) price: regime-switching diffusion, compound-Poisson jumps and an informed drift.

Per tick, ``log S += signal dt + v sigma_r sqrt(dt) Z - v^2 sigma_r^2 dt / 2 + J``, where
``v`` is the market-wide volatility multiplier (:mod:`mmgym.core.stochastic_vol`,
``E[v^2] = 1``), ``Z`` is the asset's share of a shock correlated across assets
(equicorrelation by regime), ``J`` is a market-wide jump that every perp of the env takes in
the same tick with probability ``rate_r dt`` (exponential size, downward with probability
``jump_down_prob``) and ``signal`` is a latent Ornstein-Uhlenbeck drift whose innovations are
equicorrelated across assets by regime (``signal_correlation``: each perp's own news in calm,
market-wide news in stress) and scaled by ``v`` too (all of the fair price's continuous
variation clusters; the drift's mean variance is unchanged while ``v`` moves slowly against
``signal_timescale``). Informed takers trade on the sign of ``signal``, so their aggression
precedes the price moves it causes (adverse selection).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from numpy.typing import NDArray

from mmgym.core.records import Record
from mmgym.core.rng import exponential, uniform


@nb.njit(cache=True, error_model="numpy", inline="always")
def exp_small(x: float) -> float:
    """exp(x), by a 5-term Taylor series where |x| < 1e-3 (error < 1e-17, below float64 epsilon)."""
    if abs(x) < 1e-3:
        return 1.0 + x * (1.0 + x * (0.5 + x * (1.0 / 6.0 + x * (1.0 / 24.0))))
    return math.exp(x)


@nb.njit(cache=True, error_model="numpy", inline="always")
def draw_jump(rng: NDArray[np.uint64], i: int, P: Record, r: int) -> float:
    """This tick's market-wide jump (log size; 0 most ticks): every perp of the env takes it."""
    if uniform(rng, i) < P.jump_prob_per_tick[r]:
        size = exponential(rng, i) * P.jump_mean_log_size[r]
        return -size if uniform(rng, i) < P.jump_down_prob else size
    return 0.0


@nb.njit(cache=True, error_model="numpy", inline="always")
def step_fair_price(
    a: Record, P: Record, r: int, z_price: float, z_signal: float, jump: float, vol: float
) -> None:
    """Advance the fair price (in ticks) and the latent drift by one tick.

    ``z_price`` is this asset's (correlated) standard normal shock, ``z_signal`` its drift's
    (correlated by ``signal_correlation``),
    ``jump`` the market-wide jump of the tick, ``vol`` the volatility multiplier ``v``.
    """
    log_return = (
        a.signal * P.tick_seconds
        + vol * P.sigma_per_tick[r] * z_price
        + vol * vol * P.drift_correction_per_tick[r]
        + jump
    )
    a.fair_ticks *= exp_small(log_return)
    a.signal = (
        a.signal * P.signal_decay_per_tick
        + vol * P.signal_std_per_second[r] * P.signal_noise_per_tick * z_signal
    )
    a.fair_price = a.fair_ticks * P.tick_size
