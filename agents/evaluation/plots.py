"""PNG plots of an evaluation: equity bands, inventory distributions, PnL decomposition.

Every figure has units on its axes and keeps its legend off the data (below the panels).
Equity bands are small multiples, one panel per (scenario, policy): the policy's median on top
of light quantile bands, with the other policies' medians in grey for reference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmgym.extras import extra_needed

with extra_needed("agents.evaluation.plots"):
    import matplotlib

    from agents.evaluation.report import PLOTS

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

COMPONENTS = {
    "pnl_spread": "spread",
    "pnl_inventory": "inventory",
    "pnl_fees": "fees",
    "pnl_funding": "funding",
    "pnl_hedge": "hedge",
    "pnl_liquidation": "liquidation",
}
MEDIAN_COLOUR = "#1f4e79"
BAND_COLOUR = "#6baed6"
OTHERS_COLOUR = "#9a9a9a"
TITLE_SIZE = 11


def plot_all(episodes: pd.DataFrame, bands: pd.DataFrame, out_dir: Path) -> dict[str, Path]:
    """Write every plot (:data:`~agents.evaluation.report.PLOTS`); returns their paths by
    name."""
    paths = {name: out_dir / file for name, file in PLOTS.items()}
    plot_equity_bands(bands, paths["plot_equity"])
    plot_inventory(episodes, paths["plot_inventory"])
    plot_decomposition(episodes, paths["plot_decomposition"])
    return paths


def figure(rows: int, cols: int, width: float, height: float, **kwargs: Any) -> Any:
    """A figure of ``rows x cols`` panels of ``width x height`` inches (constrained layout, so
    titles and outside legends fit)."""
    return plt.subplots(
        rows,
        cols,
        figsize=(width * cols, height * rows + 0.6),
        squeeze=False,
        layout="constrained",
        **kwargs,
    )


def save_figure(fig: Any, title: str, path: Path, dpi: int = 110) -> Path:
    """Title the figure, write it as PNG and close it."""
    fig.suptitle(title, fontsize=TITLE_SIZE)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def legend_below(fig: Any, handles: list[Any], columns: int | None = None) -> None:
    """The figure's legend under its panels, off the data."""
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncols=columns or min(len(handles), 4),
        fontsize=8,
        frameon=False,
    )


def _scenario_grid(n: int) -> tuple[Any, list[Any]]:
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig, axes = figure(rows, cols, 4.6, 3.2)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def plot_equity_bands(bands: pd.DataFrame, path: Path) -> None:
    """Cumulative PnL across envs (quantiles averaged over seeds): one panel per scenario (row)
    and policy (column), its median drawn over its 25-75 % and 5-95 % bands, the other
    policies' medians in grey; y axes shared within a scenario."""
    scenarios = list(dict.fromkeys(bands["scenario"]))
    policies = list(dict.fromkeys(bands["policy"]))
    fig, axes = figure(len(scenarios), len(policies), 2.9, 2.3, sharex=True, sharey="row")
    for i, scenario in enumerate(scenarios):
        block = bands[bands["scenario"] == scenario]
        curves = {
            p: block[block["policy"] == p].groupby("time").mean(numeric_only=True) for p in policies
        }
        for j, policy in enumerate(policies):
            ax = axes[i, j]
            for other, b in curves.items():
                if other != policy and not b.empty:
                    ax.plot(b.index / 60.0, b["q50"], color=OTHERS_COLOUR, linewidth=0.7)
            b = curves[policy]
            if not b.empty:
                minutes = b.index / 60.0
                ax.fill_between(minutes, b["q05"], b["q95"], color=BAND_COLOUR, alpha=0.18, lw=0)
                ax.fill_between(minutes, b["q25"], b["q75"], color=BAND_COLOUR, alpha=0.35, lw=0)
                ax.plot(minutes, b["q50"], color=MEDIAN_COLOUR, linewidth=1.6, zorder=3)
            ax.axhline(0.0, color="black", linewidth=0.5, zorder=1)
            ax.set_title(policy if len(scenarios) == 1 else f"{policy} | {scenario}", fontsize=9)
            ax.tick_params(labelsize=8)
            if j == 0:
                ax.set_ylabel("cumulative PnL (quote)", fontsize=8)
            if i == len(scenarios) - 1:
                ax.set_xlabel("market time (min)", fontsize=8)
    legend_below(
        fig,
        [
            Line2D([], [], color=MEDIAN_COLOUR, linewidth=1.6, label="median"),
            Patch(color=BAND_COLOUR, alpha=0.5, label="25-75 %"),
            Patch(color=BAND_COLOUR, alpha=0.2, label="5-95 %"),
            Line2D([], [], color=OTHERS_COLOUR, linewidth=0.7, label="other policies' medians"),
        ],
    )
    panels = len(scenarios) * len(policies)
    title = "Cumulative PnL across envs (quantiles averaged over seeds)"
    save_figure(fig, title, path, dpi=110 if panels <= 12 else 80)  # a league's grid stays small


