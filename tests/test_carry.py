"""The leverage-demand premium (mmgym/core/carry.py) against its closed form.

With the regime held, no jumps and no informed drift, the premium sampled every 5 s is an AR(1)
around its stationary mean with coefficient ``d = exp(-5 s / carry_timescale)``: its mean,
std and lag autocorrelation are checked against :func:`mmgym.core.carry.stationary_law` and
``d^k``, with tolerances from the sample size. Also: the book follows the premium (basis), the
draws are keyed (switching the premium off leaves the market's other draws where they were),
and runs are deterministic.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

import mmgym  # noqa: F401  (registers the env ids)
from mmgym.analysis.funding import share_at_default
from mmgym.core.carry import stationary_law
from mmgym.core.params import SECONDS_PER_YEAR, MarketParams
from mmgym.envs.perp_mm import PerpMMVectorEnv

Z = 4.0
HELD = {
    "initial_regime": "calm",
    "regime_switch_per_hour": ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
    "jump_rate_per_hour": (0.0, 0.0, 0.0),
    "signal_move": (0.0, 0.0, 0.0),
}
CARRY_OFF = {
    "carry_mean": (0.0, 0.0, 0.0),
    "carry_volatility": (0.0, 0.0, 0.0),
    "carry_return_beta": 0.0,
    "carry_squeeze_per_hour": (0.0, 0.0, 0.0),
}


def _no_quotes(num_envs: int) -> NDArray[np.float32]:
    a = np.zeros((num_envs, 5), dtype=np.float32)
    a[:, 2:] = -1.0
    return a


def _carry_path(num_envs: int, steps: int, seed: int, **overrides: Any) -> tuple[Any, NDArray]:
    """The premium after every 5 s decision (one premium sample each), ``(step, env)``."""
    env = PerpMMVectorEnv(
        num_envs=num_envs,
        scenario="calm",
        decision_interval=5.0,
        episode_seconds=5.0 * steps,
        **{**HELD, **overrides},
    )
    env.reset(seed=seed)
    a = _no_quotes(num_envs)
    out = np.zeros((steps + 1, num_envs))
    out[0] = env.sim.assets["carry"][:, 0]
    for s in range(steps):
        env.step(a)
        out[s + 1] = env.sim.assets["carry"][:, 0]
    p = env.params
    env.close()
    return p, out


def _law(p: MarketParams) -> tuple[float, float, float]:
    """Stationary mean and std in calm, and the AR(1) coefficient per sample."""
    dt = p.premium_sample_seconds
    d = math.exp(-dt / p.carry_timescale)
    var = p.volatility[0] ** 2 * dt / SECONDS_PER_YEAR
    prob = -math.expm1(-p.carry_squeeze_per_hour[0] * dt / 3600.0)
    m, s = stationary_law(
        p.carry_mean[0],
        p.carry_volatility[0],
        d,
        p.carry_return_beta,
        -0.5 * var,
        var,
        prob,
        p.carry_squeeze_size,
    )
    return m, s, d


def test_stationary_mean_std_and_autocorrelation() -> None:
    # A fast premium (timescale 300 s, 60 samples) so a short run covers many timescales:
    # 64 envs x 2400 samples start in the stationary law; with the squeezes and the return term
    # on, E, std and the lag-k autocorrelation d^k hold exactly (i.i.d. innovations).
    # Effective samples per env ~ 2400 (1 - d) / (1 + d) ~ 20, so ~1300 in all: the SE of the
    # mean is ~ std / 36; we use the SE across envs of the per-env means (independent).
    overrides = {
        "carry_timescale": 300.0,
        "carry_mean": (2e-4, 0.0, 0.0),
        "carry_volatility": (3e-4, 0.0, 0.0),
        "carry_return_beta": 0.5,
        "carry_squeeze_per_hour": (20.0, 0.0, 0.0),
        "carry_squeeze_size": 2e-4,
    }
    p, c = _carry_path(64, 2400, seed=3, **overrides)
    m, s, d = _law(p)
    per_env = c.mean(axis=0)
    se = per_env.std(ddof=1) / math.sqrt(per_env.size)
    assert abs(per_env.mean() - m) < Z * se, (per_env.mean(), m, se)
    var_env = c.var(axis=0)
    se_var = var_env.std(ddof=1) / math.sqrt(var_env.size)
    # the within-env variance is biased low by the variance of the env's mean, ~ s^2 / 20
    assert abs(var_env.mean() - s * s * (1 - 1 / 20)) < Z * se_var + 0.02 * s * s, (
        var_env.mean(),
        s * s,
    )
    x = c - m
    for lag in (12, 60):
        acf_env = (x[lag:] * x[:-lag]).mean(axis=0) / (s * s)
        se_acf = acf_env.std(ddof=1) / math.sqrt(acf_env.size)
        assert abs(acf_env.mean() - d**lag) < Z * se_acf + 0.05, (lag, acf_env.mean(), d**lag)


def test_the_book_follows_the_premium() -> None:
    # A constant premium of 10 bp (no noise): the basis (mid - oracle) / oracle sits at 10 bp
    # on average (flow impact averages out; per-second basis noise ~ 1 bp, 8 envs x 600 s).
    overrides = {**CARRY_OFF, "carry_mean": (1e-3, 1e-3, 1e-3)}
    env = PerpMMVectorEnv(num_envs=8, scenario="calm", episode_seconds=600.0, **overrides)
    env.reset(seed=5)
    a = _no_quotes(8)
    basis = []
    for _ in range(600):
        env.step(a)
        basis.append(env.sim.assets["mid"][:, 0] / env.sim.assets["fair_price"][:, 0] - 1.0)
    env.close()
    assert abs(np.mean(basis) * 1e4 - 10.0) < 1.0, np.mean(basis) * 1e4
    np.testing.assert_allclose(env.sim.assets["carry"][:, 0], 1e-3, rtol=1e-12)


def test_switched_off_premium_leaves_the_other_draws_in_place() -> None:
    # Keyed draws: the premium never draws from the market stream, so a run with the premium
    # off and one with it on see the same fair-price path (the book's anchor moves, not the
    # oracle) and the same regime path.
    def run(**overrides: Any) -> NDArray:
        env = PerpMMVectorEnv(num_envs=4, scenario="volatile", episode_seconds=300.0, **overrides)
        env.reset(seed=11)
        a = _no_quotes(4)
        fair = []
        for _ in range(300):
            env.step(a)
            fair.append(env.sim.assets["fair_price"][:, 0].copy())
        env.close()
        return np.array(fair)

    off = run(**CARRY_OFF)
    on = run()
    np.testing.assert_array_equal(off, on)
    np.testing.assert_array_equal(on, run())  # deterministic


def test_share_at_default_closed_form() -> None:
    # F = I whenever the interval's mean premium lies in [I - c, I + c]; for a normal premium
    # that is Phi((I + c - m) / s) - Phi((I - c - m) / s). Checked against a large sample of
    # the clamp formula itself (SE of a share of 200k draws < 0.0012).
    rng = np.random.default_rng(0)
    interest, clamp = 1e-4, 5e-4
    for m, s in ((1e-4, 4e-4), (-2e-4, 3e-4), (6e-4, 1e-4)):
        prem = rng.normal(m, s, 200_000)
        rate = prem + np.clip(interest - prem, -clamp, clamp)
        share = float(np.isclose(rate, interest, rtol=0, atol=1e-15).mean())
        assert abs(share - share_at_default(m, s, interest, clamp)) < 0.005
    assert share_at_default(1e-4, 0.0, interest, clamp) == 1.0
    assert share_at_default(1e-2, 0.0, interest, clamp) == 0.0
