"""Gymnasium shells over a batched simulator.

A :class:`BatchSimulator` advances ``num_envs`` markets in one compiled call and writes its
results into preallocated buffers. :class:`KernelVectorEnv` turns it into a native Gymnasium
``VectorEnv`` (autoreset mode NEXT_STEP); :class:`KernelEnv` is the single-env twin, the very same
simulator with ``num_envs=1``. Because both run the same kernel on the same per-env random
stream, sub-env ``i`` of a vector env reset with seed ``s`` matches a single env reset with seed
``s + i``, bit for bit.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.error import ResetNeeded
from gymnasium.vector import AutoresetMode, VectorEnv
from numpy.typing import NDArray

from mmgym.core.rng import check_seed, seeds_from

StepOutputs = tuple[
    NDArray[np.float32], NDArray[np.float64], NDArray[np.bool_], NDArray[np.bool_], dict[str, Any]
]
"""What a vector env's ``step`` returns: obs, reward, terminated, truncated, info."""


class BatchSimulator(ABC):
    """``num_envs`` independent environments advanced together by one compiled kernel.

    Subclasses own their state arrays and fill these buffers on every ``reset``/``step``:
    ``obs`` (num_envs, obs_dim) float32, ``reward`` (num_envs,) float64, ``terminated`` and
    ``truncated`` (num_envs,) bool.
    """

    single_observation_space: spaces.Box
    single_action_space: spaces.Box
    action_names: tuple[str, ...] = ()
    """Names of the action components, for error messages (empty: the env class's)."""
    obs: NDArray[np.float32]
    reward: NDArray[np.float64]
    terminated: NDArray[np.bool_]
    truncated: NDArray[np.bool_]

    def __init__(self, num_envs: int) -> None:
        if not isinstance(num_envs, int | np.integer) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        self.num_envs = int(num_envs)

    @abstractmethod
    def reset(self, mask: NDArray[np.bool_], seeds: NDArray[np.uint64] | None) -> None:
        """Start new episodes for envs in ``mask``; reseed their streams from ``seeds`` if given."""

    @abstractmethod
    def step(self, actions: NDArray[Any], autoreset: NDArray[np.bool_]) -> int:
        """Advance every env: envs in ``autoreset`` start a new episode instead of stepping.

        Returns -1, or the flat index of the first non-finite action (state is then unchanged).
        """

    @abstractmethod
    def info(self, copy: bool) -> dict[str, Any]:
        """Per-env diagnostics of the last step, as arrays of length ``num_envs``."""

    def outputs(self, copy: bool) -> StepOutputs:
        """``(obs, reward, terminated, truncated, info)`` of the last step: views of the
        buffers, or (``copy``) arrays that no later call writes to."""
        if not copy:
            return self.obs, self.reward, self.terminated, self.truncated, self.info(False)
        return (
            self.obs.copy(),
            self.reward.copy(),
            self.terminated.copy(),
            self.truncated.copy(),
            self.info(True),
        )


def _check_actions(actions: Any, expected_shape: tuple[int, ...]) -> NDArray[Any]:
    arr = actions if isinstance(actions, np.ndarray) else np.asarray(actions, dtype=np.float64)
    if arr.shape != expected_shape:
        raise ValueError(
            f"action has shape {arr.shape}, expected {expected_shape} (num_envs, action_dim)"
        )
    if arr.dtype.kind != "f":
        arr = arr.astype(np.float64)
    return arr


class NonFiniteActionError(ValueError):
    """An action held NaN or infinity; nothing moved."""


def _raise_bad_action(flat_index: int, actions: NDArray[Any], names: tuple[str, ...]) -> None:
    env_index, component = divmod(flat_index, actions.shape[-1])
    value = actions.reshape(-1)[flat_index]
    raise NonFiniteActionError(
        f"action component {names[component]!r} of env {env_index} is {value}; "
        "actions must be finite numbers"
    )


