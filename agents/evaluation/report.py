"""The evaluation's markdown report: a compact table per scenario first, the details below.

The pieces are functions of a summary table (:func:`agents.evaluation.summarise`'s columns:
``<metric>``, ``<metric>_ci_low``, ``<metric>_ci_high``), so other reports build from them: the
comparison of training runs, the demo's page and a vetting report.

- :func:`compact_table`: PnL, CVaR 5 %, max drawdown, mean |q|, fill rate and the markout
  nearest 10 s, each as mean [95 % CI], one row per policy;
- :func:`metrics_table`: any columns in the same form;
- :func:`market_set_line`: the markets a table was measured on;
- :func:`metric_label`: a metric's table header with its unit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from agents.evaluation.config import EvaluationConfig
from agents.evaluation.summary import SUMMARY_METRICS
from agents.market import MarketSet
from mmgym.envs.perp_mm import PNL_COMPONENTS
from mmgym.markdown import table

LABELS = {
    "pnl": "PnL (quote/episode)",
    "pnl_spread": "spread (quote/episode)",
    "pnl_inventory": "inventory (quote/episode)",
    "pnl_fees": "fees (quote/episode)",
    "pnl_funding": "funding (quote/episode)",
    "pnl_hedge": "hedge (quote/episode)",
    "pnl_liquidation": "liquidation (quote/episode)",
    "sharpe": "Sharpe (per decision)",
    "sortino": "Sortino (per decision)",
    "max_drawdown": "max drawdown (quote)",
    "inventory_abs_mean": "mean |q| (base units)",
    "time_at_limit": "time at limit (share of decisions)",
    "fill_rate": "fill rate (share of decisions)",
    "volume": "volume (base units/episode)",
    "rejected_post_only": "post-only rejections (per episode)",
    "hedge_cost": "hedge cost (quote/episode)",
    "liquidated": "liquidated (share of episodes)",
}
"""Table headers of the episode metrics, with their units: money in the quote currency (per
episode for sums over an episode), inventory and volume in base units of the perp, shares of
the episode's decisions."""

UNITS = """Units: quote = quote currency; base units = units of the perp; a fill rate is the
share of decisions with at least one fill; a markout is the PnL of the filled quantity against
the mid that many seconds later, per unit filled (negative: adverse selection); max drawdown is
the largest fall of cumulative PnL within an episode; CVaR 5 % is the mean PnL of the worst 5 %
of episodes."""

PLOTS = {
    "plot_equity": "equity_bands.png",
    "plot_inventory": "inventory.png",
    "plot_decomposition": "pnl_decomposition.png",
}
"""The evaluation's PNG plots (:mod:`agents.evaluation.plots`), by output name: the report
shows them from its own folder."""

COMPACT = ("pnl", "cvar", "max_drawdown", "inventory_abs_mean", "fill_rate", "markout")
"""The compact table's metrics; ``cvar`` and ``markout`` stand for the summary's CVaR column and
its markout nearest :data:`COMPACT_MARKOUT_SECONDS`."""
COMPACT_MARKOUT_SECONDS = 10.0

DETAILS = {
    "PnL decomposition": ("pnl", *PNL_COMPONENTS),
    "Risk and execution": tuple(m for m in SUMMARY_METRICS if m not in ("pnl", *PNL_COMPONENTS)),
}
"""The detail tables of each scenario (the markouts at every horizon join the second)."""


def metric_label(name: str) -> str:
    """The table header of metric ``name``, with its unit."""
    if name.startswith("markout_"):
        return f"markout {name.removeprefix('markout_').removesuffix('s')} s (quote/unit filled)"
    if name.startswith("cvar_"):
        return f"CVaR {name.removeprefix('cvar_')} % (quote/episode)"
    return LABELS.get(name, name)


def mean_ci_text(mean: float, low: float, high: float, n: int, spec: str = ".3g") -> str:
    """``mean [low, high]``, or ``mean [n/a (n=1)]`` when the interval cannot be computed."""
    if n < 2 or not (math.isfinite(low) and math.isfinite(high)):
        return f"{_fmt(mean, spec)} [n/a (n={n})]"
    return f"{_fmt(mean, spec)} [{_fmt(low, spec)}, {_fmt(high, spec)}]"


def markout_columns(summary: pd.DataFrame) -> list[str]:
    """The summary's markout metrics, shortest horizon first."""
    names = [c for c in summary.columns if c.startswith("markout_") and not _is_bound(c)]
    return sorted(names, key=_horizon)