def plot_inventory(episodes: pd.DataFrame, path: Path) -> None:
    """Distribution of mean |inventory| per episode, per scenario and policy (box: quartiles,
    line: median, whiskers: 1.5 IQR, circles: episodes beyond)."""
    scenarios = list(dict.fromkeys(episodes["scenario"]))
    fig, axes = _scenario_grid(len(scenarios))
    for ax, scenario in zip(axes, scenarios, strict=True):
        block = episodes[episodes["scenario"] == scenario]
        policies = list(dict.fromkeys(block["policy"]))[::-1]  # first policy on top
        data = [block[block["policy"] == p]["inventory_abs_mean"].to_numpy() for p in policies]
        ax.boxplot(data, tick_labels=policies, orientation="horizontal", showfliers=True)
        ax.set_title(scenario, fontsize=9)
        ax.set_xlabel("mean |q| per episode (base units)", fontsize=8)
        ax.tick_params(labelsize=8)
    save_figure(fig, "Inventory: mean |q| per episode across envs", path)


def plot_decomposition(episodes: pd.DataFrame, path: Path) -> None:
    """Mean PnL per episode by component (gains stacked right of zero, costs left) and its
    total, per scenario and policy."""
    scenarios = list(dict.fromkeys(episodes["scenario"]))
    fig, axes = _scenario_grid(len(scenarios))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, scenario in zip(axes, scenarios, strict=True):
        means = (
            episodes[episodes["scenario"] == scenario]
            .groupby("policy", sort=False)[[*COMPONENTS, "pnl"]]
            .mean()
            .iloc[::-1]  # first policy on top
        )
        y = list(range(len(means)))
        pos = [0.0] * len(means)
        neg = [0.0] * len(means)
        for k, col in enumerate(COMPONENTS):
            values = means[col].to_numpy()
            lefts = [p if v >= 0 else n for v, p, n in zip(values, pos, neg, strict=True)]
            ax.barh(y, values, left=lefts, height=0.6, color=colours[k % len(colours)])
            pos = [p + max(v, 0.0) for p, v in zip(pos, values, strict=True)]
            neg = [n + min(v, 0.0) for n, v in zip(neg, values, strict=True)]
        ax.scatter(means["pnl"], y, color="black", zorder=3, marker="D", s=22)
        low = min(0.0, *neg, *means["pnl"])
        high = max(0.0, *pos, *means["pnl"])
        pad = 0.05 * (high - low) or 1.0
        ax.set_xlim(low - pad, high + pad)  # bars' sticky edges would clip the longest one
        ax.axvline(0.0, color="black", linewidth=0.5)
        ax.set_yticks(y, list(means.index))
        ax.set_title(scenario, fontsize=9)
        ax.set_xlabel("mean PnL per episode (quote)", fontsize=8)
        ax.tick_params(labelsize=8)
    handles: list[Any] = [
        Patch(color=colours[k % len(colours)], label=label)
        for k, label in enumerate(COMPONENTS.values())
    ]
    handles.append(Line2D([], [], color="black", marker="D", linestyle="", label="total"))
    legend_below(fig, handles)
    save_figure(fig, "PnL decomposition: mean per episode", path)
