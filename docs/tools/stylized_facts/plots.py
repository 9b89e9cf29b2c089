"""Figures of the stylized-facts page: returns, order-flow imbalance, Hawkes branching ratio,
basis and funding, and a liquidation cascade, each written to a PNG."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from docs.tools.stylized_facts.runs import CONTROL
from mmgym.analysis.basis_funding import basis_bp
from mmgym.analysis.cascades import CascadeWindow, cascade_window
from mmgym.analysis.hawkes import count_variance_ratio, variance_time
from mmgym.analysis.market_record import MarketRecord
from mmgym.analysis.order_flow import order_flow_imbalance
from mmgym.analysis.returns import abs_return_acf, log_returns
from mmgym.core.params import REGIMES
from mmgym.scenarios import SCENARIOS

_TAB10: Any = plt.get_cmap("tab10")  # a ListedColormap: its .colors are the 10 colours
COLORS = dict(zip([*SCENARIOS, CONTROL], _TAB10.colors, strict=False))
"""One colour per run, shared by every figure."""


def _save(fig: Any, path: Path) -> None:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_returns(records: dict[str, MarketRecord], table: pd.DataFrame, path: Path) -> None:
    """Kurtosis by scenario, tails of 1 s returns, ACF of |r| at short and long lags."""
    names = list(SCENARIOS)
    fig, axes = plt.subplots(2, 2, figsize=(15, 10.5))
    ax = axes[0, 0]
    x = np.arange(len(names))
    width = 0.2
    bars = [
        ("kurt_1s", "mid, 1 s", "kurt_1s_se"),
        ("kurt_10s", "mid, 10 s", "kurt_10s_se"),
        ("kurt_1s_oracle", "oracle, 1 s", None),
        ("kurt_1s_grid", "oracle rounded to the tick grid, 1 s", None),
    ]
    for j, (col, label, se_col) in enumerate(bars):
        vals = table.loc[names, col].to_numpy()
        err = table.loc[names, se_col].to_numpy() if se_col else None
        ax.bar(x + (j - 1.5) * width, vals, width, yerr=err, label=label, capsize=2)
    ax.axhline(3.0, color="k", lw=1, ls="--", label="normal law (3)")
    ax.set_yscale("log")
    ax.set_ylim(1, 1e5)
    ax.set_xticks(x, [n.replace("_", "\n") for n in names], fontsize=8)
    ax.set_ylabel("kurtosis m4 / m2² (log scale)")
    ax.set_title("Fat tails: kurtosis of log returns (± bootstrap SE over envs)")
    ax.legend(fontsize=8, ncol=3, loc="upper left")

    ax = axes[0, 1]
    for name in names:
        r = log_returns(records[name], 1.0).ravel()
        z = np.sort(np.abs(r - r.mean()) / r.std())[::-1]
        ccdf = np.arange(1, z.size + 1) / r.size
        keep = z > 0
        ax.loglog(z[keep], ccdf[keep], label=name, color=COLORS[name], lw=1.2)
    grid = np.logspace(-1, math.log10(12), 200)
    ax.loglog(grid, [math.erfc(g / math.sqrt(2)) for g in grid], "k--", lw=1, label="normal")
    ax.set_ylim(1e-7, 1.5)
    ax.set_xlim(0.1, 300)
    ax.set_xlabel("|1 s return| / its std")
    ax.set_ylabel("P(|r| / std > x)")
    ax.set_title("Tails of 1 s mid returns (pooled; steps: the 1-tick price grid)")
    ax.legend(fontsize=8)

    for ax, lags, title in (
        (axes[1, 0], np.arange(1, 51), "Volatility clustering: lags 1-50 s"),
        (
            axes[1, 1],
            np.unique(np.logspace(0, math.log10(3600), 40).astype(int)),
            "Volatility clustering: lags up to 1 h (log scale)",
        ),
    ):
        se = 0.0
        for name in names:
            rets = log_returns(records[name], 1.0)
            acf, se_n = abs_return_acf(rets, lags=lags)
            se = max(se, se_n)
            ax.plot(lags, acf, label=name, color=COLORS[name], lw=1.2)
        ax.axhspan(-3 * se, 3 * se, color="grey", alpha=0.35, label="±3 SE of zero")
        ax.axhline(0, color="k", lw=0.6)
        ax.set_xlabel("lag (s)")
        ax.set_ylabel("autocorrelation of |1 s mid return|")
        ax.set_title(title)
        if lags[-1] > 100:
            ax.set_xscale("log")
        ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def plot_ofi(records: dict[str, MarketRecord], table: pd.DataFrame, path: Path) -> None:
    """1 s return on 1 s order-flow imbalance: points, binned means, fit; slopes vs model."""
    names = list(SCENARIOS)
    fig, axes = plt.subplots(2, 4, figsize=(18, 8.5))
    rng = np.random.default_rng(0)
    for ax, name in zip(axes.ravel(), names, strict=False):
        rec = records[name]
        y = (log_returns(rec, 1.0) * 1e4).ravel()
        x = order_flow_imbalance(rec).ravel()
        lo, hi = np.quantile(x, [0.002, 0.998])
        pick = rng.choice(x.size, min(4000, x.size), replace=False)
        ax.scatter(x[pick], y[pick], s=3, alpha=0.25, color=COLORS[name], label="1 s samples")
        edges = np.linspace(lo, hi, 21)
        idx = np.digitize(x, edges[1:-1])
        full = [b for b in range(20) if (idx == b).sum() >= 30]
        centres = np.array([x[idx == b].mean() for b in full])
        means = np.array([y[idx == b].mean() for b in full])
        ax.plot(centres, means, "ko", ms=4, label="mean return per OFI bin (≥ 30 s)")
        row = table.loc[name]
        line = np.linspace(lo, hi, 10)
        intercept = y.mean() - row["ofi_slope_bp"] * x.mean()
        ax.plot(
            line,
            intercept + row["ofi_slope_bp"] * line,
            "r-",
            lw=1.5,
            label=f"OLS: {row['ofi_slope_bp']:.3f} bp/unit, R² {row['ofi_r2']:.2f}",
        )
        ax.set_xlim(lo, hi)
        spread = np.quantile(np.abs(y), 0.995)
        ax.set_ylim(-1.3 * max(spread, 1.0), 1.3 * max(spread, 1.0))
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("OFI: buy - sell volume in 1 s (units)", fontsize=8)
        ax.set_ylabel("1 s mid return (bp)", fontsize=8)
        ax.legend(fontsize=7, loc="upper left")
    ax = axes.ravel()[-1]
    for j, regime in enumerate(REGIMES):
        meas = table.loc[names, f"ofi_slope_{regime}"].to_numpy()
        se = table.loc[names, f"ofi_slope_{regime}_se"].to_numpy()
        model = table.loc[names, f"ofi_slope_{regime}_model"].to_numpy()
        xs = np.arange(len(names)) + (j - 1) * 0.25
        ax.errorbar(
            xs, meas, yerr=2 * se, fmt="o", ms=4, label=f"{regime}: measured ± 2 SE", color=f"C{j}"
        )
        ax.plot(xs, model, "_", ms=12, mew=2, color=f"C{j}", label=f"{regime}: impact model")
    ax.set_yscale("log")
    ax.set_xticks(np.arange(len(names)), [n.replace("_", "\n") for n in names], fontsize=7)
    ax.set_ylabel("slope (bp per unit)")
    ax.set_title("Slope by regime vs impact_coefficient / depth_top", fontsize=10)
    ax.legend(fontsize=7)
    fig.suptitle("Price change vs order-flow imbalance (Cont, Kukanov & Stoikov)", y=1.0)
    fig.tight_layout()
    _save(fig, path)


def plot_basis_funding(records: dict[str, MarketRecord], path: Path) -> None:
    """Basis and funding paths of one env per scenario."""
    names = list(SCENARIOS)
    fig, axes = plt.subplots(len(names), 2, figsize=(16, 2.3 * len(names)), sharex="col")
    for row, name in enumerate(names):
        rec = records[name]
        hours = np.arange(rec.mid.shape[0]) * rec.sample_seconds / 3600.0
        b = basis_bp(rec)[:, 0, 0]
        ax = axes[row, 0]
        ax.plot(hours, b, lw=0.6, color=COLORS[name])
        dec = ~rec.coupled[:, 0, 0]
        if dec.any():
            ax.fill_between(
                hours,
                0,
                1,
                where=dec,
                transform=ax.get_xaxis_transform(),
                color="orange",
                alpha=0.25,
                lw=0,
                label="decoupled",
            )
            ax.legend(fontsize=7, loc="upper left")
        ax.axhline(0, color="k", lw=0.5)
        ax.set_ylabel(f"{name}\nbasis (bp)", fontsize=8)
        ax = axes[row, 1]
        ax.plot(
            hours,
            rec.funding_estimate[:, 0, 0] * 1e4,
            lw=0.8,
            color=COLORS[name],
            label="running estimate",
        )
        paid = rec.funded[:, 0]
        ax.plot(
            hours[paid], rec.last_funding[paid, 0, 0] * 1e4, "ko", ms=4, label="paid rate", zorder=3
        )
        share = rec.params.funding_interval_seconds / (8 * 3600.0)
        ax.plot(
            hours,
            rec.premium[:, 0, 0] * 1e4 * share,
            lw=0.5,
            color="grey",
            alpha=0.7,
            label="premium sample x interval / 8 h",
        )
        ax.set_ylabel("bp per interval", fontsize=8)
        lo, hi = ax.get_ylim()
        span = max(hi - lo, 0.5)
        ax.set_ylim(lo - 0.05 * span, lo + 1.35 * span)  # room for the legend
        ax.legend(fontsize=7, loc="upper left", ncol=3)
    axes[0, 0].set_title("Basis (mid - oracle) / oracle of env 0, perp 0")
    axes[0, 1].set_title("Funding of env 0, perp 0 (interval: 1 h)")
    axes[-1, 0].set_xlabel("hours")
    axes[-1, 1].set_xlabel("hours")
    fig.tight_layout()
    _save(fig, path)


def plot_cascade(record: MarketRecord, path: Path, by: str = "net") -> CascadeWindow:
    """Price, forced volume and depth around the largest liquidation burst."""
    cw = cascade_window(record, by=by)
    t = cw.time
    fig, axes = plt.subplots(4, 1, figsize=(12, 11), sharex=True)
    ax = axes[0]
    ax.plot(t, cw.mid, label="perp mid", lw=1.2)
    ax.plot(t, cw.mark, label="mark", lw=1.0)
    ax.plot(t, cw.fair, label="oracle (fair)", lw=1.0, ls="--")
    ax.set_ylabel("price")
    ax.legend(fontsize=8)
    kind = "one-sided (net)" if by == "net" else "gross (buys + sells)"
    ax.set_title(
        f"{record.label}, env {cw.env}: largest {kind} forced volume in {cw.burst_seconds:.0f} s, "
        f"ending at t = {cw.peak_second:.0f} s\n{cw.burst_forced_volume:.0f} units forced "
        f"(net sells {cw.burst_net_sell:+.0f}), {cw.burst_liquidations} account(s) newly "
        f"liquidated in the window",
        fontsize=11,
    )
    ax = axes[1]
    ax.bar(t, cw.forced_sell, width=1.0, color="C3", label="forced sells (up)")
    ax.bar(t, -cw.forced_buy, width=1.0, color="C2", label="forced buys (down)")
    ax.plot(t, cw.taker_sell - cw.taker_buy, color="k", lw=0.7, label="ordinary taker sells - buys")
    ax.axvspan(-cw.burst_seconds, 0, color="grey", alpha=0.15, label="burst window")
    ax.set_ylabel("volume per second (units)")
    ax2 = ax.twinx()
    hit = cw.liquidations > 0
    ax2.plot(t[hit], cw.liquidations[hit], "kv", ms=5, label="liquidations (right)")
    ax2.set_ylabel("accounts liquidated")
    ax2.set_ylim(0, max(1, cw.liquidations.max()) * 1.3)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=8, loc="upper right", framealpha=0.9)
    ax = axes[2]
    ax.plot(t, cw.bid_top, label="bid depth, best level", lw=1.0)
    ax.plot(t, cw.bid_depth5, label="bid depth, 5 levels", lw=1.0)
    ax.plot(t, cw.ask_depth5, label="ask depth, 5 levels", lw=1.0)
    ax.set_ylabel("depth (units)")
    ax2 = ax.twinx()
    ax2.plot(
        t, cw.liquidity_bid, color="k", lw=0.8, ls="--", label="makers' liquidity, bids (right)"
    )
    ax2.plot(
        t, cw.liquidity_ask, color="grey", lw=0.8, ls=":", label="makers' liquidity, asks (right)"
    )
    ax2.set_ylim(0, 1.05)
    ax2.set_ylabel("liquidity (1: configured)")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=8)
    ax = axes[3]
    ax.plot(t, cw.spread_ticks, label="spread (ticks)", lw=1.0)
    ax.set_ylabel("spread (ticks)")
    ax2 = ax.twinx()
    ax2.step(t, cw.regime, where="post", color="C1", label="regime (right)")
    ax2.set_yticks(range(len(REGIMES)), REGIMES)
    ax2.set_ylim(-0.3, len(REGIMES) - 0.7)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=8, loc="upper left")
    ax.set_xlabel("seconds relative to the end of the burst window")
    fig.tight_layout()
    _save(fig, path)
    return cw


def plot_hawkes(records: dict[str, MarketRecord], table: pd.DataFrame, path: Path) -> None:
    """Fitted branching ratios vs configured; variance-time curves vs Hawkes theory."""
    names = [*SCENARIOS, CONTROL]
    fig, axes = plt.subplots(1, 3, figsize=(19, 5.2), gridspec_kw={"width_ratios": [1, 1, 1.2]})
    x = np.arange(len(names))
    labels = [n.replace("_", "\n") for n in names]
    true = table.loc[names, "hawkes_n_true"].to_numpy()
    for ax, col, title in (
        (axes[0], "hawkes_n", "Binned Hawkes MLE (one baseline per regime)"),
        (axes[1], "hawkes_n_countvar", "Count variance, 60 s windows (one baseline)"),
    ):
        ax.errorbar(
            x,
            table.loc[names, col],
            yerr=2 * table.loc[names, f"{col}_se"],
            fmt="o",
            capsize=3,
            label="estimate ± 2 SE",
            zorder=3,
        )
        ax.plot(
            x,
            true,
            "_",
            color="grey",
            ms=22,
            mew=1.5,
            label="configured hawkes_self + hawkes_cross",
            zorder=2,
        )
        ax.set_xticks(x, labels, fontsize=8)
        ax.set_ylabel("branching ratio n")
        ax.set_title(title, fontsize=11)
        ax.legend(fontsize=8, loc="upper left" if col == "hawkes_n" else "center")
    lo = min(table.loc[names, "hawkes_n"] - 3 * table.loc[names, "hawkes_n_se"])
    hi = max(table.loc[names, "hawkes_n"] + 3 * table.loc[names, "hawkes_n_se"])
    axes[0].set_ylim(min(lo, true.min()) - 0.005, max(hi, true.max()) + 0.01)
    ax = axes[2]
    windows = np.array([0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500])
    for name in (CONTROL, "calm", "volatile", "liquidation_cascade"):
        rec = records[name]
        ratio = variance_time(rec.series("orders"), rec.tick_seconds, windows)
        ax.semilogx(windows, ratio, "o-", ms=3, label=name, color=COLORS[name])
    p = records[CONTROL].params
    n_true = p.hawkes_self + p.hawkes_cross
    fine = np.logspace(-1, math.log10(500), 100)
    ax.semilogx(
        fine,
        [count_variance_ratio(n_true, p.hawkes_decay, w) for w in fine],
        "k--",
        label=f"Hawkes n={n_true:.1f}, beta={p.hawkes_decay:g}/s",
    )
    ax.axhline(1 / (1 - n_true) ** 2, color="grey", lw=0.8, ls=":", label="1/(1-n)²")
    ax.set_yscale("log")
    ax.set_xlabel("window T (s)")
    ax.set_ylabel("Var(N_T) / E(N_T)")
    ax.set_title("Variance-time of taker order counts")
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def plot_all(
    records: dict[str, MarketRecord], table: pd.DataFrame, img: Path
) -> tuple[CascadeWindow, CascadeWindow]:
    """Every figure of the page into ``img``; returns the largest net and gross liquidation
    bursts of ``liquidation_cascade`` that the cascade figures show."""
    plot_returns(records, table, img / "returns.png")
    plot_ofi(records, table, img / "ofi.png")
    plot_hawkes(records, table, img / "hawkes.png")
    plot_basis_funding(records, img / "basis_funding.png")
    cascade = plot_cascade(records["liquidation_cascade"], img / "cascade.png", by="net")
    gross = plot_cascade(records["liquidation_cascade"], img / "cascade_gross.png", by="gross")
    return cascade, gross