def compact_columns(summary: pd.DataFrame) -> list[str]:
    """The summary's columns of :data:`COMPACT` (those it has), in that order."""
    out = []
    markouts = markout_columns(summary)
    cvars = [c for c in summary.columns if c.startswith("cvar_") and not _is_bound(c)]
    for name in COMPACT:
        if name == "markout":
            if markouts:
                out.append(min(markouts, key=lambda c: abs(_horizon(c) - COMPACT_MARKOUT_SECONDS)))
        elif name == "cvar":
            out += cvars[:1]
        elif name in summary.columns:
            out.append(name)
    return out


def metrics_table(
    block: pd.DataFrame,
    columns: Sequence[str],
    count: str = "episodes",
    first: Sequence[str] = ("policy",),
) -> str:
    """One row per policy of ``block``: the ``first`` columns as they are, then each metric
    as mean [95 % CI] (``n/a (n=...)`` where no interval can be computed: the ``count`` column
    gives n, the ``seeds`` column for CVaR when there is one). A metric without CI columns shows
    n/a."""
    header = [*first, *map(metric_label, columns)]
    rows = []
    for _, r in block.iterrows():
        cells: list[object] = [r[c] for c in first]
        for col in columns:
            n_col = "seeds" if col.startswith("cvar_") and "seeds" in r else count
            n = int(r[n_col]) if n_col in r else 1
            low = r.get(f"{col}_ci_low", math.nan)
            high = r.get(f"{col}_ci_high", math.nan)
            cells.append(mean_ci_text(r[col], low, high, n))
        rows.append(cells)
    return table(header, rows, "l" * len(first) + "r" * len(columns))


def compact_table(block: pd.DataFrame, count: str = "episodes") -> str:
    """The compact table of one market set: :data:`COMPACT` per policy, mean [95 % CI]."""
    return metrics_table(block, compact_columns(block), count)


def market_set_line(markets: MarketSet) -> str:
    """The sentence naming the markets a table holds."""
    return f"Markets: {markets.describe()}; the same markets for every policy."


def compact_section(
    markets: MarketSet,
    block: pd.DataFrame,
    count: str = "episodes",
    first: Sequence[str] = ("policy",),
) -> list[str]:
    """The lines of a report's section on one market set: its heading (the scenario), the
    market-set line and the compact table."""
    return [
        "",
        f"## {markets.scenario}",
        "",
        market_set_line(markets),
        "",
        metrics_table(block, compact_columns(block), count, first),
    ]


def evaluation_markets(config: EvaluationConfig, scenario: str) -> MarketSet:
    """The markets an evaluation measures every policy on in ``scenario``."""
    return MarketSet.of(
        scenario, config.seeds, config.num_envs, config.episode_seconds, config.env_overrides
    )


def ci_note(config: EvaluationConfig, cvar_alpha: float) -> str:
    """How the report's intervals are computed."""
    n = len(config.seeds) * config.num_envs
    return (
        f"Mean [95 % CI]: Student's t over the {n} episodes of each policy; CVaR "
        f"{cvar_alpha * 100:g} % of all {n} episodes, its CI by sectioning over the "
        f"{len(config.seeds)} seed{'s' if len(config.seeds) > 1 else ''} (Student's t over "
        "each seed's CVaR); n/a where an interval cannot be computed (one value, or one seed "
        "for CVaR)."
    )


def markdown_report(
    summary: pd.DataFrame, config: EvaluationConfig, plots: Sequence[str] = tuple(PLOTS.values())
) -> str:
    """The evaluation report: a compact table per scenario, its market set, then the details
    (PnL decomposition, risk and execution, every markout) and the ``plots`` (file names in
    the report's folder)."""
    lines = [
        "# Evaluation report",
        "",
        ci_note(config, config.cvar_alpha),
        "",
        UNITS.replace("\n", " "),
    ]
    blocks = list(summary.groupby("scenario", sort=False))
    for scenario, block in blocks:
        lines += compact_section(evaluation_markets(config, str(scenario)), block)
    lines += ["", "## Details"]
    for scenario, block in blocks:
        for title, columns in DETAILS.items():
            shown = [c for c in columns if c in block.columns]
            if title == "Risk and execution":
                shown += markout_columns(block)
            lines += ["", f"### {scenario}: {title.lower()}", "", metrics_table(block, shown)]
    if plots:
        lines += ["", "## Plots", ""]
        lines += [f"![{name}]({name})" for name in plots]
    return "\n".join(lines) + "\n"


def _is_bound(column: str) -> bool:
    return column.endswith(("_ci_low", "_ci_high"))


def _horizon(markout: str) -> float:
    return float(markout.removeprefix("markout_").removesuffix("s"))


def _fmt(x: float, spec: str = ".3g") -> str:
    if not math.isfinite(x):
        return str(x)
    return format(x, spec)