class KernelVectorEnv(VectorEnv):
    """Native vector env over a :class:`BatchSimulator` (autoreset mode NEXT_STEP).

    ``reset(seed=s)`` seeds sub-env ``i`` with ``s + i``. With ``copy=False`` the returned arrays
    are views of internal buffers that the next call overwrites (fastest); with ``copy=True``
    (the default, as in Gymnasium's SyncVectorEnv) no later call writes to them while anything
    references them (:meth:`BatchSimulator.outputs`).
    """

    metadata: dict[str, Any] = {  # noqa: RUF012 (an instance attribute in Gymnasium)
        "autoreset_mode": AutoresetMode.NEXT_STEP,
        "render_modes": [],
    }
    action_names: tuple[str, ...] = ()
    render_mode: str | None = None

    def __init__(self, sim: BatchSimulator, copy: bool = True) -> None:
        self.sim = sim
        self.num_envs = sim.num_envs
        self.copy = copy
        self.single_observation_space = sim.single_observation_space
        self.single_action_space = sim.single_action_space
        self.observation_space = gym.vector.utils.batch_space(
            sim.single_observation_space, self.num_envs
        )
        self.action_space = gym.vector.utils.batch_space(sim.single_action_space, self.num_envs)
        self._action_shape = (self.num_envs, *sim.single_action_space.shape)
        if sim.action_names:
            self.action_names = sim.action_names
        self._autoreset = np.zeros(self.num_envs, dtype=np.bool_)
        self._all = np.ones(self.num_envs, dtype=np.bool_)
        self._seeded = False
        self._never_reset = np.ones(self.num_envs, dtype=np.bool_)
        self._ready = False

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[NDArray[np.float32], dict[str, Any]]:
        """Start a new episode in every sub-env (seeding sub-env ``i`` with ``seed + i``).

        ``options={"reset_mask": mask}`` resets only the sub-envs where ``mask`` is set (the
        others keep their episode); with a seed, masked sub-env ``i`` is seeded with ``seed + i``.
        """
        mask = self._all
        if options:
            unknown = sorted(set(options) - {"reset_mask"})
            if unknown:
                raise ValueError(f"unknown reset option(s) {unknown}; supported: ['reset_mask']")
            mask = np.asarray(options["reset_mask"])
            if mask.shape != (self.num_envs,) or mask.dtype != np.bool_:
                raise ValueError(
                    f"reset_mask must be a bool array of shape ({self.num_envs},), "
                    f"got {mask.dtype} {mask.shape}"
                )
        seed = check_seed(seed)
        seeds = None
        if seed is not None or not self._seeded:
            seeds = seeds_from(seed, self.num_envs)
            self._seeded = True
            self._np_random, self._np_random_seed = gym.utils.seeding.np_random(seed)
        self.sim.reset(mask, seeds)
        self._autoreset[mask] = False
        if not self._ready:
            self._never_reset[mask] = False
            self._ready = not self._never_reset.any()
        obs = self.sim.obs.copy() if self.copy else self.sim.obs
        return obs, self.sim.info(self.copy)

    def step(self, actions: Any) -> StepOutputs:
        """Advance every sub-env; sub-envs whose episode ended last step are reset instead."""
        if not self._ready:
            self._raise_reset_needed()
        arr = _check_actions(actions, self._action_shape)
        sim = self.sim
        bad = sim.step(arr, self._autoreset)
        if bad >= 0:
            _raise_bad_action(bad, arr, self.action_names)
        np.logical_or(sim.terminated, sim.truncated, out=self._autoreset)
        return sim.outputs(self.copy)

    def _raise_reset_needed(self) -> None:
        never = np.flatnonzero(self._never_reset).tolist()
        detail = "" if len(never) == self.num_envs else f": sub-envs {never} have never been reset"
        raise ResetNeeded(f"Cannot call step() before reset(){detail}")


class KernelEnv(gym.Env):
    """Single-env twin of :class:`KernelVectorEnv`: the same simulator with ``num_envs=1``."""

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012
    action_names: tuple[str, ...] = ()

    def __init__(self, sim: BatchSimulator) -> None:
        if sim.num_envs != 1:
            raise ValueError("a single env needs a simulator with num_envs=1")
        self.sim = sim
        self.observation_space = sim.single_observation_space
        self.action_space = sim.single_action_space
        self._action_shape = (1, *sim.single_action_space.shape)
        if sim.action_names:
            self.action_names = sim.action_names
        self._one = np.ones(1, dtype=np.bool_)
        self._no_reset = np.zeros(1, dtype=np.bool_)
        self._seeded = False
        self._ready = False

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[NDArray[np.float32], dict[str, Any]]:
        """Start a new episode; ``seed`` reseeds this env's random stream."""
        seed = check_seed(seed)
        super().reset(seed=seed)
        if options:
            raise ValueError(f"reset options are not supported, got {sorted(options)}")
        seeds = None
        if seed is not None or not self._seeded:
            seeds = seeds_from(seed, 1)
            self._seeded = True
        self.sim.reset(self._one, seeds)
        self._ready = True
        return self.sim.obs[0].copy(), _first(self.sim.info(False))

    def step(self, action: Any) -> tuple[NDArray[np.float32], float, bool, bool, dict[str, Any]]:
        """Advance the market by one decision interval."""
        if not self._ready:
            raise ResetNeeded("Cannot call step() before reset()")
        arr = _check_actions(np.asarray(action).reshape(1, -1), self._action_shape)
        if np.shape(action) != self.action_space.shape:
            raise ValueError(
                f"action has shape {np.shape(action)}, expected {self.action_space.shape}"
            )
        bad = self.sim.step(arr, self._no_reset)
        if bad >= 0:
            _raise_bad_action(bad, arr, self.action_names)
        sim = self.sim
        return (
            sim.obs[0].copy(),
            float(sim.reward[0]),
            bool(sim.terminated[0]),
            bool(sim.truncated[0]),
            _first(sim.info(False)),
        )


def _first(info: dict[str, Any]) -> dict[str, Any]:
    """Per-env info of env 0, as plain Python scalars where possible (copies: arrays of one
    env's several perps are copied)."""
    out: dict[str, Any] = {}
    for key, value in info.items():
        if isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] == 1:
            out[key] = value[0].item() if value.ndim == 1 else value[0].copy()
        else:
            out[key] = value
    return out
