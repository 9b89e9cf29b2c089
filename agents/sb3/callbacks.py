"""SB3 callbacks: domain scalars, a stop on non-finite numbers, evaluation against baselines."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, cast

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv, VecNormalize
from tqdm import tqdm

from agents.market_scalars import MarketScalars
from agents.sb3.vec_env import NativeVecEnv


def native_env(venv: VecEnv) -> NativeVecEnv:
    """The :class:`NativeVecEnv` under any SB3 wrappers."""
    env: Any = venv
    while not isinstance(env, NativeVecEnv):
        if not hasattr(env, "venv"):
            raise TypeError("the training env is not built on NativeVecEnv")
        env = env.venv
    return env


class DomainMetricsCallback(BaseCallback):
    """Logs the ``mm/*`` market scalars of :mod:`agents.market_scalars` once per rollout."""

    def __init__(self, markout_steps: int) -> None:
        super().__init__()
        self.markout_steps = markout_steps

    def _on_training_start(self) -> None:
        self._native = native_env(self.training_env)
        info = self._native.last_reset_info
        mid = np.asarray(info["mid"], dtype=np.float64).reshape(self._native.num_envs, -1)
        self._scalars = MarketScalars(self._native.num_envs, mid.shape[1], self.markout_steps)
        self._scalars.start(None, mid)

    def _on_step(self) -> bool:
        dones = np.asarray(self.locals["dones"], dtype=np.bool_)
        self._scalars.update(self._native.last_info, done=dones)
        if dones.any():
            self._scalars.start(dones, self._native.last_reset_info["mid"])
        return True

    def _on_rollout_end(self) -> None:
        for tag, value in self._scalars.pop().items():
            self.logger.record(tag, value)


class NonFiniteStop(BaseCallback):
    """Stops training with a clear message when observations, rewards or losses are not finite."""

    def __init__(self) -> None:
        super().__init__()
        self.reason: str | None = None

    def _on_step(self) -> bool:
        if self.reason is not None:
            return False
        rewards = self.locals.get("rewards")
        obs = self.locals.get("new_obs")
        for name, value in (("reward", rewards), ("observation", obs)):
            if value is not None and not np.all(np.isfinite(value)):
                self.reason = f"non-finite {name} at step {self.num_timesteps}"
                return False
        return True

    def _on_rollout_start(self) -> None:
        for key, value in self.logger.name_to_value.items():
            if key.startswith("train/") and not math.isfinite(value):
                self.reason = f"non-finite {key} = {value} after {self.num_timesteps} steps"


class PeriodicEvaluation(BaseCallback):
    """Every ``every`` env steps before ``total``, evaluate the current policy (and, once, the
    baselines) on held-out markets and log ``eval/<policy>/<metric>``. The evaluation at the
    end of training is the trainer's (:meth:`evaluate_now`), so it is not run twice."""

    def __init__(
        self, every: int, run: Callable[[int], dict[str, dict[str, float]]], total: int
    ) -> None:
        super().__init__()
        self.every = every
        self.run = run
        self.total = total
        self._next = every
        self.history: list[dict[str, Any]] = []

    def _on_step(self) -> bool:
        if self.every > 0 and self._next <= self.num_timesteps < self.total:
            while self._next <= self.num_timesteps:
                self._next += self.every
            self.evaluate_now()
        return True

    def evaluate_now(self) -> dict[str, dict[str, float]]:
        """Run the evaluation and log it at the current step."""
        results = self.run(self.num_timesteps)
        for policy, values in results.items():
            for metric, value in values.items():
                self.logger.record(f"eval/{policy}/{metric}", value)
        self.logger.dump(self.num_timesteps)
        self.history.append({"steps": self.num_timesteps, **{p: v for p, v in results.items()}})
        return results


class ProgressBar(BaseCallback):
    """A tqdm bar over the env steps SB3 really runs for a budget of ``total``: whole rollouts
    (on-policy) or whole ``train_freq`` rounds (off-policy), so the budget is rounded up."""

    def __init__(self, total: int) -> None:
        super().__init__()
        self.total = total
        self.bar: Any = None
        self._start = 0

    def _on_training_start(self) -> None:
        self._start = self.model.num_timesteps
        chunk = steps_per_collection(self.model)
        runs = math.ceil(max(self.total - self._start, 0) / chunk) * chunk
        self.bar = tqdm(total=runs, unit="step", desc="train", smoothing=0.1)

    def _on_step(self) -> bool:
        done = self.num_timesteps - self._start
        if done > self.bar.total:  # a schedule it could not predict (episodes)
            self.bar.total = done
        self.bar.update(done - self.bar.n)
        return True

    def _on_training_end(self) -> None:
        self.bar.close()


def steps_per_collection(model: Any) -> int:
    """Env steps SB3 adds between two checks of its budget: a rollout of ``n_steps`` per env
    (on-policy), ``train_freq`` steps per env (off-policy, counted in steps), else one step of
    every env."""
    from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
    from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
    from stable_baselines3.common.type_aliases import TrainFreq, TrainFrequencyUnit

    if isinstance(model, OnPolicyAlgorithm):
        return int(model.n_steps) * model.n_envs
    if isinstance(model, OffPolicyAlgorithm):
        freq = cast(TrainFreq, model.train_freq)  # converted when the model is set up
        if freq.unit == TrainFrequencyUnit.STEP:
            return int(freq.frequency) * model.n_envs
    return int(model.n_envs)


def vecnormalize_of(venv: VecEnv) -> VecNormalize | None:
    """The VecNormalize wrapper in ``venv``'s stack, if any."""
    env: Any = venv
    while env is not None:
        if isinstance(env, VecNormalize):
            return env
        env = getattr(env, "venv", None)
    return None
