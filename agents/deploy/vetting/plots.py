"""The vetting report's PNG plots: the paired differences against the best baseline per
scenario, and the equity bands of the policy and that baseline."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from agents.deploy.vetting.checks import CHECKS, CheckResult
from agents.deploy.vetting.runner import SuiteResult
from agents.evaluation.plots import figure, legend_below, plot_equity_bands, save_figure

BEST = "best baseline (PnL)"
PASS_COLOUR, FAIL_COLOUR, SEED_COLOUR = "#1f4e79", "#c0392b", "#9a9a9a"


def plot_paired(checks: list[CheckResult], path: Path) -> None:
    """Per scenario and comparison (PnL, CVaR): each seed's difference (grey dots), their mean
    and the one-sided upper confidence bound (a bar from the mean to it; red when the policy is
    significantly worse), and zero and minus the margin as vertical lines."""
    from matplotlib.lines import Line2D

    paired = [c for c in checks if "test" in c.detail]
    kinds = list(dict.fromkeys(c.name for c in paired))
    fig, axes = figure(1, len(kinds), 4.6, 0.45 * len(paired) / max(len(kinds), 1) + 1.4)
    for ax, kind in zip(axes[0], kinds, strict=True):
        rows = [c for c in paired if c.name == kind][::-1]  # first scenario on top
        for y, c in enumerate(rows):
            test = c.detail["test"]
            colour = PASS_COLOUR if c.passed else FAIL_COLOUR
            diffs = [d for d in test["differences"] if d is not None]
            ax.scatter(diffs, [y] * len(diffs), color=SEED_COLOUR, s=12, zorder=2)
            if test["upper_bound"] is not None:
                ax.plot([test["mean"], test["upper_bound"]], [y, y], color=colour, lw=2)
            ax.scatter([test["mean"]], [y], color=colour, marker="D", s=24, zorder=3)
            ax.axvline(-test["margin"], color=FAIL_COLOUR, lw=0.6, ls="--")
        ax.axvline(0.0, color="black", lw=0.5)
        ax.set_yticks(range(len(rows)), [c.scenario for c in rows])
        ax.set_xlabel("policy - best baseline (quote/episode)", fontsize=8)
        ax.set_title(CHECKS[kind].label, fontsize=9)
        ax.tick_params(labelsize=8)
    legend_below(
        fig,
        [
            Line2D([], [], color=SEED_COLOUR, marker="o", ls="", label="one seed"),
            Line2D([], [], color=PASS_COLOUR, marker="D", lw=2, label="mean to upper bound"),
            Line2D([], [], color=FAIL_COLOUR, marker="D", lw=2, label="significantly worse"),
            Line2D([], [], color=FAIL_COLOUR, lw=0.6, ls="--", label="- margin"),
        ],
    )
    save_figure(fig, "Paired differences against the best baseline (one-sided bound)", path)


def plot_bands(result: SuiteResult, checks: list[CheckResult], path: Path) -> None:
    """Cumulative PnL bands of the policy and the scenario's best baseline by PnL."""
    best = {
        c.scenario: c.detail["best_baseline"] for c in checks if c.name == "pnl_vs_best_baseline"
    }
    parts = []
    for scenario, block in result.bands.groupby("scenario", sort=False):
        mine = block[block["policy"] == result.policy]
        theirs = block[block["policy"] == best[str(scenario)]].assign(policy=BEST)
        parts += [mine, theirs]
    plot_equity_bands(pd.concat(parts, ignore_index=True), path)
