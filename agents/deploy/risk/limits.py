"""The RiskLimiter's limits: one frozen, validated dataclass.

Sizes are in base units (contracts of the perp), notionals and equity in quote currency,
prices in quote currency per base unit, times in seconds; fractions are dimensionless. The
defaults suit mmgym's default market (price 100, ``max_inventory`` 10, ``max_quote_size`` 2,
collateral 10 000): a desk sets its own for a real instrument.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RiskLimits:
    """Every limit of the RiskLimiter (units in each field's name or docstring)."""

    # --- per order ---------------------------------------------------------------------------
    max_order_size: float = 2.0
    """Largest order (base units); larger orders are clipped."""
    max_order_notional: float = 300.0
    """Largest order notional, size x price (quote currency); larger orders are clipped."""
    min_order_size: float = 0.0
    """Smallest order that adds risk (base units); reducing orders are exempt."""
    min_order_notional: float = 0.0
    """Smallest notional of an order that adds risk (quote currency); reducing orders are
    exempt."""
    price_collar_fraction: float = 0.05
    """Largest distance of an order's price from the mark, as a fraction of the mark."""

    # --- exposure, resting orders counted as filled (worst case per side) -------------------
    max_position: float = 10.0
    """Hard limit of abs(position) per perp (base units)."""
    max_gross_notional: float = 2500.0
    """Hard limit of the sum over perps of abs(position) x mark (quote currency)."""
    max_net_notional: float = 2000.0
    """Hard limit of abs(sum over perps of position x mark) (quote currency)."""
    soft_limit_fraction: float = 0.8
    """Soft limits are this fraction of each hard limit: past one, only reducing orders."""

    # --- margin -----------------------------------------------------------------------------
    min_margin_coverage: float = 3.0
    """Orders that would bring margin coverage (margin equity / maintenance margin, worst case)
    under this are clipped; the account's liquidation is at 1."""
    reducing_margin_coverage: float = 2.0
    """Coverage under which the account goes REDUCING."""
    halt_margin_coverage: float = 1.5
    """Coverage under which the account HALTs."""

    # --- volatility and tail risk -----------------------------------------------------------
    volatility_halflife_seconds: float = 60.0
    """Half-life (s) of the EWMA estimates of mark-return variance and correlation."""
    estimator_warmup: int = 10
    """Mark returns needed before the estimates are trusted; before, sizes that add risk are
    cut to ``tail_size_fraction``."""
    volatility_cap_annual: float = 1.5
    """Annualised volatility (1.5 = 150 %) above which the size that adds risk is scaled by
    ``volatility_cap_annual / volatility``."""
    tail_correlation: float = 0.8
    """Mean pairwise correlation of the perps' mark returns at which the tail override cuts
    the size that adds risk to ``tail_size_fraction`` (needs two perps or more)."""
    tail_move_bp: float = 200.0
    """Market-wide move (basis points of the equal-weighted log price index, from its high or
    low within ``rolling_window_seconds``) at which the tail override acts."""
    tail_size_fraction: float = 0.25
    """Size multiplier of the tail override (and of the estimator warm-up)."""

    # --- rate throttles ---------------------------------------------------------------------
    max_orders_per_second: float = 20.0
    """Sustained order rate (new or replacing orders per second) per account."""
    order_burst: float = 40.0
    """Order bucket size (orders)."""
    max_cancels_per_second: float = 20.0
    """Sustained cancel rate (cancels per second, replaces included) per account."""
    cancel_burst: float = 40.0
    """Cancel bucket size (cancels)."""
    backoff_base_seconds: float = 0.5
    """First backoff after a throttle denial (s); doubles with each consecutive one."""
    backoff_max_seconds: float = 30.0
    """Longest backoff (s); the wait is uniform on [0, min(max, base x 2^n)] (full jitter)."""

    # --- kill switch ------------------------------------------------------------------------
    rolling_window_seconds: float = 300.0
    """Window (s) of the rolling loss, the reject count and the market-wide move."""
    reducing_window_loss_fraction: float = 0.02
    """Loss from the window's highest equity, as a fraction of it, that moves to REDUCING."""
    halt_window_loss_fraction: float = 0.04
    """Window loss fraction that HALTs."""
    reducing_drawdown_fraction: float = 0.05
    """Drawdown from the peak equity (fraction of the peak) that moves to REDUCING."""
    halt_drawdown_fraction: float = 0.10
    """Drawdown from the peak that HALTs."""
    stale_data_seconds: float = 5.0
    """Market data older than this (s) admits no new orders."""
    halt_stale_data_seconds: float = 30.0
    """Market data (or account state) unknown or older than this (s) HALTs."""
    halt_rejects_per_window: int = 200
    """Venue rejects within the window that HALT (a reject storm)."""
    reducing_hold_seconds: float = 60.0
    """REDUCING lasts at least this long (s) after its last trigger."""
    flatten_on_halt: bool = True
    """When the kill switch HALTs, start a flatten-then-halt sequence (else just cancel)."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type in ("bool", bool):
                if not isinstance(value, bool):
                    _fail(f.name, "true or false", value)
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                _fail(f.name, "a number", value)
            if not math.isfinite(value) or value < 0:
                _fail(f.name, "a finite number >= 0", value)
        for name in (
            "max_order_size",
            "max_order_notional",
            "price_collar_fraction",
            "max_position",
            "max_gross_notional",
            "max_net_notional",
            "volatility_halflife_seconds",
            "volatility_cap_annual",
            "tail_size_fraction",
            "max_orders_per_second",
            "max_cancels_per_second",
            "rolling_window_seconds",
            "halt_stale_data_seconds",
        ):
            if not getattr(self, name) > 0:
                _fail(name, "> 0", getattr(self, name))
        for name in ("order_burst", "cancel_burst"):
            if getattr(self, name) < 1:
                _fail(name, ">= 1 (one order must fit in the bucket)", getattr(self, name))
        for name in ("soft_limit_fraction", "tail_size_fraction"):
            if not 0 < getattr(self, name) <= 1:
                _fail(name, "in (0, 1]", getattr(self, name))
        if not self.tail_correlation <= 1:
            _fail("tail_correlation", "<= 1", self.tail_correlation)
        if not isinstance(self.estimator_warmup, int):
            _fail("estimator_warmup", "an integer", self.estimator_warmup)
        if not isinstance(self.halt_rejects_per_window, int) or self.halt_rejects_per_window < 1:
            _fail("halt_rejects_per_window", "an integer >= 1", self.halt_rejects_per_window)
        _ordered(self, "reducing_window_loss_fraction", "halt_window_loss_fraction")
        _ordered(self, "reducing_drawdown_fraction", "halt_drawdown_fraction")
        _ordered(self, "halt_margin_coverage", "reducing_margin_coverage")
        _ordered(self, "stale_data_seconds", "halt_stale_data_seconds")
        _ordered(self, "backoff_base_seconds", "backoff_max_seconds")
        if self.halt_margin_coverage < 1:
            _fail(
                "halt_margin_coverage",
                ">= 1 (the account is liquidated at 1)",
                self.halt_margin_coverage,
            )

    def replace(self, **changes: Any) -> RiskLimits:
        """A copy with ``changes`` (validated); unknown names are a clear error."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ValueError(f"unknown risk limit(s) {unknown}; valid: {sorted(field_names())}")
        return dataclasses.replace(self, **changes)


def field_names() -> list[str]:
    """Names of every limit."""
    return [f.name for f in dataclasses.fields(RiskLimits)]


def _fail(name: str, requirement: str, value: Any) -> None:
    raise ValueError(f"risk limit {name} must be {requirement}, got {value!r}")


def _ordered(limits: RiskLimits, lower: str, upper: str) -> None:
    if getattr(limits, lower) > getattr(limits, upper):
        raise ValueError(
            f"risk limit {lower} ({getattr(limits, lower)}) must be <= {upper} "
            f"({getattr(limits, upper)})"
        )
