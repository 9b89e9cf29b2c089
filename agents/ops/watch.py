"""``mmgym-ops watch``: a live dashboard of a running (or finished) session, read from its journal.

The journal (opened read-only, :func:`agents.ops.report.open_read_only`) is the source of
truth: :class:`SessionView` folds its rows and, at each :meth:`SessionView.update`, reads only
the rows appended since the last one (by seq), so a refresh every second stays cheap on a long
session. The rendering is a pure function of a view: :func:`sections` gives the panels as
plain data, :func:`render` as a rich renderable (the terminal dashboard), :func:`plain_text` as
plain-text tables (stdout not a terminal, or ``--plain``).

The panels: equity and the PnL decomposition (:class:`agents.ops.pnl.PnlAccumulator`, fed row
by row: the same as the report's and the live metrics'), positions and exposure per coin (hedge
coins included), open orders (recovery's replay of the intents, acks, order updates and fills:
:class:`agents.live.recovery.Replay`), the risk state with its last transition, alerts
(``alert`` rows), latency percentiles over the last ``window`` decisions (the decision rows'
``latency_ms``), the connection; and a header line. When the runner's control API is
reachable (``url``, or the URL its ``ops_listening`` note journaled, with the operator token
of ``$MMGYM_OPS_TOKEN`` / ``$MMGYM_OPS_TOKEN_FILE``), its ``GET /v1/status`` adds what only
the runner knows (its live risk mode, connection, queued commands, skipped decisions);
without it every panel still shows (docs/operations.md, "Watching a session").

The API (``scripts/paper.py`` shows the dashboard while the runner runs in a subprocess)::

    run_watch(
        journal: str | Path, *, refresh_s: float = 1.0, plain: bool = False,
        once: bool = False, exit_when_done: bool = False,
        stop: threading.Event | None = None, console: rich.console.Console | None = None,
        every_s: float = 10.0, url: str | None = None, window: int = 1000,
        wait_s: float = 0.0,
    ) -> SessionView

It returns after one snapshot (``once``), when ``stop`` is set, or, with ``exit_when_done``,
once the journal shows the runner stopped (its ``stop`` note after its last ``start``);
otherwise it runs until interrupted (KeyboardInterrupt propagates). A terminal console gets
the live dashboard (refreshed every ``refresh_s`` s) unless ``plain``; otherwise a plain-text
summary is printed every ``every_s`` s and once more when it returns. A journal that is
missing or is not a journal (still so after ``wait_s`` s) raises :class:`JournalError` naming
the file.
"""

from __future__ import annotations

import io
import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from agents.live.journal import Event, Journal, JournalError, Kind, wall_clock_ms
from agents.live.recovery import RecoveredOrder, Replay
from agents.ops.pnl import HEDGE_SUFFIX, PnlAccumulator
from agents.ops.report import (
    COMPONENTS,
    LATENCY_FIELD,
    PnlDecomposition,
    Session,
    _int,
    _mapping,
    _num,
    _utc,
    open_read_only,
)
from mmgym.extras import extra_needed

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

ALERT_KIND = "alert"
"""The journal kind of an alert row (``rule``, ``severity``, ``action``, ``state``, ``repeat``,
``incident``, ``value``, ``threshold``, ``unit``, ``message``; a field missing shows blank)."""
STOP_EVENT = "stop"
"""The runner's note at its end (``LiveRunner.run``); ``start`` at each start."""
MAX_ORDERS = 12
MAX_ALERTS = 8
PLAIN_WIDTH = 110
POLL_S = 0.1
"""The longest a wait goes without looking at ``stop``."""


@dataclass(frozen=True)
class Section:
    """One panel as plain data: a title, a table (header, rows of text, each column's
    justification ``l`` or ``r``) and a note under it."""

    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    justify: str
    note: str = ""


