"""Stylized facts of every scenario: simulate, measure, plot, and write docs/stylized_facts.md.

Simulates every scenario of :mod:`mmgym.scenarios` with a passive agent (no orders), plus a
control run (calm, one fixed regime, no informed flow) for the Hawkes fit, measures the facts
of :mod:`mmgym.analysis.stylized_facts` and writes a markdown page with a table per topic and
PNG figures.

    python scripts/stylized_facts.py            # 32 envs x 4 h per scenario (about 2 min)
    python scripts/stylized_facts.py --quick    # 8 envs x 1 h (a smoke run)
    python scripts/stylized_facts.py --envs 64 --hours 8 --out /tmp/facts.md --img /tmp/img
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from tqdm import tqdm

from mmgym.analysis import stylized_facts as sf
from mmgym.core.params import REGIMES, depth_profile
from mmgym.provenance import commit, machine
from mmgym.scenarios import SCENARIOS, make_params

ROOT = Path(__file__).resolve().parent.parent
CONTROL = "control"
CONTROL_OVERRIDES: dict[str, Any] = {
    "initial_regime": "calm",
    "regime_switch_per_hour": ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
    "informed_fraction": (0.0, 0.0, 0.0),
}
COLORS = dict(zip([*SCENARIOS, CONTROL], plt.get_cmap("tab10").colors, strict=False))


# --------------------------------------------------------------------------------------------
# Machine and run description
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def _save(fig: Any, path: Path) -> None:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_returns(records: dict[str, sf.MarketRecord], table: pd.DataFrame, path: Path) -> None:
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
    for j, (col, label, se) in enumerate(bars):
        vals = table.loc[names, col].to_numpy()
        err = table.loc[names, se].to_numpy() if se else None
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
        r = sf.log_returns(records[name], 1.0).ravel()
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
            rets = sf.log_returns(records[name], 1.0)
            acf, se_n = sf.abs_return_acf(rets, lags=lags)
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


def plot_ofi(records: dict[str, sf.MarketRecord], table: pd.DataFrame, path: Path) -> None:
    """1 s return on 1 s order-flow imbalance: points, binned means, fit; slopes vs model."""
    names = list(SCENARIOS)
    fig, axes = plt.subplots(2, 4, figsize=(18, 8.5))
    rng = np.random.default_rng(0)
    for ax, name in zip(axes.ravel(), names, strict=False):
        rec = records[name]
        y = (sf.log_returns(rec, 1.0) * 1e4).ravel()
        x = sf.order_flow_imbalance(rec).ravel()
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


def plot_basis_funding(records: dict[str, sf.MarketRecord], path: Path) -> None:
    """Basis and funding paths of one env per scenario."""
    names = list(SCENARIOS)
    fig, axes = plt.subplots(len(names), 2, figsize=(16, 2.3 * len(names)), sharex="col")
    for row, name in enumerate(names):
        rec = records[name]
        hours = np.arange(rec.mid.shape[0]) * rec.sample_seconds / 3600.0
        b = sf.basis_bp(rec)[:, 0, 0]
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


def plot_cascade(record: sf.MarketRecord, path: Path, by: str = "net") -> sf.CascadeWindow:
    """Price, forced volume and depth around the largest liquidation burst."""
    cw = sf.cascade_window(record, by=by)
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
    ax.legend(fontsize=8)
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


def plot_hawkes(records: dict[str, sf.MarketRecord], table: pd.DataFrame, path: Path) -> None:
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
        ratio = sf.variance_time(rec.series("orders"), rec.tick_seconds, windows)
        ax.semilogx(windows, ratio, "o-", ms=3, label=name, color=COLORS[name])
    p = records[CONTROL].params
    n_true = p.hawkes_self + p.hawkes_cross
    fine = np.logspace(-1, math.log10(500), 100)
    ax.semilogx(
        fine,
        [sf.count_variance_ratio(n_true, p.hawkes_decay, w) for w in fine],
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


# --------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------


def _pm(value: float, se: float, digits: int = 2) -> str:
    if not math.isfinite(value):
        return "-"
    if not math.isfinite(se):
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} ± {se:.{digits}f}"


def _g(value: float, digits: int = 3) -> str:
    return "-" if not math.isfinite(value) else f"{value:.{digits}g}"


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def tables_markdown(t: pd.DataFrame) -> str:
    """The three markdown tables of the page."""
    names = list(SCENARIOS)
    returns = _md_table(
        [
            "scenario",
            "time calm / vol / stress",
            "sigma (ann.)",
            "kurt 1 s",
            "kurt 10 s",
            "kurt 1 s oracle",
            "kurt 1 s oracle on grid",
            "ACF r lag 1",
            "ACF abs r lag 1",
            "lag 10",
            "lag 50",
        ],
        [
            [
                f"`{n}`",
                " / ".join(f"{100 * t.loc[n, f'time_{r}']:.0f} %" for r in REGIMES),
                f"{100 * t.loc[n, 'vol_annual']:.0f} %",
                _pm(t.loc[n, "kurt_1s"], t.loc[n, "kurt_1s_se"], 1),
                _pm(t.loc[n, "kurt_10s"], t.loc[n, "kurt_10s_se"], 1),
                f"{t.loc[n, 'kurt_1s_oracle']:.1f}",
                f"{t.loc[n, 'kurt_1s_grid']:.1f}",
                f"{t.loc[n, 'ret_acf_1']:.3f}",
                f"{t.loc[n, 'abs_acf_1']:.3f}",
                f"{t.loc[n, 'abs_acf_10']:.3f}",
                f"{t.loc[n, 'abs_acf_50']:.3f}",
            ]
            for n in names
        ],
    )
    flow = _md_table(
        [
            "run",
            "n (MLE)",
            "n configured",
            "beta (1/s, MLE)",
            "n (count variance, 60 s)",
            "OFI slope (bp/unit)",
            "t",
            "R²",
            "slope calm / model",
            "slope volatile / model",
            "slope stressed / model",
        ],
        [
            [
                f"`{n}`",
                _pm(t.loc[n, "hawkes_n"], t.loc[n, "hawkes_n_se"], 3),
                f"{t.loc[n, 'hawkes_n_true']:.2f}",
                _pm(t.loc[n, "hawkes_beta"], t.loc[n, "hawkes_beta_se"], 3),
                _pm(t.loc[n, "hawkes_n_countvar"], t.loc[n, "hawkes_n_countvar_se"], 3),
                _pm(t.loc[n, "ofi_slope_bp"], t.loc[n, "ofi_slope_se"], 3),
                f"{t.loc[n, 'ofi_t']:.0f}",
                f"{t.loc[n, 'ofi_r2']:.2f}",
                *[
                    f"{_g(t.loc[n, f'ofi_slope_{r}'])} / {_g(t.loc[n, f'ofi_slope_{r}_model'])}"
                    for r in REGIMES
                ],
            ]
            for n in [*names, CONTROL]
        ],
    )
    perp = _md_table(
        [
            "scenario",
            "basis mean (bp)",
            "mean abs basis (bp)",
            "basis std (bp)",
            "time decoupled",
            "premium sample non-zero",
            "funding mean (bp/h)",
            "max abs funding (bp/h)",
            "payments at interest only",
            "liquidations per env-hour",
            "forced share of volume",
            "largest one-sided 30 s burst: net forced sells (units)",
            "its liquidations",
            "its mid move (bp)",
        ],
        [
            [
                f"`{n}`",
                f"{t.loc[n, 'basis_mean_bp']:.2f}",
                f"{t.loc[n, 'basis_abs_bp']:.2f}",
                f"{t.loc[n, 'basis_std_bp']:.2f}",
                f"{100 * t.loc[n, 'decoupled_fraction']:.0f} %",
                f"{100 * t.loc[n, 'premium_nonzero_fraction']:.0f} %",
                f"{t.loc[n, 'funding_mean_bp']:.3f}",
                f"{t.loc[n, 'funding_max_abs_bp']:.3f}",
                f"{100 * t.loc[n, 'funding_at_interest_fraction']:.0f} %",
                f"{t.loc[n, 'liquidations_per_hour']:.1f}",
                f"{100 * t.loc[n, 'forced_share']:.1f} %",
                f"{t.loc[n, 'max_burst_net_sell']:+.0f}",
                f"{t.loc[n, 'max_burst_liquidations']:.0f}",
                f"{t.loc[n, 'max_burst_move_bp']:+.0f}",
            ]
            for n in names
        ],
    )
    return (
        "### Returns\n\n"
        + returns
        + "\n\n### Order flow\n\n"
        + flow
        + "\n\n### Basis, funding and liquidations\n\n"
        + perp
        + "\n"
    )


RESPONSE_HORIZONS = (0, 10, 30, 60, 300)


def wick_text(record: sf.MarketRecord) -> str:
    """The largest one-second fall of the mid against the oracle during forced selling, and
    how long the basis takes to come back."""
    r_mid = np.diff(np.log(record.mid), axis=0) * 1e4
    r_fair = np.diff(np.log(record.fair), axis=0) * 1e4
    excess = np.where(record.forced_sell[1:] > 0, r_mid - r_fair, np.inf)
    if not np.isfinite(excess).any():
        return f"no forced selling in `{record.label}`."
    t, env, k = np.unravel_index(int(np.argmin(excess)), excess.shape)
    basis = sf.basis_bp(record)[:, env, k]
    peak = basis[t + 1]
    after = np.nonzero(np.abs(basis[t + 1 :]) < max(5.0, 0.1 * abs(peak)))[0]
    back = f"{after[0] * record.sample_seconds:.0f} s" if after.size else "not within the run"
    return (
        f"in `{record.label}` the largest one-second fall of the mid during forced selling was "
        f"{r_mid[t, env, k]:+.0f} bp (oracle {r_fair[t, env, k]:+.0f} bp) on "
        f"{record.forced_sell[t + 1, env, k]:.0f} units of forced sells, against "
        f"{record.bid_depth5[t, env, k]:.1f} units on the best 5 bid levels just before; the "
        f"basis reached {peak:+.0f} bp and was back within 10 % of that (or 5 bp) after "
        f"{back}. The forced order walks the book level after level beyond its simulated "
        "depth, and the impact then decays toward the unchanged oracle: a V-shaped wick, not "
        "a lasting repricing."
    )


def _response(record: sf.MarketRecord) -> str:
    resp = sf.impact_response(record, RESPONSE_HORIZONS)
    return " / ".join(f"{b:.3f} ± {se:.3f}" for b, se in resp)


def model_checks(records: dict[str, sf.MarketRecord], table: pd.DataFrame) -> pd.DataFrame:
    """Quantities that expose modelling choices and artefacts, measured on the runs."""
    rows = []
    for name in SCENARIOS:
        rec = records[name]
        p = rec.params
        per_account = p.crowd_open_interest / (p.crowd_accounts / 2)
        book = depth_profile(p).sum(axis=1)
        rets = sf.log_returns(rec, 1.0)
        acf, se = sf.abs_return_acf(rets, lags=range(25, 36))
        spread = np.rint((rec.best_ask - rec.best_bid)[1:] / p.tick_size)
        regime = np.repeat(rec.regime[1:, :, None], rec.num_assets, axis=2)
        h = np.asarray(p.background_half_spread)[regime]
        rows.append(
            {
                "scenario": name,
                "liquidations_per_hour": table.loc[name, "liquidations_per_hour"],
                "two_sided": table.loc[name, "forced_two_sided_share"],
                "largest_position": 1.5 * per_account,
                "book_depth": " / ".join(f"{b:.0f}" for b in book),
                "acf30_excess": float(acf[5] - np.median(np.delete(acf, 5))),
                "acf_se": se,
                "spread_fixed": float((spread == 2 * np.ceil(h) + 1).mean()),
            }
        )
    return pd.DataFrame(rows).set_index("scenario")


def checks_markdown(c: pd.DataFrame) -> str:
    """The model-checks table."""
    return _md_table(
        [
            "scenario",
            "liquidations per env-hour",
            "forced volume offset by opposite forced volume in the same second",
            "largest crowd position (units/perp)",
            "20-level book depth calm / vol / stress (units)",
            "ACF abs r at lag 30 s minus median of lags 25-35",
            "seconds with spread = 2h+1 ticks",
        ],
        [
            [
                f"`{n}`",
                f"{c.loc[n, 'liquidations_per_hour']:.1f}",
                f"{100 * c.loc[n, 'two_sided']:.0f} %",
                f"{c.loc[n, 'largest_position']:.0f}",
                c.loc[n, "book_depth"],
                f"{c.loc[n, 'acf30_excess']:+.3f} (SE {c.loc[n, 'acf_se']:.3f})",
                f"{100 * c.loc[n, 'spread_fixed']:.1f} %",
            ]
            for n in c.index
        ],
    )


def write_markdown(
    path: Path,
    table: pd.DataFrame,
    cascades: tuple[sf.CascadeWindow, sf.CascadeWindow],
    records: dict[str, sf.MarketRecord],
    args: argparse.Namespace,
    command: str,
    runtime: float,
    img: Path,
) -> None:
    """The page: how it was made, what each fact means, the tables, the figures, the checks."""
    rel = os.path.relpath(img, path.parent)
    t = table
    cascade, gross = cascades
    n_series = int(t.loc["calm", "series"])
    ret_n = int(n_series * args.hours * 3600)
    acf_se = 1 / math.sqrt(ret_n)
    control = t.loc[CONTROL]
    z_control = (control["hawkes_n"] - control["hawkes_n_true"]) / control["hawkes_n_se"]
    checks = model_checks(records, table)
    names = list(SCENARIOS)
    ratios = ", ".join(f"`{n}` {t.loc[n, 'kurt_1s'] / t.loc[n, 'kurt_1s_grid']:.1f}" for n in names)
    wick = wick_text(records["liquidation_cascade"])
    r2_max = max(t.loc[n, "ofi_r2"] for n in names)
    r2_max_name = max(names, key=lambda n: t.loc[n, "ofi_r2"])
    text = f"""# Stylized facts of the simulated market

