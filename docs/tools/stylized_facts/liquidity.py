"""Targets of the stress and liquidation-cascade facts: the shape of each env's largest cascade
(:mod:`mmgym.analysis.cascade_shape`) against the 10-11 October 2025 event."""

from __future__ import annotations

import math
from collections.abc import Mapping

from docs.tools.stylized_facts.cross_asset import TARGET_HEADER
from docs.tools.stylized_facts.targets import target_row
from mmgym.analysis.cascade_shape import cascade_shapes
from mmgym.analysis.market_record import MarketRecord
from mmgym.markdown import table

CASCADE_RUNS = ("liquidation_cascade", "cross_margin_event")
"""The runs whose cascades are compared with the event."""
OCT_2025 = "Amberdata, Kaiko, BitMEX research, 10-11 Oct 2025 (B/C)"

TARGETS: tuple[tuple[str, str, str, float, float], ...] = (
    # field, fact, target as printed, our reading of it as a range [low, high]
    ("depth_drop", "near-mid depth lost (hit side, 5 levels)", "-90 %", 0.8, 1.0),
    ("spread_ratio", "spread widening (peak / typical)", "x10 or more", 10.0, math.inf),
    ("peak_share", "peak minute's share of the event's forced volume", "3.2 of 6.9 B", 0.3, 0.8),
    ("one_side", "dominant side's share of forced volume", "84 %", 0.7, 1.0),
    ("long_share", "longs' share of forced volume", "84 % longs", 0.7, 1.0),
)
"""Per fact: the shape field, its name, the target as published and our reading as a range."""


def cascade_targets(records: Mapping[str, MarketRecord]) -> str:
    """One target table per cascade run present in ``records`` (mean over envs of each env's
    largest cascade, SE over envs)."""
    parts = []
    for name in CASCADE_RUNS:
        if name not in records:
            continue
        shape = cascade_shapes(records[name])
        rows = []
        for field, fact, target, low, high in TARGETS:
            value, se = shape.mean_se(field)
            reading = f"{target} (read: {low:g}-{high:g})" if math.isfinite(high) else target
            rows.append(
                target_row(
                    fact,
                    reading,
                    OCT_2025,
                    f"`{name}`",
                    value,
                    se,
                    low,
                    high,
                )
            )
        parts.append(
            f"#### `{name}`: the largest cascade of each of {shape.env.size} envs\n\n"
            f"{table(TARGET_HEADER, rows)}\n"
        )
    return "\n".join(parts)


CASCADE_NOTE = """\
Each env's largest cascade is its busiest minute of forced volume (both sides, every asset);
the event is the 40 min around it (the October 2025 cascade took 40 min). Depth and spread are
smoothed over 10 s; their extremes are taken within 5 min of the busiest minute and compared with
the env's median over the whole run. Depth is the best 5 levels of the side the forced flow hit
(bids when forced sells dominate). Values are means over envs, SE = std / sqrt(envs). The
published figures are one event, graded B/C: they are read as shapes and ranges (our reading in
brackets), not points. A tick is 1 bp at the start price, so a x10 widening takes the calm 4-5 bp
spread to about 50 bp; the event's "single-digit bp to double-digit %" is a widening of x100 or
more, which the simulated makers do not reach (the spread is at most `background_half_spread /
liquidity_floor^liquidity_spread_elasticity` per side, x20 at the defaults)."""


def cascade_section(records: Mapping[str, MarketRecord]) -> str:
    """The page's cascade targets: a heading, the tables and how they were measured."""
    return f"### Targets: stress and liquidation cascades\n\n{CASCADE_NOTE}\n\n" + cascade_targets(
        records
    )
