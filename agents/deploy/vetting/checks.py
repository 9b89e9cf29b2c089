"""The named checks of vetting, evaluated per scenario on the suite's episodes.

Each check (:data:`CHECKS`) has a value with a unit and a threshold in
:class:`~agents.deploy.vetting.config.Thresholds`: at most the threshold (liquidations, drawdown,
|inventory|, time at the limit, kill-switch trips, limiter denials), at least it (CVaR), or, for
the comparisons with the scenario's best baseline, not significantly below minus a margin
(:func:`~agents.deploy.vetting.stats.paired_one_sided`). docs/deploy.md has the table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from agents import metrics
from agents.deploy.vetting.config import Thresholds, VetConfig
from agents.deploy.vetting.runner import SuiteResult
from agents.deploy.vetting.stats import PairedTest, paired_one_sided


@dataclass(frozen=True)
class CheckSpec:
    """What a check measures."""

    label: str
    unit: str
    comparison: str
    """``<=`` (value at most the threshold), ``>=`` (at least), or ``paired`` (a test)."""
    threshold: str
    """The :class:`Thresholds` field holding its threshold."""


CHECKS: dict[str, CheckSpec] = {
    "no_liquidation": CheckSpec(
        "no agent liquidation", "share of episodes", "<=", "max_liquidated_share"
    ),
    "max_drawdown": CheckSpec("max drawdown", "quote", "<=", "max_drawdown"),
    "cvar": CheckSpec("CVaR", "quote/episode", ">=", "min_cvar"),
    "max_inventory": CheckSpec("max |inventory|", "base units", "<=", "max_inventory"),
    "time_at_inventory_limit": CheckSpec(
        "time at the inventory limit", "share of decisions", "<=", "max_time_at_limit"
    ),
    "kill_switch_trips": CheckSpec(
        "kill-switch trips", "share of episodes", "<=", "max_kill_switch_share"
    ),
    "limiter_denials": CheckSpec(
        "limiter denials", "per account-hour", "<=", "max_denials_per_hour"
    ),
    "pnl_vs_best_baseline": CheckSpec(
        "PnL vs best baseline", "quote/episode", "paired", "pnl_margin"
    ),
    "cvar_vs_best_baseline": CheckSpec(
        "CVaR vs best baseline", "quote/episode", "paired", "cvar_margin"
    ),
}
"""Every check, in the verdict table's order."""


@dataclass(frozen=True)
class CheckResult:
    """One check in one scenario."""

    name: str
    scenario: str
    value: float
    threshold: float
    unit: str
    passed: bool | None
    """None: reported only (the check does not apply in this scenario)."""
    detail: dict[str, Any] = field(default_factory=dict)
    """The paired test (comparisons) or other numbers behind the value."""

    def to_dict(self) -> dict[str, Any]:
        """``vetting.json``'s entry (NaN as None)."""
        return {
            "name": self.name,
            "scenario": self.scenario,
            "value": _json(self.value),
            "threshold": self.threshold,
            "unit": self.unit,
            "comparison": CHECKS[self.name].comparison,
            "passed": self.passed,
            **self.detail,
        }


def evaluate_checks(result: SuiteResult, config: VetConfig) -> list[CheckResult]:
    """Every check in every scenario, in :data:`CHECKS` order, scenario by scenario."""
    out: list[CheckResult] = []
    for name in CHECKS:
        for scenario in config.scenarios:
            out.append(_check(name, scenario, result, config))
    return out


def best_baseline(block: pd.DataFrame, baselines: list[str], metric: str, alpha: float) -> str:
    """The baseline with the highest mean episode PnL (``metric="pnl"``) or CVaR."""
    scores = {name: _score(block[block["policy"] == name], metric, alpha) for name in baselines}
    return max(scores, key=lambda name: scores[name])