Generated by `{command}` on {time.strftime("%Y-%m-%d %H:%M %Z")} ({machine()}; commit
{commit()}); the run took {runtime:.0f} s. Do not edit by hand: rerun the script.

Every scenario of [scenarios.md](scenarios.md) is simulated with **{args.envs} independent envs
x {args.hours:g} h** (seeds {args.seed}..{args.seed + args.envs - 1}; the same seeds in every
scenario, so scenarios that draw alike share noise: `funding_squeeze` and `basis_decoupling`
draw identical order arrival counts, whose total does not depend on the buy/sell tilt) and a
passive agent that places no orders, so the market is observed undisturbed. The envs step one
market tick (0.1 s) per decision so that every tick's taker order count is seen; nothing in the
market depends on the decision interval. Prices are sampled every second. Each row pools
{n_series} series (envs x perps; `cross_margin_event` has {3 * n_series}) of {args.hours:g} h,
i.e. {ret_n:,} one-second returns per scenario. The `control` run is `calm` with one fixed
regime (all switching rates 0) and no informed flow.

Code: [`mmgym/analysis/stylized_facts.py`](../mmgym/analysis/stylized_facts.py); tests of the
qualitative facts: [`tests/test_stylized_facts.py`](../tests/test_stylized_facts.py).

## What each fact is and how it is measured

