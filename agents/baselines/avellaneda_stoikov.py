"""Closed-form quotes of Avellaneda & Stoikov (2008) and the two strategies of their experiment.

Reference: M. Avellaneda and S. Stoikov, "High-frequency trading in a limit order book",
Quantitative Finance 8(3), 217-224, 2008, equations (29)-(30) and section 4.

The policies read observations ``(q, t)`` of ``mmgym/AvellanedaStoikov-v0`` (inventory, time
elapsed) and return depths ``(delta_b, delta_a)`` relative to the mid, so they need neither the
mid price nor any state of their own.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray


def reservation_price(
    s: ArrayLike, q: ArrayLike, gamma: float, sigma: float, tau: ArrayLike
) -> NDArray[np.float64]:
    """Indifference price ``r = s - q gamma sigma^2 tau`` (AS 2008, eq. 29), ``tau = T - t``."""
    return np.asarray(s, dtype=np.float64) - np.asarray(q, dtype=np.float64) * gamma * sigma**2 * (
        np.asarray(tau, dtype=np.float64)
    )


def optimal_spread(gamma: float, sigma: float, tau: ArrayLike, k: float) -> NDArray[np.float64]:
    """Total bid-ask spread ``gamma sigma^2 tau + (2/gamma) ln(1 + gamma/k)`` (AS 2008, eq. 30)."""
    _check_positive(gamma=gamma, sigma=sigma, k=k)
    return gamma * sigma**2 * np.asarray(tau, dtype=np.float64) + (2.0 / gamma) * math.log1p(
        gamma / k
    )


def _check_positive(**values: float) -> None:
    for name, value in values.items():
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be > 0, got {value!r}")


class AvellanedaStoikovPolicy:
    """The "inventory" strategy of AS (2008): the optimal spread centred on the reservation price.

    Depths relative to the mid: ``delta_b = q gamma sigma^2 tau + spread/2`` and
    ``delta_a = -q gamma sigma^2 tau + spread/2``, with ``tau = T - t``.
    """

    def __init__(self, gamma: float, sigma: float, k: float, T: float) -> None:
        _check_positive(gamma=gamma, sigma=sigma, k=k, T=T)
        self.gamma = float(gamma)
        self.sigma = float(sigma)
        self.k = float(k)
        self.T = float(T)

    def _tau_half_spread(
        self, obs: NDArray[np.float32]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        obs = np.asarray(obs)
        tau = self.T - obs[:, 1].astype(np.float64)
        return tau, 0.5 * optimal_spread(self.gamma, self.sigma, tau, self.k)

    def act(self, obs: NDArray[np.float32]) -> NDArray[np.float32]:
        """Depths ``(delta_b, delta_a)`` for a batch of observations ``(q, t)``."""
        tau, half = self._tau_half_spread(obs)
        skew = np.asarray(obs)[:, 0].astype(np.float64) * self.gamma * self.sigma**2 * tau
        out = np.empty((tau.shape[0], 2), dtype=np.float32)
        out[:, 0] = skew + half
        out[:, 1] = half - skew
        return out

    def reset(self, mask: NDArray[np.bool_] | None = None) -> None:
        """Stateless: nothing to clear."""


class SymmetricPolicy(AvellanedaStoikovPolicy):
    """The "symmetric" benchmark of AS (2008): the same spread, centred on the mid."""

    def act(self, obs: NDArray[np.float32]) -> NDArray[np.float32]:
        """Depths ``(spread/2, spread/2)`` for a batch of observations ``(q, t)``."""
        _, half = self._tau_half_spread(obs)
        out = np.empty((half.shape[0], 2), dtype=np.float32)
        out[:, 0] = half
        out[:, 1] = half
        return out
