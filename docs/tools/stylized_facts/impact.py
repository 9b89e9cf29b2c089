"""The impact and adverse-selection section of the stylized-facts page: one target table per
scenario.

Runs: metaorders at 10 % participation held in the calm regime, paired with the undisturbed
market (:func:`mmgym.analysis.metaorder.metaorder_impact`), a touch quoter held in the calm
and in the stressed regime (:func:`mmgym.analysis.adverse_selection.touch_quoter_markouts`), and
every taker trade against the background makers in the same regimes
(:func:`mmgym.analysis.adverse_selection.taker_markouts`).
"""

from __future__ import annotations

import math
from typing import Any

from docs.tools.stylized_facts.cross_asset import TARGET_HEADER
from docs.tools.stylized_facts.targets import plus_minus, target_row
from mmgym.analysis.adverse_selection import taker_markouts, touch_quoter_markouts
from mmgym.analysis.estimate import Estimate
from mmgym.analysis.metaorder import FIXED_CALM, metaorder_impact, square_root_fit
from mmgym.markdown import table

SCENARIOS_MEASURED = ("calm", "volatile")
"""Scenarios with a table (the others share calm's book and impact parameters or differ only
in events)."""
EXPONENT_RANGE = (0.4, 0.6)
"""Our reading of "exponent about 0.5" (Donier & Bonart 2015, A)."""
REVERSION_FLOOR = 2.0 / 3.0
"""Our reading of "decays almost fully", 2 T after the end of a metaorder of duration T."""
SHARE_RANGE = (0.05, 0.15)
"""Our reading of "about 10 %" (Tinic et al. 2023, A indirect)."""
MARKOUT_ENVS = 8
MARKOUT_HOURS = 4
"""The 300 s markouts' runs (the touch quoter's and the market's): this many times the page's
envs and hours. A touch quoter behind the background's queue fills rarely in calm (about 33
units per env in 4 h), and over 300 s the price's own moves make any markout noisy."""
HORIZON = 300.0
"""Markout horizon (s) of the adverse selection."""
SHORT_HORIZON = 10.0
"""The market-wide share's short horizon (s): past the fast part of the impact, before the
slow parts and the price's own moves dominate the markout's noise."""
DONIER = "Donier & Bonart 2015, Market Microstructure and Liquidity 1(2) (A)"
TINIC = "Tinic, Sensoy, Akyildirim, Corbet 2023, J. Financial Research 46(2) (A, indirect)"


def _rows(scenario: str, envs: int, hours: float, seed: int) -> list[list[str]]:
    per_size = max(4 * envs, 32)
    run = metaorder_impact(
        scenario, envs_per_duration=per_size, post_factor=2.0, seed=seed, **FIXED_CALM
    )
    anchor = square_root_fit(run, anchor=True)
    try:
        mid = square_root_fit(run).exponent
    except ValueError:  # a size whose mean mid impact is not positive: the tick grid's noise
        mid = Estimate(math.nan, math.nan, 0)
    shares: dict[str, Any] = {
        regime: touch_quoter_markouts(
            scenario,
            regime,
            num_envs=MARKOUT_ENVS * envs,
            hours=MARKOUT_HOURS * hours,
            horizon_seconds=HORIZON,
            seed=seed,
        ).share
        for regime in ("calm", "stressed")
    }
    calm, stress = shares["calm"], shares["stressed"]
    diff, diff_se = stress.value - calm.value, math.hypot(stress.se, calm.se)
    size = {SHORT_HORIZON: (2 * envs, hours), HORIZON: (MARKOUT_ENVS * envs, MARKOUT_HOURS * hours)}
    market = {
        (regime, horizon): taker_markouts(
            scenario,
            regime,
            num_envs=size[horizon][0],
            hours=size[horizon][1],
            horizon_seconds=horizon,
            seed=seed,
        ).share
        for regime in ("calm", "stressed")
        for horizon in (SHORT_HORIZON, HORIZON)
    }
    meta = f"calm held, {per_size} metaorders x 7 sizes, 10 % participation"
    quotes = {h: f"{n} envs x {t:g} h" for h, (n, t) in size.items()}
    quoter = quotes[HORIZON]
    return [
        target_row(
            "square-root exponent δ of I(Q) on the mid",
            "about 0.5 (read: 0.4-0.6)",
            DONIER,
            meta,
            mid.value,
            mid.se,
            *EXPONENT_RANGE,
        ),
        target_row(
            "square-root exponent δ on the anchor (the mid before rounding to ticks)",
            "about 0.5 (read: 0.4-0.6)",
            DONIER,
            meta,
            anchor.exponent.value,
            anchor.exponent.se,
            *EXPONENT_RANGE,
            digits=3,
        ),
        target_row(
            "share of a metaorder's impact reverted 2 T after its end (anchor)",
            f"almost all (read: ≥ {REVERSION_FLOOR:.2f})",
            DONIER,
            meta,
            anchor.reversion.value,
            anchor.reversion.se,
            REVERSION_FLOOR,
            1.0,
        ),
        target_row(
            f"adverse-selection share of a touch quoter's effective spread ({HORIZON:g} s), calm",
            "about 10 % (read: 5-15 %)",
            TINIC,
            f"calm held, {quoter}",
            calm.value,
            calm.se,
            *SHARE_RANGE,
        ),
        [
            f"adverse-selection share ({HORIZON:g} s), stressed minus calm",
            "> 0 (clearly larger in stress)",
            TINIC,
            f"stressed held minus calm held, {quoter}",
            plus_minus(diff, diff_se),
            "yes" if diff > 2 * diff_se else "no",
        ],
        *_market_rows(market, quotes),
    ]


