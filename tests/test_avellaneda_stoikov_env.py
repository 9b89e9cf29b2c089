"""Tests of ``mmgym/AvellanedaStoikov-v0``: API, vector/single equivalence, statistics."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from numpy.typing import NDArray
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import mmgym  # noqa: F401  (registers the env ids)
from mmgym.envs.avellaneda_stoikov import (
    AvellanedaStoikovEnv,
    AvellanedaStoikovSimulator,
    AvellanedaStoikovVectorEnv,
)

ENV_ID = "mmgym/AvellanedaStoikov-v0"
NUM_STEPS = 200  # T / dt with the defaults
A, K, DT, SIGMA, S0 = 140.0, 1.5, 0.005, 2.0, 100.0

# Advisory warnings of the checkers that this env triggers by design (depths in price units,
# unbounded inventory, checking the wrapped env); any other warning fails the test.
ALLOWED_WARNINGS = (
    "symmetric and normalized",
    "minimum value is -infinity",
    "maximum value is infinity",
    "different from the unwrapped version",
)


def _make_vec(num_envs: int, copy: bool = True, **params: Any) -> AvellanedaStoikovVectorEnv:
    env = gym.make_vec(
        ENV_ID,
        num_envs=num_envs,
        vectorization_mode="vector_entry_point",
        copy=copy,
        **params,
    )
    assert isinstance(env, AvellanedaStoikovVectorEnv)
    return env


def _random_actions(seed: int, num_steps: int, num_envs: int) -> NDArray[np.float32]:
    """Seeded depths inside the action box, wide enough to give both rare and certain fills."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-1.0, 4.0, size=(num_steps, num_envs, 2)).astype(np.float32)


