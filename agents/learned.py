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
        cls,
        model_path: str | Path,
        vecnormalize_path: str | Path | None = None,
        algo: str = "ppo",
    ) -> SB3Policy:
        """Load a saved ``algo`` ("ppo" or "sac") model and the VecNormalize statistics it was
        trained with (``vecnormalize_path``; None for a model trained without them). A missing
        file is an error naming it."""
        import pickle

        from stable_baselines3 import PPO, SAC

        algorithms: dict[str, Any] = {"ppo": PPO, "sac": SAC}
        if algo not in algorithms:
            raise ValueError(f"algo must be one of {sorted(algorithms)}, got {algo!r}")
        model_path = Path(model_path)
        if not model_path.is_file():  # SB3 would retry with ".zip" appended and name that
            raise FileNotFoundError(f"no trained model at {model_path}")
        model = algorithms[algo].load(str(model_path), device="cpu")
        if vecnormalize_path is None:
            return cls(model)
        vecnormalize_path = Path(vecnormalize_path)
        if not vecnormalize_path.is_file():
            raise FileNotFoundError(
                f"no observation statistics at {vecnormalize_path}: the model was trained on "
                "normalised observations (VecNormalize) and acts wrongly without them"
            )
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


def load_run(run_dir: str | Path, params: MarketParams | None = None) -> Policy:
    """The policy a training run directory holds (``config.yaml``, ``summary.json``,
    ``model.zip``, ``vecnormalize.pkl``), acting exactly as in the run's evaluations.

    A residual agent (``agent.residual_on`` in the config) comes back as a
    :class:`~agents.residual.ResidualPolicy` on a fresh baseline built for ``params`` (the
    market it will act in; default: the run's training market), any other as an
    :class:`SB3Policy`. The config must still describe the trained model: its scenario, algo
    and residual base must match ``summary.json`` and its market the model's observation and
    action sizes, or a ValueError names the mismatch. A missing file is an error naming it.
    """
    import json

    from omegaconf import OmegaConf

    from agents.market import market_of
    from agents.residual import compose_policy

    run_dir = Path(run_dir)
    config_file = run_dir / "config.yaml"
    if not config_file.is_file():
        raise ValueError(f"{run_dir} is not a training run directory (no config.yaml)")
    summary_file = run_dir / "summary.json"
    if not summary_file.is_file():
        raise FileNotFoundError(f"no {summary_file}: the training run did not finish")
    cfg: Any = OmegaConf.load(config_file)
    summary = json.loads(summary_file.read_text())
    agent = cfg.agent
    algo = str(agent.algo)
    if algo == "rllib_ppo":
        raise ValueError(f"{run_dir} is an RLlib run: RLlibPolicy.load({run_dir / 'policy'})")
    residual_on = agent.get("residual_on")
    _check_against_summary(
        {"scenario": cfg.env.scenario, "algo": algo, "residual_on": residual_on}, summary
    )
    env_overrides: Any = OmegaConf.to_container(cfg.env.overrides)
    market = market_of(cfg.env.scenario, cfg.train.episode_seconds, env_overrides)
    learned = SB3Policy.load(run_dir / "model.zip", run_dir / "vecnormalize.pkl", algo=algo)
    _check_shapes(learned, market.scenario, market.overrides, summary)
    if residual_on is None:
        return learned
    return compose_policy(
        learned, str(residual_on), float(agent.residual_scale), params or market.params
    )


def _check_against_summary(config: dict[str, Any], summary: dict[str, Any]) -> None:
    """config.yaml's values against those the run recorded when it trained."""
    wrong = [
        f"{key}: config.yaml says {value!r}, summary.json {summary[key]!r}"
        for key, value in config.items()
        if key in summary and summary[key] != value
    ]
    if wrong:
        raise ValueError(
            "config.yaml no longer describes the trained model (edited after training?): "
            + "; ".join(wrong)
        )


def _check_shapes(
    policy: SB3Policy, scenario: str, overrides: dict[str, Any], summary: dict[str, Any]
) -> None:
    """The market of config.yaml gives the observations and actions the model was trained on."""
    from mmgym.envs.perp_mm import PerpMMVectorEnv

    env = PerpMMVectorEnv(num_envs=1, scenario=scenario, **overrides)
    sizes = {
        "observation": (env.single_observation_space, policy.model.observation_space),
        "action": (env.single_action_space, policy.model.action_space),
    }
    env.close()
    for kind, (market_space, model_space) in sizes.items():
        market, model = _size(market_space), _size(model_space)
        recorded = summary.get(f"{kind}_dim", model)
        if market != model or recorded != model:
            raise ValueError(
                f"config.yaml's market (scenario {scenario!r}, overrides {overrides}) gives "
                f"{kind}s of {market} values, but the model takes {model} (summary.json: "
                f"{recorded}; edited after training?)"
            )


def _size(space: Any) -> int:
    return int(np.prod(space.shape))
