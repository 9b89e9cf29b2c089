"""Aggregates of an evaluation's episodes per (scenario, policy)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from agents import metrics
from mmgym.envs.perp_mm import PNL_COMPONENTS

SUMMARY_METRICS = (
    "pnl",
    *PNL_COMPONENTS,
    "sharpe",
    "sortino",
    "max_drawdown",
    "inventory_abs_mean",
    "time_at_limit",
    "fill_rate",
    "volume",
    "rejected_post_only",
    "hedge_cost",
    "liquidated",
)


def summarise(episodes: pd.DataFrame, cvar_alpha: float = 0.05) -> pd.DataFrame:
    """Mean and 95 % confidence interval of every metric per (scenario, policy), plus CVaR."""
    markout_cols = [c for c in episodes.columns if c.startswith("markout_")]
    rows = []
    for (scenario, policy), group in episodes.groupby(["scenario", "policy"], sort=False):
        row: dict[str, Any] = {"scenario": scenario, "policy": policy, "episodes": len(group)}
        for col in (*SUMMARY_METRICS, *markout_cols):
            mean, lo, hi = metrics.mean_confidence_interval(group[col].to_numpy())
            row[col] = mean
            row[f"{col}_ci_low"] = lo
            row[f"{col}_ci_high"] = hi
        row[f"cvar_{round(cvar_alpha * 100)}"] = metrics.cvar(group["pnl"].to_numpy(), cvar_alpha)
        rows.append(row)
    return pd.DataFrame(rows)
