"""Facts of returns: non-overlapping log returns, kurtosis (fat tails) with a bootstrap standard
error over independent series, and the autocorrelation of (absolute) returns (volatility
clustering)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
from numpy.typing import NDArray

from mmgym.analysis.estimate import Estimate
from mmgym.analysis.market_record import MarketRecord

F64 = NDArray[np.float64]


def log_returns(record: MarketRecord, seconds: float = 1.0, price: str = "mid") -> F64:
    """Non-overlapping log returns over ``seconds`` of a price field, ``(series, returns)``."""
    step = round(seconds / record.sample_seconds)
    if step < 1 or abs(step * record.sample_seconds - seconds) > 1e-9:
        raise ValueError("seconds must be a multiple of the record's sample_seconds")
    p = record.series(price)[:, ::step]
    return np.diff(np.log(p), axis=1)


def _as_series(returns: F64) -> F64:
    r = np.asarray(returns, dtype=np.float64)
    return r[None, :] if r.ndim == 1 else r


def _kurtosis_from_sums(sums: F64, weights: F64) -> float:
    n0, s1, s2, s3, s4 = sums @ weights
    m = s1 / n0
    m2 = s2 / n0 - m * m
    m4 = (s4 - 4 * m * s3 + 6 * m * m * s2 - 3 * m**4 * n0) / n0
    return float(m4 / (m2 * m2)) if m2 > 0 else float("nan")


def bootstrap_kurtosis(returns: F64, n_boot: int = 200, seed: int = 0) -> F64:
    """Bootstrap replicates of the pooled kurtosis, resampling whole series (envs) with
    replacement; with fewer than 4 series each is cut into 8 contiguous blocks first."""
    r = _as_series(returns)
    if r.shape[0] < 4:
        blocks = 8
        usable = r.shape[1] // blocks * blocks
        r = r[:, :usable].reshape(r.shape[0] * blocks, -1)
    s = r.shape[0]
    # Power sums per series make each replicate O(series).
    sums = np.stack(
        [
            np.full(s, r.shape[1], dtype=np.float64),
            r.sum(1),
            (r**2).sum(1),
            (r**3).sum(1),
            (r**4).sum(1),
        ]
    )
    rng = np.random.default_rng(seed)
    return np.array(
        [
            _kurtosis_from_sums(
                sums, np.bincount(rng.integers(0, s, s), minlength=s).astype(np.float64)
            )
            for _ in range(n_boot)
        ]
    )


def kurtosis(returns: F64, n_boot: int = 200, seed: int = 0) -> Estimate:
    """Pearson kurtosis ``m4 / m2^2`` (3 for a normal law) of the pooled returns.

    ``returns`` is ``(series, time)`` with independent series (envs). The standard error is
    the std of :func:`bootstrap_kurtosis` (whole series resampled), which keeps volatility
    clustering and regime persistence within each resample (an i.i.d. formula such as
    ``sqrt(24 / n)`` would be far too small). ``n_boot < 2``: no SE (nan).
    """
    r = _as_series(returns)
    d = r - r.mean()
    m2 = float((d * d).mean())
    value = float((d**4).mean() / (m2 * m2)) if m2 > 0 else float("nan")
    se = float("nan")
    if n_boot >= 2:
        se = float(np.nanstd(bootstrap_kurtosis(r, n_boot, seed), ddof=1))
    return Estimate(value, se, int(r.size))


def abs_return_acf(
    returns: F64, max_lag: int = 50, lags: Iterable[int] | None = None
) -> tuple[F64, float]:
    """Autocorrelation of absolute returns at lags ``1..max_lag`` (or at ``lags``) and its
    white-noise SE.

    Pooled over series, about the global mean (so a higher level of |r| in one series than
    another, e.g. a different regime, counts as clustering, as it does in a single long
    history). SE ``1 / sqrt(n)`` (Bartlett) under the null of no autocorrelation.
    """
    x = np.abs(np.asarray(returns, dtype=np.float64))
    if x.ndim == 1:
        x = x[None, :]
    d = x - x.mean()
    denom = (d * d).sum()
    chosen = range(1, max_lag + 1) if lags is None else lags
    acf = np.array([(d[:, h:] * d[:, :-h]).sum() / denom for h in chosen])
    return acf, 1.0 / math.sqrt(x.size)


def return_acf(returns: F64, lag: int = 1) -> float:
    """Autocorrelation of (signed) returns at ``lag``, pooled about the global mean."""
    x = np.asarray(returns, dtype=np.float64)
    d = x - x.mean()
    return float((d[:, lag:] * d[:, :-lag]).sum() / (d * d).sum())
