"""Cross-asset dependence: the estimators against known laws, and the market's correlated shocks
and common jumps against their closed forms.

Tolerances are Z standard errors. Correlation SEs are the jackknife over envs (checked against
the i.i.d. Fisher SE on Gaussian data); a conditional exceedance share uses its binomial SE on
one pair of perps (two perps per env, so the returns are independent across ticks and envs).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy import integrate, stats

from mmgym.analysis.cross_asset import (
    correlation,
    cross_asset_facts,
    gaussian_tail_dependence,
    lower_tail_dependence,
    pair_returns,
    regime_mask,
    simulate_prices,
)
from mmgym.core.params import REGIMES, SECONDS_PER_YEAR

Z = 4.0
NO_SWITCH = ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0))


def _gaussian_pairs(
    rho: float, envs: int, n: int, seed: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(env, 1 pair, n) standard normals with correlation rho."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((envs, 1, n))
    y = rho * x + math.sqrt(1 - rho * rho) * rng.standard_normal((envs, 1, n))
    return x, y


# --- estimators ---------------------------------------------------------------------------------


def test_gaussian_tail_dependence_limits_and_monte_carlo() -> None:
    # Independence: P(U2 < q | U1 < q) = q. Comonotone limit: -> 1.
    assert gaussian_tail_dependence(0.05, 0.0) == pytest.approx(0.05, abs=1e-6)
    assert gaussian_tail_dependence(0.05, 0.9999) > 0.97
    # It falls as q -> 0 for rho < 1 (no tail dependence).
    lam = [gaussian_tail_dependence(q, 0.8) for q in (0.1, 0.01, 0.001)]
    assert lam[0] > lam[1] > lam[2]
    # Far in the tail (q = 1e-4): against Φ₂(z, z) = ∫ φ(x) Φ((z - rho x) / sqrt(1 - rho²)) dx.
    z4, rho = stats.norm.ppf(1e-4), 0.77
    joint = integrate.quad(
        lambda x: stats.norm.pdf(x) * stats.norm.cdf((z4 - rho * x) / math.sqrt(1 - rho * rho)),
        -40.0,
        z4,
        epsabs=0.0,
        epsrel=1e-10,
    )[0]
    assert gaussian_tail_dependence(1e-4, rho) == pytest.approx(joint / 1e-4, rel=1e-6)
    # Monte Carlo, 4e6 pairs at rho 0.7, q 5 %: 200,000 exceedances, SE ~ 0.0011.
    x, y = _gaussian_pairs(0.7, 1, 4_000_000, seed=11)
    z = stats.norm.ppf(0.05)
    cond = x.ravel() < z
    mc = float((y.ravel()[cond] < z).mean())
    se = math.sqrt(mc * (1 - mc) / cond.sum())
    assert abs(mc - gaussian_tail_dependence(0.05, 0.7)) < Z * se


def test_correlation_and_its_jackknife_se_on_gaussian_data() -> None:
    # 64 envs x 2,000: the pooled r near rho within Z x (1 - rho²)/sqrt(n) (0.0013); the
    # jackknife SE of 64 clusters is within ~9 % (relative SE sqrt(1 / (2 x 63))) of the
    # i.i.d. Fisher SE, so within 4 of those of it.
    rho, envs, n = 0.75, 64, 2_000
    x, y = _gaussian_pairs(rho, envs, n, seed=12)
    est = correlation(x, y)
    iid_se = (1 - rho * rho) / math.sqrt(envs * n)
    assert abs(est.value - rho) < Z * iid_se
    assert abs(est.se / iid_se - 1) < Z * math.sqrt(1 / (2 * (envs - 1)))
    assert abs(est.n / (envs * n) - 1) < 2 * Z * math.sqrt(1 / (2 * (envs - 1)))


def test_empirical_tail_dependence_matches_the_gaussian_copula_on_gaussian_data() -> None:
    x, y = _gaussian_pairs(0.75, 32, 10_000, seed=13)
    for q in (0.05, 0.01):
        td = lower_tail_dependence(x, y, q, rho=0.75)
        assert abs(td.empirical.value - td.gaussian) < Z * td.empirical.se, (q, td)
        assert td.empirical.n == math.floor(q * (x.size + 1))  # exact share per margin
    # Comonotone: every exceedance is joint; independent: the share is q.
    comonotone = lower_tail_dependence(x, x**3, 0.05)
    assert comonotone.empirical.value == 1.0
    ind = lower_tail_dependence(x, _gaussian_pairs(0.0, 32, 10_000, seed=14)[1], 0.05)
    assert abs(ind.empirical.value - 0.05) < Z * ind.empirical.se


def test_ties_are_broken_at_random_not_jointly() -> None:
    # Two independent series on a coarse grid (many ties at the quantile): tie breaking by
    # position would pair equal positions and fake dependence; at random it does not.
    rng = np.random.default_rng(15)
    x = np.round(rng.standard_normal((16, 1, 5_000)))
    y = np.round(rng.standard_normal((16, 1, 5_000)))
    td = lower_tail_dependence(x, y, 0.05)
    assert abs(td.empirical.value - 0.05) < Z * td.empirical.se


def test_regime_mask_keeps_returns_wholly_inside_a_regime() -> None:
    class Rec:
        sample_seconds = 1.0
        num_assets = 2
        regime = np.array([[0], [0], [2], [2], [2], [0], [0]], dtype=np.int8)  # 6 s, 1 env

    mask = regime_mask(Rec(), 2.0, 2)  # returns over [0, 2], [2, 4], [4, 6]
    assert mask.tolist() == [[False, True, False]]
    assert regime_mask(Rec(), 1.0, 0).tolist() == [[True, False, False, False, False, True]]


# --- the market ---------------------------------------------------------------------------------


def _tick_record(regime: str, seed: int, **overrides: object):  # type: ignore[no-untyped-def]
    """Two perps, regime held, no latent drift, fair price recorded every tick; the slow and
    permanent impact parts are off, so that each perp's own order flow does not move its fair
    price (the closed forms below are for the fair-price process alone)."""
    overrides = {
        "impact_memory_shares": (0.0, 0.0, 0.0),
        "impact_permanent_share": 0.0,
        **overrides,
    }
    return simulate_prices(
        "cross_margin_event",
        num_envs=32,
        hours=300.0 / 3600.0,
        seed=seed,
        sample_seconds=0.1,
        num_assets=2,
        initial_regime=regime,
        regime_switch_per_hour=NO_SWITCH,
        signal_move=(0.0, 0.0, 0.0),
        latency_seconds=0.02,
        latency_cap_seconds=0.06,
        hedge_latency_seconds=0.05,
        **overrides,
    )


@pytest.mark.parametrize("regime", ["calm", "stressed"])
def test_fair_return_correlation_is_the_diffusion_and_common_jump_mixture(regime: str) -> None:
    # Per tick the fair log return is sigma Z_k + J with corr(Z_1, Z_2) = rho and J the same
    # for both perps (probability p, exponential size m, down with probability d): its
    # correlation is (rho sigma² + v) / (sigma² + v), v = p 2 m² - (p m (1 - 2d))². Jumps
    # sized so that v is about sigma²: the mixture is far from both rho and 1.
    r = REGIMES.index(regime)
    vol = (0.5, 1.0, 2.0)[r]
    sigma = vol * math.sqrt(0.1 / SECONDS_PER_YEAR)
    rate, size = [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]
    rate[r], size[r] = 1800.0, sigma / math.sqrt(0.1)  # p = 0.05 per tick
    rec = _tick_record(
        regime,
        seed=21 + r,
        volatility=(0.5, 1.0, 2.0),
        jump_rate_per_hour=tuple(rate),
        jump_mean_size=tuple(size),
    )
    p = rec.params
    rho, d = p.asset_correlation[r], p.jump_down_prob
    prob, m = rate[r] * 0.1 / 3600.0, size[r]
    v = prob * 2 * m * m - (prob * m * (1 - 2 * d)) ** 2
    theory = (rho * sigma**2 + v) / (sigma**2 + v)
    first, second = pair_returns(rec, 0.1, "fair")  # 32 envs x 3,000 ticks
    est = correlation(first, second)
    assert abs(est.value - theory) < Z * est.se, (est, theory, rho)
    assert theory - rho > 10 * est.se  # the jumps' share is resolved


def test_joint_fall_probability_with_common_jumps_matches_the_closed_form() -> None:
    # Stressed, two perps, jumps with p = 0.05 per tick. For a threshold x = 2 sigma:
    # P(r1 < -x) = E_J Φ((-x - J - mu) / sigma) and P(r1 < -x, r2 < -x) = E_J Φ₂(.., ..; rho)
    # (mu = -sigma²/2, J = 0 without a jump), by quadrature over the exponential size. The
    # stochastic volatility multiplier is off: these laws are for a constant sigma.
    rec = _tick_record(
        "stressed", seed=23, jump_rate_per_hour=(0.0, 0.0, 1800.0), vol_of_vol=(0.0, 0.0, 0.0)
    )
    p = rec.params
    sigma = p.volatility[2] * math.sqrt(p.tick_seconds / SECONDS_PER_YEAR)
    rho, m, d = p.asset_correlation[2], p.jump_mean_size[2], p.jump_down_prob
    prob = 1800.0 * p.tick_seconds / 3600.0
    x, mu = 2.0 * sigma, -0.5 * sigma * sigma
    both = stats.multivariate_normal(mean=[0.0, 0.0], cov=[[1.0, rho], [rho, 1.0]])

    def expect(g) -> float:  # type: ignore[no-untyped-def]
        def density(y: float) -> float:
            return math.exp(-y / m) / m

        down = integrate.quad(lambda y: g(-y) * density(y), 0.0, 50 * m)[0]
        up = integrate.quad(lambda y: g(y) * density(y), 0.0, 50 * m)[0]
        return (1 - prob) * g(0.0) + prob * (d * down + (1 - d) * up)

    marginal = expect(lambda j: stats.norm.cdf((-x - j - mu) / sigma))
    joint = expect(lambda j: both.cdf([(-x - j - mu) / sigma] * 2))
    first, second = pair_returns(rec, 0.1, "fair")
    a, b = first.ravel(), second.ravel()  # 96,000 independent ticks
    fall = a < -x
    share = float(fall.mean())
    assert abs(share - marginal) < Z * math.sqrt(marginal * (1 - marginal) / a.size)
    cond = float((b[fall] < -x).mean())
    theory = joint / marginal
    assert abs(cond - theory) < Z * math.sqrt(theory * (1 - theory) / fall.sum()), (cond, theory)
    # and far above the Gaussian copula's value at the same correlation (no common jumps)
    gaussian = both.cdf([(-x - mu) / sigma] * 2) / stats.norm.cdf((-x - mu) / sigma)
    assert cond > gaussian + 10 * math.sqrt(theory * (1 - theory) / fall.sum())


def test_cross_margin_event_calibration() -> None:
    # The scenario with its regime held: calm 1 min mid returns correlate near the BTC-ETH
    # 0.7-0.8, stressed ones more, and their lower-tail dependence at 5 % is high and well
    # above the Gaussian copula's. 32 envs x 2 h per regime; measured: calm 0.803 ± 0.021,
    # stressed 0.920 ± 0.012, stressed λ_L(5 %) 0.854 ± 0.015 against the Gaussian 0.675.
    calm = cross_asset_facts(
        simulate_prices(
            "cross_margin_event", 32, 2.0, seed=31, initial_regime="calm",
            regime_switch_per_hour=NO_SWITCH,
        ),
        horizons=(60.0,),
    )[0]  # fmt: skip
    stress = cross_asset_facts(
        simulate_prices(
            "cross_margin_event", 32, 2.0, seed=32, initial_regime="stressed",
            regime_switch_per_hour=NO_SWITCH,
        ),
        horizons=(60.0,),
    )[0]  # fmt: skip
    assert 0.7 - Z * calm["corr_se"] < calm["corr"] < 0.8 + Z * calm["corr_se"], calm
    assert stress["corr"] - calm["corr"] > Z * math.hypot(calm["corr_se"], stress["corr_se"])
    assert stress["tail_5"] > 0.7, stress
    assert stress["tail_5"] - stress["gauss_5"] > Z * stress["tail_5_se"], stress
