"""Tail exponent and long memory of returns: the Hill estimator and a power-law fit of the
autocorrelation of absolute returns, each with a standard error over independent series.

- :func:`hill_tail_index`: Hill's estimator of the tail exponent ``alpha`` of ``|r|``
  (``P(|r| > x) ~ x^-alpha``; the inverse cubic law is ``alpha = 3``) from the ``k`` largest
  values pooled over series. Its SE is a delete-one-group jackknife over groups of whole series,
  which respects volatility clustering (the i.i.d. formula ``alpha / sqrt(k)`` ignores it).
- :func:`abs_acf` and :func:`abs_acf_at`: the autocorrelation of ``|r|`` without lag
  shrinkage, at one lag with a jackknife SE over groups of series;
- :func:`acf_power_law`: the exponent ``gamma`` of ``ACF(|r|)(h) ~ h^-gamma``, least squares of
  ``log ACF`` on ``log h`` over given lags, with a delete-one-group jackknife SE over groups of
  series.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from mmgym.analysis.estimate import Estimate

F64 = NDArray[np.float64]


def _as_series(returns: F64) -> F64:
    r = np.asarray(returns, dtype=np.float64)
    return r[None, :] if r.ndim == 1 else r


def hill(values: F64, k: int) -> float:
    """Hill's estimate ``1 / mean(log(x_(i) / x_(k+1)))``, i = 1..k, of the largest ``k``
    values of ``values`` (positive, any shape), ``x_(1)`` the largest."""
    x = np.asarray(values, dtype=np.float64).ravel()
    if not 1 <= k < x.size:
        raise ValueError(f"k must be between 1 and {x.size - 1}, got {k}")
    top = -np.partition(-x, k)[: k + 1]
    top.sort()
    threshold = top[0]
    if threshold <= 0.0:
        return float("nan")
    return float(1.0 / np.mean(np.log(top[1:] / threshold)))


def _jackknife_se(reps: F64) -> float:
    g = reps.size
    return math.sqrt((g - 1) / g * float(((reps - reps.mean()) ** 2).sum()))


def _groups(series: int, groups: int) -> list[NDArray[np.intp]]:
    return np.array_split(np.arange(series), min(groups, series))


def hill_tail_index(returns: F64, fraction: float = 0.02, groups: int = 16) -> Estimate:
    """Tail exponent of ``|returns|`` (``(series, time)``, independent series) by Hill's
    estimator on the largest ``fraction`` of the pooled values (``n`` of the estimate: ``k``).

    SE: delete-one-group jackknife over ``groups`` contiguous groups of series (each replicate
    takes the same ``fraction`` of what is left), which respects volatility clustering within
    a series; with fewer than 2 series, the i.i.d. asymptotic ``alpha / sqrt(k)``.
    """
    x = np.abs(_as_series(returns))
    k = max(1, round(fraction * x.size))
    value = hill(x, k)
    parts = _groups(x.shape[0], groups)
    if len(parts) < 2:
        return Estimate(value, value / math.sqrt(k), k)
    reps = []
    for idx in parts:
        rest = np.delete(x, idx, axis=0)
        reps.append(hill(rest, max(1, round(fraction * rest.size))))
    return Estimate(value, _jackknife_se(np.array(reps)), k)


def abs_acf(returns: F64, lags: Sequence[int]) -> F64:
    """Autocorrelation of ``|returns|`` (``(series, time)``) at ``lags``, pooled about the
    global mean, each lag's mean product over the pairs it has divided by the mean square.

    Unlike :func:`mmgym.analysis.returns.abs_return_acf` (sums over pairs and over points, the
    usual estimator), it has no ``(T - h) / T`` shrinkage, which matters at lags that are a
    good part of a series' length."""
    x = np.abs(_as_series(returns))
    d = x - x.mean()
    var = float((d * d).mean())
    return np.array([float((d[:, h:] * d[:, :-h]).mean()) / var for h in lags])


def abs_acf_at(returns: F64, lag: int, groups: int = 8) -> Estimate:
    """:func:`abs_acf` at one ``lag`` with a delete-one-group jackknife SE over ``groups``
    contiguous groups of series (fewer than 2 series: no SE, nan)."""
    r = _as_series(returns)
    value = float(abs_acf(r, [lag])[0])
    parts = _groups(r.shape[0], groups)
    if len(parts) < 2:
        return Estimate(value, float("nan"), r.size)
    reps = np.array([abs_acf(np.delete(r, idx, axis=0), [lag])[0] for idx in parts])
    return Estimate(value, _jackknife_se(reps), r.size)


def _slope(lags: F64, acf: F64) -> float:
    ok = acf > 0.0
    if ok.sum() < 2:
        return float("nan")
    x, y = np.log(lags[ok]), np.log(acf[ok])
    x = x - x.mean()
    return float(-(x * (y - y.mean())).sum() / (x * x).sum())


def acf_power_law(returns: F64, lags: Sequence[int], groups: int = 8) -> Estimate:
    """Exponent ``gamma`` of ``ACF(|r|)(h) ~ h^-gamma`` fitted over ``lags`` (in returns).

    The ACF is :func:`abs_acf` (pooled about the global mean, without lag shrinkage);
    ``gamma`` is minus the least-squares slope of ``log ACF`` on ``log h`` (lags with a
    non-positive ACF are left out). SE: delete-one-group jackknife over ``groups`` contiguous
    groups of series (at most one group per series); fewer than 2 series: no SE (nan).
    """
    r = _as_series(returns)
    h = np.asarray(list(lags), dtype=np.float64)
    acf = abs_acf(r, [int(v) for v in h])
    value = _slope(h, acf)
    parts = _groups(r.shape[0], groups)
    if len(parts) < 2:
        return Estimate(value, float("nan"), r.shape[0])
    lag_list = [int(v) for v in h]
    reps = np.array([_slope(h, abs_acf(np.delete(r, idx, axis=0), lag_list)) for idx in parts])
    se = _jackknife_se(reps)
    return Estimate(value, se, r.shape[0])
