"""What the RiskLimiter reads at each decision: the account, its positions and resting orders,
the books and marks. The simulator fills it from its state, a live runner from venue messages.

Unknown is the default: a fresh :class:`RiskInputs` holds NaN everywhere, and NaN (or a
``stale`` flag) in a field makes the limiter fail closed for what depends on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

ACCOUNT_INPUT_DTYPE = np.dtype(
    [
        ("time_s", "f8"),
        ("equity", "f8"),
        ("margin_equity", "f8"),
        ("maintenance_margin", "f8"),
        ("data_age_s", "f8"),
        ("rejects", "f8"),
        ("stale", "?"),
    ],
    align=True,
)
"""Per account: the decision's time (s, the caller's clock, never decreasing), equity (quote
currency; the kill switch's loss and drawdown are measured on it), margin equity and maintenance
margin (quote currency), the age of the oldest market data the decision uses (s), venue rejects
since the previous decision (count) and ``stale`` (the account snapshot is known to be stale)."""

ASSET_INPUT_DTYPE = np.dtype(
    [
        ("best_bid", "f8"),
        ("best_ask", "f8"),
        ("mark", "f8"),
        ("position", "f8"),
        ("bid_resting_px", "f8"),
        ("bid_resting", "f8"),
        ("ask_resting_px", "f8"),
        ("ask_resting", "f8"),
        ("stale", "?"),
    ],
    align=True,
)
"""Per account and perp: best bid and ask (ticks), mark (quote currency), position (base units,
signed), the resting (and in-flight) bid and ask: price (ticks) and size (base units, 0 when
none), and ``stale`` (this perp's market data is known to be stale)."""


@dataclass
class RiskInputs:
    """The decision-time state of ``num_accounts`` accounts with ``num_assets`` perps each."""

    accounts: NDArray[np.void]
    """(num_accounts,) records of :data:`ACCOUNT_INPUT_DTYPE`."""
    assets: NDArray[np.void]
    """(num_accounts, num_assets) records of :data:`ASSET_INPUT_DTYPE`."""

    @classmethod
    def unknown(cls, num_accounts: int, num_assets: int) -> RiskInputs:
        """Inputs with every number unknown (NaN) and nothing flagged stale."""
        accounts = np.zeros(num_accounts, dtype=ACCOUNT_INPUT_DTYPE)
        assets = np.zeros((num_accounts, num_assets), dtype=ASSET_INPUT_DTYPE)
        for name in ACCOUNT_INPUT_DTYPE.names or ():
            if name != "stale":
                accounts[name] = np.nan
        for name in ASSET_INPUT_DTYPE.names or ():
            if name != "stale":
                assets[name] = np.nan
        return cls(accounts, assets)

    def check(self, num_accounts: int, num_assets: int) -> None:
        """Raise ValueError unless the arrays have the dtypes and shapes of these accounts."""
        if self.accounts.dtype != ACCOUNT_INPUT_DTYPE or self.accounts.shape != (num_accounts,):
            raise ValueError(
                f"RiskInputs.accounts must be ({num_accounts},) of ACCOUNT_INPUT_DTYPE, got "
                f"{self.accounts.shape} {self.accounts.dtype}"
            )
        if self.assets.dtype != ASSET_INPUT_DTYPE or self.assets.shape != (
            num_accounts,
            num_assets,
        ):
            raise ValueError(
                f"RiskInputs.assets must be ({num_accounts}, {num_assets}) of ASSET_INPUT_DTYPE, "
                f"got {self.assets.shape} {self.assets.dtype}"
            )
