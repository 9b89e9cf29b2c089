"""The tail-exponent and long-memory estimators (mmgym.analysis.tails) on synthetic data with a
known answer; seeded, tolerances in standard errors (Z) stated next to each check."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mmgym.analysis.tails import abs_acf, abs_acf_at, acf_power_law, hill, hill_tail_index
from mmgym.core.stochastic_vol import abs_return_acf_model

Z = 4.0


@pytest.mark.parametrize("alpha", [2.0, 3.0, 4.5])
def test_hill_recovers_a_pareto_exponent(alpha: float) -> None:
    # Symmetric Pareto (x_min 1): above any order statistic the tail is exactly Pareto, so Hill
    # is unbiased in 1/alpha; SE alpha / sqrt(k).
    rng = np.random.default_rng(1)
    x = rng.pareto(alpha, (16, 20_000)) + 1.0
    r = x * rng.choice([-1.0, 1.0], x.shape)
    est = hill_tail_index(r, fraction=0.02)
    k = round(0.02 * r.size)
    assert est.n == k
    assert abs(est.value - alpha) < Z * alpha / math.sqrt(k), est


def test_hill_jackknife_se_matches_the_sampling_spread() -> None:
    # Over 24 independent Pareto(3) samples the jackknife SE averages to alpha / sqrt(k) (one
    # 16-group jackknife SE scatters by about 25 %, so the mean of 24 by about 5 %; 4 SE: 20 %)
    # and the estimates scatter by as much.
    rng = np.random.default_rng(6)
    fits = [hill_tail_index(rng.pareto(3.0, (16, 5_000)) + 1.0, 0.02) for _ in range(24)]
    want = 3.0 / math.sqrt(round(0.02 * 80_000))
    assert np.mean([f.se for f in fits]) == pytest.approx(want, rel=0.2)
    # std of 24 draws: relative SE 1 / sqrt(46) = 15 %; 4 SE: 60 %
    assert np.std([f.value for f in fits], ddof=1) == pytest.approx(want, rel=0.6)


def test_hill_on_student_t_three_is_near_three() -> None:
    # Student t with 3 degrees of freedom: P(|T| > x) ~ c x^-3 with a second-order term x^-5,
    # whose bias at the top 0.5 % of 1.6 M draws is below 0.05 (Hall 1982); SE 3 / sqrt(8000).
    rng = np.random.default_rng(2)
    r = rng.standard_t(3.0, (16, 100_000))
    est = hill_tail_index(r, fraction=0.005)
    assert abs(est.value - 3.0) < Z * est.se + 0.05, est
    # ... and a normal law has no power tail: far above 3 at the same depth.
    assert hill_tail_index(rng.standard_normal((16, 100_000)), 0.005).value > 5.0


def test_hill_checks_k_and_single_series_se() -> None:
    with pytest.raises(ValueError, match="k must be"):
        hill(np.ones(10), 10)
    r = np.random.default_rng(3).pareto(3.0, 5000) + 1.0
    est = hill_tail_index(r, fraction=0.04)
    assert est.se == pytest.approx(est.value / math.sqrt(200))


def _ou_vol_returns(
    series: int, steps: int, s: tuple[float, ...], tau: tuple[float, ...], seed: int
) -> np.ndarray:
    """r = v Z, log v = sum of stationary AR(1) (exact OU, unit step) components minus V."""
    rng = np.random.default_rng(seed)
    x = np.zeros((series, steps))
    for sj, tj in zip(s, tau, strict=True):
        a = math.exp(-1.0 / tj)
        c = np.empty((series, steps))
        c[:, 0] = sj * rng.standard_normal(series)
        noise = sj * math.sqrt(1 - a * a) * rng.standard_normal((series, steps))
        for t in range(1, steps):
            c[:, t] = a * c[:, t - 1] + noise[:, t]
        x += c
    v = np.exp(x - sum(q * q for q in s))
    return v * rng.standard_normal((series, steps))


def test_acf_power_law_matches_the_slope_of_the_known_acf() -> None:
    s, tau = (0.4, 0.4, 0.4), (3.0, 30.0, 300.0)
    lags = [1, 2, 4, 8, 16, 32, 64]
    r = _ou_vol_returns(64, 20_000, s, tau, seed=4)
    est = acf_power_law(r, lags, groups=16)
    model = np.array([abs_return_acf_model(s, tau, float(h)) for h in lags])
    want = -np.polyfit(np.log(lags), np.log(model), 1)[0]
    assert 0.1 < want < 1.0  # a slow, power-law-like decay over this range
    assert abs(est.value - want) < Z * est.se, (est, want)
    assert est.se < 0.1 * want
    # A single fast component decays exponentially: far steeper over the same lags.
    fast = acf_power_law(_ou_vol_returns(64, 5_000, (0.7,), (3.0,), seed=5), lags[:4])
    assert fast.value > want + Z * fast.se


def test_abs_acf_has_no_lag_shrinkage() -> None:
    # Series that are constant at levels drawn per series: every lag's ACF is the between-series
    # share of the variance, 1 here, whatever the lag (the usual estimator gives (T - h) / T).
    levels = np.random.default_rng(7).standard_normal((200, 1)) * np.ones((200, 10))
    np.testing.assert_allclose(abs_acf(levels, [1, 5, 9]), 1.0)


def test_abs_acf_at_has_a_jackknife_se_that_covers_zero_for_iid_returns() -> None:
    # i.i.d. normals: the true ACF of |r| is 0 and its SE is the white-noise 1 / sqrt(n). One
    # 8-group jackknife SE scatters by about 27 %; the mean of 12 by about 8 % (4 SE: 32 %).
    rng = np.random.default_rng(8)
    fits = [abs_acf_at(rng.standard_normal((32, 2_000)), 1) for _ in range(12)]
    assert np.mean([f.se for f in fits]) == pytest.approx(1 / math.sqrt(64_000), rel=0.32)
    assert all(abs(f.value) < Z * f.se for f in fits)
    r = rng.standard_normal((8, 100))
    assert abs_acf_at(r, 1).value == pytest.approx(abs_acf(r, [1])[0])
