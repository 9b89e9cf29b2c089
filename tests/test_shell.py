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


@pytest.mark.parametrize(
    "make",
    [
        lambda: _vector(mmgym.PERP_MM_ID),
        lambda: _vector(mmgym.AVELLANEDA_STOIKOV_ID),
        PerpMMEnv,  # the bare single envs, without gym.make's order-enforcing wrapper
        AvellanedaStoikovEnv,
    ],
    ids=["PerpMM-vector", "AS-vector", "PerpMM-single", "AS-single"],
)
def test_step_before_reset_raises_reset_needed(make: Any) -> None:
    env = make()
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


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("num_assets", [1, 3])
def test_copy_true_results_equal_the_views_and_are_never_overwritten(
    env_id: str, num_assets: int
) -> None:
    if env_id != mmgym.PERP_MM_ID and num_assets > 1:
        pytest.skip("one asset only")
    extra = {"num_assets": num_assets} if num_assets > 1 else {}
    views = gym.make_vec(
        env_id, num_envs=3, vectorization_mode="vector_entry_point", copy=False,
        **SHORT[env_id], **extra,
    )  # fmt: skip
    copies = gym.make_vec(
        env_id, num_envs=3, vectorization_mode="vector_entry_point", **SHORT[env_id], **extra
    )
    views.reset(seed=4)
    copies.reset(seed=4)
    rng = np.random.default_rng(0)
    kept: list[tuple[Any, ...]] = []
    for t in range(30):
        a = rng.uniform(-1, 1, views.action_space.shape).astype(np.float32)
        expected = views.step(a)
        got = copies.step(a)
        for x, y in zip(got[:4], expected[:4], strict=True):
            np.testing.assert_array_equal(x, y)
            assert x.dtype == y.dtype and x.shape == y.shape
        assert list(got[4]) == list(expected[4])
        for key, value in expected[4].items():
            np.testing.assert_array_equal(got[4][key], value)
            assert got[4][key].dtype == value.dtype and got[4][key].shape == value.shape
        snapshot = (got[0].copy(), {key: v.copy() for key, v in got[4].items()})
        if t % 3 == 0:
            kept.append((got, snapshot))  # the whole result, held
        elif t % 3 == 1:
            first_key = next(iter(got[4]))
            kept.append((got[4][first_key], got[0], snapshot))  # two arrays, the rest dropped
    for item in kept:  # nothing held was written by a later step
        if len(item) == 2:
            (obs, *_rest, info), (obs_then, info_then) = item
            np.testing.assert_array_equal(obs, obs_then)
            for key, value in info_then.items():
                np.testing.assert_array_equal(info[key], value)
        else:
            entry, obs, (obs_then, info_then) = item
            np.testing.assert_array_equal(obs, obs_then)
            np.testing.assert_array_equal(entry, next(iter(info_then.values())))


def test_copy_true_buffers_are_reused_once_released() -> None:
    env = PerpMMVectorEnv(num_envs=2)
    env.reset(seed=0)
    a = np.zeros((2, 5), dtype=np.float32)
    first = env.step(a)
    ids = {id(first[0]), id(first[4]["pnl"])}
    del first
    second = env.step(a)  # the first step's buffers are free again
    assert {id(second[0]), id(second[4]["pnl"])} == ids
    third = env.step(a)  # the second step's result is still held: other buffers
    assert id(third[0]) != id(second[0]) and id(third[4]["mid"]) != id(second[4]["mid"])


def test_envs_of_one_layout_share_their_record_dtypes() -> None:
    # numba's dispatcher recognises a record array's type at once only for a dtype object it
    # has seen; an equal but new object costs a field-by-field comparison on every call.
    first, second = PerpMMVectorEnv(num_envs=2), PerpMMVectorEnv(num_envs=3, scenario="volatile")
    for name in ("_packed", "accounts", "assets", "windows", "account_windows"):
        assert getattr(first.sim, name).dtype is getattr(second.sim, name).dtype, name
    other = PerpMMVectorEnv(num_envs=2, book_levels=10)
    assert other.sim.assets.dtype is not first.sim.assets.dtype
    assert other.sim.assets.dtype != first.sim.assets.dtype
    a, b = AvellanedaStoikovVectorEnv(num_envs=1), AvellanedaStoikovVectorEnv(num_envs=2, sigma=1.0)
    assert a.sim._packed.dtype is b.sim._packed.dtype
