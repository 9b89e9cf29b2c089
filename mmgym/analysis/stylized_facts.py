"""Stylized facts of the simulated perp market, measured the way they are measured on real data.

:func:`simulate` runs ``num_envs`` markets of a scenario with a passive agent (no orders, no
hedge), so the market is observed undisturbed, and records them into a :class:`MarketRecord`:
per market tick the taker order count and the regime, per ``sample_seconds`` (1 s) the book,
prices, funding and the traded volumes. To see every tick, the envs are stepped one tick per
decision (``decision_interval = tick_seconds``); nothing in the market depends on the decision
interval, only the agent's orders (there are none) and observations (unused) do.

The fact functions are pure functions of arrays:

- :func:`kurtosis` (fat tails), with a bootstrap standard error over independent series;
- :func:`abs_return_acf` (volatility clustering), with the white-noise standard error;
- :func:`fit_hawkes_binned` (self-excitation): maximum likelihood of a univariate
  exponential-kernel Hawkes process on the pooled buy + sell taker order counts per tick
  (the event times known to tick resolution), with a baseline per volatility regime (its
  likelihood loop is compiled with numba); :func:`hawkes_count_variance` is the
  count-variance cross-check (``Var(N_T) / E(N_T) -> 1 / (1 - n)^2``);
- :func:`ofi_regression` (Cont, Kukanov & Stoikov): 1 s log return on 1 s order-flow imbalance;
- :func:`basis_funding_summary` (basis and funding), :func:`cascade_window` (a liquidation
  cascade), :func:`scenario_facts` and :func:`summary_table` (one row of facts per scenario).

Series layout: the record stores arrays ``(time, env, asset)``; :meth:`MarketRecord.series`
returns them as ``(series, time)`` with one independent series per env and asset.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numba as nb
import numpy as np
import pandas as pd
from numpy.typing import NDArray

from mmgym.core.params import REGIMES, SECONDS_PER_YEAR, MarketParams
from mmgym.envs.perp_mm import PerpMMVectorEnv
from mmgym.scenarios import make_params

PASSIVE_ACTION: tuple[float, ...] = (0.0, -0.6, -1.0, -1.0, -1.0)
"""Action block per perp that places no orders and hedges nothing (sizes -1 are below the
minimum quote size)."""

DEPTH_LEVELS = 5
"""Levels summed for the ``*_depth5`` book depth."""

F64 = NDArray[np.float64]


# --------------------------------------------------------------------------------------------
# Simulation
# --------------------------------------------------------------------------------------------


@dataclass
class MarketRecord:
    """What :func:`simulate` recorded. Per-sample arrays have ``samples + 1`` rows: row 0 is
    the state at reset, row ``t`` the state at the end of sample interval ``t`` (volumes are
    summed over the interval)."""

    scenario: str
    params: MarketParams
    """Parameters of the scenario as simulated (with the recording overrides)."""
    seed: int
    sample_seconds: float
    label: str
    """Name of the run in tables (the scenario name unless :func:`simulate` was given one)."""
    # per tick
    orders: NDArray[np.int16]
    """Taker orders (buys + sells, forced closes excluded) per tick, (ticks, env, asset)."""
    tick_regime: NDArray[np.int8]
    """Regime during each tick, (ticks, env)."""
    # per sample, (samples + 1, env, asset)
    mid: F64
    fair: F64
    mark: F64
    premium: F64
    """Last premium-index sample (fraction)."""
    funding_estimate: F64
    """Funding rate of the running interval so far (fraction per interval)."""
    last_funding: F64
    """Last realised funding rate (fraction per interval)."""
    best_bid: F64
    best_ask: F64
    bid_top: F64
    """Depth at the best bid (base units)."""
    ask_top: F64
    bid_depth5: F64
    """Depth of the best ``DEPTH_LEVELS`` bid levels (base units)."""
    ask_depth5: F64
    buy_volume: F64
    """Taker (Hawkes) buy volume over the interval."""
    sell_volume: F64
    forced_buy: F64
    """Forced (liquidation) buy volume over the interval."""
    forced_sell: F64
    coupled: NDArray[np.bool_]
    """Whether the basis is coupled to spot (arbitrage pull at full strength)."""
    # per sample, (samples + 1, env)
    regime: NDArray[np.int8]
    liquidations: NDArray[np.int64]
    """Crowd liquidations in the interval."""
    funded: NDArray[np.bool_]
    """A funding payment happened in the interval (its rate is ``last_funding``)."""
    seconds: float = field(init=False)

    def __post_init__(self) -> None:
        self.seconds = (self.mid.shape[0] - 1) * self.sample_seconds

    @property
    def num_envs(self) -> int:
        """Number of simulated markets."""
        return int(self.mid.shape[1])

    @property
    def num_assets(self) -> int:
        """Perps per market."""
        return int(self.mid.shape[2])

    @property
    def tick_seconds(self) -> float:
        """Market tick (s)."""
        return float(self.params.tick_seconds)

    def series(self, name: str) -> NDArray[Any]:
        """A per-sample or per-tick field as ``(series, time)``: one row per env and asset."""
        x = getattr(self, name)
        if x.ndim == 2:  # per env: repeat for each asset
            x = np.repeat(x[:, :, None], self.num_assets, axis=2)
        t = x.shape[0]
        return np.ascontiguousarray(x.transpose(1, 2, 0).reshape(-1, t))


def _recording_overrides(base: MarketParams, seconds: float) -> dict[str, Any]:
    """Step one tick per decision. The agent's order and hedge latencies must then fit inside
    one tick; the passive agent sends neither, so they do not matter."""
    dt = base.tick_seconds
    latency = min(base.latency_seconds, 0.25 * dt)
    return {
        "decision_interval": dt,
        "latency_seconds": latency,
        "latency_cap_seconds": 0.5 * (latency + dt),
        "hedge_latency_seconds": min(base.hedge_latency_seconds, 0.5 * dt),
        "episode_seconds": seconds,
    }


def simulate(
    scenario: str,
    num_envs: int = 32,
    hours: float = 4.0,
    seed: int = 0,
    sample_seconds: float = 1.0,
    progress: Callable[[int], object] | None = None,
    label: str | None = None,
    **overrides: Any,
) -> MarketRecord:
    """Simulate ``num_envs`` independent markets of ``scenario`` for ``hours`` with a passive
    agent and record them.

    ``overrides`` are market parameters on top of the scenario's. ``progress``, if given, is
    called with the number of ticks just simulated (e.g. ``tqdm.update``). Env ``i`` is seeded
    with ``seed + i``. ``label`` names the run in tables (default: the scenario).
    """
    base = make_params(scenario, **overrides)
    dt = base.tick_seconds
    per_sample = round(sample_seconds / dt)
    if per_sample < 1 or abs(per_sample * dt - sample_seconds) > 1e-9:
        raise ValueError(f"sample_seconds must be a multiple of tick_seconds ({dt})")
    samples = max(1, round(hours * 3600.0 / sample_seconds))
    seconds = samples * sample_seconds
    sim_overrides = {**overrides, **_recording_overrides(base, seconds)}
    env = PerpMMVectorEnv(
        num_envs=num_envs, scenario=scenario, parallel=False, copy=False, **sim_overrides
    )
    params = env.params
    n, k = num_envs, params.num_assets
    action = np.tile(np.array(PASSIVE_ACTION * k, dtype=np.float64), (n, 1))
    env.reset(seed=seed)
    sim = env.sim
    assets, accounts, windows = sim.assets, sim.accounts, sim.windows

    ticks = samples * per_sample
    orders = np.zeros((ticks, n, k), dtype=np.int16)
    tick_regime = np.zeros((ticks, n), dtype=np.int8)
    shape = (samples + 1, n, k)
    rec: dict[str, NDArray[Any]] = {
        name: np.zeros(shape)
        for name in (
            "mid",
            "fair",
            "mark",
            "premium",
            "funding_estimate",
            "last_funding",
            "best_bid",
            "best_ask",
            "bid_top",
            "ask_top",
            "bid_depth5",
            "ask_depth5",
            "buy_volume",
            "sell_volume",
            "forced_buy",
            "forced_sell",
        )
    }
    coupled = np.zeros(shape, dtype=np.bool_)
    regime = np.zeros((samples + 1, n), dtype=np.int8)
    liquidations = np.zeros((samples + 1, n), dtype=np.int64)
    funded = np.zeros((samples + 1, n), dtype=np.bool_)

    tick = params.tick_size
    # Views into the kernel's state (written in place by every step).
    buy_orders, sell_orders = assets["taker_buy_orders"], assets["taker_sell_orders"]
    step_volumes = [
        (assets["taker_buy_volume"], rec["buy_volume"]),
        (assets["taker_sell_volume"], rec["sell_volume"]),
        (assets["forced_buy_volume"], rec["forced_buy"]),
        (assets["forced_sell_volume"], rec["forced_sell"]),
    ]
    acc_regime = accounts["regime"]

    def snapshot(t: int) -> None:
        rec["mid"][t] = assets["mid"]
        rec["fair"][t] = assets["fair_price"]
        rec["mark"][t] = assets["mark"]
        rec["premium"][t] = assets["premium"]
        rec["funding_estimate"][t] = windows["funding_estimate"]
        rec["last_funding"][t] = assets["funding_history"][:, :, 0]
        rec["best_bid"][t] = assets["best_bid"] * tick
        rec["best_ask"][t] = assets["best_ask"] * tick
        rec["bid_top"][t] = assets["bid_depth"][:, :, 0]
        rec["ask_top"][t] = assets["ask_depth"][:, :, 0]
        rec["bid_depth5"][t] = assets["bid_depth"][:, :, :DEPTH_LEVELS].sum(axis=2)
        rec["ask_depth5"][t] = assets["ask_depth"][:, :, :DEPTH_LEVELS].sum(axis=2)
        coupled[t] = assets["coupled"]
        regime[t] = acc_regime
        liquidations[t] = accounts["crowd_liquidations"]

    snapshot(0)
    next_funding = accounts["next_funding_tick"].copy()
    t_tick = 0
    for s in range(1, samples + 1):
        for _ in range(per_sample):
            env.step(action)
            np.add(buy_orders, sell_orders, out=orders[t_tick], casting="unsafe")
            tick_regime[t_tick] = acc_regime
            for source, target in step_volumes:
                target[s] += source
            t_tick += 1
        snapshot(s)
        nf = accounts["next_funding_tick"]
        funded[s] = nf != next_funding
        next_funding[:] = nf
        if progress is not None:
            progress(per_sample)
    cumulative = liquidations.copy()
    liquidations[1:] = np.diff(cumulative, axis=0)
    liquidations[0] = 0
    env.close()
    return MarketRecord(
        scenario=scenario,
        params=params,
        seed=seed,
        sample_seconds=float(sample_seconds),
        label=label or scenario,
        orders=orders,
        tick_regime=tick_regime,
        coupled=coupled,
        regime=regime,
        liquidations=liquidations,
        funded=funded,
        **rec,
    )


# --------------------------------------------------------------------------------------------
# Estimates
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its standard error and the sample size behind it."""

    value: float
    se: float
    n: int

    def __format__(self, spec: str) -> str:
        spec = spec or ".3g"
        return f"{self.value:{spec}} ± {self.se:{spec}}"


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


