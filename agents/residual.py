"""Residual policy learning: a network learns a bounded correction to a baseline's action.

The action sent to the env is ``clip(base + scale x clip(correction, -1, 1), -1, 1)``, where
``base`` is a registered baseline's action for the raw observation and ``correction`` the
network's output in ``[-1, 1]`` (Silver et al. 2018, "Residual Policy Learning"; Johannink et
al. 2019, "Residual Reinforcement Learning for Robot Control"). :func:`residual_action` is that
mapping, and the only place it is written: :class:`ResidualVecEnv` applies it during training
and :class:`ResidualPolicy` during evaluation, vetting and export, so both act identically.
Both live in :mod:`agents.residual_policy` (numpy only, for the live side) and are imported
here under their old paths.

- The network's action space stays ``Box(-1, 1)``: SB3 sees an ordinary continuous-control
  task whose dynamics include the baseline.
- ``scale`` bounds how far the learned policy can move from the baseline (per action
  component, in action units): at most ``scale`` away, then clipped to the action range.
- Training starts at the baseline. :func:`start_at_base` zeroes the layer that outputs the
  action mean, so the initial deterministic correction is exactly 0 (SB3's orthogonal
  initialisation with gain 0.01 would leave it small but not 0). Exploration is then the
  Gaussian noise around it: ``log_std_init`` sets its size, times ``scale`` in action units.
- The wrapper sits directly on :class:`~agents.sb3.vec_env.NativeVecEnv`, under
  ``VecNormalize``, so the baseline sees raw observations, as it does in evaluation. The
  network itself sees the normalised observation, not the baseline's action.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray

from agents.policy import Policy
from agents.residual_policy import ResidualPolicy, check_scale, compose_policy, residual_action
from mmgym.extras import extra_needed

with extra_needed("agents.residual"):
    from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
    from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn

__all__ = [
    "ResidualPolicy",
    "ResidualVecEnv",
    "check_scale",
    "compose_policy",
    "residual_action",
    "start_at_base",
]


class ResidualVecEnv(VecEnvWrapper):
    """Steps ``venv`` with the baseline's action plus the agent's bounded correction.

    The agent's actions (``Box(-1, 1)``) are corrections. The wrapper keeps the last raw
    observation, asks the baseline for its actions on it, and sends
    :func:`residual_action` of both to ``venv``. Under SB3's same-step autoreset, the
    observation returned for a finished env already starts its next episode, so the baseline
    is reset for those envs (``reset(mask=dones)``) before it sees it; ``reset()`` resets it for
    all. ``last_action`` is the action last sent to ``venv``.
    """

    def __init__(self, venv: VecEnv, base: Policy, scale: float) -> None:
        space = venv.action_space
        if not (
            isinstance(space, spaces.Box)
            and np.all(space.low == -1.0)
            and np.all(space.high == 1.0)
        ):
            raise ValueError(f"residual actions need a Box(-1, 1) action space, got {space}")
        super().__init__(venv)
        self.base = base
        self.scale = check_scale(scale)
        self._obs: NDArray[Any] | None = None
        self.last_action: NDArray[np.float32] | None = None

    def reset(self) -> Any:
        """Reset every env and the baseline."""
        obs = self.venv.reset()
        self.base.reset()
        self._obs = np.array(obs, copy=True)
        return obs

    def step_async(self, actions: NDArray[Any]) -> None:
        """Send the baseline's actions plus the corrections ``actions``."""
        if self._obs is None:
            raise RuntimeError("step_async called before reset")
        base = self.base.act(self._obs)
        self.last_action = residual_action(base, actions, self.scale)
        self.venv.step_async(self.last_action)

    def step_wait(self) -> VecEnvStepReturn:
        """Step, reset the baseline for finished envs and keep the raw observation."""
        obs, rewards, dones, infos = self.venv.step_wait()
        done = np.asarray(dones, dtype=bool)
        if done.any():
            self.base.reset(done)
        self._obs = np.array(obs, copy=True)
        return obs, rewards, dones, infos


def start_at_base(model: Any) -> None:
    """Zero the output layer of an SB3 PPO or SAC actor's action mean, so the untrained
    network's deterministic correction is exactly 0 and training starts at the baseline."""
    import torch

    policy = model.policy
    layer = getattr(policy, "action_net", None)  # PPO (ActorCriticPolicy)
    if layer is None and hasattr(policy, "actor"):
        layer = policy.actor.mu  # SAC
    if not isinstance(layer, torch.nn.Linear):
        raise TypeError(f"no linear action-mean layer found on {type(policy).__name__}")
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.zero_()
