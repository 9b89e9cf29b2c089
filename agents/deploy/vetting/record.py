"""``vetting.json``: the verdict, the policy's identity (what ``mmgym-export`` checks), every
check, the thresholds, the suite, each scenario's parameter hash, and every number."""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import UTC, datetime
from typing import Any

import numpy as np

from agents.deploy.risk import RiskLimits
from agents.deploy.vetting.checks import MEASURED, CheckResult, measure
from agents.deploy.vetting.config import VetConfig
from agents.deploy.vetting.policies import VettedPolicy, params_sha256
from agents.deploy.vetting.runner import SuiteResult
from agents.evaluation import summarise
from agents.market import MarketSet

SCHEMA_VERSION = 1


def vetting_record(
    vetted: VettedPolicy,
    config: VetConfig,
    limits: RiskLimits,
    result: SuiteResult,
    checks: list[CheckResult],
    verdict: str,
    commit: str,
    version: str,
) -> dict[str, Any]:
    """The report as JSON values (non-finite numbers as null)."""
    scenarios = {}
    for name, market in result.markets.items():
        markets = MarketSet.of(
            name, config.seeds, config.num_envs, config.episode_seconds, market.overrides
        )
        scenarios[name] = {
            "params_sha256": params_sha256(market.params),
            "num_assets": market.params.num_assets,
            "markets": markets.to_dict(),
        }
    return clean(
        {
            "schema_version": SCHEMA_VERSION,
            "verdict": verdict,
            "policy": vetted.to_dict(),
            "checks": [c.to_dict() for c in checks],
            "thresholds": {
                **dataclasses.asdict(config.thresholds),
                "scenario_thresholds": config.scenario_thresholds,
            },
            "suite": {
                "scenarios": list(config.scenarios),
                "seeds": list(config.seeds),
                "num_envs": config.num_envs,
                "episode_seconds": config.episode_seconds,
                "baselines": list(config.baselines),
                "env_overrides": config.env_overrides,
                "cvar_alpha": config.cvar_alpha,
            },
            "risk_limits": dataclasses.asdict(limits),
            "scenarios": scenarios,
            "results": _results(result, config),
            "common_random_numbers": result.crn,
            "commit": commit,
            "mmgym_version": version,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "seconds": result.seconds,
        }
    )


def _results(result: SuiteResult, config: VetConfig) -> dict[str, Any]:
    """Per scenario and policy: the summary's means, CIs and CVaR, every measured check, and
    the limiter's counts by reason."""
    out: dict[str, Any] = {}
    for scenario, block in result.episodes.groupby("scenario", sort=False):
        interval = result.markets[str(scenario)].params.decision_interval
        summary = summarise(block, config.cvar_alpha)
        entry = {}
        for _, row in summary.iterrows():
            policy = str(row["policy"])
            episodes = block[block["policy"] == policy]
            counts = {
                c.removeprefix("denials_"): float(episodes[c].sum())
                for c in block.columns
                if c.startswith("denials_") and episodes[c].sum()
            }
            entry[policy] = {
                "summary": {k: v for k, v in row.items() if k not in ("scenario", "policy")},
                "measures": {
                    n: measure(n, episodes, interval, config.cvar_alpha) for n in MEASURED
                },
                "limiter_counts": counts,
            }
        out[str(scenario)] = entry
    return out


def clean(value: Any) -> Any:
    """JSON values: numpy scalars to Python, non-finite floats to None."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def to_json(record: dict[str, Any]) -> str:
    """The record as JSON text (finite numbers only)."""
    return json.dumps(record, indent=2, allow_nan=False) + "\n"
