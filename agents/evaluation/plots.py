"""PNG plots of an evaluation: equity bands, inventory distributions, PnL decomposition."""

from __future__ import annotations

from pathlib import Path

from mmgym.extras import extra_needed

with extra_needed("agents.evaluation.plots"):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

COMPONENTS = {
    "pnl_spread": "spread",
    "pnl_inventory": "inventory",
    "pnl_fees": "fees",
    "pnl_funding": "funding",
    "pnl_hedge": "hedge",
    "pnl_liquidation": "liquidation",
}


def plot_all(episodes: pd.DataFrame, bands: pd.DataFrame, out_dir: Path) -> dict[str, Path]:
    """Write every plot; returns their paths by name."""
    paths = {
        "plot_equity": out_dir / "equity_bands.png",
        "plot_inventory": out_dir / "inventory.png",
        "plot_decomposition": out_dir / "pnl_decomposition.png",
    }
    plot_equity_bands(bands, paths["plot_equity"])
    plot_inventory(episodes, paths["plot_inventory"])
    plot_decomposition(episodes, paths["plot_decomposition"])
    return paths


def _grid(n: int) -> tuple[plt.Figure, list[plt.Axes]]:
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 3.8 * rows), squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _save(fig: plt.Figure, title: str, path: Path) -> None:
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_equity_bands(bands: pd.DataFrame, path: Path) -> None:
    """Median cumulative PnL with 25-75 % and 5-95 % bands over envs, per scenario and policy."""
    scenarios = list(dict.fromkeys(bands["scenario"]))
    fig, axes = _grid(len(scenarios))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, scenario in zip(axes, scenarios, strict=True):
        block = bands[bands["scenario"] == scenario]
        for j, policy in enumerate(dict.fromkeys(block["policy"])):
            b = block[block["policy"] == policy].groupby("time").mean(numeric_only=True)
            c = colours[j % len(colours)]
            minutes = b.index / 60.0
            ax.fill_between(minutes, b["q05"], b["q95"], color=c, alpha=0.12, linewidth=0)
            ax.fill_between(minutes, b["q25"], b["q75"], color=c, alpha=0.25, linewidth=0)
            ax.plot(minutes, b["q50"], color=c, label=policy)
        ax.axhline(0.0, color="grey", linewidth=0.6)
        ax.set_title(scenario)
        ax.set_xlabel("minutes")
        ax.set_ylabel("cumulative PnL")
        ax.legend(fontsize=8)
    _save(fig, "Equity: median, 25-75 % and 5-95 % bands across envs (averaged over seeds)", path)


def plot_inventory(episodes: pd.DataFrame, path: Path) -> None:
    """Distribution of mean |inventory| per episode, per scenario and policy."""
    scenarios = list(dict.fromkeys(episodes["scenario"]))
    fig, axes = _grid(len(scenarios))
    for ax, scenario in zip(axes, scenarios, strict=True):
        block = episodes[episodes["scenario"] == scenario]
        policies = list(dict.fromkeys(block["policy"]))
        data = [block[block["policy"] == p]["inventory_abs_mean"].to_numpy() for p in policies]
        ax.boxplot(data, tick_labels=policies, showfliers=True)
        ax.set_title(scenario)
        ax.set_ylabel("mean |inventory| per episode")
        ax.tick_params(axis="x", labelrotation=30)
    _save(fig, "Inventory risk", path)


def plot_decomposition(episodes: pd.DataFrame, path: Path) -> None:
    """Mean PnL by component (stacked around zero) and total, per scenario and policy."""
    scenarios = list(dict.fromkeys(episodes["scenario"]))
    fig, axes = _grid(len(scenarios))
    for ax, scenario in zip(axes, scenarios, strict=True):
        means = (
            episodes[episodes["scenario"] == scenario]
            .groupby("policy", sort=False)[[*COMPONENTS, "pnl"]]
            .mean()
        )
        x = range(len(means))
        pos = [0.0] * len(means)
        neg = [0.0] * len(means)
        for col, label in COMPONENTS.items():
            values = means[col].to_numpy()
            bottoms = [p if v >= 0 else n for v, p, n in zip(values, pos, neg, strict=True)]
            ax.bar(x, values, bottom=bottoms, label=label, width=0.6)
            pos = [p + max(v, 0.0) for p, v in zip(pos, values, strict=True)]
            neg = [n + min(v, 0.0) for n, v in zip(neg, values, strict=True)]
        ax.scatter(x, means["pnl"], color="black", zorder=3, label="total", marker="D")
        ax.axhline(0.0, color="grey", linewidth=0.6)
        ax.set_xticks(list(x), list(means.index), rotation=30)
        ax.set_title(scenario)
        ax.set_ylabel("mean PnL per episode")
        ax.legend(fontsize=7)
    _save(fig, "PnL decomposition", path)
