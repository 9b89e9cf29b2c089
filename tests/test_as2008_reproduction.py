"""Reproduction of the simulation table of Avellaneda & Stoikov (2008), section 4.

M. Avellaneda and S. Stoikov, "High-frequency trading in a limit order book", Quantitative
Finance 8(3), 2008: 1000 paths of 200 steps (s0=100, T=1, sigma=2, dt=0.005, A=140, k=1.5,
q0=0), the "inventory" strategy (optimal spread around the reservation price) against the
"symmetric" one (same spread around the mid), for gamma = 0.1 and 0.01.

Tolerances. Both the paper and we average 1000 independent paths, so each difference carries
two standard errors: we compare within ``3 sqrt(se_paper^2 + se_ours^2)``, which is
``3 sqrt(2) se`` when the two are equal. SE of a mean: ``sd / sqrt(n)``. SE of a standard
deviation: ``sd sqrt((2 + kappa) / (4 n))`` with ``kappa`` the excess kurtosis of our sample;
this is ``sd / sqrt(2n)`` for normal data (kappa = 0: final inventories, inventory-strategy
profits) and about 1.5 times that for the symmetric strategy's profit (kappa ~ 2.6). The
average spread does not depend on the paths: it is compared within the rounding of the table.
"""

from __future__ import annotations

import functools
import math

import gymnasium as gym
import numpy as np
import pytest

import mmgym  # noqa: F401  (registers the env ids)
from agents.baselines.as_env_policies import AvellanedaStoikovPolicy, SymmetricPolicy
from agents.baselines.closed_form import optimal_spread, reservation_price
from experiments.as2008 import run as as2008
from experiments.as2008.run import SIGMA, K, T

NUM_PATHS, NUM_STEPS, SEED = as2008.NUM_PATHS, as2008.NUM_STEPS, 2008
PUBLISHED = as2008.PUBLISHED


@functools.cache
def _simulate(gamma: float, strategy: str) -> as2008.Sample:
    return as2008.simulate(gamma, strategy, NUM_PATHS, SEED)


def _excess_kurtosis(x: np.ndarray) -> float:
    z = (x - x.mean()) / x.std()
    return float(np.mean(z**4) - 3.0)


def _se_std(sd: float, kappa: float, n: int) -> float:
    return sd * math.sqrt((2.0 + kappa) / (4.0 * n))


CASES = sorted(PUBLISHED, key=lambda c: (-c[0], c[1]))


@pytest.mark.parametrize(("gamma", "strategy"), CASES)
def test_average_spread(gamma: float, strategy: str) -> None:
    sample = _simulate(gamma, strategy)
    # Deterministic (the same for every path): within the table's rounding, 0.005.
    assert abs(sample.spread - PUBLISHED[gamma, strategy].spread) <= 0.005 + 1e-6
    # The quotes never reach the action bound (max_depth=10), so clipping plays no part.
    assert sample.max_abs_depth < 10.0


def _assert_mean_and_std_match(x: np.ndarray, published_mean: float, published_sd: float) -> None:
    """Our sample's mean and std within three SEs of the difference from the published ones
    (a sample of the same size ``n`` on each side)."""
    n, sd = x.size, float(x.std(ddof=1))
    # Mean: SE sd/sqrt(n) on each side.
    se_mean = math.hypot(published_sd / math.sqrt(n), sd / math.sqrt(n))
    assert abs(x.mean() - published_mean) < 3 * se_mean, (x.mean(), published_mean, se_mean)
    # Std: SE sd sqrt((2 + kappa) / 4n) on each side.
    kappa = _excess_kurtosis(x)
    se_sd = math.hypot(_se_std(published_sd, kappa, n), _se_std(sd, kappa, n))
    assert abs(sd - published_sd) < 3 * se_sd, (sd, published_sd, se_sd, kappa)


@pytest.mark.parametrize(("gamma", "strategy"), CASES)
def test_profit_mean_and_std(gamma: float, strategy: str) -> None:
    # SE of the mean about 0.21 (inventory, gamma 0.1) to 0.43; of the std 0.15 to 0.46.
    row = PUBLISHED[gamma, strategy]
    _assert_mean_and_std_match(_simulate(gamma, strategy).wealth, row.profit, row.std_profit)


@pytest.mark.parametrize(("gamma", "strategy"), CASES)
def test_final_inventory_mean_and_std(gamma: float, strategy: str) -> None:
    # SE of the mean about 0.09 (inventory, gamma 0.1) to 0.28; of the std 0.065 to 0.2.
    row = PUBLISHED[gamma, strategy]
    _assert_mean_and_std_match(_simulate(gamma, strategy).final_q, row.final_q, row.std_final_q)


