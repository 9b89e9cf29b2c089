"""The paper exchange's market log (``mmgym-paper-exchange market_log=<file>``): each interval's
crowd liquidations and forced volume, and the liquidation cascades they make.

A venue's API does not say when a cascade runs; the paper exchange knows (it simulates the
crowd), so it writes one JSON line per interval with liquidations or forced orders
(:meth:`mmgym.exchange.venue.PaperVenue.crowd_event`). :func:`cascades` groups them into
windows that a session report marks (:func:`agents.ops.report.write_session_report`'s
``windows``) and counts the limiter's interventions in.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class MarketWindow:
    """A stretch of venue time the report marks: ``start_ms`` to ``end_ms``."""

    name: str
    start_ms: int
    end_ms: int
    detail: str
    """What happened in it, one sentence."""

    def holds(self, ms: int) -> bool:
        """Whether venue time ``ms`` is in the window (both ends included)."""
        return self.start_ms <= ms <= self.end_ms


def read_market_log(path: str | Path) -> list[dict[str, Any]]:
    """The events of a market log, in order; ValueError naming the file and line of a bad one."""
    events = []
    for n, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
            int(event["time_ms"]), int(event["liquidations"]), dict(event["coins"])
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{path}:{n}: not a market-log event ({err})") from None
        events.append(event)
    return events


def forced_volume(event: dict[str, Any]) -> float:
    """An event's forced volume (base units): forced buys, sells and the backstop's, all perps."""
    return sum(
        float(c.get("forced_buy", 0.0)) + float(c.get("forced_sell", 0.0))
        + float(c.get("backstop", 0.0))
        for c in event["coins"].values()
    )  # fmt: skip


def cascades(
    events: Iterable[dict[str, Any]], gap_s: float, after_s: float, min_liquidations: int = 2
) -> list[MarketWindow]:
    """The liquidation cascades of a market log: runs of events less than ``gap_s`` apart with
    at least ``min_liquidations`` crowd liquidations, each from its first event to ``after_s``
    after its last, the largest (most liquidations) first."""
    runs: list[list[dict[str, Any]]] = []
    for event in sorted(events, key=lambda e: int(e["time_ms"])):
        if runs and int(event["time_ms"]) - int(runs[-1][-1]["time_ms"]) <= gap_s * 1000.0:
            runs[-1].append(event)
        else:
            runs.append([event])
    windows = []
    for run in runs:
        liquidations = sum(int(e["liquidations"]) for e in run)
        if liquidations < min_liquidations:
            continue
        first, last = int(run[0]["time_ms"]), int(run[-1]["time_ms"])
        mids = [float(c["mid"]) for e in run for c in e["coins"].values() if "mid" in c]
        move = (
            f", mid from {mids[0]:.2f} to a {'low' if min(mids) < mids[0] else 'high'} of "
            f"{(min(mids) if min(mids) < mids[0] else max(mids)):.2f}"
            if mids
            else ""
        )
        detail = (
            f"{liquidations} crowd liquidations and {sum(map(forced_volume, run)):.1f} base "
            f"units of forced orders over {(last - first) / 1000:g} s{move}; the window runs "
            f"{after_s:g} s past the last forced order"
        )
        windows.append(
            (
                liquidations,
                MarketWindow("liquidation cascade", first, last + round(after_s * 1000), detail),
            )
        )
    windows.sort(key=lambda w: -w[0])
    return [w for _, w in windows]


def interventions_by_window(
    decisions: Sequence[Any], window: MarketWindow
) -> tuple[Counter[str], Counter[str]]:
    """The limiter's counts by reason (the decision rows' ``reasons``) in ``window`` and outside
    it, by the decisions' ``venue_time_ms``."""
    inside: Counter[str] = Counter()
    outside: Counter[str] = Counter()
    for d in decisions:
        t = d.payload.get("venue_time_ms")
        reasons = d.payload.get("reasons") or {}
        if not isinstance(t, int) or not isinstance(reasons, dict):
            continue
        target = inside if window.holds(t) else outside
        for reason, n in reasons.items():
            if isinstance(n, int | float) and n:
                target[str(reason)] += int(n)
    return inside, outside