class SessionView:
    """A session's state folded from its journal's rows, read incrementally (:meth:`update`).

    Args:
        journal: the journal, opened read-only (:meth:`open`).
        window: latency percentiles over this many last decisions.
        clock_ms: the host's clock (the ages of the last row and of the last transition).
    """

    def __init__(
        self, journal: Journal, *, window: int = 1000, clock_ms: Callable[[], int] = wall_clock_ms
    ) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1 decision, got {window}")
        self.journal = journal
        self.path = journal.path
        self.meta = journal.meta()
        self.window = window
        self._clock_ms = clock_ms
        self.now_ms = clock_ms()
        """The host time of the last :meth:`update` (ages are measured from it)."""
        self.session = Session(self.path, self.meta, [])
        self.replay = Replay(self.path)
        self.coins: dict[str, None] = {}
        self.first_decision: Event | None = None
        self.last_decision: Event | None = None
        self.last_row: Event | None = None
        self.latency: dict[str, deque[float]] = {}
        self.interventions: Counter[str] = Counter()
        self.alerts: list[Event] = []
        self.open_alerts: dict[str, Event] = {}
        """The incidents firing (by ``incident``): their last row (not ``resolved``)."""
        self.connected = True
        self.disconnects = 0
        self.last_connection: Event | None = None
        self.start: Event | None = None
        self.stopped: Event | None = None
        """The ``stop`` note after the last ``start`` (None: the runner is running, or was
        killed)."""
        self.ops_url: str | None = None
        self.pnl = PnlAccumulator(None)
        """The PnL decomposition fed row by row (``add(event)``, ``decomposition()``)."""
        self.status: dict[str, Any] | None = None
        """The runner's ``GET /v1/status`` at the last refresh (None: not asked or no answer)."""
        self.status_note = "not asked"
        """Why there is no status, or where it came from."""

    @classmethod
    def open(cls, path: str | Path, **kwargs: Any) -> SessionView:
        """The view of the journal at ``path`` (read-only), nothing read yet."""
        return cls(open_read_only(path), **kwargs)

    def close(self) -> None:
        self.journal.close()

    def __enter__(self) -> SessionView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def done(self) -> bool:
        """Whether the journal shows the runner stopped (a ``stop`` note after its last start)."""
        return self.stopped is not None

    def update(self) -> int:
        """Read and fold the rows appended since the last update; how many there were."""
        events = list(self.journal.events(self.replay.state.last_seq))
        self.apply(events)
        self.now_ms = self._clock_ms()
        return len(events)

    def apply(self, events: Iterable[Event]) -> None:
        """Fold ``events`` (the rows after the last folded one, in seq order)."""
        events = list(events)
        if not events:
            return
        self.replay.apply(events)
        self.session.extend(events)
        for event in events:
            self._fold(event)
            self.pnl.add(event)
        self.last_row = events[-1]

    @property
    def decomposition(self) -> PnlDecomposition | None:
        """The PnL decomposition so far (:class:`~agents.ops.pnl.PnlAccumulator`, as
        ``report.decompose`` and the live metrics compute it)."""
        return self.pnl.decomposition()

    def _fold(self, event: Event) -> None:
        p = event.payload
        if event.kind is Kind.DECISION:
            if self.first_decision is None:
                self.first_decision = event
            self.last_decision = event
            self.coins.update(dict.fromkeys(_mapping(p.get("mids"))))
            latency = p.get(LATENCY_FIELD)
            stages = latency if isinstance(latency, Mapping) else {"total": latency}
            for stage, ms in stages.items():
                x = _num(ms)
                if x is not None:
                    self.latency.setdefault(str(stage), deque(maxlen=self.window)).append(x)
            for reason, n in _mapping(p.get("reasons")).items():
                if isinstance(n, int | float) and not isinstance(n, bool) and n:
                    self.interventions[str(reason)] += int(n)
        elif event.kind.value == ALERT_KIND:
            self.alerts.append(event)
            incident = str(p.get("incident") or p.get("rule"))
            if p.get("state") == "resolved":
                self.open_alerts.pop(incident, None)
            else:
                self.open_alerts[incident] = event
        elif event.kind is Kind.NOTE:
            what = p.get("event")
            if what == "connection":
                connected = bool(p.get("connected"))
                if self.connected and not connected:
                    self.disconnects += 1
                self.connected = connected
                self.last_connection = event
            elif what == "start":
                self.start, self.stopped, self.connected = event, None, True
            elif what == STOP_EVENT:
                self.stopped = event
            elif what == "ops_listening" and isinstance(p.get("url"), str):
                self.ops_url = p["url"]

    def latency_percentiles(self) -> dict[str, tuple[int, float, float, float]]:
        """Per stage: (n, p50, p99, max) of the last :attr:`window` decisions' latencies (ms)."""
        out = {}
        for stage, values in self.latency.items():
            p50, p99 = np.percentile(np.fromiter(values, float), [50, 99])
            out[stage] = (len(values), float(p50), float(p99), max(values))
        return out


