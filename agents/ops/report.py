"""The report of a live session, read only from its journal: ``session.md`` and its PNG plots.

:func:`write_session_report` reads the journal (read-only: a running session can keep writing
it) and writes, into one folder:

- ``session.md``: a summary, the equity and inventory timeline, the PnL decomposition with its
  definitions and its check against the equity change, the fills, the markouts at 1, 10 and
  60 s, the RiskLimiter's interventions by reason, decision latency (when the journal holds
  it) and the incidents (risk transitions, connection changes, restarts, reconciliations that
  found drift, operator commands, alerts);
- the plots of :data:`PLOTS`, and ``fills.csv`` (every fill with its markouts).

Times on the plots and in the tables are the venue's (the decisions' ``venue_time_ms`` and the
fills' ``time_ms``); an event that carries no venue time (a connection note, a reconciliation,
an operator command) is placed at the venue time of the last decision before it. Money is in
the venue's quote currency (USDC on Hyperliquid), sizes in base units. Every table goes through
:func:`mmgym.markdown.table`; means and intervals use :mod:`agents.metrics`, as the evaluation
harness does. The plots import matplotlib when they are drawn (the ``train`` extra), and the
Student's t intervals scipy.
"""

from __future__ import annotations

import bisect
import csv
import json
import math
import sqlite3
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from agents.live.journal import SCHEMA_VERSION, Event, Journal, JournalError, Kind
from agents.metrics import max_drawdown, mean_confidence_interval
from agents.ops.market_log import MarketWindow, interventions_by_window
from agents.ops.pnl import (  # the readers of journal payloads are shared
    COMPONENTS,
    PnlAccumulator,
    PnlDecomposition,
    _int,
    _mapping,
    _num,
)
from mmgym.extras import extra_needed
from mmgym.markdown import table

REPORT = "session.md"
"""The report's file name in its folder."""
FILLS_CSV = "fills.csv"
"""Every fill of the journal, with its spread capture and markouts."""
PLOTS = {
    "timeline": "timeline.png",
    "pnl": "pnl_decomposition.png",
    "markouts": "markouts.png",
    "interventions": "interventions.png",
}
"""The report's PNG plots, in its folder."""
MARKOUT_HORIZONS_S = (1, 10, 60)
"""Markout horizons (s of venue time)."""
LATENCY_FIELD = "latency_ms"
"""A decision row's latency (ms on the host's clock), when the runner journals it: a number,
or a mapping of stage name to ms."""
MODES = ("ACTIVE", "REDUCING", "HALTED")
MODE_COLOURS = {"ACTIVE": "#e5f5e0", "REDUCING": "#fee391", "HALTED": "#fc9272"}
INCIDENT_STYLES = {
    "connection lost": ("#d62728", "-"),
    "reconnected": ("#2ca02c", "--"),
    "reconcile drift": ("#ff7f0e", ":"),
    "operator command": ("#9467bd", "-."),
    "restart": ("#000000", "-"),
    "alert": ("#e377c2", (0, (1, 1))),
}
"""How the timeline marks each kind of incident (colour, line style)."""

# --- reading ------------------------------------------------------------------------------------


@dataclass
class Session:
    """A journal's rows, by kind (each list in seq order)."""

    path: Path
    meta: dict[str, str]
    events: list[Event]
    decisions: list[Event] = field(default_factory=list)
    fills: list[Event] = field(default_factory=list)
    funding: list[Event] = field(default_factory=list)
    transitions: list[Event] = field(default_factory=list)
    notes: list[Event] = field(default_factory=list)
    reconciles: list[Event] = field(default_factory=list)
    commands: list[Event] = field(default_factory=list)
    alerts: list[Event] = field(default_factory=list)

    def __post_init__(self) -> None:
        events, self.events = self.events, []
        self._decision_seqs: list[int] = []
        self._index: dict[int, int] = {}
        self.epoch_ms: int | None = None
        """The episode's start on the venue's clock (the runner's ``episode_start`` note)."""
        self.extend(events)

    def extend(self, events: Sequence[Event]) -> None:
        """Append rows read after the last one (a session read incrementally, by seq)."""
        lists = {
            Kind.DECISION: self.decisions,
            Kind.FILL: self.fills,
            Kind.FUNDING: self.funding,
            Kind.RISK_TRANSITION: self.transitions,
            Kind.NOTE: self.notes,
            Kind.RECONCILE: self.reconciles,
            Kind.OPERATOR_COMMAND: self.commands,
            Kind.ALERT: self.alerts,
        }
        for event in events:
            self._index[event.seq] = len(self.events)
            self.events.append(event)
            target = lists.get(event.kind)
            if target is not None:
                target.append(event)
            if event.kind is Kind.DECISION:
                self._decision_seqs.append(event.seq)
            elif self.epoch_ms is None and event.kind is Kind.NOTE:
                self.epoch_ms = _int(event.payload.get("epoch_ms"))

    @property
    def coins(self) -> tuple[str, ...]:
        """The perps' coins: those the decisions hold mids of, in order of first appearance."""
        seen: dict[str, None] = {}
        for d in self.decisions:
            seen.update(dict.fromkeys(_mapping(d.payload.get("mids"))))
        return tuple(seen)

    def venue_ms(self, event: Event) -> int | None:
        """The venue time of the last decision before ``event`` (of the first one after it
        when there is none before)."""
        i = bisect.bisect_left(self._decision_seqs, event.seq)
        for k in (i - 1, i):
            if 0 <= k < len(self.decisions):
                return _int(self.decisions[k].payload.get("venue_time_ms"))
        return None

    def transition_ms(self, event: Event) -> int | None:
        """The venue time of a ``risk_transition`` row: that of the decision journaled with it
        (the next row after the transitions of the same batch), else the limiter's time
        (``time_s`` after the episode's start), else the last decision's before it (a
        transition journaled outside a decision, e.g. on a lost stream)."""
        i = self._index[event.seq] + 1
        while i < len(self.events) and self.events[i].kind is Kind.RISK_TRANSITION:
            i += 1
        if i < len(self.events) and self.events[i].kind is Kind.DECISION:
            return _int(self.events[i].payload.get("venue_time_ms"))
        time_s = _num(event.payload.get("time_s"))
        if time_s is not None and self.epoch_ms is not None:
            return self.epoch_ms + round(time_s * 1000.0)
        return self.venue_ms(event)


