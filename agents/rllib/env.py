"""The env RLlib's EnvRunners step: ``mmgym/PerpMM-v0`` built by its vector entry point.

RLlib's ``SingleAgentEnvRunner.make_env`` registers a callable ``config.env`` as a Gymnasium
env whose ``vector_entry_point`` is ``lambda num_envs: config.env(env_ctx | {"num_envs": n})``
and builds it with ``gym.make_vec(..., vectorization_mode=config.gym_env_vectorize_mode)``. With
``gym_env_vectorize_mode="vector_entry_point"`` that is :func:`make_vector_env`, which builds the
native :class:`~mmgym.envs.perp_mm.PerpMMVectorEnv` (one kernel call per step, autoreset mode
NEXT_STEP, which is the mode RLlib's runner expects) through the env's own vector entry point.
No SyncVectorEnv of single envs is involved.

:class:`MarketStatsWrapper` sits between the two. It

* feeds every step to :class:`~agents.market_scalars.MarketScalars` (``mm/pnl``, ...,
  ``mm/adverse_selection``) so that :class:`~agents.rllib.callbacks.MarketMetricsCallback` can
  log them once per ``sample()``;
* returns an empty ``info``: RLlib splits the info dict into one dict per env
  (``DictInfoToList``) and stores it in every episode step that is shipped to the learner; the
  native info (~45 arrays) would triple the env's cost and bloat every sample batch for nothing
  the learner reads;
* optionally scales rewards by a running standard deviation of the discounted return (as
  SB3's ``VecNormalize(norm_reward=True)``, per EnvRunner);
* gives every sub-env of every EnvRunner its own market seed.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import VectorEnv, VectorWrapper
from numpy.typing import NDArray

from agents.market_scalars import MarketScalars
from mmgym.envs.registration import PERP_MM_ID

EMPTY_INFO: dict[str, Any] = {}


class MarketStatsWrapper(VectorWrapper):
    """Domain-metric sums, empty infos, optional reward scaling, per-runner seeds."""

    def __init__(
        self,
        env: VectorEnv,
        seed_offset: int = 0,
        normalize_reward: bool = False,
        gamma: float = 0.99,
        clip_reward: float = 10.0,
        epsilon: float = 1e-8,
        markout_steps: int = 1,
        market_scalars: bool = True,
    ) -> None:
        super().__init__(env)
        self.seed_offset = seed_offset
        self.normalize_reward = normalize_reward
        self.gamma = gamma
        self.clip_reward = clip_reward
        self.epsilon = epsilon
        self._returns = np.zeros(self.num_envs)
        self._ret_count = epsilon
        self._ret_mean = 0.0
        self._ret_var = 1.0
        self.scalars: MarketScalars | None = None
        self.markout_steps = markout_steps
        self.market_scalars = market_scalars
        self._restarting = np.zeros(self.num_envs, dtype=np.bool_)

    def reset(
        self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset; a seed (RLlib passes ``config.seed + worker_index``) is replaced by this
        runner's own, so sub-envs of different runners never share a market."""
        if seed is not None:
            seed = self.seed_offset
        obs, info = self.env.reset(seed=seed, options=options)
        self._returns[:] = 0.0
        self._restarting[:] = False
        mid = np.asarray(info["mid"], dtype=np.float64).reshape(self.num_envs, -1)
        if self.scalars is None and self.market_scalars:
            self.scalars = MarketScalars(self.num_envs, mid.shape[1], self.markout_steps)
        if self.scalars is not None:
            self.scalars.start(None, mid)
        return obs, EMPTY_INFO

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        """Step the native env, add its market scalars to the sums, drop its info.

        Sub-envs whose episode ended on the previous step were reset by this one (NEXT_STEP
        autoreset): they did not trade, so they count in neither the sums nor the return
        statistics (as in an SB3 run, whose adapter resets within the step).
        """
        obs, reward, terminated, truncated, info = self.env.step(actions)
        stepped = ~self._restarting
        done = terminated | truncated
        if self.scalars is not None:
            self.scalars.update(info, stepped, done)
            if self._restarting.any():
                self.scalars.start(self._restarting, info["mid"])
        if self.normalize_reward:
            reward = self._scale(reward, done, stepped)
        self._restarting = np.asarray(done, dtype=np.bool_).copy()
        return obs, reward, terminated, truncated, EMPTY_INFO

    def pop_sums(self) -> tuple[dict[str, float], int]:
        """The sums and step count since the last call, and reset them."""
        if self.scalars is None:
            return {}, 0
        return self.scalars.pop_sums()

    def _scale(
        self, reward: NDArray[np.float64], done: NDArray[np.bool_], stepped: NDArray[np.bool_]
    ) -> NDArray[np.float64]:
        self._returns = self._returns * self.gamma + reward
        if stepped.any():
            self._update_return_stats(self._returns[stepped])
        self._returns[done] = 0.0
        scaled = reward / np.sqrt(self._ret_var + self.epsilon)
        return np.clip(scaled, -self.clip_reward, self.clip_reward)

    def _update_return_stats(self, batch: NDArray[np.float64]) -> None:
        # Parallel-variance update of the running return statistics (as SB3's RunningMeanStd).
        n = batch.shape[0]
        mean, var = float(batch.mean()), float(batch.var())
        delta = mean - self._ret_mean
        total = self._ret_count + n
        self._ret_mean += delta * n / total
        m2 = self._ret_var * self._ret_count + var * n + delta**2 * self._ret_count * n / total
        self._ret_var = m2 / total
        self._ret_count = total


def make_vector_env(config: dict[str, Any]) -> MarketStatsWrapper:
    """RLlib's env creator: ``config`` is the EnvContext (``env_config`` plus ``num_envs``).

    ``env_config`` keys: ``scenario``, ``overrides`` (MarketParams fields), ``seed`` (the
    job's), ``num_env_runners``, ``normalize_reward``, ``gamma``, ``market_scalars`` (whether to
    compute ``mm/*``) and ``markout_steps`` (horizon of ``mm/adverse_selection``). The env
    steps on one core (``parallel=False``): EnvRunners are separate processes that already
    share the cores.
    """
    import mmgym  # noqa: F401  (registers mmgym/PerpMM-v0 in this worker process)

    num_envs = int(config["num_envs"])
    worker_index = int(getattr(config, "worker_index", 0))
    runners = int(config.get("num_env_runners", 0))
    env = gym.make_vec(
        PERP_MM_ID,
        num_envs=num_envs,
        vectorization_mode=gym.VectorizeMode.VECTOR_ENTRY_POINT,
        scenario=config.get("scenario", "calm"),
        copy=True,
        parallel=False,
        **dict(config.get("overrides", {})),
    )
    seed_offset = (int(config.get("seed", 0)) * (runners + 1) + worker_index) * num_envs
    return MarketStatsWrapper(
        env,
        seed_offset=seed_offset,
        normalize_reward=bool(config.get("normalize_reward", False)),
        gamma=float(config.get("gamma", 0.99)),
        markout_steps=int(config.get("markout_steps", 1)),
        market_scalars=bool(config.get("market_scalars", True)),
    )


def stats_wrapper(env: Any) -> MarketStatsWrapper | None:
    """The :class:`MarketStatsWrapper` in an EnvRunner's env stack, if any."""
    while env is not None:
        if isinstance(env, MarketStatsWrapper):
            return env
        env = getattr(env, "env", None)
    return None
