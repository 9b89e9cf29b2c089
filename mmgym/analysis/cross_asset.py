"""Cross-asset dependence of a multi-asset record: return correlation and lower-tail dependence.

Returns of every pair of perps of an env are pooled over the pairs and envs (``(env, pair,
return)`` arrays); the envs are independent, the pairs of one env are not, so standard errors
are over envs:

- :func:`correlation`: pooled Pearson correlation; its SE is the delete-one-env jackknife SE of
  the Fisher z, mapped back by the delta method (``(1 - r²) se_z``), and the effective sample
  is the ``n`` for which the i.i.d. Fisher SE ``1 / sqrt(n - 3)`` equals it;
- :func:`lower_tail_dependence`: the empirical ``λ_L(q) = P(r2 < F2⁻¹(q) | r1 < F1⁻¹(q))``
  on pseudo-observations (ranks, ties broken at random by a seeded generator, so each margin
  has exactly ``floor(q n)`` exceedances), with its binomial SE, next to the value a Gaussian
  copula with the same correlation gives (:func:`gaussian_tail_dependence`:
  ``Φ₂(Φ⁻¹(q), Φ⁻¹(q); ρ) / q``, which tends to 0 as ``q -> 0`` for any ``ρ < 1``);
- :func:`pair_returns` and :func:`regime_mask`: the pairs' log returns over a horizon and the
  returns that lie wholly in one volatility regime.

They read a :class:`~mmgym.analysis.market_record.MarketRecord` or the lighter
:class:`PriceRecord` of :func:`simulate_prices` (prices and the regime only, stepped one second
per decision rather than one tick, about ten times faster).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from mmgym.analysis.estimate import Estimate
from mmgym.analysis.market_record import passive_run
from mmgym.core.params import REGIMES, MarketParams
from mmgym.scenarios import make_params

F64 = NDArray[np.float64]


class Prices(Protocol):
    """What the estimators read: a :class:`MarketRecord` or a :class:`PriceRecord`."""

    @property
    def mid(self) -> F64: ...
    @property
    def fair(self) -> F64: ...
    @property
    def regime(self) -> NDArray[np.int8]: ...
    @property
    def sample_seconds(self) -> float: ...
    @property
    def num_assets(self) -> int: ...


@dataclass
class PriceRecord:
    """Mid and fair prices ``(samples + 1, env, asset)`` and the regime ``(samples + 1, env)``
    of :func:`simulate_prices`; row 0 is the state at reset."""

    label: str
    params: MarketParams
    seed: int
    sample_seconds: float
    mid: F64
    fair: F64
    regime: NDArray[np.int8]

    @property
    def num_envs(self) -> int:
        """Number of simulated markets."""
        return int(self.mid.shape[1])

    @property
    def num_assets(self) -> int:
        """Perps per market."""
        return int(self.mid.shape[2])


def simulate_prices(
    scenario: str,
    num_envs: int = 32,
    hours: float = 4.0,
    seed: int = 0,
    sample_seconds: float = 1.0,
    progress: Callable[[int], object] | None = None,
    label: str | None = None,
    **overrides: Any,
) -> PriceRecord:
    """Simulate ``num_envs`` markets of ``scenario`` (env ``i`` seeded ``seed + i``) for
    ``hours`` with a passive agent, one decision per ``sample_seconds``, and record the mid, the
    fair price and the regime after every decision. ``progress`` is called with the market
    ticks just simulated per env."""
    samples = max(1, round(hours * 3600.0 / sample_seconds))
    params = make_params(scenario, **overrides)
    shape = (samples + 1, num_envs, params.num_assets)
    mid, fair = np.zeros(shape), np.zeros(shape)
    regime = np.zeros((samples + 1, num_envs), dtype=np.int8)
    run = passive_run(scenario, num_envs, samples, sample_seconds, seed, overrides, progress)
    for s, env in enumerate(run):
        params = env.params
        mid[s] = env.sim.assets["mid"]
        fair[s] = env.sim.assets["fair_price"]
        regime[s] = env.sim.accounts["regime"]
    return PriceRecord(
        label=label or scenario,
        params=params,
        seed=seed,
        sample_seconds=float(sample_seconds),
        mid=mid,
        fair=fair,
        regime=regime,
    )


@dataclass(frozen=True)
class TailDependence:
    """Empirical lower-tail dependence at level ``q`` and the Gaussian copula's value."""

    q: float
    empirical: Estimate
    """``λ_L(q)`` with its binomial SE; ``n`` is the number of conditioning exceedances."""
    gaussian: float
    """``λ_L(q)`` of a Gaussian copula with the measured correlation."""

    @property
    def ratio(self) -> float:
        """How many times more joint crashes than the Gaussian copula predicts."""
        return self.empirical.value / self.gaussian if self.gaussian > 0 else math.inf