def open_read_only(journal_path: str | Path) -> Journal:
    """The journal at ``journal_path``, opened read-only (a running session can keep writing
    it): read it with ``events(since_seq)``, then ``close()``. Raises :class:`JournalError`
    naming the file when it is missing, not an SQLite database, not an mmgym journal or of
    another schema version."""
    path = Path(journal_path)
    if not path.exists():
        raise JournalError(f"{path}: no such file")
    if not path.is_file():
        raise JournalError(f"{path} is not a file")
    try:
        with path.open("rb") as f:
            head = f.read(16)
    except OSError as e:
        raise JournalError(f"{path}: cannot read it ({e})") from e
    if head != b"SQLite format 3\x00":
        raise JournalError(f"{path} is not a journal (not an SQLite database)")
    try:
        db = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False
        )
    except sqlite3.Error as e:
        raise JournalError(f"{path}: cannot open it read-only ({e})") from e
    journal = Journal(path, db, lambda: 0)
    try:
        try:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as e:
            raise JournalError(f"{path} is not a readable SQLite database ({e})") from e
        if not {"meta", "events"} <= tables:
            raise JournalError(
                f"{path} is an SQLite database but not an mmgym journal (tables {sorted(tables)})"
            )
        version = journal.meta().get("schema_version")
        if version != str(SCHEMA_VERSION):
            raise JournalError(
                f"journal {path} has schema version {version}, this mmgym reads version "
                f"{SCHEMA_VERSION}"
            )
    except BaseException:
        journal.close()
        raise
    return journal


def read_session(journal_path: str | Path) -> Session:
    """The journal at ``journal_path``, read whole (:func:`open_read_only`)."""
    with open_read_only(journal_path) as journal:
        return Session(journal.path, journal.meta(), list(journal.events()))


# --- the numbers --------------------------------------------------------------------------------


def decompose(session: Session) -> PnlDecomposition | None:
    """The PnL decomposition of ``session`` (None: no decision has a known equity): its rows
    through :class:`~agents.ops.pnl.PnlAccumulator`, as the live metrics feed them."""
    return PnlAccumulator(session.coins).add_all(session.events).decomposition()


def _mid_series(decisions: Sequence[Event], coins: Sequence[str]) -> dict[int, dict[str, float]]:
    """Each decision's mid per coin: its own, else the last known one, else the first known
    one, else its mark (so the decomposition always has a finite reference price)."""
    out: dict[int, dict[str, float]] = {d.seq: {} for d in decisions}
    for coin in coins:
        raw = [_num(_mapping(d.payload.get("mids")).get(coin)) for d in decisions]
        marks = [_num(_mapping(d.payload.get("marks")).get(coin)) for d in decisions]
        known = [x for x in raw if x is not None] or [x for x in marks if x is not None] or [0.0]
        last = known[0]
        for d, x in zip(decisions, raw, strict=True):
            last = x if x is not None else last
            out[d.seq][coin] = last
    return out


@dataclass(frozen=True)
class Markout:
    """The markouts of the perps' fills at one horizon (quote currency per unit filled)."""

    horizon_s: float
    n: int
    mean: float
    low: float
    high: float
    total: float
    """Size-weighted sum over the fills (quote currency)."""


