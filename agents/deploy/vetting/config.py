"""What vetting runs (the stress suite) and the thresholds of its checks: ``conf/vet/``."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from agents.deploy.risk.reasons import Reason
from agents.seeds import check_seed

MIN_SEEDS = 4
"""Fewest seeds a vetting runs (per-seed paired differences need several for a t test)."""
MIN_ENVS = 64
"""Fewest envs (episodes) per seed."""
STRESS_SUITE = (
    "calm",
    "volatile",
    "flash_crash",
    "funding_squeeze",
    "liquidation_cascade",
    "cross_margin_event",
    "basis_decoupling",
)
"""Every scenario of ``conf/env/``: the default suite."""


@dataclass
class Thresholds:
    """The threshold of every check (units in each field's docstring). A scenario can change
    any of them (:attr:`VetConfig.scenario_thresholds`)."""

    max_liquidated_share: float = 0.0
    """``no_liquidation``: largest share of episodes in which the agent is liquidated."""
    max_drawdown: float = 1000.0
    """``max_drawdown``: largest fall of cumulative PnL from its peak within any episode
    (quote)."""
    min_cvar: float = -500.0
    """``cvar``: smallest CVaR of episode PnL at ``cvar_alpha`` (quote/episode)."""
    max_inventory: float = 10.0
    """``max_inventory``: largest |inventory| of any perp at any decision (base units; the
    RiskLimiter's hard ``max_position`` is 10 by default)."""
    max_time_at_limit: float = 0.05
    """``time_at_inventory_limit``: largest share of decisions, over all episodes, with some
    perp's |inventory| at the RiskLimiter's soft position limit (``soft_limit_fraction x
    max_position``, 8 base units by default), where it admits only reducing orders."""
    max_kill_switch_share: float = 0.0
    """``kill_switch_trips``: largest share of episodes in which the kill switch HALTed the
    account, in :attr:`kill_switch_scenarios`."""
    kill_switch_scenarios: list[str] = field(default_factory=lambda: ["calm", "volatile"])
    """Scenarios where the kill-switch check applies (elsewhere the trips are reported)."""
    max_denials_per_hour: float = 600.0
    """``limiter_denials``: largest rate of limiter denials and clips (orders, per account and
    hour of market time), reasons in :attr:`denials_ignored` left out."""
    denials_ignored: list[str] = field(default_factory=lambda: ["ESTIMATOR_WARMUP"])
    """Reasons not counted by ``limiter_denials`` (``ESTIMATOR_WARMUP`` cuts every new
    account's first orders whatever the policy does)."""
    confidence: float = 0.95
    """Level of the one-sided paired tests against the best baseline."""
    pnl_margin: float = 0.0
    """``pnl_vs_best_baseline``: the policy fails when its mean episode PnL is significantly
    below the best baseline's minus this margin (quote/episode)."""
    cvar_margin: float = 0.0
    """``cvar_vs_best_baseline``: the same for CVaR (quote/episode)."""


NUMERIC_THRESHOLDS = tuple(
    f.name for f in dataclasses.fields(Thresholds) if f.type in ("float", float)
)


@dataclass
class VetConfig:
    """The stress suite and the thresholds (``conf/vet/default.yaml``, ``conf/vet/demo.yaml``)."""

    scenarios: list[str] = field(default_factory=lambda: list(STRESS_SUITE))
    """Scenarios of the stress suite (``mmgym.scenarios``)."""
    seeds: list[int] = field(default_factory=lambda: [20_000, 20_001, 20_002, 20_003])
    """At least :data:`MIN_SEEDS`; seed ``s`` resets env ``i`` with ``s x num_envs + i``, for
    the policy and every baseline alike (common random numbers)."""
    num_envs: int = 64
    """Envs (episodes) per seed, at least :data:`MIN_ENVS`."""
    episode_seconds: float = 3600.0
    """Episode length (market seconds)."""
    baselines: list[str] = field(
        default_factory=lambda: [
            "fixed_spread",
            "linear_skew",
            "adaptive",
            "avellaneda_stoikov",
            "cartea_jaimungal",
            "glft",
        ]
    )
    """Registered baselines the policy is compared with (default settings)."""
    env_overrides: dict[str, Any] = field(default_factory=dict)
    """Market parameter overrides applied in every scenario."""
    cvar_alpha: float = 0.05
    """Tail share of CVaR (0.05: the worst 5 % of episodes)."""
    thresholds: Thresholds = field(default_factory=Thresholds)
    scenario_thresholds: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per-scenario changes of numeric thresholds, e.g. ``{flash_crash: {max_drawdown: 1500}}``."""

    def __post_init__(self) -> None:
        validate(self)

    def thresholds_for(self, scenario: str) -> Thresholds:
        """The thresholds in ``scenario``."""
        changes: dict[str, Any] = dict(self.scenario_thresholds.get(scenario, {}))
        return dataclasses.replace(self.thresholds, **changes)


def order_reasons() -> tuple[Reason, ...]:
    """The reasons of order denials and clips (not of transitions alone)."""
    both = (Reason.STALE_MARKET_DATA, Reason.UNKNOWN_ACCOUNT)  # name denials and transitions
    return tuple(r for r in Reason if r is not Reason.NONE and (not r.is_transition or r in both))


def validate(config: VetConfig) -> None:
    """Fail before any compute, naming the setting that is wrong."""
    from agents.baselines.registry import BASELINES, load_all
    from mmgym.scenarios import SCENARIOS

    if not config.scenarios:
        raise ValueError("vet.scenarios must name at least one scenario")
    for name in config.scenarios:
        if name not in SCENARIOS:
            raise ValueError(
                f"vet.scenarios: unknown scenario {name!r}; valid: {sorted(SCENARIOS)}"
            )
    if len(set(config.seeds)) < MIN_SEEDS:
        raise ValueError(
            f"vet.seeds must name at least {MIN_SEEDS} distinct seeds (the paired tests are "
            f"Student's t over seeds), got {list(config.seeds)}"
        )
    for seed in config.seeds:
        check_seed("vet.seeds", seed)
    if config.num_envs < MIN_ENVS:
        raise ValueError(f"vet.num_envs must be at least {MIN_ENVS}, got {config.num_envs}")
    if not (math.isfinite(config.episode_seconds) and config.episode_seconds > 0):
        raise ValueError(f"vet.episode_seconds must be > 0, got {config.episode_seconds}")
    load_all()
    if not config.baselines:
        raise ValueError("vet.baselines must name at least one baseline to compare with")
    unknown = sorted(set(config.baselines) - set(BASELINES))
    if unknown:
        raise ValueError(f"vet.baselines: unknown {unknown}; registered: {sorted(BASELINES)}")
    if not 0.0 < config.cvar_alpha <= 1.0:
        raise ValueError(f"vet.cvar_alpha must be in (0, 1], got {config.cvar_alpha}")
    t = config.thresholds
    if not 0.5 <= t.confidence < 1.0:
        raise ValueError(f"vet.thresholds.confidence must be in [0.5, 1), got {t.confidence}")
    for name in NUMERIC_THRESHOLDS:
        if not math.isfinite(getattr(t, name)):
            raise ValueError(f"vet.thresholds.{name} must be finite, got {getattr(t, name)}")
    outside = sorted(set(t.kill_switch_scenarios) - set(config.scenarios))
    if outside:
        raise ValueError(
            f"vet.thresholds.kill_switch_scenarios names {outside}, not in vet.scenarios"
        )
    valid = {r.name for r in order_reasons()}
    bad = sorted(set(t.denials_ignored) - valid)
    if bad:
        raise ValueError(
            f"vet.thresholds.denials_ignored: {bad} are not order reasons; valid: {sorted(valid)}"
        )
    for scenario, changes in config.scenario_thresholds.items():
        if scenario not in config.scenarios:
            raise ValueError(f"vet.scenario_thresholds names {scenario!r}, not in vet.scenarios")
        wrong = sorted(set(changes) - set(NUMERIC_THRESHOLDS))
        if wrong:
            raise ValueError(
                f"vet.scenario_thresholds.{scenario}: unknown {wrong}; numeric thresholds are "
                f"{list(NUMERIC_THRESHOLDS)}"
            )
