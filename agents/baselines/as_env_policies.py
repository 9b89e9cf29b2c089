"""Policies for ``mmgym/AvellanedaStoikov-v0``: the closed forms of
:mod:`agents.baselines.closed_form` and a fixed depth.

Each reads a batch of observations ``(q, t)`` (inventory, time elapsed) and returns the depths
``(delta_bid, delta_ask)`` relative to the mid, so none needs the mid price or any state of its
own. The two strategies of the Avellaneda & Stoikov (2008) experiment, section 4, are
:class:`AvellanedaStoikovPolicy` ("inventory") and :class:`SymmetricPolicy` ("symmetric").
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from agents.baselines.checks import check_positive
from agents.baselines.closed_form import (
    F64,
    avellaneda_stoikov_depths,
    cartea_jaimungal_table,
    glft_constant,
    glft_depths,
    optimal_spread,
)


def _depth_actions(bid: F64, ask: F64, no_quote_depth: float) -> NDArray[np.float32]:
    """The action ``(delta_bid, delta_ask)``; a side without a depth (NaN) gets
    ``no_quote_depth``."""
    out = np.empty((bid.shape[0], 2), dtype=np.float32)
    out[:, 0] = np.where(np.isnan(bid), no_quote_depth, bid)
    out[:, 1] = np.where(np.isnan(ask), no_quote_depth, ask)
    return out


def _inventory(obs: NDArray[np.float32]) -> F64:
    return np.asarray(obs)[:, 0].astype(np.float64)


def _time(obs: NDArray[np.float32]) -> F64:
    return np.asarray(obs)[:, 1].astype(np.float64)


class AvellanedaStoikovPolicy:
    """The "inventory" strategy of AS (2008): the optimal spread centred on the reservation price.

    ``gamma``: risk aversion; ``sigma``: volatility of the mid; ``k``: decay of the fill
    intensity; ``T``: horizon (the depths use ``tau = T - t``).
    """

    def __init__(self, gamma: float, sigma: float, k: float, T: float) -> None:
        check_positive(gamma=gamma, sigma=sigma, k=k, T=T)
        self.gamma = float(gamma)
        self.sigma = float(sigma)
        self.k = float(k)
        self.T = float(T)

    def act(self, obs: NDArray[np.float32]) -> NDArray[np.float32]:
        """Depths ``(delta_bid, delta_ask)`` for a batch of observations ``(q, t)``."""
        tau = self.T - _time(obs)
        bid, ask = avellaneda_stoikov_depths(_inventory(obs), tau, self.gamma, self.sigma, self.k)
        return _depth_actions(bid, ask, 0.0)

    def reset(self, mask: NDArray[np.bool_] | None = None) -> None:
        """Stateless: nothing to clear."""


class SymmetricPolicy(AvellanedaStoikovPolicy):
    """The "symmetric" benchmark of AS (2008): the same spread, centred on the mid."""

    def act(self, obs: NDArray[np.float32]) -> NDArray[np.float32]:
        """Depths ``(spread/2, spread/2)`` for a batch of observations ``(q, t)``."""
        half = 0.5 * optimal_spread(self.gamma, self.sigma, self.T - _time(obs), self.k)
        return _depth_actions(half, half, 0.0)


class GLFTPolicy:
    """GLFT (2013) asymptotic depths for observations ``(q, t)``; they do not depend on ``t``.

    ``gamma``: risk aversion (per unit of wealth); ``sigma``: volatility of the mid (price per
    sqrt(time)); ``A``, ``k``: fill intensity ``A exp(-k delta)``.
    """

    def __init__(self, gamma: float, sigma: float, A: float, k: float) -> None:
        self.c = glft_constant(gamma, sigma, A, k)
        self.gamma, self.sigma, self.A, self.k = float(gamma), float(sigma), float(A), float(k)

    def act(self, obs: NDArray[np.float32]) -> NDArray[np.float32]:
        """Depths ``(delta_bid, delta_ask)`` for a batch of observations ``(q, t)``."""
        bid, ask = glft_depths(_inventory(obs), self.gamma, self.sigma, self.A, self.k)
        return _depth_actions(bid, ask, 0.0)

    def reset(self, mask: NDArray[np.bool_] | None = None) -> None:
        """Stateless: nothing to clear."""


class CarteaJaimungalPolicy:
    """The exact Cartea-Jaimungal-Penalva (2015, ch. 10) strategy for observations ``(q, t)``.

    ``phi``: running inventory penalty; ``alpha``: terminal penalty; ``A``, ``k``: fill
    intensity; ``T``: horizon; ``Q``: inventory limit; ``num_steps``: time grid of the table
    (depths are interpolated linearly between its points, exact on them: choose a multiple of
    the env's ``T / dt``). A side that must not be quoted (``q = Q`` for the bid, ``q = -Q`` for
    the ask) gets ``no_quote_depth``, which the env clips to its ``max_depth``; its fill
    probability ``A exp(-k max_depth) dt`` is then what remains of that side, so give the env a
    ``max_depth`` large enough to make it negligible.
    """

    def __init__(
        self,
        phi: float,
        alpha: float,
        A: float,
        k: float,
        T: float,
        Q: int,
        num_steps: int = 2000,
        no_quote_depth: float = 1e3,
    ) -> None:
        self.table = cartea_jaimungal_table(
            float(phi), float(alpha), float(A), float(k), float(T), int(Q), int(num_steps)
        )
        self.no_quote_depth = float(no_quote_depth)

    def act(self, obs: NDArray[np.float32]) -> NDArray[np.float32]:
        """Depths ``(delta_bid, delta_ask)`` for a batch of observations ``(q, t)``."""
        bid, ask = self.table.depths(_time(obs), _inventory(obs))
        return _depth_actions(bid, ask, self.no_quote_depth)

    def reset(self, mask: NDArray[np.bool_] | None = None) -> None:
        """Stateless: nothing to clear."""


class FixedDepthPolicy:
    """Quote ``depth`` on both sides whatever the state."""

    def __init__(self, depth: float) -> None:
        self.depth = float(depth)

    def act(self, obs: NDArray[np.float32]) -> NDArray[np.float32]:
        """Depths ``(depth, depth)`` for a batch of observations."""
        return np.full((np.asarray(obs).shape[0], 2), self.depth, dtype=np.float32)

    def reset(self, mask: NDArray[np.bool_] | None = None) -> None:
        """Stateless: nothing to clear."""
