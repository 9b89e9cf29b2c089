"""The funding section of the stylized-facts page: 8 h funding against published figures.

Runs (:func:`mmgym.analysis.funding.simulate_funding`, funding every 8 h so the rate is the 8 h
rate of the published series): ``calm`` (the calibrated default) and ``funding_squeeze``.
Standard errors are jackknifes over the independent envs.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from docs.tools.stylized_facts.targets import plus_minus, verdict
from mmgym.analysis.estimate import Estimate
from mmgym.analysis.funding import FundingRecord, funding_facts, simulate_funding
from mmgym.markdown import table

RUNS = ("calm", "funding_squeeze")
"""Scenarios of the section."""
MIN_HOURS = 48.0
"""Shortest run per env: the premium's time scale is 8 h."""
BITMEX = "BitMEX research, Oct 2025 (B)"
BINANCE = "Binance BTCUSDT 2021-2026, public repository (R)"
SQUEEZE = "BitMEX research 2025 (B)"
BASIS = "Binance BTCUSDT 1 h basis, public repository (R)"
HEADER = ["fact", "target", "source", "simulated ± SE", "within range"]


def _row(fact: str, target: str, source: str, e: Estimate, low: float, high: float) -> list[str]:
    return [fact, target, source, plus_minus(e.value, e.se), verdict(e.value, e.se, low, high)]


def target_rows(name: str, f: dict[str, Estimate]) -> list[list[str]]:
    """Target rows of one scenario (rates in bp per 8 h, basis in bp)."""
    pct = {k: Estimate(100 * v.value, 100 * v.se, v.n) for k, v in f.items()}
    if name == "funding_squeeze":
        return [
            _row("max 8 h rate (bp)", "squeezes above 20 bp", SQUEEZE, f["max"], 20.0, math.inf),
            _row("mean 8 h rate (bp)", "well above 1 bp", SQUEEZE, f["mean"], 1.0, math.inf),
        ]
    return [
        _row("8 h intervals at the default (%)", "78-88", BITMEX, pct["at_default"], 78, 88),
        _row(
            "positive 8 h intervals (%)", "above 92 (88: Binance)", BITMEX, pct["positive"], 88, 100
        ),
        _row("mean 8 h rate (bp)", "1.04", BINANCE, f["mean"], 0.8, 1.3),
        _row("std of the 8 h rate (bp)", "1.89", BINANCE, f["std"], 1.5, 2.3),
        _row("min 8 h rate (bp)", "-11.2 (over 5,800 intervals)", BINANCE, f["min"], -30, -2),
        _row("max 8 h rate (bp)", "+24.9 (over 5,800 intervals)", BINANCE, f["max"], 6, 60),
        _row("mean basis (bp)", "-1.5", BASIS, f["basis_mean"], -3.0, 0.0),
        _row("5 % quantile of the basis (bp)", "-6.2", BASIS, f["basis_p05"], -8.0, -4.5),
        _row("95 % quantile of the basis (bp)", "+9.9", BASIS, f["basis_p95"], 7.5, 12.5),
    ]


def simulate(
    envs: int, hours: float, seed: int, progress: Callable[[int], object] | None = None
) -> dict[str, FundingRecord]:
    """The section's runs, at least :data:`MIN_HOURS` per env."""
    h = max(hours, MIN_HOURS)
    return {n: simulate_funding(n, envs, h, seed, progress=progress) for n in RUNS}


def section(records: dict[str, FundingRecord]) -> str:
    """The section's markdown: one target table per scenario."""
    parts = [
        "## Funding as a carry\n",
        "Funding paid every 8 h (the published series' convention; the envs pay hourly at 1/8 "
        "of the same 8 h formula), passive agent, first perp; SE: jackknife over independent "
        "envs. Ranges read from a point target: mean ±25 %, std ±20 %, basis quantiles "
        "±25 %; the extremes only need the right order (our runs hold far fewer intervals).\n",
    ]
    for name, rec in records.items():
        f = funding_facts(rec)
        hours = rec.basis.shape[1] * rec.params.decision_interval / 3600.0
        parts.append(
            f"### Targets: `{name}` ({rec.num_envs} envs x {hours:.0f} h, "
            f"{rec.rates.size} intervals)\n"
        )
        parts.append(table(HEADER, target_rows(name, f)) + "\n")
    return "\n".join(parts) + "\n"
