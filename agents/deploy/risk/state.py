"""The limiter's state of every account: trading mode, counts per reason, transition log."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from agents.deploy.risk.layout import state_dtype
from agents.deploy.risk.modes import TradingMode
from agents.deploy.risk.reasons import NUM_REASONS, Reason


@dataclass(frozen=True)
class Transition:
    """One change of an account's trading mode (or a flatten sequence's start or end)."""

    account: int
    time_s: float
    """The decision time (s, the caller's clock) it happened at; NaN before the first one."""
    previous: TradingMode
    mode: TradingMode
    reason: Reason
    operator: str | None = None
    """Who commanded it; None for the kill switch."""


class TradingState:
    """Trading mode, measures and counts of ``num_accounts`` accounts (arrays over accounts).

    ``mode`` and ``flattening`` are views of the records; ``denials`` counts every denial, clip
    and transition per account and :class:`Reason` since the start, ``last_denials`` those of
    the last decision. ``records`` holds the rest (kill-switch references, rolling window,
    estimates, throttle buckets, the last decision's measures) for the compiled limiter.
    """

    def __init__(self, num_accounts: int, num_assets: int) -> None:
        self.records: NDArray[np.void] = np.zeros(num_accounts, dtype=state_dtype(num_assets))
        self.rng = np.zeros(num_accounts, dtype=np.uint64)
        """Each account's random stream (throttle jitter)."""
        self.denials = np.zeros((num_accounts, NUM_REASONS), dtype=np.int64)
        self.last_denials = np.zeros((num_accounts, NUM_REASONS), dtype=np.int64)
        self.transitions: list[Transition] = []
        """Transitions not yet taken by :meth:`RiskLimiter.drain_transitions`, oldest first."""

    @property
    def mode(self) -> NDArray[np.int64]:
        """Each account's :class:`TradingMode` value (a view)."""
        return self.records["mode"]

    @property
    def flattening(self) -> NDArray[np.bool_]:
        """Whether each account is in a flatten-then-halt sequence (a view)."""
        return self.records["flattening"]

    def mode_of(self, account: int) -> TradingMode:
        """The trading mode of one account."""
        return TradingMode(int(self.records["mode"][account]))

    def measure(self, name: str) -> NDArray[np.float64]:
        """The last decision's measure per account: ``drawdown``, ``window_loss`` (fractions),
        ``margin_coverage``, ``correlation``, ``market_move_bp``, ``volatility`` (annualised,
        per perp), ``peak_equity`` (quote currency)."""
        if name not in {
            "drawdown",
            "window_loss",
            "margin_coverage",
            "correlation",
            "market_move_bp",
            "volatility",
            "peak_equity",
        }:
            raise ValueError(f"unknown measure {name!r}")
        return self.records[name]

    def counts(self, account: int | None = None) -> dict[Reason, int]:
        """Non-zero counts per reason since the start, of one account or summed over all."""
        row = self.denials.sum(axis=0) if account is None else self.denials[account]
        return {Reason(int(r)): int(row[r]) for r in np.flatnonzero(row)}
