"""The multi-timescale volatility multiplier against its closed forms (mmgym.core.stochastic_vol).

Every check is seeded; its tolerance is Z standard errors, the SE stated next to it and derived
from the sample size (envs are independent, so SEs over envs are exact, not asymptotic
guesses about dependence in time).
"""

from __future__ import annotations

import math
from typing import Any

import numba as nb
import numpy as np
import pytest
from numpy.typing import NDArray

from mmgym.analysis.market_record import PASSIVE_ACTION
from mmgym.core.layout import account_dtype, pack_params
from mmgym.core.params import MarketParams
from mmgym.core.rng import new_streams, seed_streams
from mmgym.core.stochastic_vol import (
    VOL_COMPONENTS,
    abs_return_acf_model,
    log_vol_autocovariance,
    reset_vol,
    squared_vol_acf,
    step_vol,
)
from mmgym.envs.perp_mm import PerpMMVectorEnv

Z = 4.0
VOL_OF_VOL = (0.3, 0.4, 0.5)
TIMESCALES = (2.0, 20.0, 200.0)  # short, so that a short run covers every component


@nb.njit(cache=True)
def _paths(rng, accounts, Pa, updates):  # type: ignore[no-untyped-def]
    """Reset every env's components, then advance them ``updates`` times; (time, env, comp)
    log components and (time, env) multipliers, time 0 at reset."""
    n = accounts.shape[0]
    x = np.empty((updates + 1, n, VOL_COMPONENTS))
    v = np.empty((updates + 1, n))
    for i in range(n):
        e = accounts[i]
        reset_vol(rng, i, e, Pa[0])
        for t in range(updates + 1):
            if t > 0:
                step_vol(rng, i, e, Pa[0])
            for j in range(VOL_COMPONENTS):
                x[t, i, j] = e.vol_log[j]
            v[t, i] = e.vol
    return x, v


def _simulate(
    num_envs: int, updates: int, seed: int = 0, **overrides: Any
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.uint64]]:
    p = MarketParams().replace(
        **{"vol_of_vol": VOL_OF_VOL, "vol_timescales": TIMESCALES, **overrides}
    )
    rng = new_streams(num_envs)
    seed_streams(
        rng, np.arange(num_envs, dtype=np.uint64) + np.uint64(seed), np.ones(num_envs, bool)
    )
    accounts = np.zeros(num_envs, dtype=account_dtype(1, 2))
    x, v = _paths(rng, accounts, pack_params(p), updates)
    return x, v, rng


def test_components_have_their_stationary_variance_and_autocorrelation() -> None:
    n, lags = 20_000, (1, 5, 20)
    x, _, _ = _simulate(n, max(lags))
    for j, (s, tau) in enumerate(zip(VOL_OF_VOL, TIMESCALES, strict=True)):
        # Stationary from the start (drawn from N(0, s^2) at reset): variance at the last
        # update across independent envs, SE s^2 sqrt(2 / n) (0.14 % of s^2 ... 1 %).
        var = float(x[-1, :, j].var())
        assert abs(var - s * s) < Z * s * s * math.sqrt(2.0 / n), (j, var, s * s)
        for h in lags:
            rho = math.exp(-h / tau)  # exact OU step over one-second updates
            est = float(np.corrcoef(x[0, :, j], x[h, :, j])[0, 1])
            # SE of a sample correlation: (1 - rho^2) / sqrt(n)
            assert abs(est - rho) < Z * (1.0 - rho * rho) / math.sqrt(n) + 1e-12, (j, h, est)


def test_squared_multiplier_has_mean_one_and_the_lognormal_acf() -> None:
    n = 20_000
    _, v, _ = _simulate(n, 60)
    v2 = v * v
    V = sum(s * s for s in VOL_OF_VOL)
    # E[v^2] = 1 at every time; SE sqrt(exp(4V) - 1) / sqrt(n) = 0.018 at one time.
    for t in (0, 30, 60):
        assert abs(v2[t].mean() - 1.0) < Z * math.sqrt(math.expm1(4 * V)) / math.sqrt(n)
    # log v is Gaussian with mean -V and variance V.
    lv = np.log(v[-1])
    assert abs(lv.mean() + V) < Z * math.sqrt(V / n)
    assert abs(lv.var() - V) < Z * V * math.sqrt(2.0 / n)
    # ACF of v^2 between times 0 and h: (exp(4 C(h)) - 1) / (exp(4 V) - 1). The estimator is a
    # ratio of heavy-tailed means; its SE is taken from 20 independent batches of envs.
    for h in (1, 10, 60):
        want = squared_vol_acf(VOL_OF_VOL, TIMESCALES, float(h))
        d0, dh = v2[0] - 1.0, v2[h] - 1.0
        batches = (d0 * dh).reshape(20, -1).mean(axis=1) / math.expm1(4 * V)
        se = batches.std(ddof=1) / math.sqrt(20)
        assert abs(batches.mean() - want) < Z * se, (h, batches.mean(), want, se)


def test_switched_off_is_constant_and_draws_alike() -> None:
    _, v_on, rng_on = _simulate(50, 30, seed=7)
    x_off, v_off, rng_off = _simulate(50, 30, seed=7, vol_of_vol=(0.0, 0.0, 0.0))
    assert np.all(v_off == 1.0) and np.all(x_off == 0.0)
    # the same number of draws whatever vol_of_vol: the streams end in the same state
    np.testing.assert_array_equal(rng_on, rng_off)
    _, v_again, _ = _simulate(50, 30, seed=7)
    np.testing.assert_array_equal(v_on, v_again)
    assert not np.array_equal(v_on, _simulate(50, 30, seed=8)[1])


