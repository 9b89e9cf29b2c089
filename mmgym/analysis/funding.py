"""Funding-rate statistics on an 8 h basis, with standard errors from independent envs.

:func:`simulate_funding` runs a scenario with a passive agent and funding paid every 8 h
(``funding_interval_seconds = 28800``: the rate of each interval is the 8 h rate from the
interval's mean premium, like Binance's and BitMEX's published series), and records the rates
paid, the basis and the leverage-demand premium. :func:`funding_facts` measures the share of
intervals at the interest default, the share positive, the mean, std and extremes of the rate,
and the basis; every standard error is a jackknife over envs (delete one env), the envs being
independent runs, so the autocorrelation of the premium within a run is accounted for.
:func:`share_at_default` is the closed form for a normal interval-mean premium.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from mmgym.analysis.estimate import Estimate
from mmgym.analysis.market_record import passive_run
from mmgym.core.params import SECONDS_PER_8H, MarketParams

F64 = NDArray[np.float64]
Statistic = Callable[[F64], float]


@dataclass(frozen=True)
class FundingRecord:
    """Funding of ``num_envs`` independent runs of one scenario (first perp)."""

    label: str
    params: MarketParams
    rates: F64
    """8 h rates paid, ``(env, interval)`` (fraction per 8 h)."""
    basis: F64
    """Basis ``(mid - oracle) / oracle`` at each sample, ``(env, sample)`` (fraction)."""
    carry: F64
    """Leverage-demand premium at each sample, ``(env, sample)`` (fraction)."""

    @property
    def num_envs(self) -> int:
        """Independent runs."""
        return int(self.rates.shape[0])


def simulate_funding(
    scenario: str,
    num_envs: int = 32,
    hours: float = 96.0,
    seed: int = 0,
    sample_seconds: float = 60.0,
    label: str | None = None,
    progress: Callable[[int], object] | None = None,
    **overrides: Any,
) -> FundingRecord:
    """Simulate ``num_envs`` markets of ``scenario`` (env ``i`` seeded ``seed + i``) for ``hours``
    with a passive agent and funding every 8 h; one decision per ``sample_seconds``.
    ``progress`` is called with the market ticks just simulated per env."""
    samples = max(1, round(hours * 3600.0 / sample_seconds))
    eight_hourly = {
        **overrides,
        "funding_interval_seconds": SECONDS_PER_8H,
        "random_funding_phase": False,
    }
    basis = np.zeros((num_envs, samples))
    carry = np.zeros_like(basis)
    rates: list[F64] = []
    run = passive_run(scenario, num_envs, samples, sample_seconds, seed, eight_hourly, progress)
    next_funding = np.zeros(num_envs, dtype=np.int64)
    for s, env in enumerate(run):
        params = env.params
        assets, accounts = env.sim.assets, env.sim.accounts
        nf = accounts["next_funding_tick"]
        if s > 0:
            basis[:, s - 1] = assets["mid"][:, 0] / assets["fair_price"][:, 0] - 1.0
            carry[:, s - 1] = assets["carry"][:, 0]
            if np.all(nf != next_funding):
                rates.append(assets["funding_history"][:, 0, 0].copy())
        next_funding[:] = nf
    return FundingRecord(
        label=label or scenario,
        params=params,
        rates=np.array(rates).T.reshape(num_envs, -1),
        basis=basis,
        carry=carry,
    )


def jackknife(values: F64, statistic: Statistic) -> Estimate:
    """``statistic`` of all rows of ``values`` pooled, with its delete-one-row jackknife SE
    (rows: independent runs)."""
    n = values.shape[0]
    full = statistic(values.ravel())
    if n < 2:
        return Estimate(full, math.nan, values.size)
    leave = np.array([statistic(np.delete(values, j, axis=0).ravel()) for j in range(n)])
    se = math.sqrt((n - 1) / n * float(((leave - leave.mean()) ** 2).sum()))
    return Estimate(full, se, values.size)


def share_at_default(mean: float, std: float, interest: float, clamp: float) -> float:
    """Share of intervals paying the interest default ``I`` when the interval's mean premium is
    normal(``mean``, ``std``): the clamp pays ``I`` whenever it lies in ``[I - c, I + c]``."""
    if std <= 0.0:
        return float(interest - clamp <= mean <= interest + clamp)
    hi = (interest + clamp - mean) / std
    lo = (interest - clamp - mean) / std
    return float(stats.norm.cdf(hi) - stats.norm.cdf(lo))


def funding_facts(record: FundingRecord) -> dict[str, Estimate]:
    """The funding and basis facts of a record (rates in bp per 8 h, basis in bp)."""
    interest = record.params.funding_interest_8h
    bp = record.rates * 1e4
    basis = record.basis * 1e4

    def at_default(x: F64) -> float:
        return float(np.isclose(x, interest * 1e4, rtol=0.0, atol=1e-9).mean())

    return {
        "at_default": jackknife(bp, at_default),
        "positive": jackknife(bp, lambda x: float((x > 0.0).mean())),
        "mean": jackknife(bp, lambda x: float(x.mean())),
        "std": jackknife(bp, lambda x: float(x.std())),
        "min": Estimate(float(bp.min()), math.nan, bp.size),
        "max": Estimate(float(bp.max()), math.nan, bp.size),
        "basis_mean": jackknife(basis, lambda x: float(x.mean())),
        "basis_abs": jackknife(basis, lambda x: float(np.abs(x).mean())),
        "basis_p05": jackknife(basis, lambda x: float(np.quantile(x, 0.05))),
        "basis_p95": jackknife(basis, lambda x: float(np.quantile(x, 0.95))),
    }