def _symmetric_exact(gamma: float) -> tuple[float, float, float]:
    """Exact mean and std of profit and std of final q of the symmetric strategy.

    Its depths h_n do not depend on the path, so fills are independent Bernoulli(p_n) draws,
    independent of the mid: profit = sum_n h_n (bid_n + ask_n) + sum_n q'_n ds_n, with q'_n the
    inventory after step n's fills (mean 0) and ds_n = +/- sigma sqrt(dt) independent of it.
    """
    dt = T / NUM_STEPS
    mean = var_profit = var_q = 0.0
    for n in range(NUM_STEPS):
        h = 0.5 * float(optimal_spread(gamma, SIGMA, T - n * dt, K))
        p = min(1.0, 140.0 * math.exp(-K * h) * dt)
        v = 2.0 * p * (1.0 - p)  # variance of bid_n - ask_n (and of bid_n + ask_n)
        var_q += v
        mean += 2.0 * p * h
        var_profit += h * h * v + SIGMA**2 * dt * var_q
    return mean, math.sqrt(var_profit), math.sqrt(var_q)


@pytest.mark.parametrize("gamma", [0.1, 0.01])
def test_symmetric_strategy_matches_exact_moments(gamma: float) -> None:
    """A sharper check of the simulator than the table: exact moments, 20000 paths."""
    n = 20_000
    env = gym.make_vec(
        "mmgym/AvellanedaStoikov-v0", num_envs=n, vectorization_mode="vector_entry_point"
    )
    policy = SymmetricPolicy(gamma=gamma, sigma=SIGMA, k=K, T=T)
    obs, _ = env.reset(seed=SEED + 1)
    for _ in range(NUM_STEPS):
        obs, _, _, _, info = env.step(policy.act(obs))
    w, q = info["wealth"], info["inventory"]
    mean, sd_profit, sd_q = _symmetric_exact(gamma)  # 68.02, 13.27, 8.40 at gamma = 0.1
    # The reference is exact, so one SE: sd/sqrt(n) ~ 0.097 (profit), 0.061 (q) for the mean;
    # sd sqrt((2 + kappa)/4n) ~ 0.10 (profit, kappa ~ 2.6), 0.044 (q) for the std.
    assert abs(w.mean() - mean) < 3 * sd_profit / math.sqrt(n)
    assert abs(q.mean()) < 3 * sd_q / math.sqrt(n)
    sd_w = float(w.std(ddof=1))
    assert abs(sd_w - sd_profit) < 3 * _se_std(sd_profit, _excess_kurtosis(w), n), sd_w
    sd_qs = float(q.std(ddof=1))
    assert abs(sd_qs - sd_q) < 3 * _se_std(sd_q, _excess_kurtosis(q), n), sd_qs


def test_inventory_strategy_reduces_risk() -> None:
    """The paper's qualitative finding: lower std of profit and of final inventory."""
    for gamma in (0.1, 0.01):
        inv, sym = _simulate(gamma, "inventory"), _simulate(gamma, "symmetric")
        assert inv.wealth.std() < sym.wealth.std()
        assert inv.final_q.std() < sym.final_q.std()


def test_closed_forms() -> None:
    # r = s - q gamma sigma^2 tau; spread = gamma sigma^2 tau + (2/gamma) ln(1 + gamma/k).
    assert reservation_price(100.0, 3, 0.1, 2.0, 0.5) == pytest.approx(100.0 - 3 * 0.1 * 4 * 0.5)
    assert optimal_spread(0.1, 2.0, 0.0, 1.5) == pytest.approx(20.0 * math.log(1 + 0.1 / 1.5))
    obs = np.array([[2.0, 0.25], [-1.0, 0.75], [0.0, 1.0]], dtype=np.float32)
    inv = AvellanedaStoikovPolicy(0.1, 2.0, 1.5, 1.0).act(obs)
    sym = SymmetricPolicy(0.1, 2.0, 1.5, 1.0).act(obs)
    tau = 1.0 - obs[:, 1].astype(np.float64)
    spread = optimal_spread(0.1, 2.0, tau, 1.5)
    r = reservation_price(100.0, obs[:, 0], 0.1, 2.0, tau)
    np.testing.assert_allclose(inv[:, 0], 100.0 - (r - spread / 2), rtol=1e-6)
    np.testing.assert_allclose(inv[:, 1], (r + spread / 2) - 100.0, rtol=1e-6)
    np.testing.assert_allclose(sym, np.stack([spread / 2, spread / 2], axis=1), rtol=1e-6)
    assert inv.dtype == sym.dtype == np.float32
    with pytest.raises(ValueError, match="gamma"):
        AvellanedaStoikovPolicy(0.0, 2.0, 1.5, 1.0)
