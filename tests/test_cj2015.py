"""The inventory-penalty reward of the AS env and the Cartea-Jaimungal experiment.

Tolerances: a simulated mean criterion is compared with an exact value (the closed form, or
the discrete-time value by dynamic programming) within 4 standard errors of the mean,
``sd / sqrt(n)``; paired differences use the SE of the per-path differences (the strategies
share their random numbers). The dynamic programme itself is exact up to float rounding and
the truncation of the inventory at |q| <= 60 (far beyond any path: max |q| <= 40 even for
the fixed spread).
"""

from __future__ import annotations

import functools
import math
from dataclasses import replace
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import mmgym
from agents.baselines.as_env_policies import (
    AvellanedaStoikovPolicy,
    FixedDepthPolicy,
    GLFTPolicy,
    SymmetricPolicy,
)
from agents.baselines.closed_form import cartea_jaimungal_table
from experiments.cj2015 import run as cj2015
from experiments.cj2015.run import Config, cj_policy, exact_value, simulate
from mmgym.envs.avellaneda_stoikov import AvellanedaStoikovEnv, AvellanedaStoikovSimulator

# --- the reward mode ----------------------------------------------------------------------------


def _make_vec(num_envs: int, **params: Any) -> Any:
    return gym.make_vec(
        mmgym.AVELLANEDA_STOIKOV_ID,
        num_envs=num_envs,
        vectorization_mode="vector_entry_point",
        **params,
    )


@pytest.mark.parametrize("q0", [0, 3])
def test_inventory_penalty_reward(q0: int) -> None:
    phi, alpha, dt, n_envs = 0.3, 0.7, 0.01, 64
    penal = _make_vec(n_envs, reward="inventory_penalty", phi=phi, alpha=alpha, dt=dt, q0=q0)
    plain = _make_vec(n_envs, dt=dt, q0=q0)
    _, info = penal.reset(seed=4)
    plain.reset(seed=4)
    wealth0 = info["wealth"].copy()
    rng = np.random.default_rng(0)
    total = np.zeros(n_envs)
    running = np.zeros(n_envs)
    steps = round(1.0 / dt)
    for step in range(steps):
        action = rng.uniform(-0.5, 3.0, size=(n_envs, 2)).astype(np.float32)
        _, reward, _, trunc, info = penal.step(action)
        _, plain_reward, _, _, plain_info = plain.step(action)
        q = info["inventory"]
        # Same market, same fills: the penalty is the only difference.
        np.testing.assert_array_equal(q, plain_info["inventory"])
        expected = plain_reward - phi * dt * q**2 - (alpha * q**2 if step == steps - 1 else 0.0)
        np.testing.assert_allclose(reward, expected, rtol=0, atol=1e-9)
        total += reward
        running += q**2 * dt
        assert trunc.all() == (step == steps - 1)
    q_t = info["inventory"]
    criterion = info["wealth"] - wealth0 - phi * running - alpha * q_t**2
    np.testing.assert_allclose(total, criterion, rtol=0, atol=1e-8)
    assert (q_t != 0).any()


def test_wealth_stays_the_default_and_bad_penalties_raise() -> None:
    env = gym.make(mmgym.AVELLANEDA_STOIKOV_ID).unwrapped
    assert isinstance(env, AvellanedaStoikovEnv) and isinstance(env.sim, AvellanedaStoikovSimulator)
    params = env.sim.params
    assert params.reward == "wealth" and params.phi == 0.0 and params.alpha == 0.0
    with pytest.raises(ValueError, match="phi applies only"):
        gym.make(mmgym.AVELLANEDA_STOIKOV_ID, phi=0.1)
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        gym.make(mmgym.AVELLANEDA_STOIKOV_ID, reward="inventory_penalty", alpha=-1.0)
    with pytest.raises(ValueError, match="phi must be a real number"):
        gym.make(mmgym.AVELLANEDA_STOIKOV_ID, reward="inventory_penalty", phi="x")


# --- the experiment -----------------------------------------------------------------------------

BASE = Config.load()  # the committed config
FAST = replace(BASE, dt=0.002, num_paths=10_000)  # 500 steps


