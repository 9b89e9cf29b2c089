"""A trained RLlib RLModule behind the common :class:`~agents.policy.Policy` interface."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

MODULE_DIR = "rl_module"
FILTER_FILE = "obs_filter.npz"
POLICY_FILE = "policy.json"
SMALL_NUMBER = 1e-6
"""RLlib's ``MeanStdFilter`` divides by ``std + 1e-6`` (``ray.rllib.utils.numpy.SMALL_NUMBER``)."""


class RLlibPolicy:
    """Acts with a trained RLlib (new API stack) RLModule on raw env observations.

    ``act`` does what RLlib's EnvRunner does when not exploring: the MeanStdFilter of the
    env-to-module pipeline (frozen statistics, same clipping), the module's
    ``forward_inference``, the deterministic action of its action distribution (the Gaussian's
    mean), then ``NormalizeAndClipActions`` (unsquash from [-1, 1] to the action space's bounds,
    or clip).
    """

    def __init__(
        self,
        module: Any,
        action_low: NDArray[np.float32],
        action_high: NDArray[np.float32],
        obs_mean: NDArray[np.float64] | None = None,
        obs_std: NDArray[np.float64] | None = None,
        clip_obs: float | None = 10.0,
        normalize_actions: bool = True,
    ) -> None:
        import torch

        self.module = module
        self.module.eval()
        self.action_low = np.asarray(action_low, dtype=np.float32)
        self.action_high = np.asarray(action_high, dtype=np.float32)
        self.obs_mean = obs_mean
        self.obs_std = obs_std
        self.clip_obs = clip_obs
        self.normalize_actions = normalize_actions
        self._torch = torch
        self._dist_cls = module.get_inference_action_dist_cls()

    @classmethod
    def from_algorithm(cls, algo: Any) -> RLlibPolicy:
        """The current policy of a (PPO) Algorithm: the learner's module weights and the
        EnvRunners' merged observation statistics."""
        from ray.rllib.core import DEFAULT_MODULE_ID
        from ray.rllib.env import INPUT_ENV_SINGLE_SPACES

        config = algo.config
        # The local EnvRunner holds the merged connector (MeanStdFilter) state after every
        # iteration, but not the latest weights when remote EnvRunners sample: those come
        # from the learner.
        spaces = algo.env_runner.get_spaces()
        module = config.get_rl_module_spec(spaces=spaces, inference_only=True).build()
        learner_module = algo.learner_group.get_state(
            components=f"learner/rl_module/{DEFAULT_MODULE_ID}"
        )["learner"]["rl_module"][DEFAULT_MODULE_ID]
        module.set_state(learner_module)
        mean, std, clip = obs_filter_stats(algo.env_runner)
        space = spaces[INPUT_ENV_SINGLE_SPACES][1]
        return cls(module, space.low, space.high, mean, std, clip, config.normalize_actions)

    def normalise(self, obs: NDArray[np.float32]) -> NDArray[np.float32]:
        """The observation as the module saw it in training."""
        if self.obs_mean is None or self.obs_std is None:
            return np.asarray(obs, dtype=np.float32)
        z = (np.asarray(obs, dtype=np.float64) - self.obs_mean) / (self.obs_std + SMALL_NUMBER)
        if self.clip_obs:
            z = np.clip(z, -self.clip_obs, self.clip_obs)
        return z.astype(np.float32)

    def act(self, obs: NDArray[np.float32]) -> NDArray[np.float32]:
        """Deterministic actions for a batch of observations."""
        from ray.rllib.core.columns import Columns

        torch = self._torch
        with torch.no_grad():
            batch = {Columns.OBS: torch.from_numpy(self.normalise(obs))}
            out = self.module.forward_inference(batch)
            dist = self._dist_cls.from_logits(out[Columns.ACTION_DIST_INPUTS])
            action = dist.to_deterministic().sample().cpu().numpy().astype(np.float32)
        if self.normalize_actions:
            low, high = self.action_low, self.action_high
            action = low + (action + 1.0) * (high - low) / 2.0
        return np.clip(action, self.action_low, self.action_high).astype(np.float32)

    def reset(self, mask: NDArray[np.bool_] | None = None) -> None:
        """Feed-forward modules keep no state."""

    def save(self, path: Path) -> None:
        """Write the module (RLlib checkpoint format), observation statistics and settings."""
        path.mkdir(parents=True, exist_ok=True)
        self.module.save_to_path(str((path / MODULE_DIR).resolve()))
        if self.obs_mean is not None and self.obs_std is not None:
            np.savez(path / FILTER_FILE, mean=self.obs_mean, std=self.obs_std)
        settings = {
            "action_low": self.action_low.tolist(),
            "action_high": self.action_high.tolist(),
            "clip_obs": self.clip_obs,
            "normalize_actions": self.normalize_actions,
        }
        (path / POLICY_FILE).write_text(json.dumps(settings, indent=2))

    @classmethod
    def load(cls, path: Path) -> RLlibPolicy:
        """A policy saved by :meth:`save` (e.g. ``<run dir>/policy``)."""
        from ray.rllib.core.rl_module.rl_module import RLModule

        settings = json.loads((path / POLICY_FILE).read_text())
        module = RLModule.from_checkpoint(str((path / MODULE_DIR).resolve()))
        mean = std = None
        if (path / FILTER_FILE).exists():
            with np.load(path / FILTER_FILE) as stats:
                mean, std = stats["mean"], stats["std"]
        return cls(
            module,
            np.asarray(settings["action_low"], dtype=np.float32),
            np.asarray(settings["action_high"], dtype=np.float32),
            mean,
            std,
            settings["clip_obs"],
            settings["normalize_actions"],
        )


def obs_filter_stats(
    env_runner: Any,
) -> tuple[NDArray[np.float64] | None, NDArray[np.float64] | None, float | None]:
    """Mean, std and clip of the MeanStdFilter in an EnvRunner's env-to-module pipeline
    (``None`` when there is none)."""
    from ray.rllib.connectors.env_to_module import MeanStdFilter

    pipeline = getattr(env_runner, "_env_to_module", None)
    for piece in getattr(pipeline, "connectors", []):
        if isinstance(piece, MeanStdFilter):
            if piece._filters is None:
                return None, None, None
            stats = piece._filters[None].running_stats
            return (
                np.asarray(stats.mean, dtype=np.float64),
                np.asarray(stats.std, dtype=np.float64),
                piece.clip_by_value,
            )
    return None, None, None
