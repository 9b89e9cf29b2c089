"""What an evaluation runs: :class:`EvaluationConfig` and its validation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agents.policy import Policy
from agents.seeds import MAX_SEED, is_valid_seed
from mmgym.core.params import MarketParams

PolicyFactory = Callable[[MarketParams], Policy]
"""Builds a policy for the market it will act in."""


@dataclass
class EvaluationConfig:
    """What to evaluate. Every field has a documented default.

    ``policy_settings`` maps a policy name to its settings (e.g. ``{"linear_skew":
    {"skew_ticks_at_limit": 8}}``); ``env_overrides`` apply to every scenario.
    """

    policies: list[str] = field(default_factory=lambda: ["fixed_spread", "linear_skew"])
    """Registered baseline names (see ``agents.baselines.registry``)."""
    scenarios: list[str] = field(default_factory=lambda: ["calm", "volatile"])
    """Scenario names (see ``mmgym.scenarios``)."""
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    """Replicates; seed ``s`` resets the batch with ``s x num_envs`` (sub-env i: + i)."""
    num_envs: int = 64
    """Envs (episodes) per (scenario, policy, seed)."""
    episode_seconds: float = 3600.0
    """Episode length in market seconds."""
    markout_seconds: list[float] = field(default_factory=lambda: [1.0, 10.0, 60.0])
    """Markout horizons (rounded to whole decision intervals)."""
    cvar_alpha: float = 0.05
    """Tail share for CVaR of episode PnL."""
    policy_settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    env_overrides: dict[str, Any] = field(default_factory=dict)
    parallel: bool | None = None
    """Step the envs on all cores (None: automatic by batch size)."""

    def __post_init__(self) -> None:
        for seed in self.seeds:
            if not is_valid_seed(seed):
                raise ValueError(
                    f"evaluation.seeds must be integers in [0, {MAX_SEED}], got {seed}"
                )


def validate_config(
    config: EvaluationConfig, factories: dict[str, PolicyFactory] | None = None
) -> None:
    """Fail before any compute, naming what is wrong."""
    from agents.baselines.registry import BASELINES, load_all
    from mmgym.scenarios import SCENARIOS

    load_all()
    for name in config.policies:
        if name not in BASELINES and not (factories and name in factories):
            raise ValueError(f"unknown policy {name!r}; registered baselines: {sorted(BASELINES)}")
    for name in config.scenarios:
        if name not in SCENARIOS:
            raise ValueError(f"unknown scenario {name!r}; valid: {sorted(SCENARIOS)}")
    for key in config.policy_settings:
        if key not in config.policies:
            raise ValueError(f"policy_settings names {key!r}, which is not in policies")
    if config.num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {config.num_envs}")
    if not config.seeds:
        raise ValueError("seeds must name at least one seed")
    if not 0.0 < config.cvar_alpha <= 1.0:
        raise ValueError(f"cvar_alpha must be in (0, 1], got {config.cvar_alpha}")