def _step(record: Prices, seconds: float) -> int:
    step = round(seconds / record.sample_seconds)
    if step < 1 or abs(step * record.sample_seconds - seconds) > 1e-9:
        raise ValueError("seconds must be a multiple of the record's sample_seconds")
    return step


def pair_returns(record: Prices, seconds: float = 60.0, price: str = "mid") -> tuple[F64, F64]:
    """Non-overlapping log returns over ``seconds`` of both perps of every pair, each
    ``(env, pair, return)``; pairs ``(i, j)``, ``i < j``, in order."""
    if record.num_assets < 2:
        raise ValueError(f"cross-asset facts need num_assets >= 2, got {record.num_assets}")
    p = getattr(record, price)[:: _step(record, seconds)]  # (time, env, asset)
    r = np.diff(np.log(p), axis=0).transpose(1, 2, 0)  # (env, asset, return)
    pairs = list(itertools.combinations(range(record.num_assets), 2))
    first = r[:, [i for i, _ in pairs], :]
    second = r[:, [j for _, j in pairs], :]
    return first, second


def regime_mask(record: Prices, seconds: float, regime: int) -> NDArray[np.bool_]:
    """``(env, return)``: the return over ``seconds`` lies wholly in ``regime`` (the regime
    recorded at every sample of the interval, its ends included)."""
    step = _step(record, seconds)
    reg = record.regime  # (samples + 1, env)
    n = (reg.shape[0] - 1) // step
    inside = reg[: n * step + 1] == regime
    ok = np.ones((n, reg.shape[1]), dtype=np.bool_)
    for s in range(step + 1):
        ok &= inside[s : s + n * step : step][:n]
    return ok.T


def _fisher_z(x: F64, y: F64) -> tuple[float, int]:
    n = x.size
    if n < 4:
        return float("nan"), n
    r = float(np.corrcoef(x, y)[0, 1])
    return math.atanh(min(max(r, -0.999999), 0.999999)), n


def correlation(first: F64, second: F64, mask: NDArray[np.bool_] | None = None) -> Estimate:
    """Pooled Pearson correlation of ``first`` and ``second`` (``(env, pair, return)``) over
    the returns where ``mask`` (``(env, return)``) holds, with the jackknife-over-envs SE of
    Fisher's z mapped back to r; ``n`` is the effective sample (``3 + 1 / se_z²``)."""
    envs = first.shape[0]
    m = np.ones((envs, first.shape[2]), dtype=np.bool_) if mask is None else mask
    m = np.broadcast_to(m[:, None, :], first.shape)
    z_all, n_all = _fisher_z(first[m], second[m])
    if not math.isfinite(z_all):
        return Estimate(float("nan"), float("nan"), n_all)
    # Delete-one-env jackknife of z from per-env sums (Pearson from sufficient statistics).
    sums = np.stack(
        [
            np.where(m, 1.0, 0.0).sum(axis=(1, 2)),
            np.where(m, first, 0.0).sum(axis=(1, 2)),
            np.where(m, second, 0.0).sum(axis=(1, 2)),
            np.where(m, first * first, 0.0).sum(axis=(1, 2)),
            np.where(m, second * second, 0.0).sum(axis=(1, 2)),
            np.where(m, first * second, 0.0).sum(axis=(1, 2)),
        ]
    )
    used = sums[0] > 0
    if used.sum() < 3:
        return Estimate(math.tanh(z_all), float("nan"), n_all)
    total = sums[:, used].sum(axis=1)
    z = []
    for e in np.flatnonzero(used):
        n, sx, sy, sxx, syy, sxy = total - sums[:, e]
        cov = sxy - sx * sy / n
        var_x, var_y = sxx - sx * sx / n, syy - sy * sy / n
        r = cov / math.sqrt(var_x * var_y)
        z.append(math.atanh(min(max(r, -0.999999), 0.999999)))
    g = len(z)
    se_z = math.sqrt((g - 1) / g * float(np.sum((np.array(z) - np.mean(z)) ** 2)))
    r_all = math.tanh(z_all)
    n_eff = round(3 + 1 / se_z**2) if se_z > 0 else n_all
    return Estimate(r_all, (1 - r_all * r_all) * se_z, n_eff)


def _pseudo_observations(x: F64, rng: np.random.Generator) -> F64:
    """Ranks scaled to (0, 1), ties broken at random."""
    order = np.lexsort((rng.random(x.size), x))
    u = np.empty(x.size)
    u[order] = (np.arange(x.size) + 1.0) / (x.size + 1.0)
    return u