- **Fat tails (kurtosis)**: `m4 / m2²` of pooled 1 s and non-overlapping 10 s log returns of
  the perp mid (3 for a normal law; real crypto returns at these scales are far above 3, and
  kurtosis falls as the horizon grows, "aggregational Gaussianity"). The ± is a bootstrap SE
  over whole envs (200 resamples), which respects volatility clustering; with jumps the
  kurtosis is dominated by a few seconds, so the SE is large. Two controls: the kurtosis of the
  oracle (fair price) returns, and of the oracle rounded to the book's tick grid (the mid sits
  on half ticks), which shows how much of the mid's kurtosis comes from the oracle and the
  price grid rather than from order flow.
- **Volatility clustering**: autocorrelation of |1 s return| at lags 1..50 s (and up to 1 h in
  the figure), pooled about the global mean; under no autocorrelation its SE is
  `1/sqrt(n)` = {acf_se:.4f} here. Real markets: positive and slowly (power-law) decaying over
  hours to days. "ACF r lag 1" is the signed-return autocorrelation (real mid returns: small
  and negative at seconds).
- **Hawkes branching ratio**: maximum likelihood of a univariate exponential-kernel Hawkes
  process fitted to the pooled buy + sell taker order arrivals (forced closes excluded), with
  event times known to tick resolution: per tick the count is Poisson(`(mu_regime + E) dt`)
  and after the tick `E <- exp(-beta dt) E + n (1 - exp(-beta dt)) / dt x count` (the exact
  likelihood of the tick-binned process, the continuous Hawkes likelihood as dt -> 0), with one
  baseline `mu` per volatility regime (the regime is known per tick) and `n`, `beta` shared.
  ± is a sandwich SE clustered by series. Pooling buys and sells of a symmetric bivariate
  Hawkes process gives a univariate one with `n = hawkes_self + hawkes_cross` (informed
  orders flip sides, not counts), so the fit should return the configured n. The
  count-variance column inverts `Var(N_T)/E(N_T)` over T = 60 s windows (with the finite-T
  formula for the fitted beta; `1/(1-n)²` as T -> infinity); it assumes one constant baseline,
  so regime switching inflates it. Real markets: n about 0.7-0.9 (Filimonov & Sornette 2012;
  higher for Bitcoin).
