"""Metaorder impact in the simulated market: the square-root law and the decay after the end.

:func:`metaorder_impact` runs independent markets of a scenario twice on the same seeds: once
undisturbed and once with a metaorder, a market order of ``rho V dt`` every tick for ``T``
seconds (``V`` the market's own traded volume per second, measured in the undisturbed run, so
the participation rate is ``rho``). The market's random path is the same in both runs (the
market stream's draws do not depend on what trades; :mod:`mmgym.core.kernel`), so the
difference of the two mids is the metaorder's own effect, with the market's flow as its
background and without the noise of the price's diffusion. Impact as the literature defines it
(Donier & Bonart 2015): ``I = side x (log mid at the end - log mid at the start)`` in bp, here
minus the same in the undisturbed run, against ``Q / V_day``.

:func:`square_root_fit` fits ``log I = a + delta log Q`` on the mean impact per metaorder size
(weighted least squares with the means' standard errors): the square-root law is ``delta =
1/2``. The reversion after the end is ``1 - I(end + post) / I(end)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numba as nb
import numpy as np
from numpy.typing import NDArray

from mmgym.analysis.estimate import Estimate
from mmgym.analysis.market_record import fixed_regime
from mmgym.core.book import buy_from_asks, sell_into_bids
from mmgym.core.impact import add_flow_impact
from mmgym.core.kernel import Markets, tick_env
from mmgym.core.params import SECONDS_PER_DAY, SECONDS_PER_YEAR
from mmgym.envs.perp_mm import PerpMMSimulator
from mmgym.scenarios import make_params

F64 = NDArray[np.float64]
REL_SE_FLOOR = 0.005
"""Smallest relative SE of a group's mean impact in the fit (see :func:`square_root_fit`)."""

FIXED_CALM: dict[str, Any] = fixed_regime("calm")
"""Overrides that hold a market in its calm regime (no switching)."""


@nb.njit(cache=True, error_model="numpy")
def run_metaorders(
    markets: Markets,
    side: NDArray[np.int64],
    child: F64,
    start_tick: int,
    end_tick: NDArray[np.int64],
    samples: NDArray[np.int64],
    sample_ticks: int,
    out: F64,
) -> None:
    """Step env ``i`` tick by tick for ``samples[i]`` samples of ``sample_ticks``, sending a
    market order of ``child[i]`` on ``side[i]`` in perp 0 after each tick from ``start_tick``
    until ``end_tick[i]``. Writes the log mid and the log anchor (fair price plus the fast
    impact: the price the book is centred on before rounding to ticks), in bp, at each sample:
    ``out[0, i, s]`` and ``out[1, i, s]``."""
    params, accounts, assets, windows, _, rng = markets
    P = params[0]
    for i in range(accounts.shape[0]):
        e = accounts[i]
        A = assets[i]
        W = windows[i]
        a = A[0]
        out[0, i, 0] = math.log(a.mid) * 1e4
        out[1, i, 0] = math.log(a.fair_ticks + a.impact) * 1e4
        for t in range(samples[i] * sample_ticks):
            tick_env(rng, i, e, A, W, P, 0)
            if start_tick <= t < end_tick[i] and child[i] > 0.0:
                r = e.regime
                if side[i] > 0:
                    add_flow_impact(a, P, r, buy_from_asks(a, P, r, child[i])[0])
                else:
                    add_flow_impact(a, P, r, -sell_into_bids(a, P, r, child[i])[0])
            if (t + 1) % sample_ticks == 0:
                s = (t + 1) // sample_ticks
                out[0, i, s] = math.log(a.mid) * 1e4
                out[1, i, s] = math.log(a.fair_ticks + a.impact) * 1e4


@dataclass(frozen=True)
class MetaorderRun:
    """What :func:`metaorder_impact` measured: one row per metaorder."""

    durations: F64
    """Duration T (s) of each metaorder."""
    q_over_v: F64
    """Size Q over the market's daily volume."""
    impact_bp: F64
    """Impact at the end (bp), the undisturbed run's move subtracted."""
    after_bp: F64
    """Impact ``post_factor x T`` after the end (bp)."""
    anchor_impact_bp: F64
    """The same on the anchor, the book's price before rounding to ticks (less noise)."""
    anchor_after_bp: F64
    sigma_day_bp: float
    """The fair price's daily diffusive volatility (bp)."""
    volume_per_second: float
    """The market's own traded volume (base units per second)."""
    participation: float
    post_factor: float


