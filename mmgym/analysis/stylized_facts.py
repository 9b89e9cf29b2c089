"""Stylized facts of the simulated perp market, measured the way they are measured on real data.

:func:`scenario_facts` measures every fact of one recorded scenario and :func:`summary_table`
makes one row of them per scenario. The pieces live in their own modules and are re-exported
here, so ``from mmgym.analysis import stylized_facts as sf`` reaches all of them:

- :mod:`mmgym.analysis.market_record`: :func:`simulate` records ``num_envs`` markets of a
  scenario with a passive agent (no orders, no hedge) into a :class:`MarketRecord`;
- :mod:`mmgym.analysis.returns`: :func:`kurtosis` (fat tails), with a bootstrap standard error
  over independent series, and :func:`abs_return_acf` (volatility clustering), with the
  white-noise standard error;
- :mod:`mmgym.analysis.hawkes`: :func:`fit_hawkes_binned` (self-excitation): maximum likelihood
  of a univariate exponential-kernel Hawkes process on the pooled buy + sell taker order counts
  per tick (the event times known to tick resolution), with a baseline per volatility regime;
  :func:`hawkes_count_variance` is the count-variance cross-check
  (``Var(N_T) / E(N_T) -> 1 / (1 - n)^2``);
- :mod:`mmgym.analysis.order_flow`: :func:`ofi_regression` (Cont, Kukanov & Stoikov): 1 s log
  return on 1 s order-flow imbalance;
- :mod:`mmgym.analysis.basis_funding` and :mod:`mmgym.analysis.cascades`:
  :func:`basis_funding_summary` (basis and funding) and :func:`cascade_window` (a liquidation
  cascade).

The estimators are pure functions of arrays ``(series, time)`` with one independent series per
env and asset (:meth:`MarketRecord.series`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from mmgym.analysis.basis_funding import basis_bp, basis_funding_summary
from mmgym.analysis.cascades import CascadeWindow, cascade_window
from mmgym.analysis.estimate import Estimate
from mmgym.analysis.hawkes import (
    HawkesFit,
    count_variance_ratio,
    fit_hawkes_binned,
    hawkes_count_variance,
    variance_time,
)
from mmgym.analysis.market_record import DEPTH_LEVELS, PASSIVE_ACTION, MarketRecord, simulate
from mmgym.analysis.order_flow import (
    Regression,
    impact_response,
    ofi_regression,
    order_flow_imbalance,
    predicted_ofi_slope_bp,
)
from mmgym.analysis.returns import (
    abs_return_acf,
    bootstrap_kurtosis,
    kurtosis,
    log_returns,
    return_acf,
)
from mmgym.core.params import REGIMES, SECONDS_PER_YEAR

__all__ = [
    "DEPTH_LEVELS",
    "PASSIVE_ACTION",
    "CascadeWindow",
    "Estimate",
    "HawkesFit",
    "MarketRecord",
    "Regression",
    "abs_return_acf",
    "basis_bp",
    "basis_funding_summary",
    "bootstrap_kurtosis",
    "cascade_window",
    "count_variance_ratio",
    "fit_hawkes_binned",
    "hawkes_count_variance",
    "hawkes_fit_record",
    "impact_response",
    "kurtosis",
    "log_returns",
    "ofi_regression",
    "order_flow_imbalance",
    "predicted_ofi_slope_bp",
    "return_acf",
    "scenario_facts",
    "simulate",
    "summary_table",
    "variance_time",
]


def hawkes_fit_record(record: MarketRecord) -> HawkesFit:
    """Binned Hawkes MLE on the record's pooled taker order counts, one baseline per regime."""
    return fit_hawkes_binned(
        record.series("orders"), record.tick_seconds, regimes=record.series("tick_regime")
    )


