"""PerpMM-v0 as a Gymnasium env: checkers, vector/single equivalence, determinism, bad input."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import mmgym
from mmgym.envs.perp_mm import PerpMMEnv, PerpMMVectorEnv
from mmgym.features.observation import TIME
from mmgym.scenarios import SCENARIOS, make_params

SHORT = {"episode_seconds": 20.0}  # 20 decisions per episode: autoreset is exercised quickly


def _actions(rng: np.random.Generator, n: int, steps: int, assets: int = 1) -> np.ndarray:
    return rng.uniform(-1.0, 1.0, size=(steps, n, 5 * assets)).astype(np.float32)


def test_gymnasium_env_checker_passes() -> None:
    env = gym.make(mmgym.PERP_MM_ID, **SHORT)
    gym_check_env(env.unwrapped)


def test_sb3_env_checker_passes() -> None:
    sb3_check_env(PerpMMEnv(**SHORT), warn=True)


def test_registered_vector_entry_point_is_native() -> None:
    env = gym.make_vec(mmgym.PERP_MM_ID, num_envs=3, vectorization_mode="vector_entry_point")
    assert isinstance(env, PerpMMVectorEnv)
    assert env.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    assert env.observation_space.shape == (3, 25)  # 22 per perp + 3 account features
    assert env.action_space.shape == (3, 5)
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32
    assert env.observation_space.contains(obs)


def test_make_vec_matches_sync_vector_env_of_single_envs() -> None:
    n, steps = 4, 50  # 50 steps over 20-step episodes: two autoresets per env
    native = gym.make_vec(
        mmgym.PERP_MM_ID, num_envs=n, vectorization_mode="vector_entry_point", **SHORT
    )
    sync = SyncVectorEnv(
        [lambda: gym.make(mmgym.PERP_MM_ID, **SHORT) for _ in range(n)],
        autoreset_mode=AutoresetMode.NEXT_STEP,
    )
    o1, _ = native.reset(seed=11)
    o2, _ = sync.reset(seed=11)
    np.testing.assert_array_equal(o1, o2)
    for a in _actions(np.random.default_rng(0), n, steps):
        r1 = native.step(a)
        r2 = sync.step(a)
        for x, y in zip(r1[:4], r2[:4], strict=True):
            np.testing.assert_array_equal(x, y)
        for key in ("equity", "inventory", "fills", "mid", "mark", "pnl_funding", "regime"):
            np.testing.assert_array_equal(r1[4][key], r2[4][key])
    assert native.step(a)[3].dtype == np.bool_


def test_same_seed_same_trajectory_bit_for_bit() -> None:
    def run() -> list[np.ndarray]:
        env = gym.make_vec(
            mmgym.PERP_MM_ID, num_envs=3, vectorization_mode="vector_entry_point", **SHORT
        )
        out = [env.reset(seed=5)[0]]
        for a in _actions(np.random.default_rng(1), 3, 45):
            obs, rew, *_ = env.step(a)
            out += [obs, rew]
        return out

    for x, y in zip(run(), run(), strict=True):
        np.testing.assert_array_equal(x, y)


def test_sub_env_i_matches_single_env_seeded_s_plus_i() -> None:
    n, seed, steps = 5, 100, 30
    vec = gym.make_vec(mmgym.PERP_MM_ID, num_envs=n, vectorization_mode="vector_entry_point")
    actions = _actions(np.random.default_rng(2), n, steps)
    obs_v, _ = vec.reset(seed=seed)
    traj_v = [(obs_v, np.zeros(n))]
    for a in actions:
        o, r, *_ = vec.step(a)
        traj_v.append((o, r))
    for i in range(n):
        single = gym.make(mmgym.PERP_MM_ID)
        o, _ = single.reset(seed=seed + i)
        np.testing.assert_array_equal(o, traj_v[0][0][i])
        for t, a in enumerate(actions, start=1):
            o, r, *_ = single.step(a[i])
            np.testing.assert_array_equal(o, traj_v[t][0][i])
            assert r == traj_v[t][1][i]


def test_sub_env_does_not_depend_on_batch_size() -> None:
    a = _actions(np.random.default_rng(3), 8, 10)
    small = gym.make_vec(mmgym.PERP_MM_ID, num_envs=2, vectorization_mode="vector_entry_point")
    large = gym.make_vec(mmgym.PERP_MM_ID, num_envs=8, vectorization_mode="vector_entry_point")
    small.reset(seed=9)
    large.reset(seed=9)
    for step in a:
        o_small, *_ = small.step(step[:2])
        o_large, *_ = large.step(step)
        np.testing.assert_array_equal(o_small, o_large[:2])


def test_next_step_autoreset_semantics() -> None:
    env = gym.make_vec(
        mmgym.PERP_MM_ID, num_envs=2, vectorization_mode="vector_entry_point", **SHORT
    )
    _reset_obs, _ = env.reset(seed=3)
    a = np.zeros((2, 5), dtype=np.float32)
    for t in range(20):
        obs, rew, term, trunc, info = env.step(a)
        assert trunc.all() == (t == 19)
        assert not term.any()
    # The step after truncation resets: reward 0, flags false, obs of a fresh episode.
    obs, rew, term, trunc, info = env.step(a)
    np.testing.assert_array_equal(rew, 0.0)
    assert not term.any() and not trunc.any()
    assert obs[:, TIME].tolist() == [0.0, 0.0]  # elapsed-time feature restarts
    np.testing.assert_array_equal(info["inventory"], 0.0)
    np.testing.assert_array_equal(info["equity"], env.params.collateral)
    np.testing.assert_array_equal(info["pnl"], 0.0)
    # The reset episode runs a full length again.
    for t in range(20):
        *_, trunc, _ = env.step(a)
        assert trunc.all() == (t == 19)


def test_reset_without_seed_continues_the_stream() -> None:
    env = gym.make(mmgym.PERP_MM_ID, **SHORT)
    _o1, _ = env.reset(seed=1)
    env.step(np.zeros(5, dtype=np.float32))
    o2, _ = env.reset()
    env.step(np.zeros(5, dtype=np.float32))
    o3, _ = env.reset()
    env.reset(seed=1)
    env.step(np.zeros(5, dtype=np.float32))
    o2b, _ = env.reset()
    np.testing.assert_array_equal(o2, o2b)
    assert o3 is not None


def test_copy_false_returns_views_copy_true_fresh_arrays() -> None:
    view_env = PerpMMVectorEnv(num_envs=2, copy=False)
    copy_env = PerpMMVectorEnv(num_envs=2, copy=True)
    a = np.zeros((2, 5), dtype=np.float32)
    for env in (view_env, copy_env):
        env.reset(seed=0)
    o_view = view_env.step(a)[0]
    o_copy = copy_env.step(a)[0]
    first_view, first_copy = o_view.copy(), o_copy.copy()
    o_view2 = view_env.step(a)[0]
    copy_env.step(a)
    assert o_view2 is o_view  # the buffer is reused
    np.testing.assert_array_equal(o_copy, first_copy)  # a copy is never overwritten
    assert not np.array_equal(first_view, o_view2)  # the view was overwritten in place


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"volatility": (-0.1, 1.0, 2.0)}, "volatility"),
        ({"hawkes_self": 0.6, "hawkes_cross": 0.4}, "hawkes_self + hawkes_cross"),
        ({"hawkes_self": 1.2, "hawkes_cross": 0.0}, "hawkes_self + hawkes_cross"),
        ({"tick_size": 0.0}, "tick_size"),
        ({"decision_interval": 0.25}, "decision_interval"),
        ({"latency_cap_seconds": 2.0}, "latency_cap_seconds"),
        ({"reward": "sharpe"}, "reward"),
        ({"order_size_tail": 0.9}, "order_size_tail"),
        ({"initial_regime": "panic"}, "initial_regime"),
    ],
)
def test_bad_parameters_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field.replace("+", r"\+")):
        gym.make(mmgym.PERP_MM_ID, **kwargs)


def test_unknown_scenario_lists_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown scenario 'moon'.*calm.*volatile"):
        gym.make(mmgym.PERP_MM_ID, scenario="moon")


def test_unknown_parameter_lists_valid_ones() -> None:
    with pytest.raises(
        ValueError, match=r"unknown market parameter\(s\) \['volatilty'\].*volatility"
    ):
        gym.make_vec(
            mmgym.PERP_MM_ID, num_envs=2, vectorization_mode="vector_entry_point", volatilty=1.0
        )


def test_bad_actions_are_named_and_leave_state_untouched() -> None:
    env = gym.make_vec(mmgym.PERP_MM_ID, num_envs=3, vectorization_mode="vector_entry_point")
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(3, 4\), expected \(3, 5\)"):
        env.step(np.zeros((3, 4)))
    bad = np.zeros((3, 5))
    bad[1, 2] = np.nan
    accounts, assets, rng = env.sim.accounts.copy(), env.sim.assets.copy(), env.sim.rng.copy()
    with pytest.raises(ValueError, match=r"'bid_size' of env 1 is nan"):
        env.step(bad)
    np.testing.assert_array_equal(env.sim.accounts, accounts)
    np.testing.assert_array_equal(env.sim.assets, assets)
    np.testing.assert_array_equal(env.sim.rng, rng)
    single = gym.make(mmgym.PERP_MM_ID)
    single.reset(seed=0)
    with pytest.raises(ValueError, match="skew"):
        single.step(np.array([np.inf, 0, 0, 0, 0], dtype=np.float32))
    with pytest.raises(ValueError, match="shape"):
        single.step(np.zeros(4, dtype=np.float32))


def test_parallel_kernel_matches_serial_bit_for_bit() -> None:
    from mmgym.envs.perp_mm import PARALLEL_MIN_ENVS

    n = PARALLEL_MIN_ENVS + 3
    parallel = PerpMMVectorEnv(num_envs=n, scenario="volatile", **SHORT)
    assert parallel.sim._step_kernel.__name__ == "step_markets_parallel"
    serial = PerpMMVectorEnv(num_envs=n, scenario="volatile", parallel=False, **SHORT)
    assert serial.sim._step_kernel.__name__ == "step_markets"
    o1, _ = parallel.reset(seed=21)
    o2, _ = serial.reset(seed=21)
    np.testing.assert_array_equal(o1, o2)
    for a in _actions(np.random.default_rng(4), n, 25):
        r1, r2 = parallel.step(a), serial.step(a)
        for x, y in zip(r1[:4], r2[:4], strict=True):
            np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(parallel.sim.accounts, serial.sim.accounts)
    np.testing.assert_array_equal(parallel.sim.assets, serial.sim.assets)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_scenario_passes_the_env_checkers_and_matches_single_envs(scenario: str) -> None:
    params = make_params(scenario, episode_seconds=10.0)
    k = params.num_assets
    env = PerpMMEnv(scenario=scenario, episode_seconds=10.0)
    sb3_check_env(env, warn=True)
    gym_check_env(gym.make(mmgym.PERP_MM_ID, scenario=scenario, episode_seconds=10.0).unwrapped)
    vec = PerpMMVectorEnv(num_envs=3, scenario=scenario, episode_seconds=10.0)
    assert vec.single_action_space.shape == (5 * k,)
    assert vec.single_observation_space.shape == (22 * k + 3,)
    actions = _actions(np.random.default_rng(5), 3, 25, assets=k)
    obs_v, _ = vec.reset(seed=40)
    rewards_v = []
    for a in actions:
        o, r, *_ = vec.step(a)
        rewards_v.append((o, r))
    for i in (0, 2):
        single = PerpMMEnv(scenario=scenario, episode_seconds=10.0)
        o, _ = single.reset(seed=40 + i)
        np.testing.assert_array_equal(o, obs_v[i])
        ended = False
        for t, a in enumerate(actions):
            if ended:  # NEXT_STEP autoreset: this step resets (the stream continues)
                (o, _), r, ended = single.reset(), 0.0, False
            else:
                o, r, terminated, truncated, _ = single.step(a[i])
                ended = terminated or truncated
            np.testing.assert_array_equal(o, rewards_v[t][0][i])
            assert r == rewards_v[t][1][i]


def test_unknown_override_in_a_scenario_is_named() -> None:
    with pytest.raises(ValueError, match="num_asset"):
        make_params("cross_margin_event", num_asset=2)
    with pytest.raises(ValueError, match="num_assets must be an integer in"):
        make_params("calm", num_assets=0)
    with pytest.raises(ValueError, match="margin_tiers"):
        make_params("calm", margin_tiers=((0.0, 20.0), (100.0, 40.0)))
    with pytest.raises(ValueError, match="hedge_schedule"):
        make_params("calm", hedge_schedule="vwap")