# --------------------------------------------------------------------------------------------
# Hawkes branching ratio
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Order-flow imbalance
# --------------------------------------------------------------------------------------------


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


def predicted_ofi_slope_bp(params: MarketParams, seconds: float = 1.0) -> F64:
    """Mid move (bp per base unit) the impact model predicts, per regime: the anchor shifts by
    ``impact_coefficient / depth_top`` ticks per unit and decays with ``impact_decay_seconds``,
    so flow spread evenly over ``seconds`` keeps ``tau (1 - exp(-T / tau)) / T`` of it."""
    tau = params.impact_decay_seconds
    kept = tau * (1.0 - math.exp(-seconds / tau)) / seconds
    ticks = params.impact_coefficient / np.array(params.depth_top)
    return ticks * params.tick_size / params.initial_price * 1e4 * kept


# --------------------------------------------------------------------------------------------
# Basis, funding, cascades
# --------------------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class CascadeWindow:
    """Time series of one env around its largest liquidation burst (asset ``asset``)."""

    env: int
    asset: int
    peak_second: float
    """Time (s since reset) of the end of the burst window."""
    burst_seconds: float
    burst_forced_volume: float
    """Forced volume (buys + sells, all assets) in the ``burst_seconds`` window ending at
    ``peak_second``."""
    burst_net_sell: float
    """Forced sells minus forced buys (all assets) in that window."""
    burst_liquidations: int
    time: F64
    """Seconds relative to ``peak_second``."""
    mid: F64
    fair: F64
    mark: F64
    forced_sell: F64
    forced_buy: F64
    taker_buy: F64
    taker_sell: F64
    bid_top: F64
    bid_depth5: F64
    ask_depth5: F64
    spread_ticks: F64
    liquidations: NDArray[np.int64]
    regime: NDArray[np.int8]


