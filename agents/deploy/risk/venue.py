"""What the RiskLimiter needs to know about the venue: price grid, fees, margin rules."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from mmgym.core.params import MarketParams, maintenance_tiers


@dataclass(frozen=True)
class VenueSpec:
    """The venue's rules the limiter prices orders and margin with.

    ``margin_tiers`` rows are ``(notional lower bound, maintenance rate, deduction)``: the
    maintenance margin of a position of notional N is ``N x rate - deduction`` of its tier (the
    simulator's rule, :func:`mmgym.core.params.maintenance_tiers`).
    """

    tick_size: float
    """Price per tick (quote currency per base unit)."""
    maker_fee: float
    """Fee rate on maker fills (a rebate, when negative, is ignored: the worst case)."""
    min_order_size: float
    """The venue's smallest order (base units): a position under it counts as flat."""
    margin_tiers: tuple[tuple[float, float, float], ...]
    """Maintenance-margin tiers, rows (lower bound, rate, deduction), bounds rising from 0."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.tick_size) and self.tick_size > 0):
            raise ValueError(f"venue tick_size must be a finite number > 0, got {self.tick_size}")
        if not math.isfinite(self.maker_fee):
            raise ValueError(f"venue maker_fee must be finite, got {self.maker_fee}")
        if not (math.isfinite(self.min_order_size) and self.min_order_size >= 0):
            raise ValueError(f"venue min_order_size must be >= 0, got {self.min_order_size}")
        tiers = self.tiers_array()
        if (
            tiers.ndim != 2
            or tiers.shape[0] < 1
            or tiers.shape[1] != 3
            or tiers[0, 0] != 0.0
            or not np.isfinite(tiers).all()
            or (np.diff(tiers[:, 0]) <= 0).any()
            or (tiers[:, 1] <= 0).any()
        ):
            raise ValueError(
                "venue margin_tiers must be rows (lower bound, rate > 0, deduction) with bounds "
                f"rising from 0, got {self.margin_tiers!r}"
            )

    def tiers_array(self) -> NDArray[np.float64]:
        """The margin tiers as a (tiers, 3) float64 array."""
        return np.asarray(self.margin_tiers, dtype=np.float64).reshape(-1, 3)

    @classmethod
    def from_market(cls, params: MarketParams) -> VenueSpec:
        """The simulated venue of ``params``."""
        tiers = tuple(tuple(float(x) for x in row) for row in maintenance_tiers(params))
        return cls(
            tick_size=params.tick_size,
            maker_fee=params.maker_fee,
            min_order_size=params.min_quote_size,
            margin_tiers=tiers,  # type: ignore[arg-type]
        )