def _money(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:,.4f}"


def _g(x: float | None, spec: str = ".6g") -> str:
    return "n/a" if x is None or not math.isfinite(x) else format(x, spec)


def _age(view: SessionView, ms: int | None) -> str:
    return "n/a" if ms is None else f"{max(view.now_ms - ms, 0) / 1000.0:.1f} s ago"


def header_line(view: SessionView) -> str:
    """The journal, venue, coins, decisions, venue time, staleness and whether it runs."""
    decision = view.last_decision
    venue_ms = None if decision is None else _int(decision.payload.get("venue_time_ms"))
    state = "stopped" if view.done else ("running" if view.start is not None else "not started")
    last = view.last_row
    return (
        f"{view.path} | venue {view.meta.get('venue_url') or 'n/a'} | coins "
        f"{', '.join(view.coins) or 'n/a'} | {len(view.session.decisions)} decisions | venue "
        f"time {_utc(venue_ms)} UTC | last row {_age(view, None if last is None else last.time_ms)}"
        f" | {state}"
    )


def sections(view: SessionView) -> list[Section]:
    """Every panel of ``view``, in the dashboard's order."""
    return [
        _equity(view),
        _positions(view),
        _orders(view),
        _risk(view),
        _alerts(view),
        _latency(view),
        _connection(view),
    ]


def _equity(view: SessionView) -> Section:
    last = view.last_decision
    p = {} if last is None else last.payload
    rows = [
        ("equity (last decision)", _money(_num(p.get("equity")))),
        ("cash (last decision)", _money(_num(p.get("cash")))),
    ]
    d = view.decomposition
    note = "no decision with a known equity yet"
    if d is not None:
        rows += [
            ("equity (first decision)", _money(d.equity_start)),
            ("PnL (equity change)", _money(d.change)),
        ]
        rows += [(f"  {COMPONENTS[name][0]}", _money(v)) for name, v in d.components.items()]
        rows += [("  unexplained", f"{d.residual:.2g}")]
        note = f"first to last decision ({d.fills} fills); docs/operations.md defines the parts"
    return Section("Equity and PnL (quote)", ("", "quote"), tuple(rows), "lr", note)


def _positions(view: SessionView) -> Section:
    p = {} if view.last_decision is None else view.last_decision.payload
    marks = _mapping(p.get("marks"))
    positions = view.replay.state.positions
    resting: dict[tuple[str, bool], float] = {}
    for order in view.replay.open_orders():
        left = _left(order)
        if order.coin is not None and order.is_buy is not None and left is not None:
            key = (order.coin, order.is_buy)
            resting[key] = resting.get(key, 0.0) + left
    coins = list(view.coins)
    coins += sorted(c for c in set(positions) | {c for c, _ in resting} if c not in coins)
    rows = []
    for coin in coins:
        perp = coin.removesuffix(HEDGE_SUFFIX)
        q = positions.get(coin, 0.0)
        mark = _num(marks.get(perp))
        net = q + positions.get(perp + HEDGE_SUFFIX, 0.0) if coin == perp else None
        rows.append(
            (
                coin,
                _g(q),
                _g(mark, ".8g"),
                _money(None if mark is None else q * mark),
                _g(net),
                _g(resting.get((coin, True), 0.0)),
                _g(resting.get((coin, False), 0.0)),
            )
        )
    header = (
        "coin", "position", "mark", "notional (quote)", "net with hedge", "bids open",
        "asks open",
    )  # fmt: skip
    note = "positions from the fills so far (base units); marks of the last decision"
    return Section("Positions and exposure", header, tuple(rows), "lrrrrrr", note)