def test_committed_config() -> None:
    assert Config() == BASE  # the module's defaults are the committed experiment
    assert BASE.num_steps == 10_000 and BASE.gamma == pytest.approx(0.1)
    with pytest.raises(ValueError, match="unknown config key"):
        Config.load(cj2015.CONFIG_PATH, sigmaa=1.0)


@functools.cache
def _cj_sample(dt: float, paths: int) -> cj2015.Sample:
    c = replace(BASE, dt=dt, num_paths=paths)
    return simulate(cj_policy(c), c)


def test_cj_simulation_matches_exact_discrete_value() -> None:
    sample = _cj_sample(FAST.dt, FAST.num_paths)
    exact = exact_value(cj_policy(FAST), FAST)
    # SE = sd / sqrt(10000) ~ 8.1 / 100 = 0.08.
    assert abs(sample.mean - exact) < 4 * sample.se, (sample.mean, exact, sample.se)
    assert np.abs(sample.final_q).max() <= BASE.Q and sample.max_abs_q.max() <= BASE.Q


def test_discrete_value_converges_to_the_closed_form() -> None:
    """The env's value of the CJ strategy tends to h(0, 0) linearly in dt."""
    h00 = float(cartea_jaimungal_table(0.2, 0.5, 140.0, 1.5, 1.0, 10, 10).value[0, 10])
    biases = {}
    for dt in (0.002, 0.001, 0.0005):
        c = replace(BASE, dt=dt)
        biases[dt] = exact_value(cj_policy(c), c) - h00
    # Bias ~ 165 dt (0.33, 0.165, 0.083): halving dt halves it, to within 5 %.
    assert biases[0.001] / biases[0.002] == pytest.approx(0.5, abs=0.025)
    assert biases[0.0005] / biases[0.001] == pytest.approx(0.5, abs=0.025)
    # At the experiment's dt = 1e-4 the bias is ~0.017, below its SE of 0.036 (50000 paths).
    assert 165 * BASE.dt < 8.2 / math.sqrt(BASE.num_paths)


def test_cj_simulation_matches_closed_form_within_se_plus_known_bias() -> None:
    sample = _cj_sample(FAST.dt, FAST.num_paths)
    h00 = float(cartea_jaimungal_table(0.2, 0.5, 140.0, 1.5, 1.0, 10, 10).value[0, 10])
    bias = exact_value(cj_policy(FAST), FAST) - h00  # +0.33 at dt = 0.002
    assert abs(sample.mean - bias - h00) < 4 * sample.se


@pytest.mark.parametrize(
    "policy",
    [
        GLFTPolicy(0.1, 2.0, 140.0, 1.5),
        AvellanedaStoikovPolicy(0.1, 2.0, 1.5, 1.0),
        SymmetricPolicy(0.5, 2.0, 1.5, 1.0),
        FixedDepthPolicy(1.0),
    ],
    ids=["glft", "as_inventory", "as_symmetric", "fixed"],
)
def test_cj_beats_each_baseline(policy: Any) -> None:
    """Exact discrete values, and the paired simulated difference with its 99.99 % CI."""
    cj = exact_value(cj_policy(FAST), FAST)
    other = exact_value(policy, FAST)
    assert cj > other
    sample = simulate(policy, FAST)
    assert abs(sample.mean - other) < 4 * sample.se  # the DP is right for the others too
    diff = _cj_sample(FAST.dt, FAST.num_paths).criterion - sample.criterion
    se = diff.std(ddof=1) / math.sqrt(diff.size)
    assert diff.mean() - 4 * se > 0, (diff.mean(), se)


@pytest.mark.parametrize("family", ["glft", "as_inventory", "as_symmetric", "fixed_spread"])
def test_cj_beats_each_family_over_its_grid(family: str) -> None:
    """No parameter on the tuning grid beats the CJ strategy (exact discrete values)."""
    c = replace(BASE, dt=0.002)
    cj = exact_value(cj_policy(c), c)
    best = max(exact_value(cj2015.FAMILIES[family](c, x), c) for x in cj2015.grid(c, family))
    assert best < cj - 0.5, (family, best, cj)
