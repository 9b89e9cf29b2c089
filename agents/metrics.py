"""Risk and execution metrics a desk reads, on per-step series of one episode.

Every function takes plain arrays and returns floats, so evaluation, training callbacks and the
live runner compute them identically. Conventions:

- Sharpe and Sortino are per step (mean over std of step PnL), not annualised; multiply by
  ``sqrt(steps per year)`` to annualise.
- Max drawdown is the largest fall of cumulative PnL from its running peak (a positive number).
- CVaR at level ``alpha`` is the mean of the worst ``alpha`` share of a sample of episode PnLs
  (a loss is negative PnL), computed with the fractional weight of the boundary observation.
- Confidence intervals of a mean use Student's t with ``n - 1`` degrees of freedom; with one
  value there is none (NaN bounds), never a zero-width interval.
- A markout at horizon ``h`` is the PnL of the filled quantity against the mid ``h`` later:
  ``bid_qty x (mid_{t+h} - bid_price) + ask_qty x (ask_price - mid_{t+h})`` summed over
  fills; negative values mean adverse selection.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike


def sharpe(step_pnl: ArrayLike) -> float:
    """Mean over standard deviation (ddof=1) of step PnL; 0 for a constant series."""
    x = np.asarray(step_pnl, dtype=np.float64)
    if x.size < 2:
        return 0.0
    sd = float(x.std(ddof=1))
    return float(x.mean()) / sd if sd > 0.0 else 0.0


def sortino(step_pnl: ArrayLike, target: float = 0.0) -> float:
    """Mean excess over the downside deviation ``sqrt(mean(min(x - target, 0)^2))``."""
    x = np.asarray(step_pnl, dtype=np.float64)
    if x.size < 2:
        return 0.0
    downside = math.sqrt(float(np.mean(np.minimum(x - target, 0.0) ** 2)))
    return float(x.mean() - target) / downside if downside > 0.0 else 0.0


def max_drawdown(step_pnl: ArrayLike) -> float:
    """Largest fall of cumulative PnL (starting at 0) from its running peak."""
    x = np.asarray(step_pnl, dtype=np.float64)
    equity = np.concatenate([[0.0], np.cumsum(x)])
    return float(np.max(np.maximum.accumulate(equity) - equity))


def cvar(episode_pnl: ArrayLike, alpha: float = 0.05) -> float:
    """Expected PnL over the worst ``alpha`` share of episodes (lower tail mean)."""
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    x = np.sort(np.asarray(episode_pnl, dtype=np.float64))
    if x.size == 0:
        raise ValueError("cvar needs at least one episode")
    tail = alpha * x.size
    whole = math.floor(tail)
    total = float(x[:whole].sum())
    if whole < x.size and tail > whole:
        total += (tail - whole) * float(x[whole])
    return total / tail


def markouts(
    mid: ArrayLike,
    bid_qty: ArrayLike,
    bid_price: ArrayLike,
    ask_qty: ArrayLike,
    ask_price: ArrayLike,
    horizons: tuple[int, ...],
) -> dict[int, float]:
    """Total markout of the fills of each step at each horizon (in steps).

    ``mid[t]`` is the mid at the end of step ``t``; fills of step ``t`` are marked against
    ``mid[t + h]``. Fills whose horizon runs past the series use its last mid.
    """
    m = np.asarray(mid, dtype=np.float64)
    qb = np.asarray(bid_qty, dtype=np.float64)
    pb = np.asarray(bid_price, dtype=np.float64)
    qa = np.asarray(ask_qty, dtype=np.float64)
    pa = np.asarray(ask_price, dtype=np.float64)
    n = m.size
    out = {}
    for h in horizons:
        later = m[np.minimum(np.arange(n) + h, n - 1)]
        bid = np.where(qb > 0.0, qb * (later - pb), 0.0)
        ask = np.where(qa > 0.0, qa * (pa - later), 0.0)
        out[h] = float(bid.sum() + ask.sum())
    return out


def t_quantile(n: int, level: float = 0.95) -> float:
    """The two-sided Student's t quantile ``t_{(1 + level) / 2, n - 1}`` of a mean of ``n``
    values (NaN for ``n < 2``: no interval can be computed)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n < 2:
        return math.nan
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2.0, n - 1))


def confidence_interval(mean: float, se: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """The Student's t interval ``mean -/+ t x se`` of a mean of ``n`` values with standard
    error ``se``; ``(nan, nan)`` for ``n < 2``, never a zero-width interval."""
    half = t_quantile(n, level) * se
    return mean - half, mean + half


def mean_confidence_interval(x: ArrayLike, level: float = 0.95) -> tuple[float, float, float]:
    """Mean of ``x`` and its Student's t confidence interval (bounds NaN for one value)."""
    v = np.asarray(x, dtype=np.float64)
    if v.size == 0:
        raise ValueError("a confidence interval needs at least one value")
    mean = float(v.mean())
    se = float(v.std(ddof=1)) / math.sqrt(v.size) if v.size > 1 else math.nan
    lo, hi = confidence_interval(mean, se, int(v.size), level)
    return mean, lo, hi


def time_at_limit(inventory: ArrayLike, limit: float, tolerance: float = 1e-9) -> float:
    """Share of steps with ``|inventory| >= limit`` (within ``tolerance``)."""
    q = np.abs(np.asarray(inventory, dtype=np.float64))
    return float(np.mean(q >= limit - tolerance)) if q.size else 0.0
