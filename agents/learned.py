"""A trained stable-baselines3 model behind the common :class:`~agents.policy.Policy` interface,
and :func:`load_run`, which rebuilds the policy a training run directory holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from agents.policy import Policy
from mmgym.core.params import MarketParams


class SB3Policy:
    """Acts with a trained SB3 model on raw env observations.

    When the model was trained under ``VecNormalize``, its observation statistics are applied
    here exactly as during training (same clipping), so evaluation, vetting and export see the
    policy the training run produced.
    """

    def __init__(
        self,
        model: Any,
        obs_mean: NDArray[np.float64] | None = None,
        obs_var: NDArray[np.float64] | None = None,
        clip_obs: float = 10.0,
        epsilon: float = 1e-8,
    ) -> None:
        self.model = model
        self.obs_mean = obs_mean
        self.obs_std = None if obs_var is None else np.sqrt(obs_var + epsilon)
        self.clip_obs = clip_obs

    @classmethod
    def load(
        cls, model_path: Path, vecnormalize_path: Path | None = None, algo: str = "ppo"
    ) -> SB3Policy:
        """Load a saved ``algo`` ("ppo" or "sac") model and its VecNormalize statistics."""
        import pickle

        from stable_baselines3 import PPO, SAC

        algorithms: dict[str, Any] = {"ppo": PPO, "sac": SAC}
        if algo not in algorithms:
            raise ValueError(f"algo must be one of {sorted(algorithms)}, got {algo!r}")
        model = algorithms[algo].load(model_path, device="cpu")
        if vecnormalize_path is None or not vecnormalize_path.exists():
            return cls(model)
        with vecnormalize_path.open("rb") as f:
            stats = pickle.load(f)
        return cls(model, stats.obs_rms.mean, stats.obs_rms.var, stats.clip_obs, stats.epsilon)

    def normalise(self, obs: NDArray[np.float32]) -> NDArray[np.float32]:
        """The observation as the network saw it in training."""
        if self.obs_mean is None or self.obs_std is None:
            return obs
        z = (np.asarray(obs, dtype=np.float64) - self.obs_mean) / self.obs_std
        return np.clip(z, -self.clip_obs, self.clip_obs).astype(np.float32)

    def act(self, obs: NDArray[np.float32]) -> NDArray[np.float32]:
        """Deterministic actions for a batch of observations."""
        action, _ = self.model.predict(self.normalise(obs), deterministic=True)
        return np.asarray(action, dtype=np.float32)

    def reset(self, mask: NDArray[np.bool_] | None = None) -> None:
        """Feed-forward policies keep no state."""


def load_run(run_dir: Path, params: MarketParams | None = None) -> Policy:
    """The policy a training run directory holds (``config.yaml``, ``model.zip``,
    ``vecnormalize.pkl``), acting exactly as in the run's evaluations.

    A residual agent (``agent.residual_on`` in the config) comes back as a
    :class:`~agents.residual.ResidualPolicy` on a fresh baseline built for ``params`` (the
    market it will act in; default: the run's training market), any other as an
    :class:`SB3Policy`.
    """
    from omegaconf import OmegaConf

    from agents.market import market_of
    from agents.residual import compose_policy

    config_file = run_dir / "config.yaml"
    if not config_file.is_file():
        raise ValueError(f"{run_dir} is not a training run directory (no config.yaml)")
    cfg: Any = OmegaConf.load(config_file)
    agent = cfg.agent
    learned = SB3Policy.load(
        run_dir / "model.zip", run_dir / "vecnormalize.pkl", algo=str(agent.algo)
    )
    residual_on = agent.get("residual_on")
    if residual_on is None:
        return learned
    if params is None:
        env_overrides: Any = OmegaConf.to_container(cfg.env.overrides)
        params = market_of(cfg.env.scenario, cfg.train.episode_seconds, env_overrides).params
    return compose_policy(learned, str(residual_on), float(agent.residual_scale), params)
