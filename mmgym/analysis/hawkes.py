"""Self-excitation of order arrivals: the branching ratio of a Hawkes process.

:func:`fit_hawkes_binned` is the maximum likelihood of a univariate exponential-kernel Hawkes
process on event counts per tick (the event times known to tick resolution), with a baseline
per volatility regime; its likelihood loop is compiled with numba. :func:`hawkes_count_variance`
is the count-variance cross-check (``Var(N_T) / E(N_T) -> 1 / (1 - n)^2``) and
:func:`variance_time` the empirical variance-time curve.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numba as nb
import numpy as np
from numpy.typing import NDArray

from mmgym.analysis.estimate import Estimate
from mmgym.core.params import REGIMES

F64 = NDArray[np.float64]


@nb.njit(cache=True, error_model="numpy")
def _hawkes_loglik(
    counts: NDArray[Any],
    regimes: NDArray[Any],
    dt: float,
    mu: F64,
    n: float,
    beta: float,
    scores: F64,
) -> float:
    """Log-likelihood (up to a constant) of the tick-binned exponential Hawkes model and the
    per-series scores (d loglik / d (mu_0..mu_{R-1}, n, beta)) written into ``scores``.

    In tick ``k`` the count is Poisson(lambda_k dt) with ``lambda_k = mu_{r_k} + E_k``; after
    the tick ``E_{k+1} = d E_k + J c_k`` with ``d = exp(-beta dt)`` and ``J = n (1 - d) / dt``
    (each event has ``n`` expected offspring); ``E_0`` is its stationary mean
    ``mu_{r_0} n / (1 - n)``.
    """
    S, T = counts.shape
    R = mu.shape[0]
    d = math.exp(-beta * dt)
    J = n * (1.0 - d) / dt
    dJ_dd = -n / dt
    g = n / (1.0 - n)
    dg_dn = 1.0 / ((1.0 - n) * (1.0 - n))
    total = 0.0
    for s in range(S):
        for p in range(R + 2):
            scores[s, p] = 0.0
        r0 = regimes[s, 0]
        e0 = mu[r0] * g
        y = 0.0  # sum_{j<k} d^(k-1-j) c_j
        yp = 0.0  # its derivative in d
        dk = 1.0  # d^k
        ddk = 0.0  # k d^(k-1)
        s_mu0 = 0.0
        s_n = 0.0
        s_d = 0.0
        for k in range(T):
            c = counts[s, k]
            r = regimes[s, k]
            lam = mu[r] + dk * e0 + J * y
            if c > 0:
                total += c * math.log(lam)
            total -= lam * dt
            w = c / lam - dt
            scores[s, r] += w
            s_mu0 += w * dk * g
            s_n += w * (y * (1.0 - d) / dt + dk * mu[r0] * dg_dn)
            s_d += w * (dJ_dd * y + J * yp + ddk * e0)
            yp = d * yp + y
            y = d * y + c
            ddk = dk + d * ddk
            dk *= d
        scores[s, r0] += s_mu0
        scores[s, R] = s_n
        scores[s, R + 1] = -dt * d * s_d
    return total


@dataclass(frozen=True)
class HawkesFit:
    """Maximum-likelihood fit of the binned univariate exponential Hawkes model."""

    branching_ratio: Estimate
    """n = alpha / beta: expected number of orders each order triggers."""
    decay: Estimate
    """beta (1/s) of the kernel ``n beta exp(-beta t)``."""
    baseline: dict[str, Estimate]
    """mu (orders per second, buys + sells) per regime seen in the data."""
    loglik: float
    events: int
    iterations: int
    se_model: tuple[float, float]
    """Model-based (inverse Hessian) SEs of (n, beta); the reported ones are the sandwich SEs."""


def fit_hawkes_binned(
    counts: NDArray[Any],
    dt: float,
    regimes: NDArray[Any] | None = None,
    max_iter: int = 60,
) -> HawkesFit:
    """Fit a univariate exponential-kernel Hawkes process to event counts per tick.

    ``counts`` is ``(series, ticks)`` (independent series, e.g. envs and perps) of events per
    bin of ``dt`` seconds: the event times known to tick resolution. ``regimes`` (same shape,
    optional) gives each bin's volatility regime; the baseline is then one ``mu`` per regime
    and ``n``, ``beta`` are shared. The likelihood is exact for a process whose intensity is
    constant within a bin and excited from the next bin on (the discrete-time Hawkes process
    the simulator draws); as ``dt -> 0`` it is the continuous-time Hawkes likelihood.

    Maximised by Newton's method in ``(log mu, logit n, log beta)``; the SEs are the sandwich
    (robust) ones, ``H^-1 (sum_s g_s g_s^T) H^-1`` with per-series scores ``g_s``.
    """
    c = np.ascontiguousarray(np.asarray(counts))
    if c.ndim == 1:
        c = c[None, :]
    if regimes is None:
        reg = np.zeros(c.shape, dtype=np.int8)
        labels: list[int] = [0]
    else:
        raw = np.asarray(regimes)
        labels = sorted(int(v) for v in np.unique(raw))
        lookup = np.zeros(max(labels) + 1, dtype=np.int8)
        lookup[labels] = np.arange(len(labels))
        reg = np.ascontiguousarray(lookup[raw])
    R = len(labels)
    S = c.shape[0]
    scores = np.zeros((S, R + 2))

    def natural(phi: F64) -> tuple[F64, float, float]:
        return np.exp(phi[:R]), 1.0 / (1.0 + math.exp(-phi[R])), math.exp(phi[R + 1])

    def evaluate(phi: F64) -> tuple[float, F64, F64]:
        mu, n, beta = natural(phi)
        ll = _hawkes_loglik(c, reg, dt, mu, n, beta, scores)
        jac = np.concatenate([mu, [n * (1.0 - n), beta]])
        per_series = scores * jac
        return ll, per_series.sum(axis=0), per_series

    def hessian(phi: F64) -> F64:
        h = np.zeros((R + 2, R + 2))
        eps = 1e-4
        for p in range(R + 2):
            e = np.zeros(R + 2)
            e[p] = eps
            h[p] = (evaluate(phi + e)[1] - evaluate(phi - e)[1]) / (2 * eps)
        return 0.5 * (h + h.T)

    # Start: n = 0.3, beta = 1/s, mu per regime from the mean count in that regime.
    n0 = 0.3
    mean_rate = np.array([c[reg == j].mean() / dt for j in range(R)])
    phi = np.concatenate(
        [np.log(np.maximum(mean_rate * (1 - n0), 1e-6)), [math.log(n0 / (1 - n0)), 0.0]]
    )
    ll, grad, _ = evaluate(phi)
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 (reported)
        h = hessian(phi)
        neg = -h
        shift = 0.0
        while True:
            try:
                np.linalg.cholesky(neg + shift * np.eye(R + 2))
                break
            except np.linalg.LinAlgError:
                shift = max(2 * shift, 1e-6 * np.abs(np.diag(neg)).max() + 1e-12)
        step = np.linalg.solve(neg + shift * np.eye(R + 2), grad)
        t = 1.0
        while t > 1e-8:
            new_phi = phi + t * step
            new_ll, new_grad, _ = evaluate(new_phi)
            if new_ll >= ll - 1e-9 * abs(ll):
                break
            t *= 0.5
        improvement = new_ll - ll
        phi, ll, grad = new_phi, new_ll, new_grad
        if abs(improvement) < 1e-7 and float(np.abs(t * step).max()) < 1e-6:
            break

    ll, grad, per_series = evaluate(phi)
    h = hessian(phi)
    inv = np.linalg.inv(-h)
    meat = per_series.T @ per_series
    cov = inv @ meat @ inv * (S / max(S - 1, 1))
    mu, n, beta = natural(phi)
    jac = np.concatenate([mu, [n * (1.0 - n), beta]])
    se = np.sqrt(np.diag(cov)) * jac
    se_model = np.sqrt(np.diag(inv)) * jac
    events = int(c.sum())
    baseline = {
        (REGIMES[lab] if regimes is not None and lab < len(REGIMES) else str(lab)): Estimate(
            float(mu[j]), float(se[j]), int((reg == j).sum())
        )
        for j, lab in enumerate(labels)
    }
    return HawkesFit(
        branching_ratio=Estimate(float(n), float(se[R]), events),
        decay=Estimate(float(beta), float(se[R + 1]), events),
        baseline=baseline,
        loglik=float(ll),
        events=events,
        iterations=it,
        se_model=(float(se_model[R]), float(se_model[R + 1])),
    )


def count_variance_ratio(n: float, beta: float, window: float) -> float:
    """Var(N_T) / E(N_T) of a stationary exponential Hawkes process over a window ``T``:
    ``1 + n (2 - n) / (1 - n)^2 (1 - (1 - exp(-g T)) / (g T))`` with ``g = beta (1 - n)``;
    it tends to ``1 / (1 - n)^2`` for ``T >> 1 / g``."""
    g = beta * (1.0 - n)
    x = g * window
    return 1.0 + n * (2.0 - n) / (1.0 - n) ** 2 * (1.0 - (-math.expm1(-x)) / x)


def _invert_ratio(ratio: float, beta: float | None, window: float) -> float:
    if not math.isfinite(ratio) or ratio <= 1.0:
        return 0.0
    if beta is None:
        return 1.0 - 1.0 / math.sqrt(ratio)
    lo, hi = 0.0, 0.9999
    if count_variance_ratio(hi, beta, window) < ratio:
        return hi
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        if count_variance_ratio(mid, beta, window) < ratio:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def variance_time(counts: NDArray[Any], dt: float, windows: Iterable[float]) -> F64:
    """Var(N_T) / E(N_T) of the counts in windows of each length ``T`` (s), pooled over series
    (variance within each series about its own mean). 1 for Poisson counts at every ``T``."""
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim == 1:
        c = c[None, :]
    out = []
    for window in windows:
        per = max(1, round(window / dt))
        usable = c.shape[1] // per * per
        w = c[:, :usable].reshape(c.shape[0], -1, per).sum(axis=2)
        out.append(float(w.var(axis=1, ddof=1).mean() / w.mean()))
    return np.array(out)


def hawkes_count_variance(
    counts: NDArray[Any], dt: float, window_seconds: float = 60.0, beta: float | None = None
) -> Estimate:
    """Branching ratio from the dispersion of counts in windows of ``window_seconds``.

    ``Var(N_T) / E(N_T) -> 1 / (1 - n)^2`` for large ``T``; with ``beta`` given the exact
    finite-window ratio (:func:`count_variance_ratio`) is inverted instead. The variance is
    taken within each series about its own mean and pooled; the SE is a delete-one-series
    jackknife. Assumes a constant baseline: a baseline that changes with the regime adds
    variance and biases ``n`` up.
    """
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim == 1:
        c = c[None, :]
    per = round(window_seconds / dt)
    usable = c.shape[1] // per * per
    w = c[:, :usable].reshape(c.shape[0], -1, per).sum(axis=2)
    means = w.mean(axis=1)
    sq = ((w - means[:, None]) ** 2).sum(axis=1)
    dof = w.shape[1] - 1
    window = per * dt

    def estimate(keep: NDArray[np.bool_]) -> float:
        ratio = sq[keep].sum() / (dof * keep.sum()) / means[keep].mean()
        return _invert_ratio(float(ratio), beta, window)

    s = w.shape[0]
    value = estimate(np.ones(s, dtype=bool))
    if s < 2:
        return Estimate(value, float("nan"), int(c.sum()))
    jack = np.array([estimate(np.arange(s) != j) for j in range(s)])
    se = math.sqrt((s - 1) / s * ((jack - jack.mean()) ** 2).sum())
    return Estimate(value, se, int(c.sum()))