def per_seed(block: pd.DataFrame, seeds: list[int], metric: str, alpha: float) -> np.ndarray:
    """Mean episode PnL or CVaR of each seed's episodes, in ``seeds`` order."""
    return np.array([_score(block[block["seed"] == s], metric, alpha) for s in seeds])


def _score(episodes: pd.DataFrame, metric: str, alpha: float) -> float:
    pnl = episodes["pnl"].to_numpy()
    return float(pnl.mean()) if metric == "pnl" else metrics.cvar(pnl, alpha)


def _check(name: str, scenario: str, result: SuiteResult, config: VetConfig) -> CheckResult:
    spec = CHECKS[name]
    thresholds = config.thresholds_for(scenario)
    threshold = float(getattr(thresholds, spec.threshold))
    block = result.episodes[result.episodes["scenario"] == scenario]
    mine = block[block["policy"] == result.policy]
    if spec.comparison == "paired":
        metric = "pnl" if name.startswith("pnl") else "cvar"
        best = best_baseline(block, result.baselines, metric, config.cvar_alpha)
        test = _paired(block, result.policy, best, metric, config, thresholds)
        detail = {"best_baseline": best, "test": test.to_dict()}
        bound = 0.0 - threshold  # 0.0 - 0.0 is 0.0, not -0.0
        return CheckResult(name, scenario, test.mean, bound, spec.unit, not test.worse, detail)
    interval = result.markets[scenario].params.decision_interval
    value = measure(name, mine, interval, config.cvar_alpha)
    passed = value <= threshold if spec.comparison == "<=" else value >= threshold
    applies = name != "kill_switch_trips" or scenario in thresholds.kill_switch_scenarios
    return CheckResult(name, scenario, value, threshold, spec.unit, passed if applies else None)


MEASURED = tuple(name for name, spec in CHECKS.items() if spec.comparison != "paired")
"""The checks of one policy's own episodes (not comparisons)."""


def measure(name: str, mine: pd.DataFrame, decision_interval: float, alpha: float) -> float:
    """The value of check ``name`` (one of :data:`MEASURED`) on one policy's episodes in one
    scenario (``decision_interval`` in seconds, ``alpha`` the CVaR tail share)."""
    steps = mine["steps"].to_numpy(dtype=np.float64)
    if name == "no_liquidation":
        return float(mine["liquidated"].mean())
    if name == "max_drawdown":
        return float(mine["max_drawdown"].max())
    if name == "cvar":
        return metrics.cvar(mine["pnl"].to_numpy(), alpha)
    if name == "max_inventory":
        return float(mine["max_inventory_abs"].max())
    if name == "time_at_inventory_limit":
        at_limit = mine["time_at_inventory_limit"].to_numpy() * steps
        return float(at_limit.sum() / steps.sum()) if steps.sum() else 0.0
    if name == "kill_switch_trips":
        return float(mine["kill_switch_halted"].mean())
    if name == "limiter_denials":
        account_hours = steps.sum() * decision_interval / 3600.0
        return float(mine["denials"].sum() / account_hours) if account_hours else math.nan
    raise ValueError(f"unknown check {name!r}")


def _paired(
    block: pd.DataFrame,
    policy: str,
    best: str,
    metric: str,
    config: VetConfig,
    thresholds: Thresholds,
) -> PairedTest:
    seeds = list(config.seeds)
    mine = per_seed(block[block["policy"] == policy], seeds, metric, config.cvar_alpha)
    theirs = per_seed(block[block["policy"] == best], seeds, metric, config.cvar_alpha)
    margin = thresholds.pnl_margin if metric == "pnl" else thresholds.cvar_margin
    return paired_one_sided(mine, theirs, thresholds.confidence, margin)


def verdict(checks: list[CheckResult]) -> str:
    """``pass`` when every check that applies passed, else ``fail``."""
    return "fail" if any(c.passed is False for c in checks) else "pass"


def _json(x: float) -> float | None:
    return x if math.isfinite(x) else None
