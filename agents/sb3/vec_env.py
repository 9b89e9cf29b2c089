"""The native mmgym vector env as a stable-baselines3 ``VecEnv`` (no DummyVecEnv of singles).

mmgym's vector envs autoreset on the NEXT step (Gymnasium's mode); SB3 expects the SAME step:
a finished env returns the first observation of its next episode, with the last one of the
finished episode in ``infos[i]["terminal_observation"]`` and ``infos[i]["TimeLimit.truncated"]``
true when the episode was cut by the time limit rather than terminated. The adapter steps all
envs in one kernel call, then resets just the finished ones (``reset_mask``), so SB3 sees
exactly its semantics and the native env never autoresets on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices

from mmgym.envs.shell import KernelVectorEnv


class NativeVecEnv(VecEnv):
    """SB3 view of a :class:`~mmgym.envs.shell.KernelVectorEnv`.

    ``last_info`` holds the native env's info dict (arrays over envs) of the last step, for
    callbacks that log domain metrics without per-env dictionaries; ``last_reset_info`` that of
    the last reset (full, or of the envs that finished in the last step).
    """

    def __init__(self, env: KernelVectorEnv) -> None:
        self.env = env  # before super().__init__, which reads render_mode through get_attr
        super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)
        self._actions: NDArray[Any] | None = None
        self.last_info: dict[str, Any] = {}
        self.last_reset_info: dict[str, Any] = {}

    def reset(self) -> NDArray[np.float32]:
        """Reset every env (with the seed set by ``seed()``, if any)."""
        seed = self._seeds[0] if self._seeds and self._seeds[0] is not None else None
        obs, info = self.env.reset(seed=seed)
        self.last_info = info
        self.last_reset_info = info
        self._reset_seeds()
        self._reset_options()
        return np.array(obs, copy=True)

    def step_async(self, actions: NDArray[Any]) -> None:
        """Store the actions for the next ``step_wait``."""
        self._actions = actions

    def step_wait(
        self,
    ) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.bool_], list[dict[str, Any]]]:
        """Step all envs; finished ones report their terminal observation and restart."""
        if self._actions is None:
            raise RuntimeError("step_wait called before step_async")
        obs, rewards, terminated, truncated, info = self.env.step(self._actions)
        self._actions = None
        self.last_info = info
        dones = terminated | truncated
        obs = np.array(obs, copy=True)
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if dones.any():
            for i in np.flatnonzero(dones):
                infos[i]["terminal_observation"] = obs[i].copy()
                infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
            reset_obs, self.last_reset_info = self.env.reset(options={"reset_mask": dones})
            obs[dones] = reset_obs[dones]
        return obs, rewards.astype(np.float32), dones.copy(), infos

    def close(self) -> None:
        """Close the native env."""
        self.env.close()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The native env's attribute, once per selected env (all envs share it)."""
        return [getattr(self.env, attr_name)] * len(self._get_indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set an attribute of the native env (shared by all envs)."""
        setattr(self.env, attr_name, value)

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: VecEnvIndices = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        """Call a method of the native env once (it acts on all envs)."""
        result = getattr(self.env, method_name)(*method_args, **method_kwargs)
        return [result] * len(self._get_indices(indices))

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        """The native env is never wrapped."""
        return [False] * len(self._get_indices(indices))

    def _get_indices(self, indices: VecEnvIndices) -> Sequence[int]:
        if indices is None:
            return range(self.num_envs)
        if isinstance(indices, int):
            return [indices]
        return list(indices)
