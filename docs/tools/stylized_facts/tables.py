"""Markdown tables of the stylized-facts page: returns, order flow, basis and funding, and the
model checks."""

from __future__ import annotations

import math

import pandas as pd

from docs.tools.stylized_facts.runs import CONTROL
from mmgym.core.params import REGIMES
from mmgym.markdown import table
from mmgym.scenarios import SCENARIOS


def _plus_minus(value: float, se: float, digits: int = 2) -> str:
    """``value ± se`` to ``digits`` decimals; the value alone without an SE, ``-`` without it."""
    if not math.isfinite(value):
        return "-"
    if not math.isfinite(se):
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} ± {se:.{digits}f}"


def _significant(value: float, digits: int = 3) -> str:
    """``value`` to ``digits`` significant digits, ``-`` if not finite."""
    return "-" if not math.isfinite(value) else f"{value:.{digits}g}"


def tables_markdown(t: pd.DataFrame) -> str:
    """The three markdown tables of the page."""
    names = list(SCENARIOS)
    returns = table(
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
                _plus_minus(t.loc[n, "kurt_1s"], t.loc[n, "kurt_1s_se"], 1),
                _plus_minus(t.loc[n, "kurt_10s"], t.loc[n, "kurt_10s_se"], 1),
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
    flow = table(
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
                _plus_minus(t.loc[n, "hawkes_n"], t.loc[n, "hawkes_n_se"], 3),
                f"{t.loc[n, 'hawkes_n_true']:.2f}",
                _plus_minus(t.loc[n, "hawkes_beta"], t.loc[n, "hawkes_beta_se"], 3),
                _plus_minus(t.loc[n, "hawkes_n_countvar"], t.loc[n, "hawkes_n_countvar_se"], 3),
                _plus_minus(t.loc[n, "ofi_slope_bp"], t.loc[n, "ofi_slope_se"], 3),
                f"{t.loc[n, 'ofi_t']:.0f}",
                f"{t.loc[n, 'ofi_r2']:.2f}",
                *[
                    f"{_significant(t.loc[n, f'ofi_slope_{r}'])} / "
                    f"{_significant(t.loc[n, f'ofi_slope_{r}_model'])}"
                    for r in REGIMES
                ],
            ]
            for n in [*names, CONTROL]
        ],
    )
    perp = table(
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


def checks_markdown(c: pd.DataFrame) -> str:
    """The model-checks table."""
    return table(
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
