"""Basis of the perp against the oracle and the funding it pays."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from mmgym.analysis.market_record import MarketRecord

F64 = NDArray[np.float64]


def basis_bp(record: MarketRecord) -> F64:
    """Basis ``(mid - oracle) / oracle`` in bp, ``(samples + 1, env, asset)``."""
    return (record.mid - record.fair) / record.fair * 1e4


def basis_funding_summary(record: MarketRecord) -> dict[str, float]:
    """Basis and funding statistics of a record (rates in bp per funding interval)."""
    b = basis_bp(record)[1:]
    funded = np.repeat(record.funded[:, :, None], record.num_assets, axis=2)
    rates = record.last_funding[funded] * 1e4
    interest = record.params.funding_interest_8h * record.params.funding_interval_seconds
    interest_bp = interest / (8 * 3600.0) * 1e4
    return {
        "basis_mean_bp": float(b.mean()),
        "basis_abs_bp": float(np.abs(b).mean()),
        "basis_std_bp": float(b.std()),
        "decoupled_fraction": float(1.0 - record.coupled[1:].mean()),
        "premium_nonzero_fraction": float((record.premium[1:] != 0.0).mean()),
        "funding_payments": int(rates.size),
        "funding_mean_bp": float(rates.mean()) if rates.size else float("nan"),
        "funding_max_abs_bp": float(np.abs(rates).max()) if rates.size else float("nan"),
        "funding_at_interest_fraction": (
            float(np.isclose(rates, interest_bp, rtol=0, atol=1e-9).mean())
            if rates.size
            else float("nan")
        ),
    }
