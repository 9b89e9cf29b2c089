"""The SB3 VecEnv adapter: SB3's same-step autoreset semantics over the native vector env."""

from __future__ import annotations

import numpy as np
import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecNormalize

from agents.sb3.vec_env import NativeVecEnv
from mmgym.envs.perp_mm import PerpMMVectorEnv

SHORT = {"episode_seconds": 15.0}


def test_reset_mask_resets_only_the_masked_envs() -> None:
    env = PerpMMVectorEnv(num_envs=3, **SHORT)
    env.reset(seed=7)
    for _ in range(5):
        obs, *_ = env.step(np.zeros((3, 5), dtype=np.float32))
    mask = np.array([False, True, False])
    obs_after, info = env.reset(options={"reset_mask": mask})
    np.testing.assert_array_equal(obs_after[[0, 2]], obs[[0, 2]])
    assert obs_after[1, 16] == 0.0  # time feature restarted
    assert info["inventory"][1] == 0.0
    with pytest.raises(ValueError, match="reset_mask must be a bool array"):
        env.reset(options={"reset_mask": [1, 0, 1]})
    with pytest.raises(ValueError, match="unknown reset option"):
        env.reset(options={"mask": mask})


def test_adapter_matches_native_next_step_semantics() -> None:
    """Same seed and actions: SB3's view equals the native env's with autoreset shifted."""
    n, steps = 4, 40
    rng = np.random.default_rng(3)
    actions = rng.uniform(-1, 1, size=(steps, n, 5)).astype(np.float32)
    sb3 = NativeVecEnv(PerpMMVectorEnv(num_envs=n, **SHORT))
    sb3.seed(11)
    obs_sb3 = sb3.reset()
    native = PerpMMVectorEnv(num_envs=n, **SHORT)
    obs_nat, _ = native.reset(seed=11)
    np.testing.assert_array_equal(obs_sb3, obs_nat)
    zero = np.zeros((n, 5), dtype=np.float32)
    done_steps = 0
    for a in actions:
        obs_sb3, rew_sb3, dones, infos = sb3.step(a)
        obs_nat, rew_nat, term, trunc, _ = native.step(a)
        np.testing.assert_array_equal(rew_sb3, rew_nat.astype(np.float32))
        np.testing.assert_array_equal(dones, term | trunc)
        if dones.any():
            done_steps += 1
            for i in np.flatnonzero(dones):
                np.testing.assert_array_equal(infos[i]["terminal_observation"], obs_nat[i])
                assert infos[i]["TimeLimit.truncated"] == bool(trunc[i] and not term[i])
            # The native env resets on its next step (action ignored, reward 0) and must then
            # show the observation SB3 already got. All envs end together here (same length,
            # no liquidation), so the comparison stops at this first boundary.
            obs_nat, rew_nat, *_ = native.step(zero)
            np.testing.assert_array_equal(rew_nat[dones], 0.0)
            np.testing.assert_array_equal(obs_sb3[dones], obs_nat[dones])
            assert dones.all()
            break
        np.testing.assert_array_equal(obs_sb3, obs_nat)
    assert done_steps == 1


def test_termination_is_not_reported_as_time_limit() -> None:
    # 200x leverage (maintenance 0.25 %) and maximal quotes: liquidated (terminated) early.
    env = NativeVecEnv(
        PerpMMVectorEnv(
            num_envs=8, collateral=20.0, margin_tiers=((0.0, 200.0),), scenario="volatile"
        )
    )
    env.seed(0)
    env.reset()
    quote_big = np.tile(np.array([0, -1, 1, 1, -1], dtype=np.float32), (8, 1))
    seen = []
    for _ in range(600):
        _, _, dones, infos = env.step(quote_big)
        seen += [infos[i]["TimeLimit.truncated"] for i in np.flatnonzero(dones)]
        if seen:
            break
    assert seen and not any(seen)
    assert env.last_info["liquidated"].any()


def test_ppo_trains_on_the_adapter_with_vecnormalize() -> None:
    venv = VecNormalize(NativeVecEnv(PerpMMVectorEnv(num_envs=8, **SHORT)))
    model = PPO("MlpPolicy", venv, n_steps=32, batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=8 * 32 * 2)
    assert model.num_timesteps == 8 * 32 * 2
    obs = venv.reset()
    action, _ = model.predict(obs, deterministic=True)
    assert action.shape == (8, 5)