- **Order-flow imbalance (Cont, Kukanov & Stoikov)**: OLS of the 1 s mid log return (bp) on the
  1 s signed traded volume (taker + forced buys minus sells, base units), pooled, SE clustered
  by env; per regime (the regime at the end of the second) the slope is compared with the
  model's immediate impact `impact_coefficient / depth_top x tick / price`, times the share
  that survives the impact decay within the second. CKS: linear, slope inversely proportional
  to depth.
- **Basis and funding**: basis `(mid - oracle)/oracle`; the premium index sample and the
  funding rate paid per 1 h interval, in bp (the interest-only rate is 0.01 %/8 h = 0.125 bp
  per hour). "Payments at interest only" counts funding payments equal to that floor.
- **Liquidations and cascades**: crowd liquidations per env-hour, forced (liquidation) share of
  traded volume, and the 30 s window with the largest one-sided forced volume
  (`|forced sells - forced buys|`), with its liquidations and the mid move over it.

## Tables

{tables_markdown(t)}
## Figures

![kurtosis, tails and volatility clustering]({rel}/returns.png)

Kurtosis by scenario (log scale), the tail of pooled 1 s returns against the normal law, and the
autocorrelation of absolute 1 s returns at short and long lags with the ±3 SE band of zero.

![order-flow imbalance]({rel}/ofi.png)