def fill_markouts(session: Session) -> dict[int, dict[float, float | None]]:
    """Per fill (by seq), per horizon of :data:`MARKOUT_HORIZONS_S`: side x (mid after - fill
    price), the mid of the first decision at or after the fill's venue time plus the horizon
    that knows the coin's mid (None: the journal ends before, or a hedge coin's fill)."""
    timed = sorted(
        (
            (t, d.payload)
            for d in session.decisions
            if (t := _int(d.payload.get("venue_time_ms"))) is not None
        ),
        key=lambda x: x[0],  # decisions of one venue time (wall pacing) keep journal order
    )
    times = [t for t, _ in timed]
    out: dict[int, dict[float, float | None]] = {}
    for fill in session.fills:
        p = fill.payload
        coin, px = str(p["coin"]), float(p["px"])
        side = 1.0 if p["is_buy"] else -1.0
        at = _int(p.get("time_ms"))
        values: dict[float, float | None] = {}
        for h in MARKOUT_HORIZONS_S:
            values[h] = None
            if at is None:
                continue
            for _, decision in timed[bisect.bisect_left(times, at + int(h * 1000)) :]:
                later = _num(_mapping(decision.get("mids")).get(coin))
                if later is not None:
                    values[h] = side * (later - px)
                    break
        out[fill.seq] = values
    return out


def markout_summary(
    session: Session, per_fill: Mapping[int, Mapping[float, float | None]]
) -> list[Markout]:
    """Mean and 95 % Student's t interval of the fills' markouts at each horizon."""
    sizes = {f.seq: float(f.payload["sz"]) for f in session.fills}
    rows = []
    for h in MARKOUT_HORIZONS_S:
        pairs = [(v[h], sizes[seq]) for seq, v in per_fill.items() if v[h] is not None]
        values = [float(x) for x, _ in pairs if x is not None]
        if values:
            mean, low, high = mean_confidence_interval(values)
        else:
            mean = low = high = math.nan
        total = math.fsum(float(x) * sz for x, sz in pairs if x is not None)
        rows.append(Markout(float(h), len(values), mean, low, high, total))
    return rows


def interventions(session: Session) -> tuple[Counter[str], Counter[str]]:
    """The limiter's counts by reason summed over the decisions, and how many decisions had
    each reason."""
    counts: Counter[str] = Counter()
    decisions: Counter[str] = Counter()
    for d in session.decisions:
        for reason, n in _mapping(d.payload.get("reasons")).items():
            if isinstance(n, int | float) and n:
                counts[str(reason)] += int(n)
                decisions[str(reason)] += 1
    return counts, decisions


def latencies(session: Session) -> dict[str, list[float]]:
    """The decisions' latencies (ms) by stage (``total`` for a plain number); empty when the
    journal holds none."""
    out: dict[str, list[float]] = {}
    for d in session.decisions:
        value = d.payload.get(LATENCY_FIELD)
        stages = value if isinstance(value, Mapping) else {"total": value}
        for stage, ms in stages.items():
            x = _num(ms)
            if x is not None:
                out.setdefault(str(stage), []).append(x)
    return out


@dataclass(frozen=True)
class Incident:
    """Something the timeline marks: its kind (:data:`INCIDENT_STYLES`), venue and host
    times and what happened."""

    kind: str
    seq: int
    venue_ms: int | None
    host_ms: int
    detail: str


def incidents(session: Session) -> list[Incident]:
    """Connection changes, restarts, reconciliations that found drift, operator commands and
    alerts (their ``firing`` rows, reminders included, and ``resolved`` rows), in seq order."""
    out = []
    starts = [n for n in session.notes if n.payload.get("event") == "start"]
    for note in session.notes:
        p = note.payload
        if p.get("event") == "connection":
            kind = "reconnected" if p.get("connected") else "connection lost"
            out.append(_incident(session, kind, note, str(p.get("why") or "")))
    for note in starts[1:]:
        detail = (
            f"recovered to seq {note.payload.get('recovered_seq')}, "
            f"{note.payload.get('open_orders')} open order(s)"
        )
        out.append(_incident(session, "restart", note, detail))
    for r in session.reconciles:
        if _drift(r.payload):
            out.append(_incident(session, "reconcile drift", r, _drift_text(r.payload)))
    for c in session.commands:
        out.append(_incident(session, "operator command", c, _command_text(c.payload)))
    for a in session.alerts:
        out.append(_incident(session, "alert", a, _alert_text(a.payload)))
    return sorted(out, key=lambda i: i.seq)


def _incident(session: Session, kind: str, event: Event, detail: str) -> Incident:
    return Incident(kind, event.seq, session.venue_ms(event), event.time_ms, detail)


def _drift(p: Mapping[str, Any]) -> bool:
    return bool(p.get("imported_tids") or p.get("orphans_canceled") or p.get("position_drift"))


def _drift_text(p: Mapping[str, Any]) -> str:
    parts = []
    if p.get("imported_tids"):
        parts.append(f"{len(p['imported_tids'])} missed fill(s) imported")
    if p.get("orphans_canceled"):
        parts.append(f"{len(p['orphans_canceled'])} orphan order(s) canceled")
    for d in p.get("position_drift") or ():
        if isinstance(d, Mapping):
            parts.append(
                f"{d.get('coin')} position {d.get('local')} here, {d.get('venue')} at the venue"
            )
    return "; ".join(parts)


