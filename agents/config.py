"""Structured-config schemas registered with Hydra's ConfigStore.

Each YAML under ``conf/`` names its schema in its defaults list, so a misspelt key or a wrong
type fails at composition, before any compute, with the key's name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, TypeVar

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from agents.evaluation import EvaluationConfig


@dataclass
class EnvConfig:
    """The market to train or evaluate on: a scenario and parameter overrides."""

    scenario: str = "calm"
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class PPOConfig:
    """stable-baselines3 PPO (one machine). Field meanings as in SB3's PPO."""

    algo: str = "ppo"
    learning_rate: float = 3e-4
    n_steps: int = 128
    batch_size: int = 1024
    n_epochs: int = 5
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    net_arch: list[int] = field(default_factory=lambda: [64, 64])
    log_std_init: float = -0.5


@dataclass
class SACConfig:
    """stable-baselines3 SAC (one machine). Field meanings as in SB3's SAC."""

    algo: str = "sac"
    learning_rate: float = 3e-4
    buffer_size: int = 200_000
    learning_starts: int = 5_000
    batch_size: int = 256
    tau: float = 0.005
    gamma: float = 0.99
    train_freq: int = 1
    gradient_steps: int = 1
    net_arch: list[int] = field(default_factory=lambda: [64, 64])


@dataclass
class TrainConfig:
    """Budget, batch and evaluation cadence of a training run."""

    total_steps: float = 200_000
    """Env steps (summed over envs); a float so ``2e6`` works on the command line."""
    num_envs: int = 64
    episode_seconds: float = 600.0
    """Training episode length (market seconds)."""
    normalize_reward: bool = True
    eval_every_steps: float = 50_000
    """Evaluate against the baselines every this many env steps (0: only at the end)."""
    eval_num_envs: int = 32
    eval_seed: int = 10_000
    """Held-out seed of the evaluation markets (training seeds are small integers)."""
    eval_baselines: list[str] = field(default_factory=lambda: ["linear_skew", "adaptive"])
    checkpoint_every_steps: float = 100_000
    """Save a checkpoint every this many env steps (0: none)."""
    progress_bar: bool = True


@dataclass
class TrainJob:
    """``scripts/train.py``: one SB3 training run."""

    env: EnvConfig = field(default_factory=EnvConfig)
    agent: Any = MISSING
    """One of the agent group's schemas (PPOConfig, SACConfig); chosen by ``agent=...``."""
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0


@dataclass
class EvaluateJob:
    """``scripts/evaluate.py``: what to evaluate and where the results go."""

    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    tensorboard: bool = True
    """Write TensorBoard scalars next to the report."""


J = TypeVar("J")


def to_job(cfg: DictConfig, schema: type[J]) -> J:
    """The typed job of a composed config, refusing keys its schema does not declare.

    Hydra lets ``+key=value`` append keys even to a structured config, and ``to_object`` then
    drops them silently; a misspelt setting must fail instead, naming the key.
    """
    _check_known_keys(cfg, "")
    job = OmegaConf.to_object(cfg)
    if not isinstance(job, schema):
        raise TypeError(f"config does not compose into {schema.__name__}")
    return job


def _check_known_keys(node: Any, path: str) -> None:
    if not isinstance(node, DictConfig):
        return
    kind = OmegaConf.get_type(node)
    if kind is not None and dataclasses.is_dataclass(kind):
        known = {f.name for f in dataclasses.fields(kind)}
        unknown = sorted(str(k) for k in node if k not in known)
        if unknown:
            where = path or "the config"
            raise ValueError(f"unknown key(s) {unknown} in {where}; valid keys are {sorted(known)}")
    for key in node:
        name = str(key)
        if name == "hydra":
            continue
        _check_known_keys(node._get_node(name), f"{path}.{name}" if path else name)


def register_configs() -> None:
    """Register every schema (idempotent)."""
    store = ConfigStore.instance()
    store.store(name="evaluate_schema", node=EvaluateJob)
    store.store(name="train_schema", node=TrainJob)
    store.store(group="env", name="env_schema", node=EnvConfig)
    store.store(group="agent", name="ppo_schema", node=PPOConfig)
    store.store(group="agent", name="sac_schema", node=SACConfig)
    store.store(group="train", name="train_schema", node=TrainConfig)


register_configs()