def _market_rows(
    market: dict[tuple[str, float], Estimate], quotes: dict[float, str]
) -> list[list[str]]:
    """The market-wide share (every taker trade against the background makers) in calm at
    both horizons, and stressed minus calm."""
    rows = []
    for horizon in (SHORT_HORIZON, HORIZON):
        calm = market[("calm", horizon)]
        rows.append(
            target_row(
                f"adverse-selection share of the effective spread, all taker trades "
                f"({horizon:g} s), calm",
                "about 10 % (read: 5-15 %)",
                TINIC,
                f"calm held, passive agent, {quotes[horizon]}",
                calm.value,
                calm.se,
                *SHARE_RANGE,
                digits=3,
            )
        )
    for horizon in (SHORT_HORIZON, HORIZON):
        calm, stress = market[("calm", horizon)], market[("stressed", horizon)]
        diff, diff_se = stress.value - calm.value, math.hypot(stress.se, calm.se)
        rows.append(
            [
                f"adverse-selection share, all taker trades ({horizon:g} s), stressed minus calm",
                "> 0 (clearly larger in stress)",
                TINIC,
                f"stressed held minus calm held, passive agent, {quotes[horizon]}",
                plus_minus(diff, diff_se, 3),
                "yes" if diff > 2 * diff_se else "no",
            ]
        )
    return rows


def impact_section(envs: int, hours: float, seed: int) -> str:
    """The section's markdown: what is measured and one target table per scenario."""
    parts = [
        "## Targets: impact and adverse selection",
        "",
        "A metaorder buys (or sells) 10 % of the market's own volume every tick for T = 20 s "
        "to 2000 s; the same market runs undisturbed on the same seed, and the impact is "
        "side x (log price at the end - at the start), minus the undisturbed run's move "
        "(`mmgym.analysis.metaorder`). δ is the slope of log mean impact on log Q / V_day "
        "(weighted least squares over the 7 sizes). On the mid, the tick grid (1 bp) dominates "
        "the small sizes' noise; the anchor is the price the book is centred on before rounding. "
        "The touch quoter rests 0.1 units at the best bid and ask, re-quoting every tick with "
        "no delay (`mmgym.analysis.adverse_selection`, "
        f"{MARKOUT_ENVS} x the page's envs and {MARKOUT_HOURS} x its hours, as it fills "
        "rarely in calm); adverse selection is the mid's move against it "
        f"{HORIZON:g} s after each fill, over the effective half-spread |fill - mid|. Its "
        "orders land at the start of each tick, on the book as the background makers left it, "
        "so it meets the tick's takers on par with them (behind them in its level's queue) "
        "before the tick's price move; its adverse selection is then what the informed flow "
        "and the impact's memory carry. A quoter whose orders land a tick later is a move "
        "behind the book, and its quote left at the old touch is hit first: before the kernel "
        "landed orders ahead of the tick's move (commit f878039 and earlier), this quoter was "
        "in that position and its calm share was 0.35 ± 0.03, almost all of it that move. "
        "The published share is a market's: it decomposes the effective spread of all trades "
        '(the background makers are the touch quoters there). The rows "all taker trades" '
        "measure it the same way (`taker_markouts`, the taker flow's orders; the crowd's "
        "forced orders are left out): each taker trade's distance from the mid "
        "just before the tick's takers, summed over the levels it walked, against the mid's "
        f"move over {SHORT_HORIZON:g} s and {HORIZON:g} s, with the agent passive. At "
        f"{HORIZON:g} s the price's own moves make that markout noisy, so its runs are as "
        "large as the touch quoter's.",
        "",
    ]
    for scenario in SCENARIOS_MEASURED:
        parts += [
            f"`{scenario}`:",
            "",
            table(TARGET_HEADER, _rows(scenario, envs, hours, seed)),
            "",
        ]
    return "\n".join(parts)