def metaorder_impact(
    scenario: str = "calm",
    durations: Sequence[float] = (20, 50, 100, 200, 500, 1000, 2000),
    participation: float = 0.1,
    envs_per_duration: int = 64,
    post_factor: float = 1.0,
    warmup_seconds: float = 60.0,
    seed: int = 0,
    **overrides: Any,
) -> MetaorderRun:
    """Metaorders of each duration at a fixed participation rate, each in its own market (half
    buys, half sells), paired with the same market undisturbed (see the module docstring)."""
    params = make_params(scenario, **overrides)
    dt = params.tick_seconds
    sample_ticks = round(1.0 / dt)
    durations_s = np.repeat(np.asarray(durations, dtype=np.float64), envs_per_duration)
    n = durations_s.size
    start = round(warmup_seconds)
    stop = start + np.round(durations_s).astype(np.int64)
    after = stop + np.round(post_factor * durations_s).astype(np.int64)
    side = np.where(np.arange(n) % 2 == 0, 1, -1).astype(np.int64)
    seeds = np.arange(seed, seed + n, dtype=np.uint64)

    def run(child: F64) -> tuple[F64, F64]:
        sim = PerpMMSimulator(n, params, parallel=False)
        sim.reset(np.ones(n, dtype=np.bool_), seeds)
        out = np.zeros((2, n, int(after.max()) + 1))
        run_metaorders(
            sim._markets, side, child, start * sample_ticks, stop * sample_ticks, after,
            sample_ticks, out,
        )  # fmt: skip
        traded = sim.assets["taker_buy_volume"][:, 0] + sim.assets["taker_sell_volume"][:, 0]
        return out, traded / after

    base, volume = run(np.zeros(n))
    v = float(volume.mean())
    meta, _ = run(np.full(n, participation * v * dt))
    rows = np.arange(n)

    def effect(t: NDArray[np.int64], price: int) -> F64:
        m, b = meta[price], base[price]
        move = (m[rows, t] - m[:, start]) - (b[rows, t] - b[:, start])
        return np.asarray(side * move, dtype=np.float64)

    sigma_day = params.volatility[0] * math.sqrt(SECONDS_PER_DAY / SECONDS_PER_YEAR) * 1e4
    return MetaorderRun(
        durations=durations_s,
        q_over_v=participation * durations_s / SECONDS_PER_DAY,
        impact_bp=effect(stop, 0),
        after_bp=effect(after, 0),
        anchor_impact_bp=effect(stop, 1),
        anchor_after_bp=effect(after, 1),
        sigma_day_bp=sigma_day,
        volume_per_second=v,
        participation=participation,
        post_factor=post_factor,
    )


@dataclass(frozen=True)
class SquareRootFit:
    """``log I = a + delta log(Q / V)`` on the mean impact per size, and the reversion."""

    exponent: Estimate
    """delta (1/2: the square-root law)."""
    y: Estimate
    """Prefactor Y of ``I = Y sigma_day (Q / V_day)^delta`` at the geometric mean size."""
    reversion: Estimate
    """``1 - sum I(end + post) / sum I(end)``, pooled over sizes."""
    sizes: F64
    """Q / V_day per group."""
    mean_impact: F64
    """Mean impact per group (bp) and its SE."""
    mean_impact_se: F64
    mean_after: F64
    """Mean impact ``post`` after the end, per group (bp)."""


def square_root_fit(run: MetaorderRun, anchor: bool = False) -> SquareRootFit:
    """Fit the impact law on the group means (WLS in logs, SE of log mean = SE / mean), on the
    mid or (``anchor``) on the anchor."""
    impact = run.anchor_impact_bp if anchor else run.impact_bp
    after_all = run.anchor_after_bp if anchor else run.after_bp
    sizes = np.unique(run.q_over_v)
    if sizes.size < 2:
        raise ValueError(f"fitting the impact law needs at least two sizes, got {sizes.size}")
    means, ses, after = [], [], []
    for q in sizes:
        x = impact[run.q_over_v == q]
        means.append(x.mean())
        # floor: the impact's scale in ticks varies with the price level (calm: 0.5 % in 1 h),
        # so an anchor group whose paired differences are nearly equal is no surer than that
        ses.append(max(x.std(ddof=1) / math.sqrt(x.size), REL_SE_FLOOR * abs(x.mean())))
        after.append(after_all[run.q_over_v == q].mean())
    m, s = np.array(means), np.array(ses)
    if np.any(m <= 0.0):
        raise ValueError(f"mean impacts must be positive to fit a power law, got {m}")
    logq = np.log(sizes)
    w = (m / s) ** 2  # 1 / Var(log mean)
    xc = logq - np.average(logq, weights=w)
    slope = float(np.sum(w * xc * np.log(m)) / np.sum(w * xc * xc))
    intercept = float(np.average(np.log(m) - slope * logq, weights=w))
    # Birge ratio: scale the SE up when the means scatter about the line more than their SEs say
    chi2 = float(np.sum(w * (np.log(m) - intercept - slope * logq) ** 2))
    birge = max(1.0, chi2 / (sizes.size - 2)) if sizes.size > 2 else 1.0
    slope_se = float(math.sqrt(birge / np.sum(w * xc * xc)))
    centre = float(np.exp(np.average(logq, weights=w)))
    y = math.exp(intercept) * centre**slope / centre**0.5 / run.sigma_day_bp
    y_se = y * 1.0 / math.sqrt(np.sum(w))
    # reversion: delta method on the ratio of pooled sums
    a, b = after_all, impact
    ratio = a.sum() / b.sum()
    resid = a - ratio * b
    ratio_se = math.sqrt(np.sum(resid**2)) / abs(b.sum())
    return SquareRootFit(
        exponent=Estimate(slope, slope_se, int(b.size)),
        y=Estimate(y, y_se, int(b.size)),
        reversion=Estimate(1.0 - ratio, ratio_se, int(b.size)),
        sizes=sizes,
        mean_impact=m,
        mean_impact_se=s,
        mean_after=np.array(after),
    )