1 s mid return against 1 s order-flow imbalance: a random sample of points, the mean return in
20 equal-width OFI bins (black) and the OLS line (red), fitted on all seconds, including the
0.4 % outside the plotted range. Where forced flow or jumps are large (`liquidation_cascade`,
`cross_margin_event`, `flash_crash`) those few seconds set the pooled slope and R²: the binned
means of the ordinary seconds lie on a flatter line. Last panel: slope per regime (± 2 SE)
against the impact model.

![Hawkes branching ratio]({rel}/hawkes.png)

Left and middle: fitted branching ratio (± 2 SE) by run against the configured one, by
maximum likelihood and by count variance. Right: the
variance-time curve of taker order counts against the exponential-Hawkes curve for the
configured parameters; it flattens at `1/(1-n)²` in the fixed-regime control and keeps rising
where the regime (and so the baseline rate) switches.

![basis and funding]({rel}/basis_funding.png)

Basis and funding of one env per scenario over the run (orange: the basis is decoupled from
spot; dots: the rate paid at each funding time; grey: the premium sample scaled to the
interval, i.e. its contribution to the rate).

![liquidation cascade]({rel}/cascade.png)

The largest one-sided liquidation burst of `liquidation_cascade` (env {cascade.env}, window
ending at t = {cascade.peak_second:.0f} s: {cascade.burst_liquidations} accounts liquidated,
net forced sells {cascade.burst_net_sell:+.0f} units): prices, forced volume and liquidations,
book depth, spread and regime around it.

![largest gross burst]({rel}/cascade_gross.png)

For comparison, the window with the largest gross forced volume (env {gross.env}, ending at
t = {gross.peak_second:.0f} s: {gross.burst_forced_volume:.0f} units, net
{gross.burst_net_sell:+.0f}); see "two-sided forced flow" in the model checks.

## Control: the Hawkes fit in a fixed regime

In the `control` run the fit gives n = {control["hawkes_n"]:.4f} ± {control["hawkes_n_se"]:.4f}
against the configured {control["hawkes_n_true"]:.2f} (z = {z_control:+.1f}) and beta =
{control["hawkes_beta"]:.3f} ± {control["hawkes_beta_se"]:.3f}/s against
{control["hawkes_beta_true"]:g}/s; the count-variance estimate is
{control["hawkes_n_countvar"]:.3f} ± {control["hawkes_n_countvar_se"]:.3f}. The test suite
checks the same at a smaller size.

## Model checks

{checks_markdown(checks)}

- **Where the fat tails come from**: ratio of the 1 s mid kurtosis to that of the oracle
  rounded to the tick grid: {ratios}. Near 1, the mid's tails are the oracle's (jumps and
  regime mixing) seen on the price grid: the book is recentred on `oracle + impact` every tick
  and ordinary taker flow (Pareto sizes, Hawkes clustering) adds little tail of its own. Well
  above 1, forced flow adds tails of its own.
