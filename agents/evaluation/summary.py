"""Aggregates of an evaluation's episodes per (scenario, policy)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
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


def cvar_name(alpha: float) -> str:
    """The column of CVaR at tail share ``alpha``: ``cvar_5`` for 5 %."""
    return f"cvar_{round(alpha * 100)}"


def summarise(episodes: pd.DataFrame, cvar_alpha: float = 0.05) -> pd.DataFrame:
    """Mean and 95 % confidence interval (Student's t over episodes) of every metric per
    (scenario, policy), plus CVaR of episode PnL with its interval across seeds
    (:func:`cvar_with_interval`). Columns: ``<metric>``, ``<metric>_ci_low``,
    ``<metric>_ci_high``, ``episodes`` and ``seeds``."""
    markout_cols = [c for c in episodes.columns if c.startswith("markout_")]
    cvar_col = cvar_name(cvar_alpha)
    rows = []
    for (scenario, policy), group in episodes.groupby(["scenario", "policy"], sort=False):
        row: dict[str, Any] = {
            "scenario": scenario,
            "policy": policy,
            "episodes": len(group),
            "seeds": group["seed"].nunique(),
        }
        for col in (*SUMMARY_METRICS, *markout_cols):
            mean, lo, hi = metrics.mean_confidence_interval(group[col].to_numpy())
            row[col] = mean
            row[f"{col}_ci_low"] = lo
            row[f"{col}_ci_high"] = hi
        sections = [g["pnl"].to_numpy() for _, g in group.groupby("seed", sort=False)]
        row[cvar_col], row[f"{cvar_col}_ci_low"], row[f"{cvar_col}_ci_high"] = cvar_with_interval(
            sections, cvar_alpha
        )
        rows.append(row)
    return pd.DataFrame(rows)


def cvar_with_interval(
    sections: list[np.ndarray], alpha: float, level: float = 0.95
) -> tuple[float, float, float]:
    """CVaR of all the episode PnLs of ``sections`` (one array per seed) and its Student's t
    interval by sectioning (Asmussen and Glynn, *Stochastic Simulation*, 2007, III.5): the
    CVaR of each seed's episodes are ``m`` independent estimates, so the interval is the
    pooled CVaR -/+ ``t(m - 1) x sd / sqrt(m)`` of those ``m`` estimates. One seed: no
    interval (NaN bounds)."""
    pooled = metrics.cvar(np.concatenate(sections), alpha)
    m = len(sections)
    if m < 2:
        return pooled, math.nan, math.nan
    per_seed = np.array([metrics.cvar(s, alpha) for s in sections])
    se = float(per_seed.std(ddof=1)) / math.sqrt(m)
    lo, hi = metrics.confidence_interval(pooled, se, m, level)
    return pooled, lo, hi