def gaussian_tail_dependence(q: float, rho: float) -> float:
    """``P(U2 < q | U1 < q)`` of a Gaussian copula with correlation ``rho``."""
    z = stats.norm.ppf(q)
    cov = [[1.0, rho], [rho, 1.0]]
    joint = stats.multivariate_normal(mean=[0.0, 0.0], cov=cov).cdf([z, z])
    return float(joint / q)


def lower_tail_dependence(
    first: F64,
    second: F64,
    q: float,
    mask: NDArray[np.bool_] | None = None,
    rho: float | None = None,
    seed: int = 0,
) -> TailDependence:
    """Empirical ``λ_L(q)`` of the pooled returns (``(env, pair, return)``, where ``mask``
    holds) with its binomial SE, and the Gaussian copula's value at correlation ``rho`` (by
    default the pooled Pearson correlation of the same returns)."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"q must be in (0, 1), got {q}")
    m = np.ones((first.shape[0], first.shape[2]), dtype=np.bool_) if mask is None else mask
    m = np.broadcast_to(m[:, None, :], first.shape)
    x, y = first[m], second[m]
    if rho is None:
        rho = float(np.corrcoef(x, y)[0, 1]) if x.size > 3 else float("nan")
    rng = np.random.default_rng(seed)
    u, v = _pseudo_observations(x, rng), _pseudo_observations(y, rng)
    cond = u <= q
    n1 = int(cond.sum())
    if n1 == 0:
        return TailDependence(q, Estimate(float("nan"), float("nan"), 0), float("nan"))
    lam = float((v[cond] <= q).mean())
    se = math.sqrt(lam * (1 - lam) / n1)
    gauss = gaussian_tail_dependence(q, rho) if math.isfinite(rho) else float("nan")
    return TailDependence(q, Estimate(lam, se, n1), gauss)


TAIL_LEVELS: tuple[float, ...] = (0.05, 0.01)
"""Levels ``q`` of the lower-tail dependence in :func:`cross_asset_facts`."""

HORIZONS: tuple[float, ...] = (60.0, 300.0)
"""Return horizons (s) of :func:`cross_asset_facts`."""

MIN_RETURNS = 200
"""Fewer pair returns than this in a regime: its facts are left out (NaN)."""


def _tag(q: float) -> str:
    return f"{100 * q:g}".replace(".", "_")


def cross_asset_facts(
    record: Prices,
    horizons: tuple[float, ...] = HORIZONS,
    levels: tuple[float, ...] = TAIL_LEVELS,
    price: str = "mid",
) -> list[dict[str, float | str]]:
    """One row per horizon and regime (``all``, then each regime by name): pair returns used,
    correlation with its SE and effective sample, and per level ``q`` the empirical
    ``λ_L(q)`` with its SE and the Gaussian copula's value at the measured correlation. Keys:
    ``horizon``, ``regime``, ``returns``, ``corr``, ``corr_se``, ``corr_n_eff``,
    ``tail_<q %>``, ``tail_<q %>_se``, ``tail_<q %>_n``, ``gauss_<q %>``."""
    rows: list[dict[str, float | str]] = []
    for seconds in horizons:
        first, second = pair_returns(record, seconds, price)
        pairs = first.shape[1]
        masks: list[tuple[str, NDArray[np.bool_] | None]] = [("all", None)]
        masks += [(name, regime_mask(record, seconds, j)) for j, name in enumerate(REGIMES)]
        for name, mask in masks:
            count = first.shape[0] * first.shape[2] if mask is None else int(mask.sum())
            row: dict[str, float | str] = {
                "horizon": seconds,
                "regime": name,
                "returns": count * pairs,
            }
            enough = count * pairs >= MIN_RETURNS
            c = correlation(first, second, mask) if enough else Estimate(math.nan, math.nan, 0)
            row.update(corr=c.value, corr_se=c.se, corr_n_eff=c.n)
            for q in levels:
                tag = _tag(q)
                if enough:
                    td = lower_tail_dependence(first, second, q, mask, rho=c.value)
                    lam, gauss = td.empirical, td.gaussian
                else:
                    lam, gauss = Estimate(math.nan, math.nan, 0), math.nan
                row.update(
                    {
                        f"tail_{tag}": lam.value,
                        f"tail_{tag}_se": lam.se,
                        f"tail_{tag}_n": lam.n,
                        f"gauss_{tag}": gauss,
                    }
                )
            rows.append(row)
    return rows