def cascade_window(
    record: MarketRecord,
    burst_seconds: float = 30.0,
    before_seconds: float = 180.0,
    after_seconds: float = 180.0,
    by: str = "net",
    skip_seconds: float = 0.0,
) -> CascadeWindow:
    """The largest liquidation burst of the record and its series around it.

    The burst is the env and window of ``burst_seconds`` with the most forced volume (summed
    over assets): ``by="net"`` ranks by one-sided forced volume ``|sells - buys|`` (a cascade
    pushes one way), ``by="gross"`` by ``sells + buys``. Windows ending in the first
    ``skip_seconds`` of the run are ignored.
    """
    if by == "net":
        flow = (record.forced_sell - record.forced_buy).sum(axis=2)  # (samples + 1, env)
    elif by == "gross":
        flow = (record.forced_buy + record.forced_sell).sum(axis=2)
    else:
        raise ValueError(f"by must be 'net' or 'gross', got {by!r}")
    per = max(1, round(burst_seconds / record.sample_seconds))
    csum = np.cumsum(flow, axis=0)
    window = csum.copy()
    window[per:] = csum[per:] - csum[:-per]
    rolling = np.abs(window)
    rolling[: round(skip_seconds / record.sample_seconds)] = -1.0
    peak = np.unravel_index(int(np.argmax(rolling)), rolling.shape)
    t_end, env = int(peak[0]), int(peak[1])
    first = max(0, t_end - per + 1)
    gross = (record.forced_buy + record.forced_sell)[first : t_end + 1, env]
    asset = int(np.argmax(gross.sum(axis=0)))
    lo = max(0, t_end - round(before_seconds / record.sample_seconds))
    hi = min(record.mid.shape[0], t_end + round(after_seconds / record.sample_seconds) + 1)
    sl = slice(lo, hi)
    tick = record.params.tick_size
    return CascadeWindow(
        env=env,
        asset=asset,
        peak_second=t_end * record.sample_seconds,
        burst_seconds=per * record.sample_seconds,
        burst_forced_volume=float(gross.sum()),
        burst_net_sell=float(
            (record.forced_sell - record.forced_buy)[first : t_end + 1, env].sum()
        ),
        burst_liquidations=int(record.liquidations[first : t_end + 1, env].sum()),
        time=(np.arange(lo, hi) - t_end) * record.sample_seconds,
        mid=record.mid[sl, env, asset],
        fair=record.fair[sl, env, asset],
        mark=record.mark[sl, env, asset],
        forced_sell=record.forced_sell[sl, env, asset],
        forced_buy=record.forced_buy[sl, env, asset],
        taker_buy=record.buy_volume[sl, env, asset],
        taker_sell=record.sell_volume[sl, env, asset],
        bid_top=record.bid_top[sl, env, asset],
        bid_depth5=record.bid_depth5[sl, env, asset],
        ask_depth5=record.ask_depth5[sl, env, asset],
        spread_ticks=(record.best_ask[sl, env, asset] - record.best_bid[sl, env, asset]) / tick,
        liquidations=record.liquidations[sl, env],
        regime=record.regime[sl, env],
    )


