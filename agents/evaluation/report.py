"""The evaluation's markdown report: one table per scenario, one row per policy."""

from __future__ import annotations

import math

import pandas as pd

from agents.evaluation.config import EvaluationConfig


def markdown_report(summary: pd.DataFrame, config: EvaluationConfig) -> str:
    """The desk's table: one block per scenario, one row per policy, mean [95 % CI]."""
    cvar_col = next(c for c in summary.columns if c.startswith("cvar_"))
    markout_cols = [
        c
        for c in summary.columns
        if c.startswith("markout_") and not c.endswith(("_ci_low", "_ci_high"))
    ]
    shown = [
        ("pnl", "PnL"),
        ("pnl_spread", "spread"),
        ("pnl_inventory", "inventory"),
        ("pnl_fees", "fees"),
        ("pnl_funding", "funding"),
        ("pnl_liquidation", "liquidation"),
        ("sharpe", "Sharpe/step"),
        ("max_drawdown", "max DD"),
        ("inventory_abs_mean", "mean |q|"),
        ("fill_rate", "fill rate"),
        *[(c, c.replace("markout_", "markout ")) for c in markout_cols],
        ("liquidated", "liquidated"),
    ]
    lines = [
        "# Evaluation report",
        "",
        f"{len(config.seeds)} seeds x {config.num_envs} envs per cell, episodes of "
        f"{config.episode_seconds:g} s. Mean [95 % CI]; CVaR at {config.cvar_alpha:.0%} of "
        "episode PnL; markouts are per unit filled (negative: adverse selection).",
    ]
    for scenario, block in summary.groupby("scenario", sort=False):
        lines += ["", f"## {scenario}", ""]
        header = ["policy", *[label for _, label in shown], cvar_col.replace("_", " ") + " %"]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|---|" + "---:|" * (len(header) - 1))
        for _, r in block.iterrows():
            cells = [str(r["policy"])]
            for col, _ in shown:
                cells.append(
                    f"{_fmt(r[col])} [{_fmt(r[col + '_ci_low'])}, {_fmt(r[col + '_ci_high'])}]"
                )
            cells.append(_fmt(r[cvar_col]))
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _fmt(x: float) -> str:
    if not math.isfinite(x):
        return str(x)
    return f"{x:.3g}"