def _alert_text(p: Mapping[str, Any]) -> str:
    state = str(p.get("state", "?")) + (" (reminder)" if p.get("repeat") else "")
    text = f"{p.get('rule')} {state}, {p.get('severity')}, action {p.get('action')}"
    message = p.get("message")
    suppressed = p.get("suppressed")
    if message:
        text += f": {message}"
    if isinstance(suppressed, int) and suppressed:
        text += f" ({suppressed} more not sent)"
    return text


def _command_text(p: Mapping[str, Any]) -> str:
    rest = {k: v for k, v in p.items() if k != "command"}
    text = str(p.get("command", "?"))
    return f"{text} {json.dumps(rest, sort_keys=True)}" if rest else text


def risk_segments(session: Session) -> list[tuple[str, int, int]]:
    """(mode, start venue ms, end venue ms) from the ``risk_transition`` rows: the mode before
    the first is its ``from`` (else the first decision's mode); each takes effect at its
    :meth:`Session.transition_ms`."""
    times = [
        t for d in session.decisions if (t := _int(d.payload.get("venue_time_ms"))) is not None
    ]
    if not times:
        return []
    start, end = min(times), max(times)
    mode = str(
        session.transitions[0].payload.get("from")
        if session.transitions
        else session.decisions[0].payload.get("mode", "ACTIVE")
    )
    segments = []
    for transition in session.transitions:
        at = session.transition_ms(transition)
        if at is None:
            continue
        at = min(max(at, start), end)
        if at > start:
            segments.append((mode, start, at))
            start = at
        mode = str(transition.payload.get("to"))
    segments.append((mode, start, end))
    return segments


# --- the report ----------------------------------------------------------------------------------