def _left(order: RecoveredOrder) -> float | None:
    """What is left of the order's current version (its size less its fills)."""
    if order.sz is None:
        return None
    filled = order.filled_by_oid.get(order.oid, 0.0) if order.oid is not None else 0.0
    return max(order.sz - filled, 0.0)


def _orders(view: SessionView) -> Section:
    orders = sorted(view.replay.open_orders(), key=lambda o: o.last_seq)
    rows = []
    for o in orders[-MAX_ORDERS:]:
        side = "n/a" if o.is_buy is None else ("buy" if o.is_buy else "sell")
        state = o.state.value + (f" ({o.pending})" if o.pending else "")
        rows.append(
            (o.coin or "n/a", side, _g(o.px, ".8g"), _g(o.sz), _g(_left(o)), state, o.cloid)
        )
    note = f"{len(orders)} open (journal)"
    if len(orders) > MAX_ORDERS:
        note += f", the {MAX_ORDERS} latest shown"
    if view.status is not None and isinstance(view.status.get("open_orders"), list):
        note += f"; {len(view.status['open_orders'])} per the runner's status"
    header = ("coin", "side", "px", "size", "left", "state", "cloid")
    return Section("Open orders", header, tuple(rows), "llrrrll", note)


def _risk(view: SessionView) -> Section:
    state = view.replay.state
    transition = state.risk_transition
    last = view.last_decision
    mode = state.risk_state or (None if last is None else last.payload.get("mode")) or "ACTIVE"
    rows = [("mode", str(mode))]
    if view.status is not None:
        rows.append(("mode (runner's status)", str(view.status.get("mode"))))
    if transition is None:
        rows.append(("last transition", "none"))
    else:
        t = transition.payload
        rows += [
            ("last transition", f"{t.get('from', '?')} -> {t.get('to')} (seq {transition.seq})"),
            ("reason", str(t.get("reason") or "n/a")),
            ("operator", str(t.get("operator") or "none")),
            ("when", f"{_utc(transition.time_ms)} UTC host, {_age(view, transition.time_ms)}"),
        ]
    commands = state.operator_commands
    if commands:
        c = commands[-1].payload
        rows.append(
            ("operator commands", f"{len(commands)}, last {c.get('command')} by "
             f"{c.get('operator')}: {c.get('reason')}")
        )  # fmt: skip
    top = sorted(view.interventions.items(), key=lambda kv: (-kv[1], kv[0]))[:4]
    rows.append(("limiter acted", ", ".join(f"{r} {n}" for r, n in top) or "never"))
    note = f"{len(view.session.transitions)} transitions in the journal"
    return Section("Risk", ("", ""), tuple(rows), "ll", note)


def _alerts(view: SessionView) -> Section:
    rows = []
    for a in view.alerts[-MAX_ALERTS:]:
        p = a.payload
        state = str(p.get("state", "")) + (" (repeat)" if p.get("repeat") else "")
        value, threshold = _num(p.get("value")), _num(p.get("threshold"))
        measured = "" if value is None else f"{value:.4g}"
        if threshold is not None:
            measured += f" vs {threshold:.4g}"
        if measured and p.get("unit"):
            measured += f" {p['unit']}"
        rows.append(
            (
                _utc(a.time_ms)[11:],
                str(p.get("severity", "")),
                str(p.get("rule", "")),
                str(p.get("action", "")),
                state,
                measured,
                str(p.get("message", "")),
            )
        )
    if not rows:
        rows.append(("none", "", "", "", "", "", ""))
    open_ = sorted({str(a.payload.get("rule")) for a in view.open_alerts.values()})
    note = f"{len(view.alerts)} alert rows" + (
        f", the {MAX_ALERTS} latest shown" if len(view.alerts) > MAX_ALERTS else ""
    )
    note += f"; firing: {', '.join(open_)}" if open_ else "; none firing"
    header = ("time (UTC)", "severity", "rule", "action", "state", "value", "message")
    return Section("Alerts", header, tuple(rows), "lllllrl", note)


