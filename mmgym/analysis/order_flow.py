"""Price response to order flow: the order-flow imbalance regression of Cont, Kukanov & Stoikov,
the impact response over horizons, and the slope the market's impact model predicts."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from mmgym.analysis.estimate import Estimate
from mmgym.analysis.market_record import MarketRecord
from mmgym.core.params import MarketParams

F64 = NDArray[np.float64]


@dataclass(frozen=True)
class Regression:
    """OLS ``y = a + b x`` with cluster-robust (by series) standard errors."""

    slope: Estimate
    intercept: Estimate
    r2: float

    @property
    def t(self) -> float:
        """t-statistic of the slope."""
        return self.slope.value / self.slope.se


def ofi_regression(y: F64, x: F64, mask: NDArray[np.bool_] | None = None) -> Regression:
    """Regress ``y`` on ``x`` (both ``(series, time)``), pooled, with SEs clustered by series.

    Clustering by series (independent envs) makes the SE valid under any dependence and
    heteroskedasticity within a series (jumps, regimes, decaying impact). ``mask`` (same
    shape) keeps only some entries, e.g. one regime.
    """
    y = np.asarray(y, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    if y.ndim == 1:
        y, x = y[None, :], x[None, :]
    if mask is None:
        mask = np.ones(y.shape, dtype=np.bool_)
    w = mask.astype(np.float64)
    count = w.sum()
    xm, ym = (w * x).sum() / count, (w * y).sum() / count
    sxx = (w * (x - xm) ** 2).sum()
    b = float((w * (x - xm) * (y - ym)).sum() / sxx)
    a = float(ym - b * xm)
    u = w * (y - a - b * x)
    syy = (w * (y - ym) ** 2).sum()
    r2 = float(1.0 - (u * u).sum() / syy) if syy > 0 else float("nan")
    # Cluster-robust sandwich for (a, b): per-series scores, summed outer products.
    sx, sxx_raw = (w * x).sum(), (w * x * x).sum()
    xtx = np.array([[count, sx], [sx, sxx_raw]])
    g = np.stack([u.sum(axis=1), (u * x).sum(axis=1)], axis=1)
    s = int((mask.sum(axis=1) > 0).sum())
    inv = np.linalg.inv(xtx)
    cov = inv @ (g.T @ g) @ inv * (s / max(s - 1, 1))
    return Regression(
        slope=Estimate(b, float(math.sqrt(cov[1, 1])), int(count)),
        intercept=Estimate(a, float(math.sqrt(cov[0, 0])), int(count)),
        r2=r2,
    )


def order_flow_imbalance(record: MarketRecord, include_forced: bool = True) -> F64:
    """Signed traded volume (buys - sells, base units) per sample interval, ``(series, time)``.

    Rows line up with :func:`log_returns` at the sample interval (row 0, the reset, dropped).
    """
    ofi = record.series("buy_volume") - record.series("sell_volume")
    if include_forced:
        ofi = ofi + record.series("forced_buy") - record.series("forced_sell")
    return ofi[:, 1:]


def impact_response(record: MarketRecord, horizons: Iterable[int] = (0, 10, 30, 60)) -> F64:
    """Slope (bp per unit) of the mid's log return from the start of second ``t`` to the end
    of second ``t + h`` on the order-flow imbalance of second ``t``, per horizon ``h`` (s),
    shape ``(horizons, 2)``: slope and its SE (clustered by series). Flat in ``h``: permanent
    impact; falling to 0: transient impact.
    """
    step = round(1.0 / record.sample_seconds)
    log_mid = np.log(record.series("mid")[:, ::step]) * 1e4
    ofi = order_flow_imbalance(record)
    ofi = ofi[:, : (ofi.shape[1] // step) * step].reshape(ofi.shape[0], -1, step).sum(axis=2)
    t = ofi.shape[1]
    out = []
    for h in horizons:
        reg = ofi_regression(log_mid[:, 1 + h : t + 1] - log_mid[:, : t - h], ofi[:, : t - h])
        out.append((reg.slope.value, reg.slope.se))
    return np.array(out)


def propagator_kept(params: MarketParams, seconds: float) -> float:
    """Share of the instantaneous impact that flow spread evenly over ``seconds`` still holds at
    their end, under the impact propagator (:mod:`mmgym.core.impact`): each exponential part of
    time scale ``tau`` keeps ``tau (1 - exp(-T / tau)) / T``, the permanent part all of it."""
    kept = params.impact_permanent_share
    taus = (params.impact_decay_seconds, *params.impact_memory_seconds)
    shares = (
        1.0 - params.impact_permanent_share - sum(params.impact_memory_shares),
        *params.impact_memory_shares,
    )
    for tau, share in zip(taus, shares, strict=True):
        kept += share * tau * (1.0 - math.exp(-seconds / tau)) / seconds
    return kept


def predicted_ofi_slope_bp(params: MarketParams, seconds: float = 1.0) -> F64:
    """Mid move (bp per base unit) the impact model predicts, per regime: the anchor shifts by
    ``impact_coefficient / depth_top`` ticks per unit, of which flow spread evenly over
    ``seconds`` keeps :func:`propagator_kept` at their end."""
    kept = propagator_kept(params, seconds)
    ticks = params.impact_coefficient / np.array(params.depth_top)
    return ticks * params.tick_size / params.initial_price * 1e4 * kept