@pytest.fixture
def strict_warnings() -> Iterator[list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught
    unexpected = [
        str(w.message) for w in caught if not any(a in str(w.message) for a in ALLOWED_WARNINGS)
    ]
    assert not unexpected, unexpected


# --- API conformance ---------------------------------------------------------------------------


def test_gymnasium_check_env_unwrapped(strict_warnings: list[warnings.WarningMessage]) -> None:
    gym_check_env(gym.make(ENV_ID).unwrapped)


def test_gymnasium_check_env_wrapped(strict_warnings: list[warnings.WarningMessage]) -> None:
    gym_check_env(gym.make(ENV_ID))


def test_sb3_check_env(strict_warnings: list[warnings.WarningMessage]) -> None:
    sb3_check_env(gym.make(ENV_ID).unwrapped)


def test_spaces() -> None:
    env = gym.make(ENV_ID, T=2.0, dt=0.01, max_depth=3.0).unwrapped
    assert env.action_space == gym.spaces.Box(-3.0, 3.0, (2,), np.float32)
    assert env.observation_space == gym.spaces.Box(
        np.array([-np.inf, 0.0], np.float32), np.array([np.inf, 2.0], np.float32)
    )
    assert AvellanedaStoikovEnv.action_names == ("bid_depth", "ask_depth")
    venv = _make_vec(3, max_depth=3.0)
    assert venv.action_space.shape == (3, 2)
    assert venv.observation_space.shape == (3, 2)
    assert venv.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP


# --- vector env == SyncVectorEnv of single envs, bit for bit -----------------------------------


def test_vector_env_matches_sync_vector_env() -> None:
    num_envs, num_steps, seed = 8, 2 * NUM_STEPS + 50, 123  # > 2 episodes: autoreset exercised
    native = _make_vec(num_envs)
    sync = SyncVectorEnv(
        [lambda: gym.make(ENV_ID) for _ in range(num_envs)],
        autoreset_mode=AutoresetMode.NEXT_STEP,
    )
    obs_n, _ = native.reset(seed=seed)
    reset_s: tuple[Any, ...] = sync.reset(seed=seed)
    np.testing.assert_array_equal(obs_n, reset_s[0])
    actions = _random_actions(0, num_steps, num_envs)
    truncations = np.zeros(num_envs, dtype=np.int64)
    for t in range(num_steps):
        obs_n, rew_n, term_n, trunc_n, info_n = native.step(actions[t])
        step_s: tuple[Any, ...] = sync.step(actions[t])
        obs_s, rew_s, term_s, trunc_s, info_s = step_s
        np.testing.assert_array_equal(obs_n, obs_s, err_msg=f"step {t}")
        assert obs_n.dtype == obs_s.dtype == np.float32
        np.testing.assert_array_equal(rew_n, rew_s, err_msg=f"step {t}")
        np.testing.assert_array_equal(term_n, term_s, err_msg=f"step {t}")
        np.testing.assert_array_equal(trunc_n, trunc_s, err_msg=f"step {t}")
        for key in ("wealth", "inventory", "mid", "bid_fill", "ask_fill"):
            np.testing.assert_array_equal(info_n[key], info_s[key], err_msg=f"{key} step {t}")
        truncations += trunc_n
    assert (truncations == 2).all()
    sync.close()


# --- seeding and determinism -------------------------------------------------------------------


def _rollout(env: AvellanedaStoikovVectorEnv, seed: int, actions: NDArray[np.float32]) -> Any:
    obs, _ = env.reset(seed=seed)
    out: list[Any] = [obs]
    for a in actions:
        obs, rew, term, trunc, info = env.step(a)
        out += [obs, rew, term, trunc, info["wealth"], info["mid"]]
    return out


def test_same_seed_same_trajectory() -> None:
    actions = _random_actions(1, NUM_STEPS + 20, 16)
    first = _rollout(_make_vec(16), 7, actions)
    second = _rollout(_make_vec(16), 7, actions)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    other = _rollout(_make_vec(16), 8, actions)
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_vector_sub_env_matches_single_env_seeded_with_seed_plus_index() -> None:
    num_envs, seed = 5, 1000
    actions = _random_actions(2, NUM_STEPS, num_envs)
    venv = _make_vec(num_envs)
    singles = [AvellanedaStoikovEnv() for _ in range(num_envs)]
    # Two episodes: the first reset seeded, the second unseeded (streams continue).
    for episode_seed in (seed, None):
        obs_v, _ = venv.reset(seed=episode_seed)
        for i, env in enumerate(singles):
            obs_1, _ = env.reset(seed=None if episode_seed is None else episode_seed + i)
            np.testing.assert_array_equal(obs_v[i], obs_1)
        for t in range(NUM_STEPS):
            obs_v, rew_v, term_v, trunc_v, info_v = venv.step(actions[t])
            for i, env in enumerate(singles):
                obs_1, rew_1, term_1, trunc_1, info_1 = env.step(actions[t, i])
                np.testing.assert_array_equal(obs_v[i], obs_1, err_msg=f"env {i} step {t}")
                assert rew_v[i] == rew_1
                assert (term_v[i], trunc_v[i]) == (term_1, trunc_1)
                assert info_v["wealth"][i] == info_1["wealth"]
        assert trunc_v.all()


def test_next_step_autoreset() -> None:
    venv = _make_vec(3, q0=2)
    obs, info = venv.reset(seed=5)
    np.testing.assert_array_equal(obs, [[2.0, 0.0]] * 3)
    np.testing.assert_array_equal(info["wealth"], [2 * S0] * 3)
    action = np.full((3, 2), 0.3, dtype=np.float32)
    for t in range(NUM_STEPS):
        obs, rew, term, trunc, info = venv.step(action)
        assert not term.any()
        assert trunc.all() == (t == NUM_STEPS - 1)
        assert not (trunc.any() and t < NUM_STEPS - 1)
    np.testing.assert_array_equal(obs[:, 1], np.float32(1.0))  # t = T at truncation
    # The step after truncation ignores the action and returns the reset observation, reward 0.
    obs, rew, term, trunc, info = venv.step(np.full((3, 2), -5.0, dtype=np.float32))
    np.testing.assert_array_equal(obs, [[2.0, 0.0]] * 3)
    np.testing.assert_array_equal(rew, 0.0)
    assert not term.any() and not trunc.any()
    np.testing.assert_array_equal(info["inventory"], 2.0)
    np.testing.assert_array_equal(info["mid"], S0)
    assert not info["bid_fill"].any() and not info["ask_fill"].any()
    obs, *_ = venv.step(action)
    np.testing.assert_array_equal(obs[:, 1], np.float32(DT))


def test_copy_false_returns_views_of_buffers() -> None:
    venv = _make_vec(4, copy=False)
    obs0, _ = venv.reset(seed=0)
    obs1, *_ = venv.step(np.zeros((4, 2), dtype=np.float32))
    assert obs0 is obs1  # the same buffer, overwritten in place


# --- accounting, clipping -----------------------------------------------------------------------


def test_one_step_accounting() -> None:
    num_envs, db, da = 4096, 0.4, 0.9
    venv = _make_vec(num_envs)
    venv.reset(seed=3)
    actions = np.tile(np.array([db, da], dtype=np.float32), (num_envs, 1))
    obs, rew, _, _, info = venv.step(actions)
    bid, ask = info["bid_fill"].astype(np.float64), info["ask_fill"].astype(np.float64)
    db64, da64 = float(np.float32(db)), float(np.float32(da))
    cash = -bid * (S0 - db64) + ask * (S0 + da64)
    q = bid - ask
    np.testing.assert_array_equal(info["inventory"], q)
    np.testing.assert_array_equal(obs[:, 0], q.astype(np.float32))
    assert set(np.round(np.abs(info["mid"] - S0), 12)) == {round(SIGMA * math.sqrt(DT), 12)}
    np.testing.assert_allclose(info["wealth"], cash + q * info["mid"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(rew, info["wealth"], rtol=0, atol=1e-12)  # initial wealth 0
    assert bid.any() and ask.any() and (bid * ask).any()


def test_rewards_sum_to_final_wealth() -> None:
    venv = _make_vec(64, q0=-3, s0=50.0)
    _, info = venv.reset(seed=11)
    w0 = info["wealth"].copy()
    np.testing.assert_array_equal(w0, -150.0)
    total = np.zeros(64)
    for a in _random_actions(4, NUM_STEPS, 64):
        _, rew, _, _, info = venv.step(a)
        total += rew
    np.testing.assert_allclose(w0 + total, info["wealth"], rtol=0, atol=1e-9)


def test_depths_outside_box_are_clipped() -> None:
    max_depth = 2.0
    outside = np.array([[50.0, -50.0]], dtype=np.float32)
    bound = np.array([[max_depth, -max_depth]], dtype=np.float32)
    a = _rollout(_make_vec(1, max_depth=max_depth), 9, np.repeat(outside[None], 50, axis=0))
    b = _rollout(_make_vec(1, max_depth=max_depth), 9, np.repeat(bound[None], 50, axis=0))
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"sigma": -1.0}, "sigma"),
        ({"A": 0.0}, "A"),
        ({"k": float("nan")}, "k"),
        ({"dt": 0.003}, "T / dt"),
        ({"q0": 0.5}, "q0"),
        ({"reward": "utility"}, "reward"),
        ({"max_depth": -1.0}, "max_depth"),
    ],
)
def test_bad_parameter_raises(params: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field.replace("/", r"\/")):
        gym.make(ENV_ID, **params)
    with pytest.raises(ValueError, match=field.replace("/", r"\/")):
        _make_vec(2, **params)