- **Liquidation wicks**: {wick}
- **Order flow explains little of the price**: the OFI regression has R² at most
  {r2_max:.2f} (`{r2_max_name}`, where the crowd's forced flow is large), and a few percent
  elsewhere: 1 s price changes are mostly the exogenous oracle, plus a small linear impact.
  Cumulative response of the mid to one second of flow (bp per unit, ± SE) after
  {", ".join(f"{h} s" for h in RESPONSE_HORIZONS)}: `control` {_response(records[CONTROL])};
  `calm` {_response(records["calm"])}. Without informed flow the impact is transient (it
  decays with `impact_decay_seconds` = {records[CONTROL].params.impact_decay_seconds:g} s):
  trades never move the price for good, only the oracle does, and the informed traders'
  drift is the only permanent price effect of order flow.
- **Two-sided forced flow**: in a cascade driven by the price only one side of the crowd is
  liquidated at a time, so forced buys and forced sells in the same second of the same perp
  should be rare. A large offset share (third column) means liquidations that the price did
  not cause, e.g. crowd accounts that open below their maintenance margin (a leverage draw
  above `1 / maintenance rate`) and are liquidated at once, longs and shorts alike.
- **Forced orders larger than the simulated book**: the largest crowd position can exceed the
  depth of all 20 simulated levels (table); such a close either sweeps beyond the simulated
  book or is cut short, depending on how the kernel walks it.
- **30 s echo**: large forced closes send 20 % at once and the rest exactly
  `crowd_cooldown_seconds` later, which puts a spike at lag 30 s into the ACF of |r|
  where liquidations are frequent.
- **Deterministic spread**: the background quotes sit at `floor(anchor - h)` and
  `ceil(anchor + h)`, so outside the tick in which a taker empties the best level the spread is
  exactly `2h + 1` ticks of the current regime (last column).
"""
    path.write_text(text)


# --------------------------------------------------------------------------------------------


def main() -> None:
    """Simulate, measure, plot and write the page."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 envs x 1 h (a smoke run)")
    parser.add_argument("--envs", type=int, default=None, help="envs per scenario (default 32)")
    parser.add_argument("--hours", type=float, default=None, help="hours per env (default 4)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "stylized_facts.md")
    parser.add_argument("--img", type=Path, default=ROOT / "docs" / "img" / "stylized_facts")
    args = parser.parse_args()
    if args.envs is None:
        args.envs = 8 if args.quick else 32
    if args.hours is None:
        args.hours = 1.0 if args.quick else 4.0
    args.img.mkdir(parents=True, exist_ok=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    command = "python scripts/stylized_facts.py" + (
        " " + " ".join(sys.argv[1:]) if sys.argv[1:] else ""
    )

    start = time.perf_counter()
    runs: list[tuple[str, str, dict[str, Any]]] = [(s, s, {}) for s in SCENARIOS]
    runs.append((CONTROL, "calm", CONTROL_OVERRIDES))
    total = 0
    for _, scenario, overrides in runs:
        p = make_params(scenario, **overrides)
        total += round(args.hours * 3600 / p.tick_seconds)
    records: dict[str, sf.MarketRecord] = {}
    with tqdm(total=total, unit="tick", unit_scale=True, desc="simulate", mininterval=1.0) as bar:
        for label, scenario, overrides in runs:
            bar.set_postfix_str(label)
            records[label] = sf.simulate(
                scenario,
                num_envs=args.envs,
                hours=args.hours,
                seed=args.seed,
                progress=bar.update,
                label=label,
                **overrides,
            )
    sim_time = time.perf_counter() - start
    rows = []
    for label in tqdm(records, desc="measure"):
        rows.append(sf.scenario_facts(records[label]))
    table = pd.DataFrame(rows).set_index("scenario")
    measure_time = time.perf_counter() - start - sim_time

    plot_returns(records, table, args.img / "returns.png")
    plot_ofi(records, table, args.img / "ofi.png")
    plot_hawkes(records, table, args.img / "hawkes.png")
    plot_basis_funding(records, args.img / "basis_funding.png")
    cascade = plot_cascade(records["liquidation_cascade"], args.img / "cascade.png", by="net")
    gross = plot_cascade(records["liquidation_cascade"], args.img / "cascade_gross.png", by="gross")
    runtime = time.perf_counter() - start
    write_markdown(args.out, table, (cascade, gross), records, args, command, runtime, args.img)
    print(tables_markdown(table))
    print(
        f"simulate {sim_time:.0f} s, measure {measure_time:.0f} s, total {runtime:.0f} s; "
        f"wrote {args.out} and {args.img}/"
    )


if __name__ == "__main__":
    main()