def scenario_facts(record: MarketRecord, n_boot: int = 200) -> dict[str, Any]:
    """All stylized facts of one record as a flat dict (one row of :func:`summary_table`)."""
    p = record.params
    r1 = log_returns(record, 1.0)
    r10 = log_returns(record, 10.0)
    f1 = log_returns(record, 1.0, price="fair")
    # Control for the tick grid: the oracle rounded to the book's grid the way the mid is
    # (the background quotes floor/ceil the anchor, so the mid sits at k + 1/2 ticks).
    grid = (np.floor(record.series("fair") / p.tick_size) + 0.5) * p.tick_size
    g1 = np.diff(np.log(grid), axis=1)
    k1 = kurtosis(r1, n_boot=n_boot)
    k10 = kurtosis(r10, n_boot=n_boot)
    acf, acf_se = abs_return_acf(r1, 50)
    fit = hawkes_fit_record(record)
    cv = hawkes_count_variance(
        record.series("orders"), record.tick_seconds, 60.0, beta=fit.decay.value
    )
    ofi = order_flow_imbalance(record)
    reg = ofi_regression(r1 * 1e4, ofi)
    # Per-regime slope (the regime at the end of the second labels it).
    regime_1s = record.series("regime")[:, 1:]
    predicted = predicted_ofi_slope_bp(p)
    row: dict[str, Any] = {
        "scenario": record.label,
        "series": r1.shape[0],
        "hours": record.seconds / 3600.0,
        "vol_annual": float(r1.std() * math.sqrt(SECONDS_PER_YEAR)),
        "kurt_1s": k1.value,
        "kurt_1s_se": k1.se,
        "kurt_10s": k10.value,
        "kurt_10s_se": k10.se,
        "kurt_1s_oracle": kurtosis(f1, n_boot=0).value,
        "kurt_1s_grid": kurtosis(g1, n_boot=0).value,
        "ret_acf_1": return_acf(r1, 1),
        "abs_acf_1": float(acf[0]),
        "abs_acf_10": float(acf[9]),
        "abs_acf_50": float(acf[49]),
        "abs_acf_se": acf_se,
        "hawkes_n": fit.branching_ratio.value,
        "hawkes_n_se": fit.branching_ratio.se,
        "hawkes_n_true": p.hawkes_self + p.hawkes_cross,
        "hawkes_beta": fit.decay.value,
        "hawkes_beta_se": fit.decay.se,
        "hawkes_beta_true": p.hawkes_decay,
        "hawkes_n_countvar": cv.value,
        "hawkes_n_countvar_se": cv.se,
        "ofi_slope_bp": reg.slope.value,
        "ofi_slope_se": reg.slope.se,
        "ofi_t": reg.t,
        "ofi_r2": reg.r2,
    }
    for j, name in enumerate(REGIMES):
        mask = regime_1s == j
        # A slope needs enough seconds in the regime, spread over enough series to cluster on.
        if mask.sum() > 600 and (mask.sum(axis=1) > 60).sum() >= 4:
            sub = ofi_regression(r1 * 1e4, ofi, mask=mask)
            row[f"ofi_slope_{name}"] = sub.slope.value
            row[f"ofi_slope_{name}_se"] = sub.slope.se
        else:
            row[f"ofi_slope_{name}"] = float("nan")
            row[f"ofi_slope_{name}_se"] = float("nan")
        row[f"ofi_slope_{name}_model"] = float(predicted[j])
        row[f"time_{name}"] = float((record.regime[1:] == j).mean())
    row.update(basis_funding_summary(record))
    forced = record.forced_buy[1:] + record.forced_sell[1:]
    taker = record.buy_volume[1:] + record.sell_volume[1:]
    env_hours = record.num_envs * record.seconds / 3600.0
    row["liquidations_per_hour"] = float(record.liquidations.sum() / env_hours)
    row["forced_share"] = float(forced.sum() / (forced.sum() + taker.sum()))
    # Forced buys and sells in the same second of the same perp offset each other; a cascade
    # driven by the price liquidates one side at a time.
    offset = 2.0 * np.minimum(record.forced_buy[1:], record.forced_sell[1:]).sum()
    row["forced_two_sided_share"] = float(offset / forced.sum()) if forced.sum() > 0 else 0.0
    if record.liquidations.sum() > 0:
        cw = cascade_window(record, by="net")
        i0 = int(np.searchsorted(cw.time, -cw.burst_seconds))
        i1 = int(np.searchsorted(cw.time, 0.0))
        row["max_burst_net_sell"] = cw.burst_net_sell
        row["max_burst_volume"] = cw.burst_forced_volume
        row["max_burst_liquidations"] = cw.burst_liquidations
        row["max_burst_move_bp"] = float((cw.mid[i1] / cw.mid[i0] - 1.0) * 1e4)
    else:
        row["max_burst_net_sell"] = 0.0
        row["max_burst_volume"] = 0.0
        row["max_burst_liquidations"] = 0
        row["max_burst_move_bp"] = 0.0
    return row


def summary_table(
    records: Mapping[str, MarketRecord] | Iterable[MarketRecord], n_boot: int = 200
) -> pd.DataFrame:
    """One row of :func:`scenario_facts` per record, indexed by scenario."""
    items = records.values() if isinstance(records, Mapping) else records
    rows = [scenario_facts(r, n_boot=n_boot) for r in items]
    return pd.DataFrame(rows).set_index("scenario")