def test_closed_forms_agree_with_each_other() -> None:
    assert log_vol_autocovariance(VOL_OF_VOL, TIMESCALES, 0.0) == pytest.approx(0.5)
    assert squared_vol_acf(VOL_OF_VOL, TIMESCALES, 0.0) == pytest.approx(1.0)
    assert squared_vol_acf((0.0, 0.0, 0.0), TIMESCALES, 5.0) == 0.0
    # |r| ACF for small C: (2/pi) exp(-V) C / (1 - (2/pi) exp(-V)) to first order
    c = log_vol_autocovariance((0.01, 0.01, 0.01), TIMESCALES, 3.0)
    k = 2 / math.pi * math.exp(-3e-4)
    assert abs_return_acf_model((0.01, 0.01, 0.01), TIMESCALES, 3.0) == pytest.approx(
        k * c / (1 - k), rel=1e-3
    )


def _market(num_envs: int, seconds: int, seed: int, **overrides: Any) -> dict[str, Any]:
    """A fixed-regime calm market without jumps or informed drift, stepped once a second:
    per second the fair price and the multiplier, and the regime path and stream states."""
    params = {
        "initial_regime": "calm",
        "regime_switch_per_hour": ((0.0, 0.0, 0.0),) * 3,
        "jump_rate_per_hour": (0.0, 0.0, 0.0),
        "signal_move": (0.0, 0.0, 0.0),
        "informed_fraction": (0.0, 0.0, 0.0),
        "vol_of_vol": VOL_OF_VOL,
        "vol_timescales": TIMESCALES,
        "episode_seconds": float(seconds),
        **overrides,
    }
    env = PerpMMVectorEnv(num_envs=num_envs, copy=False, parallel=False, **params)
    env.reset(seed=seed)
    action = np.tile(np.array(PASSIVE_ACTION), (num_envs, 1))
    fair = np.empty((seconds + 1, num_envs))
    vol = np.empty((seconds + 1, num_envs))
    fair[0], vol[0] = env.sim.assets["fair_price"][:, 0], env.sim.accounts["vol"]
    orders = np.zeros(num_envs)
    for t in range(1, seconds + 1):
        # the multiplier in force during second t is set at its first tick
        env.step(action)
        fair[t] = env.sim.assets["fair_price"][:, 0]
        vol[t] = env.sim.accounts["vol"]
        orders += (
            env.sim.assets["taker_buy_orders"][:, 0] + env.sim.assets["taker_sell_orders"][:, 0]
        )
    out = {"fair": fair, "vol": vol, "orders": orders, "rng": env.sim.rng.copy()}
    out["params"] = env.params
    env.close()
    return out


def test_fair_price_returns_keep_the_mean_variance_and_cluster_as_predicted() -> None:
    envs, seconds = 64, 1800
    m = _market(envs, seconds, seed=3)
    p = m["params"]
    sigma = p.volatility[0] / math.sqrt(365 * 24 * 3600)  # per sqrt(second)
    r = np.diff(np.log(m["fair"]), axis=0) / sigma  # v_t Z_t, v fixed within each second
    # E[r^2] = sigma^2 dt: the regime's sigma stays the mean variance. SE over envs.
    per_env = (r * r).mean(axis=0)
    assert abs(per_env.mean() - 1.0) < Z * per_env.std(ddof=1) / math.sqrt(envs), per_env.mean()
    # Realised |r| / v is |Z|: the multiplier recorded at the end of each second is the one
    # that scaled it (E|Z| = sqrt(2/pi), SE 0.6 / sqrt(n)).
    z = np.abs(r) / m["vol"][1:]
    assert abs(z.mean() - math.sqrt(2 / math.pi)) < Z * 0.61 / math.sqrt(z.size)
    # ACF of |r| at lag h against (2/pi) e^-V (e^C(h) - 1) / (1 - (2/pi) e^-V), about the
    # known mean and variance of |r|; SE from the spread over envs.
    V = sum(s * s for s in VOL_OF_VOL)
    mean_abs = math.sqrt(2 / math.pi) * math.exp(-V / 2)
    var_abs = 1.0 - 2 / math.pi * math.exp(-V)
    d = np.abs(r) - mean_abs
    for h in (1, 10, 60):
        per = (d[h:] * d[:-h]).mean(axis=0) / var_abs
        se = per.std(ddof=1) / math.sqrt(envs)
        want = abs_return_acf_model(VOL_OF_VOL, TIMESCALES, float(h))
        assert abs(per.mean() - want) < Z * se, (h, per.mean(), want, se)


def test_vol_of_vol_leaves_the_market_draws_paired() -> None:
    on = _market(8, 120, seed=5)
    off = _market(8, 120, seed=5, vol_of_vol=(0.0, 0.0, 0.0))
    np.testing.assert_array_equal(on["rng"], off["rng"])
    np.testing.assert_array_equal(on["orders"], off["orders"])
    assert np.all(off["vol"] == 1.0)
    assert not np.array_equal(on["fair"], off["fair"])
