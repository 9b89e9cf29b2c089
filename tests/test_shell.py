"""The Gymnasium shells of both envs: reset order and seeds."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.error import ResetNeeded

import mmgym
from mmgym.envs.avellaneda_stoikov import AvellanedaStoikovEnv, AvellanedaStoikovVectorEnv
from mmgym.envs.perp_mm import PerpMMEnv, PerpMMVectorEnv

ENV_IDS = [mmgym.PERP_MM_ID, mmgym.AVELLANEDA_STOIKOV_ID]
SHORT = {mmgym.PERP_MM_ID: {"episode_seconds": 20.0}, mmgym.AVELLANEDA_STOIKOV_ID: {}}


def _vector(env_id: str, num_envs: int = 3) -> Any:
    return gym.make_vec(
        env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **SHORT[env_id]
    )


def _zeros(env: Any) -> np.ndarray:
    return np.zeros(env.action_space.shape, dtype=np.float32)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_vector_env_step_before_reset_raises_reset_needed(env_id: str) -> None:
    env = _vector(env_id)
    with pytest.raises(ResetNeeded, match=r"step\(\) before reset\(\)"):
        env.step(_zeros(env))
    env.reset(seed=0)
    env.step(_zeros(env))


@pytest.mark.parametrize("env_cls", [PerpMMEnv, AvellanedaStoikovEnv])
def test_bare_single_env_step_before_reset_raises_reset_needed(env_cls: type) -> None:
    env = env_cls()
    with pytest.raises(ResetNeeded, match=r"step\(\) before reset\(\)"):
        env.step(_zeros(env))
    env.reset(seed=0)
    env.step(_zeros(env))


@pytest.mark.parametrize("env_cls", [PerpMMVectorEnv, AvellanedaStoikovVectorEnv])
def test_partial_reset_before_a_full_one_names_the_sub_envs_never_reset(env_cls: type) -> None:
    env = env_cls(num_envs=4)
    env.reset(seed=0, options={"reset_mask": np.array([True, False, True, False])})
    with pytest.raises(ResetNeeded, match=r"sub-envs \[1, 3\]"):
        env.step(_zeros(env))
    env.reset(options={"reset_mask": np.array([False, True, False, True])})
    env.step(_zeros(env))


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_a_seed_of_2_to_the_64_and_beyond_is_accepted(env_id: str) -> None:
    big = 2**64
    vec = _vector(env_id, num_envs=3)
    obs_v, _ = vec.reset(seed=big - 1)  # sub-envs seeded 2**64 - 1, 2**64, 2**64 + 1
    steps = [vec.step(_zeros(vec))[:2] for _ in range(5)]
    for i in range(3):
        single = gym.make(env_id, **SHORT[env_id])
        obs, _ = single.reset(seed=big - 1 + i)
        np.testing.assert_array_equal(obs, obs_v[i])
        for obs_vec, reward_vec in steps:
            obs, reward, *_ = single.step(_zeros(single))
            np.testing.assert_array_equal(obs, obs_vec[i])
            assert reward == reward_vec[i]
    # Distinct seeds beyond 2**64 give distinct streams (they are not reduced mod 2**64).
    a, b = _vector(env_id, 1), _vector(env_id, 1)
    a.reset(seed=big)
    b.reset(seed=0)
    different = False
    for _ in range(5):
        different |= not np.array_equal(a.step(_zeros(a))[0], b.step(_zeros(b))[0])
    assert different


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("make", ["single", "vector"])
@pytest.mark.parametrize(
    ("seed", "error", "message"),
    [
        (-3, ValueError, r"seed must be a non-negative integer or None, got -3\b"),
        (1.5, TypeError, r"seed must be a non-negative integer or None, got 1\.5 \(float\)"),
        ("7", TypeError, r"got '7' \(str\)"),
        (True, TypeError, r"got True \(bool\)"),
    ],
)
def test_a_bad_seed_is_named_as_typed(
    env_id: str, make: str, seed: Any, error: type, message: str
) -> None:
    env = gym.make(env_id) if make == "single" else _vector(env_id, num_envs=4)
    with pytest.raises(error, match=message):
        env.reset(seed=seed)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_a_numpy_integer_seed_equals_the_python_int(env_id: str) -> None:
    a, b = _vector(env_id, 2), _vector(env_id, 2)
    np.testing.assert_array_equal(a.reset(seed=np.int64(12))[0], b.reset(seed=12)[0])
    np.testing.assert_array_equal(a.step(_zeros(a))[0], b.step(_zeros(b))[0])