def write_session_report(
    journal_path: str | Path, out_dir: str | Path, windows: Sequence[MarketWindow] = ()
) -> Path:
    """Write ``out_dir/session.md``, its plots (:data:`PLOTS`) and ``fills.csv`` from the journal
    at ``journal_path`` (opened read-only); returns the markdown file's path. ``windows``: spans
    of venue time to mark on the timeline and count the limiter's interventions in (a paper
    exchange's liquidation cascades, :mod:`agents.ops.market_log`)."""
    session = read_session(journal_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    decomposition = decompose(session)
    per_fill = fill_markouts(session)
    markouts = markout_summary(session, per_fill)
    counts, with_reason = interventions(session)
    found = incidents(session)
    segments = risk_segments(session)
    _write_fills_csv(session, decomposition, per_fill, out / FILLS_CSV)
    plot_timeline(session, segments, found, out / PLOTS["timeline"], windows)
    plot_decomposition(decomposition, out / PLOTS["pnl"])
    plot_markouts(markouts, out / PLOTS["markouts"])
    plot_interventions(counts, out / PLOTS["interventions"])
    text = markdown(session, decomposition, markouts, counts, with_reason, found, segments, windows)
    path = out / REPORT
    path.write_text(text)
    return path


def markdown(
    session: Session,
    decomposition: PnlDecomposition | None,
    markouts: Sequence[Markout],
    counts: Mapping[str, int],
    with_reason: Mapping[str, int],
    found: Sequence[Incident],
    segments: Sequence[tuple[str, int, int]],
    windows: Sequence[MarketWindow] = (),
) -> str:
    """The whole ``session.md``."""
    lines = [f"# Session report: {session.path.name}", "", _intro(session), ""]
    lines += [_summary_table(session, decomposition, segments), ""]
    lines += [
        "## Timeline",
        "",
        "Equity (quote currency) and each coin's position (base units) at every decision, on "
        "the venue's clock. Shaded: the risk state (ACTIVE, REDUCING, HALTED) from the "
        "`risk_transition` rows; vertical lines: incidents (connection lost or back, restarts, "
        "reconciliations that found drift, operator commands, alerts firing or resolved; each "
        "at the venue time of the decision before it).",
        "",
        f"![timeline]({PLOTS['timeline']})",
        "",
    ]
    lines += _pnl_section(decomposition)
    lines += _fills_section(session)
    lines += _markout_section(markouts)
    lines += _interventions_section(session, counts, with_reason)
    lines += _windows_section(session, windows)
    lines += _latency_section(session)
    lines += _incidents_section(session, found)
    return "\n".join(lines).rstrip() + "\n"


def _intro(session: Session) -> str:
    meta = session.meta
    venue_times = [
        t for d in session.decisions if (t := _int(d.payload.get("venue_time_ms"))) is not None
    ]
    whose = ", ".join(
        f"{label} `{meta[key]}`"
        for key, label in (
            ("account_address", "account"),
            ("venue_url", "venue"),
            ("bundle_sha", "bundle"),
        )
        if meta.get(key)
    )
    span = (
        f"from {_utc(min(venue_times))} to {_utc(max(venue_times))} venue time "
        f"({(max(venue_times) - min(venue_times)) / 1000:g} s)"
        if venue_times
        else "(no decision carries a venue time)"
    )
    host = (
        f"; written from {_utc(session.events[0].time_ms)} to {_utc(session.events[-1].time_ms)} "
        "host time"
        if session.events
        else ""
    )
    return (
        f"Journal `{session.path}`" + (f" ({whose})" if whose else "") + f": "
        f"{len(session.events)} rows, {len(session.decisions)} decisions {span}{host}. Every "
        "number below is read from the journal; money is in the venue's quote currency (USDC "
        "on Hyperliquid), sizes in the coin's base units, times in UTC."
    )


def _summary_table(
    session: Session,
    decomposition: PnlDecomposition | None,
    segments: Sequence[tuple[str, int, int]],
) -> str:
    equity = [x for d in session.decisions if (x := _num(d.payload.get("equity"))) is not None]
    rows: list[list[object]] = [["decisions", len(session.decisions), "decisions"]]
    if decomposition is not None:
        rows += [
            ["equity at the first decision", _q(decomposition.equity_start), "quote"],
            ["equity at the last decision", _q(decomposition.equity_end), "quote"],
            ["equity change", _q(decomposition.change), "quote"],
            ["max drawdown of equity", _q(max_drawdown(np.diff(equity))), "quote"],
        ]
    volume = math.fsum(float(f.payload["sz"]) * float(f.payload["px"]) for f in session.fills)
    rows += [
        ["fills", len(session.fills), "fills"],
        ["traded notional", _q(volume), "quote"],
        ["funding payments", len(session.funding), "payments"],
        ["risk transitions", len(session.transitions), "transitions"],
    ]
    total = sum(end - start for _, start, end in segments)
    for mode in MODES:
        spent = sum(end - start for m, start, end in segments if m == mode)
        share = f" ({100.0 * spent / total:.1f} %)" if total else ""
        rows.append([f"time {mode}", f"{spent / 1000:g} s{share}", "s of venue time"])
    return table(["quantity", "value", "unit"], rows, "lrl")


def _pnl_section(d: PnlDecomposition | None) -> list[str]:
    lines = ["## PnL decomposition", ""]
    if d is None:
        return [*lines, "No decision of the journal has a known equity: nothing to decompose.", ""]
    lines += [
        f"The equity change from the first decision ({_utc(d.start_ms)}) to the last "
        f"({_utc(d.end_ms)}), quote currency, in parts. Equity is the journaled one: the "
        "session's collateral plus the cash of the fills and funding payments plus the perps' "
        "positions at their marks. The components, over the fills and funding payments "
        "journaled between the two decisions:",
        "",
    ]
    lines += [f"- **{label}**: {text}." for label, text in COMPONENTS.values()]
    rows: list[list[object]] = [
        [COMPONENTS[name][0], _q(value)] for name, value in d.components.items()
    ]
    rows += [
        ["sum of the components", _q(d.total)],
        ["equity change (last - first decision)", _q(d.change)],
        ["unexplained (change - sum)", f"{d.residual:.2g}"],
    ]
    lines += ["", table(["component", "PnL (quote)"], rows, "lr"), ""]
    verdict = (
        f"The components sum to the equity change within {abs(d.residual):.2g} quote (rounding)."
        if abs(d.residual) <= 1e-6
        else f"**The components miss the equity change by {d.residual:.6g} quote**: the "
        "journal's cash or positions disagree with its fill and funding rows."
    )
    lines += [verdict]
    if d.outside_fills:
        lines += [
            "",
            f"{d.outside_fills} fill(s) fall before the first decision or after the last (e.g. "
            "the cancels on exit) and are in neither equity.",
        ]
    if d.other_coins:
        lines += [
            "",
            f"Fills or funding on {', '.join(d.other_coins)} (neither a perp of the decisions "
            "nor a hedge coin) are in the equity change and in no component.",
        ]
    return [*lines, "", f"![PnL decomposition]({PLOTS['pnl']})", ""]


def _fills_section(session: Session) -> list[str]:
    lines = ["## Fills", ""]
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for f in session.fills:
        side = "buy" if f.payload["is_buy"] else "sell"
        groups.setdefault((str(f.payload["coin"]), side), []).append(f.payload)
    header = [
        "coin", "side", "fills", "size (base units)", "notional (quote)",
        "VWAP (quote/unit)", "fees (quote)", "liquidations (fills)",
    ]  # fmt: skip
    rows = [_fill_row(coin, side, ps) for (coin, side), ps in sorted(groups.items())]
    rows.append(_fill_row("all", "", [f.payload for f in session.fills]))
    lines += [table(header, rows, "llrrrrrr"), ""]
    lines += [f"Every fill with its spread capture and markouts: [{FILLS_CSV}]({FILLS_CSV}).", ""]
    by_coin: dict[str, list[float]] = {}
    for p in session.funding:
        by_coin.setdefault(str(p.payload["coin"]), []).append(float(p.payload["usdc"]))
    if by_coin:
        funding_rows = [[coin, len(xs), _q(math.fsum(xs))] for coin, xs in sorted(by_coin.items())]
        lines += [
            "Funding payments (received positive):",
            "",
            table(["coin", "payments", "total (quote)"], funding_rows, "lrr"),
            "",
        ]
    else:
        lines += ["The journal holds no funding payment.", ""]
    return lines


def _fill_row(coin: str, side: str, fills: Sequence[Mapping[str, Any]]) -> list[object]:
    size = math.fsum(float(p["sz"]) for p in fills)
    notional = math.fsum(float(p["sz"]) * float(p["px"]) for p in fills)
    fees = math.fsum(float(p["fee"]) for p in fills)
    liquidations = sum(bool(p.get("liquidation")) for p in fills)
    vwap = _fmt(notional / size) if size else "n/a"
    return [coin, side, len(fills), _fmt(size), _q(notional), vwap, _q(fees), liquidations]


def _markout_section(markouts: Sequence[Markout]) -> list[str]:
    header = [
        "horizon (s)", "fills (n)", "mean (quote/unit)", "95 % CI (quote/unit)",
        "size-weighted total (quote)",
    ]  # fmt: skip
    rows = [
        [f"{m.horizon_s:g}", m.n, _fmt(m.mean), _ci(m.low, m.high), _q(m.total)] for m in markouts
    ]
    return [
        "## Markouts",
        "",
        "Per fill of a perp: side x (mid after - fill price), side +1 for a buy and -1 for a "
        "sell, the mid after being that of the first decision at or after the fill's venue "
        "time plus the horizon; negative means adverse selection. Mean over fills with its 95 % "
        "Student's t interval (n - 1 degrees of freedom; none for fewer than two fills), and "
        "the sum weighted by the fills' sizes. Fills too close to the journal's end for a "
        "horizon are left out of it (n).",
        "",
        table(header, rows, "rrrrr"),
        "",
        f"![markouts]({PLOTS['markouts']})",
        "",
    ]


def _interventions_section(
    session: Session, counts: Mapping[str, int], with_reason: Mapping[str, int]
) -> list[str]:
    lines = ["## Limiter interventions", ""]
    if not counts:
        return [
            *lines,
            f"The RiskLimiter reported no reason in any of the {len(session.decisions)} decisions.",
            "",
            f"![interventions]({PLOTS['interventions']})",
            "",
        ]
    meaning = _reason_descriptions()
    rows = [
        [reason, n, with_reason[reason], meaning.get(reason, "")]
        for reason, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    rows.append(["all", sum(counts.values()), "", ""])
    lines += [
        "The decision rows' `reasons` (the RiskLimiter's and the guard's counts: orders denied "
        f"or clipped, checks that acted) summed over the {len(session.decisions)} decisions.",
        "",
        table(["reason", "count", "decisions with it", "meaning"], rows, "lrrl"),
        "",
        f"![interventions]({PLOTS['interventions']})",
        "",
    ]
    return lines


def _windows_section(session: Session, windows: Sequence[MarketWindow]) -> list[str]:
    """Each window's span and the limiter's interventions in it and outside it."""
    if not windows:
        return []
    origin = _int(session.decisions[0].payload.get("venue_time_ms")) if session.decisions else None
    lines = [
        "## Market events",
        "",
        "Spans of venue time the venue reported (hatched on the timeline), with the decision "
        "rows' `reasons` summed inside each span and outside it.",
        "",
    ]
    for w in windows:
        inside, outside = interventions_by_window(session.decisions, w)
        since = (
            f" ({(w.start_ms - origin) / 1000:g} s to {(w.end_ms - origin) / 1000:g} s after the "
            "first decision)"
            if origin is not None
            else ""
        )
        held = [d for d in session.decisions if w.holds(_int(d.payload.get("venue_time_ms")) or -1)]
        rows: list[list[object]] = [
            [reason, inside[reason], outside[reason]]
            for reason in sorted(inside | outside, key=lambda r: (-inside[r], -outside[r], r))
        ]
        rows.append(["all", sum(inside.values()), sum(outside.values())])
        lines += [
            f"### {w.name}: {_utc(w.start_ms)} to {_utc(w.end_ms)}{since}",
            "",
            f"{w.detail}. {len(held)} of the {len(session.decisions)} decisions fall in it.",
            "",
            table(["reason", "in the window", "outside it"], rows, "lrr"),
            "",
        ]
    return lines


def _reason_descriptions() -> dict[str, str]:
    try:  # the limiter's package (numba); a report without descriptions is still a report
        from agents.deploy.risk.reasons import Reason
    except ImportError:
        return {}
    return {r.name: r.description for r in Reason}


def _latency_section(session: Session) -> list[str]:
    lines = ["## Latency", ""]
    stages = latencies(session)
    if not stages:
        return [
            *lines,
            f"The journal's decision rows carry no latency (`{LATENCY_FIELD}`): nothing to report.",
            "",
        ]
    rows = []
    for stage, values in stages.items():
        p50, p90, p99 = np.percentile(values, [50, 90, 99])
        rows.append([stage, len(values), _fmt(p50), _fmt(p90), _fmt(p99), _fmt(max(values))])
    header = ["stage", "decisions", "p50 (ms)", "p90 (ms)", "p99 (ms)", "max (ms)"]
    return [
        *lines,
        f"Per decision, from the decision rows' `{LATENCY_FIELD}` (host clock):",
        "",
        table(header, rows, "lrrrrr"),
        "",
    ]


def _incidents_section(session: Session, found: Sequence[Incident]) -> list[str]:
    lines = ["## Incidents", "", "### Risk transitions", ""]
    if session.transitions:
        rows = []
        for row in session.transitions:
            p = row.payload
            at = session.transition_ms(row)
            market = _num(p.get("time_s"))
            rows.append(
                [row.seq, _utc(at), "n/a" if market is None else f"{market:g}", p.get("from", ""),
                 p.get("to", ""), p.get("reason", ""), p.get("operator") or ""]
            )  # fmt: skip
        header = [
            "seq", "venue time (UTC)", "market time (s)", "from", "to", "reason", "operator",
        ]  # fmt: skip
        lines += [
            "Each at the venue time of the decision journaled with it; one journaled outside "
            "a decision (a lost stream's) at the limiter's market time after the episode's "
            "start, or else at the decision before it. Market time is the limiter's clock (s "
            "since the episode's start).",
            "",
            table(header, rows, "rlrllll"),
            "",
        ]
    else:
        lines += ["None.", ""]
    groups = (
        ("Connection", ("connection lost", "reconnected")),
        ("Restarts", ("restart",)),
        ("Reconciliation drift", ("reconcile drift",)),
        ("Operator commands", ("operator command",)),
        ("Alerts", ("alert",)),
    )
    for title, kinds in groups:
        mine = [i for i in found if i.kind in kinds]
        lines += [f"### {title}", ""]
        if title == "Reconciliation drift":
            lines += [
                f"{len(session.reconciles)} reconciliation(s) with the venue, {len(mine)} "
                "found something out of step.",
                "",
            ]
        if not mine:
            lines += ["None.", ""]
            continue
        rows = [[i.seq, _utc(i.venue_ms), _utc(i.host_ms), i.kind, i.detail] for i in mine]
        header = ["seq", "venue time (UTC)", "host time (UTC)", "what", "detail"]
        lines += [table(header, rows, "rllll"), ""]
    return lines


def _write_fills_csv(
    session: Session,
    decomposition: PnlDecomposition | None,
    per_fill: Mapping[int, Mapping[float, float | None]],
    path: Path,
) -> None:
    mids = _mid_series(session.decisions, session.coins)
    seqs = [d.seq for d in session.decisions]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["seq", "tid", "venue_time_utc", "coin", "side", "px", "sz", "fee", "liquidation",
             "spread_capture_quote", *(f"markout_{h}s_quote_per_unit" for h in MARKOUT_HORIZONS_S)]
        )  # fmt: skip
        for fill in session.fills:
            p = fill.payload
            i = bisect.bisect_left(seqs, fill.seq) - 1
            coin = str(p["coin"])
            signed = float(p["sz"]) if p["is_buy"] else -float(p["sz"])
            before = mids[seqs[i]].get(coin) if i >= 0 else None
            spread = "" if before is None else repr(signed * (before - float(p["px"])))
            marks = [per_fill[fill.seq][h] for h in MARKOUT_HORIZONS_S]
            writer.writerow(
                [fill.seq, fill.tid, _utc(_int(p.get("time_ms"))), coin,
                 "buy" if p["is_buy"] else "sell", p["px"], p["sz"], p["fee"],
                 bool(p.get("liquidation")), spread, *("" if m is None else repr(m) for m in marks)]
            )  # fmt: skip


# --- plots ------------------------------------------------------------------------------------


def _pyplot() -> Any:
    with extra_needed("agents.ops.report"):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    return plt


def _save(fig: Any, title: str, path: Path) -> Path:
    plt = _pyplot()
    fig.suptitle(title, fontsize=11)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_timeline(
    session: Session,
    segments: Sequence[tuple[str, int, int]],
    found: Sequence[Incident],
    path: Path,
    windows: Sequence[MarketWindow] = (),
) -> Path:
    """Equity and positions against venue time, risk-state bands, incident lines, ``windows``
    hatched."""
    plt = _pyplot()
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6.4), sharex=True, layout="constrained")
    timed = [
        (t, d.payload)
        for d in session.decisions
        if (t := _int(d.payload.get("venue_time_ms"))) is not None
    ]
    origin = timed[0][0] if timed else 0
    x = np.array([(t - origin) / 1000.0 for t, _ in timed])
    equity = np.array([_num(p.get("equity")) or np.nan for _, p in timed], dtype=float)
    top.plot(x, equity, color="#1f4e79", lw=1.2)
    top.set_ylabel("equity (quote)")
    top.ticklabel_format(axis="y", useOffset=False, style="plain")
    coins: dict[str, None] = dict.fromkeys(session.coins)
    for _, p in timed:
        coins.update(dict.fromkeys(_mapping(p.get("positions"))))
    for coin in coins:
        q = [_num(_mapping(p.get("positions")).get(coin)) or 0.0 for _, p in timed]
        bottom.step(x, q, where="post", lw=1.0, label=coin)
    bottom.axhline(0.0, color="#9a9a9a", lw=0.6)
    bottom.set_ylabel("position (base units)")
    bottom.set_xlabel(f"venue time since {_utc(origin) if timed else 'the start'} (s)")
    handles: list[Any] = [
        Line2D([], [], color=line.get_color(), label=f"position {line.get_label()}")
        for line in bottom.get_lines()[: len(coins)]
    ]
    for mode, start, end in segments:
        for ax in (top, bottom):
            ax.axvspan(
                (start - origin) / 1000.0,
                (end - origin) / 1000.0,
                color=MODE_COLOURS.get(mode, "#dddddd"),
                alpha=0.6,
                lw=0,
            )
    handles += [Patch(color=MODE_COLOURS[m], label=m) for m in MODES]
    for w in windows:
        for ax in (top, bottom):
            ax.axvspan(
                (w.start_ms - origin) / 1000.0,
                (w.end_ms - origin) / 1000.0,
                facecolor="none",
                edgecolor="#555555",
                hatch="//",
                lw=0.8,
            )
    names = list(dict.fromkeys(w.name for w in windows))
    handles += [Patch(facecolor="none", edgecolor="#555555", hatch="//", label=n) for n in names]
    kinds_seen = []
    for incident in found:
        if incident.venue_ms is None:
            continue
        colour, style = INCIDENT_STYLES[incident.kind]
        for ax in (top, bottom):
            ax.axvline((incident.venue_ms - origin) / 1000.0, color=colour, ls=style, lw=1.0)
        if incident.kind not in kinds_seen:
            kinds_seen.append(incident.kind)
    handles += [
        Line2D([], [], color=INCIDENT_STYLES[k][0], ls=INCIDENT_STYLES[k][1], label=k)
        for k in kinds_seen
    ]
    if not timed:
        top.text(0.5, 0.5, "no decision in the journal", ha="center", transform=top.transAxes)
    fig.legend(
        handles=handles, loc="outside lower center", ncols=min(len(handles), 5), fontsize=8,
        frameon=False,
    )  # fmt: skip
    return _save(fig, "Equity and positions, risk state, incidents", path)


