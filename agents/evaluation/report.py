"""The evaluation's markdown report: one table per scenario, one row per policy."""

from __future__ import annotations

import math

import pandas as pd

from agents.evaluation.config import EvaluationConfig
from mmgym.markdown import table

LABELS = {
    "pnl": "PnL (quote)",
    "pnl_spread": "spread (quote)",
    "pnl_inventory": "inventory (quote)",
    "pnl_fees": "fees (quote)",
    "pnl_funding": "funding (quote)",
    "pnl_hedge": "hedge (quote)",
    "pnl_liquidation": "liquidation (quote)",
    "sharpe": "Sharpe (per step)",
    "sortino": "Sortino (per step)",
    "max_drawdown": "max DD (quote)",
    "inventory_abs_mean": "mean |q| (units)",
    "time_at_limit": "time at limit (share of steps)",
    "fill_rate": "fill rate (share of steps)",
    "volume": "volume (units)",
    "rejected_post_only": "post-only rejections (count)",
    "hedge_cost": "hedge cost (quote)",
    "liquidated": "liquidated (share of episodes)",
}
"""Table headers of the episode metrics, with their units (money in the quote currency,
inventory and volume in units of the perp)."""


def metric_label(name: str) -> str:
    """The table header of metric ``name``, with its unit."""
    if name.startswith("markout_"):
        return f"markout {name.removeprefix('markout_')} (quote/unit)"
    if name.startswith("cvar_"):
        return f"CVaR {name.removeprefix('cvar_')} % (quote)"
    return LABELS.get(name, name)


def mean_ci_text(mean: float, low: float, high: float, n: int, spec: str = ".3g") -> str:
    """``mean [low, high]``, or ``mean [n/a (n=1)]`` when the interval cannot be computed."""
    if n < 2 or not (math.isfinite(low) and math.isfinite(high)):
        return f"{_fmt(mean, spec)} [n/a (n={n})]"
    return f"{_fmt(mean, spec)} [{_fmt(low, spec)}, {_fmt(high, spec)}]"


def markdown_report(summary: pd.DataFrame, config: EvaluationConfig) -> str:
    """The desk's table: one block per scenario, one row per policy, mean [95 % CI]."""
    cvar_col = next(c for c in summary.columns if c.startswith("cvar_"))
    markout_cols = [
        c
        for c in summary.columns
        if c.startswith("markout_") and not c.endswith(("_ci_low", "_ci_high"))
    ]
    shown = [
        "pnl",
        "pnl_spread",
        "pnl_inventory",
        "pnl_fees",
        "pnl_funding",
        "pnl_liquidation",
        "sharpe",
        "max_drawdown",
        "inventory_abs_mean",
        "fill_rate",
        *markout_cols,
        "liquidated",
    ]
    lines = [
        "# Evaluation report",
        "",
        f"{len(config.seeds)} seeds x {config.num_envs} envs per cell, episodes of "
        f"{config.episode_seconds:g} s. Mean [95 % CI over episodes, Student's t]; CVaR at "
        f"{config.cvar_alpha:.0%} of episode PnL; markouts are per unit filled (negative: "
        "adverse selection). Money in the quote currency, inventory in units of the perp.",
    ]
    header = ["policy", *map(metric_label, shown), metric_label(cvar_col)]
    for scenario, block in summary.groupby("scenario", sort=False):
        rows = []
        for _, r in block.iterrows():
            cells = [str(r["policy"])]
            n = int(r["episodes"])
            for col in shown:
                cells.append(mean_ci_text(r[col], r[f"{col}_ci_low"], r[f"{col}_ci_high"], n))
            cells.append(_fmt(r[cvar_col]))
            rows.append(cells)
        align = "l" + "r" * (len(header) - 1)
        lines += ["", f"## {scenario}", "", table(header, rows, align)]
    return "\n".join(lines) + "\n"


def _fmt(x: float, spec: str = ".3g") -> str:
    if not math.isfinite(x):
        return str(x)
    return format(x, spec)
