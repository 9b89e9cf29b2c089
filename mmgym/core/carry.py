"""Leverage demand: a per-perp premium state that moves where background makers quote.

The crowd's demand for leverage is a premium ``c`` (fraction of price): background makers quote
around ``fair x (1 + c) + impact``, so the book's premium index, the funding it pays, the basis
and the mark all follow ``c``. At every premium sample (every ``Delta = premium_sample_seconds``)

    c <- m_r + (c - m_r) d + s_r sqrt(1 - d^2) Z + beta log(S / S_prev) + J,

with ``d = exp(-Delta / carry_timescale)``, ``m_r`` and ``s_r`` the regime's long-run mean and
stationary std of the Ornstein-Uhlenbeck part, ``S`` the fair price (rallies raise the demand for
leverage, drawdowns push it negative) and ``J`` a squeeze: with probability
``p_r = 1 - exp(-rate_r Delta)`` an exponential jump up of mean ``carry_squeeze_size``.

Within one regime, with i.i.d. log returns of mean ``mu`` and variance ``v`` per sample,
``c - E[c]`` is an AR(1) with coefficient ``d`` and i.i.d. innovations, so (:func:`stationary_law`)

    E[c] = m + (beta mu + p b) / (1 - d),
    Var[c] = s^2 + (beta^2 v + p b^2 (2 - p)) / (1 - d^2),   corr(c_t, c_{t+k}) = d^k.

At reset ``c`` is drawn from the normal law with that mean and variance (the regime's), so
episodes start in the premium's stationary state.

Paired draws: two keyed uniforms per perp per sample (one normal by inversion, one for the
squeeze's arrival and size: ``J = b log(p / u)`` when ``u < p``) and one at reset, keyed by the
episode (a key derived from the market stream's state at reset, without advancing it), the
sample's index and the perp (:func:`carry_uniform`). They never draw
from the market stream, so every other draw is where it would be without the premium, and all
``carry_*`` at 0 leave the market exactly as it was without the mechanism.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from numpy.typing import NDArray

from mmgym.core.records import Record
from mmgym.core.rng import keyed_u64, keyed_uniform_open, normal_quantile

_CARRY_SALT = np.uint64(0x6A09E667F3BCC909)
"""Separates the premium's keys from the crowd's openings, which share the episode's key."""
_ASSET_BITS = np.uint64(4)
_DRAW_BITS = np.uint64(1)


@nb.njit(cache=True, error_model="numpy", inline="always")
def episode_key(rng: NDArray[np.uint64], i: int) -> np.uint64:
    """The premium's key for the episode that starts now: derived from the state of env ``i``'s
    market stream without advancing it (that state does not depend on the agent)."""
    return keyed_u64(rng[i] ^ _CARRY_SALT, np.uint64(0))


@nb.njit(cache=True, error_model="numpy", inline="always")
def carry_uniform(key: np.uint64, sample: int, asset: int, draw: int) -> float:
    """Uniform on (0, 1): draw ``draw`` (0 or 1) of perp ``asset`` at premium sample ``sample``
    (0: the reset) of the episode whose premium key is ``key``."""
    counter = (((np.uint64(sample) << _DRAW_BITS) | np.uint64(draw)) << _ASSET_BITS) | np.uint64(
        asset
    )
    return keyed_uniform_open(key, counter)


@nb.njit(cache=True, error_model="numpy", inline="always")
def carry_ticks(a: Record) -> float:
    """The premium as a shift of the makers' anchor, in ticks."""
    return a.carry * a.fair_ticks


@nb.njit(cache=True, error_model="numpy")
def step_carry(a: Record, P: Record, r: int, key: np.uint64, sample: int, k: int) -> None:
    """Advance perp ``k``'s premium by one premium sample (``sample`` >= 1) in regime ``r``."""
    z = normal_quantile(carry_uniform(key, sample, k, 0))
    u = carry_uniform(key, sample, k, 1)
    m = P.carry_mean[r]
    d = P.carry_decay_per_sample
    c = m + (a.carry - m) * d + P.carry_noise_per_sample[r] * z
    c += P.carry_return_beta * math.log(a.fair_price / a.carry_ref_price)
    p = P.carry_squeeze_prob_per_sample[r]
    if u < p:
        c += P.carry_squeeze_size * math.log(p / u)
    a.carry = c
    a.carry_ref_price = a.fair_price


@nb.njit(cache=True, error_model="numpy")
def reset_carry(
    rng: NDArray[np.uint64], i: int, e: Record, A: NDArray[np.void], P: Record, r: int
) -> None:
    """Key the episode's premium draws and draw every perp's premium from its stationary law in
    regime ``r`` (normal, with the stationary mean and variance), before the book is laid out."""
    e.carry_key = episode_key(rng, i)
    for k in range(A.shape[0]):
        a = A[k]
        z = normal_quantile(carry_uniform(e.carry_key, 0, k, 0))
        a.carry = P.carry_start_mean[r] + P.carry_start_std[r] * z
        a.carry_ref_price = P.initial_price_ticks * P.tick_size


def stationary_law(
    mean: float,
    std: float,
    decay: float,
    beta: float,
    return_mean: float,
    return_var: float,
    squeeze_prob: float,
    squeeze_size: float,
) -> tuple[float, float]:
    """Stationary mean and std of the premium in one regime (module docstring), per-sample
    quantities: OU mean and std, decay ``d``, return beta, log-return mean and variance per
    sample, squeeze probability per sample and mean size."""
    p, b = squeeze_prob, squeeze_size
    m = mean + (beta * return_mean + p * b) / (1.0 - decay)
    var = std * std + (beta * beta * return_var + p * b * b * (2.0 - p)) / (1.0 - decay * decay)
    return m, math.sqrt(var)