def plot_decomposition(d: PnlDecomposition | None, path: Path) -> Path:
    """The PnL components and the equity change as horizontal bars (quote)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4), layout="constrained")
    if d is None:
        ax.text(0.5, 0.5, "no decision with a known equity", ha="center", transform=ax.transAxes)
    else:
        labels = [COMPONENTS[name][0] for name in d.components] + ["equity change"]
        values = [*d.components.values(), d.change]
        colours = ["#2ca02c" if v >= 0 else "#d62728" for v in values[:-1]] + ["#1f4e79"]
        ax.barh(labels, values, color=colours)
        ax.axvline(0.0, color="#555555", lw=0.8)
        ax.invert_yaxis()
        ax.set_xlabel("PnL (quote)")
    return _save(fig, "PnL decomposition (first to last decision)", path)


def plot_markouts(markouts: Sequence[Markout], path: Path) -> Path:
    """Mean markout per horizon with its 95 % interval (quote per unit)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    labels = [f"{m.horizon_s:g} s" for m in markouts]
    means = np.array([m.mean for m in markouts])
    low = np.array([m.mean - m.low if math.isfinite(m.low) else 0.0 for m in markouts])
    high = np.array([m.high - m.mean if math.isfinite(m.high) else 0.0 for m in markouts])
    ax.errorbar(labels, means, yerr=[low, high], fmt="o", color="#1f4e79", capsize=4)
    ax.axhline(0.0, color="#9a9a9a", lw=0.8)
    ax.set_xlabel("horizon")
    ax.set_ylabel("markout (quote per unit filled)")
    return _save(fig, "Markouts of the fills (mean, 95 % CI)", path)


def plot_interventions(counts: Mapping[str, int], path: Path) -> Path:
    """The limiter's counts by reason as horizontal bars."""
    plt = _pyplot()
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.35 * max(len(ordered), 1)), layout="constrained")
    if ordered:
        ax.barh([r for r, _ in ordered], [n for _, n in ordered], color="#6baed6")
        ax.invert_yaxis()
    else:
        ax.text(0.5, 0.5, "no intervention", ha="center", transform=ax.transAxes)
    ax.set_xlabel("count (summed over decisions)")
    return _save(fig, "Limiter interventions by reason", path)


# --- helpers ------------------------------------------------------------------------------------


def _utc(ms: int | None) -> str:
    if ms is None:
        return "n/a"
    return datetime.fromtimestamp(ms / 1000.0, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _fmt(x: float, spec: str = ".6g") -> str:
    return format(x, spec) if math.isfinite(x) else "n/a"


def _q(x: float) -> str:
    """An amount of quote currency: 6 decimals (funding payments are fractions of a cent)."""
    return f"{x:,.6f}" if math.isfinite(x) else "n/a"


def _ci(low: float, high: float) -> str:
    return f"[{_fmt(low)}, {_fmt(high)}]" if math.isfinite(low) else "n/a (n < 2)"