def _latency(view: SessionView) -> Section:
    rows = [
        (stage, str(n), _g(p50, ".4g"), _g(p99, ".4g"), _g(peak, ".4g"))
        for stage, (n, p50, p99, peak) in view.latency_percentiles().items()
    ]
    note = f"over the last {view.window} decisions, host clock"
    if not rows:
        note = f"no decision row carries {LATENCY_FIELD} yet"
    header = ("stage", "decisions", "p50 (ms)", "p99 (ms)", "max (ms)")
    return Section("Latency (ms)", header, tuple(rows), "lrrrr", note)


def _connection(view: SessionView) -> Section:
    c = view.last_connection
    rows = [
        ("venue stream", "connected" if view.connected else "DISCONNECTED"),
        ("disconnects", str(view.disconnects)),
    ]
    if c is not None:
        rows.append(("last change", f"{c.payload.get('why') or 'n/a'}, {_age(view, c.time_ms)}"))
    last = view.last_row
    decision = view.last_decision
    rows += [
        ("last row", _age(view, None if last is None else last.time_ms)),
        ("last decision", _age(view, None if decision is None else decision.time_ms)),
    ]
    s = view.status
    if s is not None:
        rows += [
            ("runner: connected", str(s.get("connected"))),
            ("runner: skipped decisions", str(s.get("skipped"))),
            ("runner: commands queued", str(s.get("pending_commands"))),
        ]
    return Section("Connection", ("", ""), tuple(rows), "ll", f"status API: {view.status_note}")


# --- rendering ----------------------------------------------------------------------------------


def _rich() -> Any:
    with extra_needed("agents.ops.watch"):
        import rich.box
        import rich.table

    return rich


def _table(section: Section, box: Any) -> Any:
    rich = _rich()
    table = rich.table.Table(
        title=section.title,
        caption=section.note or None,
        box=box,
        show_header=any(section.header),
        title_justify="left",
        caption_justify="left",
        expand=False,
    )
    for name, justify in zip(section.header, section.justify, strict=True):
        table.add_column(name, justify="right" if justify == "r" else "left", overflow="fold")
    for row in section.rows:
        table.add_row(*row)
    return table


def render(view: SessionView) -> RenderableType:
    """The dashboard of ``view``: the header line over the panels in two columns."""
    rich = _rich()
    from rich.console import Group
    from rich.text import Text

    tables = [_table(s, rich.box.SIMPLE_HEAD) for s in sections(view)]
    grid = rich.table.Table.grid(padding=(0, 2))
    grid.add_column()
    grid.add_column()
    equity, positions, orders, risk, alerts, latency, connection = tables
    grid.add_row(equity, Group(risk, latency))
    grid.add_row(positions, connection)
    grid.add_row(orders, alerts)
    return Group(Text(header_line(view), style="bold"), grid)


def plain_text(view: SessionView, width: int = PLAIN_WIDTH) -> str:
    """The same panels as plain-text (ASCII) tables, one under the other."""
    rich = _rich()
    from rich.console import Console

    out = io.StringIO()
    console = Console(file=out, width=width, color_system=None, force_terminal=False)
    console.print(header_line(view), markup=False, highlight=False, soft_wrap=True)
    for section in sections(view):
        console.print()
        console.print(_table(section, rich.box.ASCII), markup=False, highlight=False)
    return out.getvalue()


# --- running ------------------------------------------------------------------------------------


