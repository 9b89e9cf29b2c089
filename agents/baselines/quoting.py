"""Simple quoting baselines for ``mmgym/PerpMM-v0``: a fixed spread and a linear inventory skew.

Both read only each perp's inventory feature (``q / max_inventory``, the first of its block of
``ASSET_FEATURES``) and speak in ticks and base units, translated to one action block per perp
by :func:`mmgym.core.orders.encode_action`. Neither hedges.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from agents.baselines.registry import register
from mmgym.core.orders import encode_action
from mmgym.core.params import MarketParams
from mmgym.features.observation import ASSET_FEATURES, OBS_NAMES

_INVENTORY = OBS_NAMES.index("inventory")


@register("fixed_spread")
class FixedSpreadPolicy:
    """Quote ``size`` on both sides at ``half_spread_ticks`` around the mid, whatever happens."""

    def __init__(
        self, params: MarketParams, half_spread_ticks: float = 2.0, size: float = 1.0
    ) -> None:
        if half_spread_ticks < 0.5:
            raise ValueError(f"half_spread_ticks must be >= 0.5, got {half_spread_ticks}")
        if size <= 0:
            raise ValueError(f"size must be > 0, got {size}")
        self.params = params
        self.half_spread_ticks = half_spread_ticks
        self.size = size

    def skew_ticks(self, inventory_fraction: NDArray[np.float64]) -> NDArray[np.float64]:
        """Reservation-price offset in ticks (none for a fixed spread)."""
        return np.zeros_like(inventory_fraction)

    def act(self, obs: NDArray[np.float32]) -> NDArray[np.float32]:
        """Actions for a batch of PerpMM observations: one block per perp."""
        obs = np.asarray(obs)
        end = self.params.num_assets * ASSET_FEATURES
        inventory_fraction = obs[:, _INVENTORY:end:ASSET_FEATURES].astype(np.float64)
        blocks = encode_action(
            self.params,
            self.skew_ticks(inventory_fraction),
            self.half_spread_ticks,
            self.size,
            self.size,
        )
        return blocks.reshape(obs.shape[0], -1)  # (num_envs, perps, 5): one row per env

    def reset(self, mask: NDArray[np.bool_] | None = None) -> None:
        """Stateless: nothing to clear."""


@register("linear_skew")
class LinearSkewPolicy(FixedSpreadPolicy):
    """Shift both quotes against inventory: ``skew = -skew_ticks_at_limit x q / max_inventory``.

    A long book lowers its quotes (sells more readily, buys less), the practitioner's first
    inventory control and the linear approximation of the Avellaneda-Stoikov reservation price.
    """

    def __init__(
        self,
        params: MarketParams,
        half_spread_ticks: float = 2.0,
        size: float = 1.0,
        skew_ticks_at_limit: float = 6.0,
    ) -> None:
        super().__init__(params, half_spread_ticks, size)
        self.skew_ticks_at_limit = skew_ticks_at_limit

    def skew_ticks(self, inventory_fraction: NDArray[np.float64]) -> NDArray[np.float64]:
        """Offset proportional to inventory, opposite in sign."""
        return -self.skew_ticks_at_limit * inventory_fraction