def test_negative_sigma_message() -> None:
    with pytest.raises(ValueError, match=r"sigma must be > 0, got -1\.0"):
        AvellanedaStoikovEnv(sigma=-1.0)


def test_unknown_kwarg_lists_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"volatility.*sigma"):
        gym.make(ENV_ID, volatility=2.0)
    with pytest.raises(ValueError, match=r"volatility.*sigma"):
        AvellanedaStoikovVectorEnv(num_envs=2, volatility=2.0)


def test_wrong_action_shape_raises() -> None:
    env = gym.make(ENV_ID)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action has shape"):
        env.step(np.zeros(3, dtype=np.float32))
    venv = _make_vec(4)
    venv.reset(seed=0)
    with pytest.raises(ValueError, match="action has shape"):
        venv.step(np.zeros((4, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="action has shape"):
        venv.step(np.zeros((3, 2), dtype=np.float32))


@pytest.mark.parametrize(("component", "name"), [(0, "bid_depth"), (1, "ask_depth")])
def test_nan_action_raises_and_leaves_state_unchanged(component: int, name: str) -> None:
    env = AvellanedaStoikovEnv()
    env.reset(seed=0)
    bad = np.array([0.5, 0.5], dtype=np.float32)
    bad[component] = np.nan
    with pytest.raises(ValueError, match=name):
        env.step(bad)
    venv, twin = _make_vec(6), _make_vec(6)
    venv.reset(seed=1)
    twin.reset(seed=1)
    actions = np.full((6, 2), 0.5, dtype=np.float32)
    venv.step(actions)
    twin.step(actions)
    sim = venv.sim
    assert isinstance(sim, AvellanedaStoikovSimulator)
    state, rng = sim.state.copy(), sim.rng.copy()
    bad_batch = actions.copy()
    bad_batch[4, component] = np.inf
    with pytest.raises(ValueError, match=f"{name}.*env 4"):
        venv.step(bad_batch)
    np.testing.assert_array_equal(sim.state, state)
    np.testing.assert_array_equal(sim.rng, rng)
    for _ in range(10):  # the failed call left no trace: the twin stays in lockstep
        np.testing.assert_array_equal(venv.step(actions)[0], twin.step(actions)[0])


# --- statistics of the market ------------------------------------------------------------------


@pytest.mark.parametrize("depth", [0.5, 1.5])
def test_fill_frequency_matches_intensity(depth: float) -> None:
    num_envs = 10_000
    venv = _make_vec(num_envs, copy=False)
    venv.reset(seed=2024)
    actions = np.full((num_envs, 2), depth, dtype=np.float32)
    d = float(np.float32(depth))
    bid_fills = ask_fills = up_moves = 0
    mid = np.full(num_envs, S0)
    for _ in range(NUM_STEPS):
        _, _, _, _, info = venv.step(actions)
        bid_fills += int(info["bid_fill"].sum())
        ask_fills += int(info["ask_fill"].sum())
        up_moves += int((info["mid"] > mid).sum())
        mid = info["mid"].copy()
    n = num_envs * NUM_STEPS  # 2e6 independent Bernoulli draws per side
    p = A * math.exp(-K * d) * DT  # 0.331 at d=0.5, 0.0738 at d=1.5
    # Binomial standard error sqrt(p(1-p)/n): 3.3e-4 at d=0.5, 1.8e-4 at d=1.5.
    se = math.sqrt(p * (1.0 - p) / n)
    assert abs(bid_fills / n - p) < 4 * se, (bid_fills / n, p, se)
    assert abs(ask_fills / n - p) < 4 * se, (ask_fills / n, p, se)
    # Mid moves up with probability 1/2: SE sqrt(0.25 / n) = 3.5e-4.
    assert abs(up_moves / n - 0.5) < 4 * math.sqrt(0.25 / n)


def test_fill_probability_is_capped_at_one() -> None:
    # A exp(-k d) dt = 0.7 e^{1.5} = 3.1 > 1 at d = -1: every quote fills, every step.
    venv = _make_vec(100)
    venv.reset(seed=0)
    for _ in range(20):
        _, _, _, _, info = venv.step(np.full((100, 2), -1.0, dtype=np.float32))
        assert info["bid_fill"].all() and info["ask_fill"].all()


def test_parallel_kernel_matches_serial_bit_for_bit() -> None:
    from mmgym.envs.avellaneda_stoikov import PARALLEL_MIN_ENVS

    n = PARALLEL_MIN_ENVS + 3
    parallel = _make_vec(n, reward="inventory_penalty", phi=0.01, alpha=0.1)
    assert parallel.sim._step_kernel.__name__ == "step_kernel_parallel"  # the default
    serial = AvellanedaStoikovVectorEnv(
        num_envs=n, parallel=False, reward="inventory_penalty", phi=0.01, alpha=0.1
    )
    assert serial.sim._step_kernel.__name__ == "step_kernel"
    assert _make_vec(n - 4).sim._step_kernel.__name__ == "step_kernel"
    np.testing.assert_array_equal(parallel.reset(seed=8)[0], serial.reset(seed=8)[0])
    for a in _random_actions(9, NUM_STEPS + 50, n):  # crosses the autoreset of every env
        r1, r2 = parallel.step(a), serial.step(a)
        for x, y in zip(r1[:4], r2[:4], strict=True):
            np.testing.assert_array_equal(x, y)
        for key in r1[4]:
            np.testing.assert_array_equal(r1[4][key], r2[4][key])
    np.testing.assert_array_equal(parallel.sim.state, serial.sim.state)
    np.testing.assert_array_equal(parallel.sim.rng, serial.sim.rng)


def test_copy_true_info_is_fresh_and_equals_the_views() -> None:
    views, copies = _make_vec(3, copy=False), _make_vec(3, copy=True)
    views.reset(seed=2)
    copies.reset(seed=2)
    actions = _random_actions(3, 3, 3)
    info_view = views.step(actions[0])[4]
    info_copy = copies.step(actions[0])[4]
    assert list(info_copy) == list(info_view)
    kept = {key: value.copy() for key, value in info_copy.items()}
    for key in info_view:
        np.testing.assert_array_equal(info_copy[key], info_view[key])
        assert info_copy[key].dtype == info_view[key].dtype
    for a in actions[1:]:
        copies.step(a)
    for key, value in kept.items():
        np.testing.assert_array_equal(info_copy[key], value)  # never overwritten