def _status_source(view: SessionView, url: str | None) -> tuple[str, str] | None:
    """(url, token) to ask the runner's status with, or None (and why in the view)."""
    from agents.ops.control import TokenError, load_token

    where = url or view.ops_url
    if where is None:
        view.status_note = "no URL (--url, or the journal's ops_listening note)"
        return None
    try:
        token = load_token(required=url is not None)
    except TokenError as err:
        view.status_note = str(err)
        return None
    if token is None:
        view.status_note = f"{where}: no operator token set"
        return None
    return where, token


def refresh_status(view: SessionView, url: str | None, timeout_s: float = 0.5) -> None:
    """Ask the runner's ``GET /v1/status`` (only while the session runs); the answer or why
    there is none goes into the view."""
    view.status = None
    if view.done:
        view.status_note = "the session stopped"
        return
    source = _status_source(view, url)
    if source is None:
        return
    from agents.ops.control_cli import fetch_status

    where, token = source
    try:
        view.status = fetch_status(where, token, timeout_s)
        view.status_note = where
    except (OSError, ValueError) as err:
        view.status_note = f"{where} unreachable ({type(err).__name__})"


def _open(journal: str | Path, window: int, wait_s: float, stop: threading.Event) -> SessionView:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return SessionView.open(journal, window=window)
        except JournalError:
            if time.monotonic() >= deadline or stop.is_set():
                raise
        stop.wait(POLL_S)


def run_watch(
    journal: str | Path,
    *,
    refresh_s: float = 1.0,
    plain: bool = False,
    once: bool = False,
    exit_when_done: bool = False,
    stop: threading.Event | None = None,
    console: Console | None = None,
    every_s: float = 10.0,
    url: str | None = None,
    window: int = 1000,
    wait_s: float = 0.0,
) -> SessionView:
    """Show the dashboard of ``journal`` until ``once``, ``stop`` or (``exit_when_done``) the
    session's end; the last view (the module's docstring has the whole contract)."""
    if not refresh_s > 0 or not every_s > 0:
        raise ValueError(f"refresh_s and every_s must be > 0, got {refresh_s} and {every_s}")
    if url is not None:
        from agents.ops.control_cli import check_url

        url = check_url(url)
    _rich()
    from rich.console import Console
    from rich.live import Live

    stop = stop if stop is not None else threading.Event()
    console = console if console is not None else Console()
    view = _open(journal, window, wait_s, stop)

    def refresh() -> bool:
        """Update the view; whether to return."""
        view.update()
        refresh_status(view, url)
        return once or stop.is_set() or (exit_when_done and view.done)

    try:
        if plain or not console.is_terminal:
            while True:
                finished = refresh()
                _print(console, plain_text(view))
                if finished or _wait(stop, every_s, view if exit_when_done else None):
                    if not finished:  # the last state, at the stop
                        refresh()
                        _print(console, plain_text(view))
                    return view
        finished = refresh()
        with Live(render(view), console=console, auto_refresh=False, transient=False) as live:
            while not finished:
                _wait(stop, refresh_s, None)
                finished = refresh()
                live.update(render(view), refresh=True)
        return view
    finally:
        view.close()


def _print(console: Console, text: str) -> None:
    """``text`` as it is (no markup, no wrapping), flushed (a log file or a pipe sees each
    summary when it is printed)."""
    console.print(text, markup=False, highlight=False, end="", soft_wrap=True)
    console.file.flush()


def _wait(stop: threading.Event, seconds: float, view: SessionView | None) -> bool:
    """Wait ``seconds`` or until ``stop`` (or ``view`` shows the session ended: read every
    second); whether it was cut short."""
    deadline = time.monotonic() + seconds
    next_look = time.monotonic() + 1.0
    while (left := deadline - time.monotonic()) > 0:
        if stop.wait(min(left, POLL_S)):
            return True
        if view is not None and time.monotonic() >= next_look:
            next_look += 1.0
            view.update()
            if view.done:
                return True
    return stop.is_set()
