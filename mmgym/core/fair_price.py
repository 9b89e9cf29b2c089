"""Fair (index) price: regime-switching diffusion, compound-Poisson jumps and an informed drift.

Per tick, ``log S += signal dt + sigma_r sqrt(dt) Z - sigma_r^2 dt / 2 + J``, where ``J`` is a jump
with probability ``rate_r dt`` (exponential size, downward with probability ``jump_down_prob``)
and ``signal`` is a latent Ornstein-Uhlenbeck drift. Informed takers trade on the sign of
``signal``, so their aggression precedes the price moves it causes (adverse selection).
"""

from __future__ import annotations

import numba as nb
import numpy as np
from numpy.typing import NDArray

from mmgym.core.records import Record
from mmgym.core.rng import exponential, standard_normal, uniform


@nb.njit(cache=True, inline="always")
def step_fair_price(rng: NDArray[np.uint64], i: int, s: Record, P: Record, r: int) -> float:
    """Advance the log fair price and the latent drift by one tick; return the jump (log)."""
    jump = 0.0
    if uniform(rng, i) < P.jump_prob[r]:
        size = exponential(rng, i) * P.jump_mean[r]
        jump = -size if uniform(rng, i) < P.jump_down_prob else size
    s.log_fair += (
        s.signal * P.dt
        + P.sigma_sqrt_dt[r] * standard_normal(rng, i)
        + P.drift_correction[r]
        + jump
    )
    s.signal = s.signal * P.signal_decay + P.signal_std[r] * P.signal_noise * standard_normal(
        rng, i
    )
    return jump