# --------------------------------------------------------------------------------------------
# One row of facts per scenario
# --------------------------------------------------------------------------------------------


def hawkes_fit_record(record: MarketRecord) -> HawkesFit:
    """Binned Hawkes MLE on the record's pooled taker order counts, one baseline per regime."""
    return fit_hawkes_binned(
        record.series("orders"), record.tick_seconds, regimes=record.series("tick_regime")
    )


def scenario_facts(record: MarketRecord, n_boot: int = 200) -> dict[str, Any]:
    """All stylized facts of one record as a flat dict (one row of :func:`summary_table`)."""
    p = record.params
    r1 = log_returns(record, 1.0)
    r10 = log_returns(record, 10.0)
    f1 = log_returns(record, 1.0, price="fair")
    # Control for the tick grid: the oracle rounded to the book's grid the way the mid is
    # (the background quotes floor/ceil the anchor, so the mid sits at k + 1/2 ticks).
    grid = (np.floor(record.series("fair") / p.tick_size) + 0.5) * p.tick_size
    g1 = np.diff(np.log(grid), axis=1)
    k1 = kurtosis(r1, n_boot=n_boot)
    k10 = kurtosis(r10, n_boot=n_boot)
    acf, acf_se = abs_return_acf(r1, 50)
    fit = hawkes_fit_record(record)
    cv = hawkes_count_variance(
        record.series("orders"), record.tick_seconds, 60.0, beta=fit.decay.value
    )
    ofi = order_flow_imbalance(record)
    reg = ofi_regression(r1 * 1e4, ofi)
    # Per-regime slope (the regime at the end of the second labels it).
    regime_1s = record.series("regime")[:, 1:]
    predicted = predicted_ofi_slope_bp(p)
    row: dict[str, Any] = {
        "scenario": record.label,
        "series": r1.shape[0],
        "hours": record.seconds / 3600.0,
        "vol_annual": float(r1.std() * math.sqrt(SECONDS_PER_YEAR)),
        "kurt_1s": k1.value,
        "kurt_1s_se": k1.se,
        "kurt_10s": k10.value,
        "kurt_10s_se": k10.se,
        "kurt_1s_oracle": kurtosis(f1, n_boot=0).value,
        "kurt_1s_grid": kurtosis(g1, n_boot=0).value,
        "ret_acf_1": return_acf(r1, 1),
        "abs_acf_1": float(acf[0]),
        "abs_acf_10": float(acf[9]),
        "abs_acf_50": float(acf[49]),
        "abs_acf_se": acf_se,
        "hawkes_n": fit.branching_ratio.value,
        "hawkes_n_se": fit.branching_ratio.se,
        "hawkes_n_true": p.hawkes_self + p.hawkes_cross,
        "hawkes_beta": fit.decay.value,
        "hawkes_beta_se": fit.decay.se,
        "hawkes_beta_true": p.hawkes_decay,
        "hawkes_n_countvar": cv.value,
        "hawkes_n_countvar_se": cv.se,
        "ofi_slope_bp": reg.slope.value,
        "ofi_slope_se": reg.slope.se,
        "ofi_t": reg.t,
        "ofi_r2": reg.r2,
    }
    for j, name in enumerate(REGIMES):
        mask = regime_1s == j
        # A slope needs enough seconds in the regime, spread over enough series to cluster on.
        if mask.sum() > 600 and (mask.sum(axis=1) > 60).sum() >= 4:
            sub = ofi_regression(r1 * 1e4, ofi, mask=mask)
            row[f"ofi_slope_{name}"] = sub.slope.value
            row[f"ofi_slope_{name}_se"] = sub.slope.se
        else:
            row[f"ofi_slope_{name}"] = float("nan")
            row[f"ofi_slope_{name}_se"] = float("nan")
        row[f"ofi_slope_{name}_model"] = float(predicted[j])
        row[f"time_{name}"] = float((record.regime[1:] == j).mean())
    row.update(basis_funding_summary(record))
    forced = record.forced_buy[1:] + record.forced_sell[1:]
    taker = record.buy_volume[1:] + record.sell_volume[1:]
    env_hours = record.num_envs * record.seconds / 3600.0
    row["liquidations_per_hour"] = float(record.liquidations.sum() / env_hours)
    row["forced_share"] = float(forced.sum() / (forced.sum() + taker.sum()))
    # Forced buys and sells in the same second of the same perp offset each other; a cascade
    # driven by the price liquidates one side at a time.
    offset = 2.0 * np.minimum(record.forced_buy[1:], record.forced_sell[1:]).sum()
    row["forced_two_sided_share"] = float(offset / forced.sum()) if forced.sum() > 0 else 0.0
    if record.liquidations.sum() > 0:
        cw = cascade_window(record, by="net")
        i0 = int(np.searchsorted(cw.time, -cw.burst_seconds))
        i1 = int(np.searchsorted(cw.time, 0.0))
        row["max_burst_net_sell"] = cw.burst_net_sell
        row["max_burst_volume"] = cw.burst_forced_volume
        row["max_burst_liquidations"] = cw.burst_liquidations
        row["max_burst_move_bp"] = float((cw.mid[i1] / cw.mid[i0] - 1.0) * 1e4)
    else:
        row["max_burst_net_sell"] = 0.0
        row["max_burst_volume"] = 0.0
        row["max_burst_liquidations"] = 0
        row["max_burst_move_bp"] = 0.0
    return row


def summary_table(
    records: Mapping[str, MarketRecord] | Iterable[MarketRecord], n_boot: int = 200
) -> pd.DataFrame:
    """One row of :func:`scenario_facts` per record, indexed by scenario."""
    items = records.values() if isinstance(records, Mapping) else records
    rows = [scenario_facts(r, n_boot=n_boot) for r in items]
    return pd.DataFrame(rows).set_index("scenario")
