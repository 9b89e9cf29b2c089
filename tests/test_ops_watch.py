"""``mmgym-ops watch`` (agents.ops.watch) against a recorded session: the live runner trading
the lockstep paper exchange in-process (127.0.0.1 only), with fills, an operator's halt and
resume and resting orders. The dashboard is read from the journal while the runner writes it;
its numbers are checked against the journal, a fresh replay and the exchange."""

from __future__ import annotations

import asyncio
import io
import re
import sqlite3
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from agents.live.journal import Event, Journal, Kind
from agents.live.recovery import Replay
from agents.ops import cli
from agents.ops.report import Session as ReportSession
from agents.ops.report import decompose, read_session
from agents.ops.watch import SessionView, plain_text, refresh_status, render, run_watch, sections
from tests.ops_support import TOKEN, Session, command
from tests.venue_support import guard_loopback

ROOT = Path(__file__).resolve().parents[1]
NOW_MS = 1_800_000_000_000
"""The views' host clock in the comparisons (ages are then equal)."""
WIDTH = 260


def _view(path: Path, **kwargs: object) -> SessionView:
    return SessionView.open(path, clock_ms=lambda: NOW_MS, **kwargs)  # type: ignore[arg-type]


def _text(view: SessionView) -> str:
    console = Console(record=True, width=WIDTH, file=io.StringIO())
    console.print(render(view))
    return console.export_text()


def _line_with(text: str, *cells: str) -> str:
    """The line of ``text`` holding every one of ``cells`` (as whole cells: between two
    spaces or a table's rule), in order."""
    for line in text.splitlines():
        parts = [p.strip() for p in re.split(r"\s{2,}|[│|]", line)]
        at = 0
        for cell in cells:
            try:
                at = parts.index(cell, at) + 1
            except ValueError:
                break
        else:
            return line
    raise AssertionError(f"no line with cells {cells} in:\n{text}")


@dataclass
class Recorded:
    """What the session left and what was seen while it ran."""

    journal: Path
    text: str
    """The dashboard rendered mid-session (the runner paused between two decisions)."""
    plain: str
    live_equal_fresh: bool
    """The view updated during the session equalled a fresh fold of the same rows."""
    resting: dict[str, float]
    """The exchange's resting orders at that moment: cloid -> size left."""
    position: float
    """The exchange's position at that moment."""
    reads: int
    """Updates the reader thread made while the writer appended."""
    reader_errors: list[BaseException]
    status_mode: str | None
    runner_mode: str
    last_seq: int
    """The journal's last row at the mid-session snapshot."""


async def _record(tmp_path: Path) -> Recorded:
    async with Session(tmp_path, seed=3) as s:
        path = s.journal.path
        live = _view(path)
        await s.step_until(lambda: s.journal.last(Kind.FILL) is not None, "a fill", 300)
        live.update()
        assert (await command(s, "halt"))[0] == 200
        await s.step(2)
        live.update()
        assert (await command(s, "resume", confirm=True))[0] == 200

        # A reader thread updates its own view while the runner appends rows.
        reader = _view(path)
        stop, errors, reads = threading.Event(), [], [0]

        def read() -> None:
            try:
                while not stop.is_set():
                    reader.update()
                    reads[0] += 1
            except BaseException as err:  # reported by the test
                errors.append(err)

        thread = threading.Thread(target=read)
        thread.start()
        try:
            await s.step(15)
        finally:
            stop.set()
            thread.join(30.0)
        assert not thread.is_alive()
        await s.step_until(
            lambda: any(o.coin == "BTC" for o in s.venue.book.open_orders()), "a resting order", 50
        )
        # The runner waits at its gate: the journal holds every row of the last decision.
        live.update()
        reader.update()
        fresh = _view(path)
        fresh.update()
        same = sections(live) == sections(fresh) == sections(reader)
        assert fresh.ops_url == s.url  # the status API the runner journaled, with the token
        await asyncio.to_thread(refresh_status, fresh, None)
        status_mode = None if fresh.status is None else fresh.status.get("mode")
        recorded = Recorded(
            journal=path,
            text=_text(live),
            plain=plain_text(live, width=WIDTH),
            live_equal_fresh=same,
            resting={
                o.cloid: o.remaining for o in s.venue.book.open_orders() if o.cloid is not None
            },
            position=float(s.venue.assets[0]["inventory"]),
            reads=reads[0],
            reader_errors=errors,
            status_mode=status_mode,
            runner_mode=s.runner.guarded.state.mode_of(0).name,
            last_seq=live.replay.state.last_seq,
        )
        for view in (live, reader, fresh):
            view.close()
    return recorded


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    with pytest.MonkeyPatch.context() as mp:
        guard_loopback(mp)
        mp.setenv("MMGYM_OPS_TOKEN", TOKEN)
        return asyncio.run(_record(tmp_path_factory.mktemp("watch")))


def _rows_until(journal: Path, seq: int) -> list[Event]:
    with Journal.open(journal) as j:
        return [e for e in j.events() if e.seq <= seq]


def test_the_dashboard_shows_the_journal(recorded: Recorded) -> None:
    rows = _rows_until(recorded.journal, recorded.last_seq)
    decisions = [e.payload for e in rows if e.kind is Kind.DECISION]
    text = recorded.text
    assert recorded.live_equal_fresh

    # Equity: the last decision's; the PnL decomposition: report.decompose's of the same rows.
    _line_with(text, "equity (last decision)", f"{decisions[-1]['equity']:,.4f}")
    whole = read_session(recorded.journal)
    d = decompose(ReportSession(whole.path, whole.meta, rows))
    assert d is not None and d.fills > 0
    _line_with(text, "PnL (equity change)", f"{d.change:,.4f}")
    _line_with(text, "spread capture", f"{d.components['spread']:,.4f}")

    # Positions: the fills' (the exchange's), with the open orders' sizes.
    fills = [e.payload for e in rows if e.kind is Kind.FILL]
    position = sum(f["sz"] if f["is_buy"] else -f["sz"] for f in fills)
    assert position == pytest.approx(recorded.position, abs=1e-9)
    mark = decisions[-1]["marks"]["BTC"]
    _line_with(text, "BTC", format(position, ".6g"), format(mark, ".8g"))

    # Open orders: the journal's, which are the exchange's resting ones.
    replay = Replay(recorded.journal)
    replay.apply(rows)
    journal_open = {o.cloid for o in replay.state.open_orders()}
    assert recorded.resting and journal_open == set(recorded.resting)
    for cloid, left in recorded.resting.items():
        _line_with(text, "BTC", format(left, ".6g"), cloid)
    _line_with(text, f"{len(recorded.resting)} open (journal)")

    # Risk: the halt and the resume by the operator, the last transition with its reason.
    transitions = [e for e in rows if e.kind is Kind.RISK_TRANSITION]
    assert [t.payload["to"] for t in transitions][-2:] == ["HALTED", "ACTIVE"]
    last = transitions[-1]
    _line_with(text, "mode", recorded.runner_mode)
    _line_with(text, "last transition", f"HALTED -> ACTIVE (seq {last.seq})")
    _line_with(text, "reason", last.payload["reason"])
    _line_with(text, "operator", "alice")
    assert recorded.status_mode == recorded.runner_mode == "ACTIVE"

    # Latency: numpy's percentiles of the journaled latencies.
    for stage in ("decision", "message_to_order"):
        values = [
            d["latency_ms"][stage]
            for d in decisions
            if d.get("latency_ms") and stage in d["latency_ms"]
        ]
        assert values, stage
        p50, p99 = np.percentile(values, [50, 99])
        _line_with(text, stage, str(len(values)), format(p50, ".4g"), format(p99, ".4g"))

    # Alerts: none journaled; connection: never lost.
    _line_with(text, "none")
    _line_with(text, "venue stream", "connected")
    assert f"{len(decisions)} decisions" in text


def test_plain_text_has_the_same_panels(recorded: Recorded) -> None:
    plain = recorded.plain
    assert "\x1b[" not in plain
    for title in (
        "Equity and PnL (quote)", "Positions and exposure", "Open orders", "Risk", "Alerts",
        "Latency (ms)", "Connection",
    ):  # fmt: skip
        assert title in plain and title in recorded.text
    assert "+--" in plain
    for cloid in recorded.resting:
        _line_with(plain, "BTC", cloid)


def test_a_reader_follows_the_writer(recorded: Recorded) -> None:
    assert recorded.reader_errors == []
    assert recorded.reads > 0


def test_incremental_updates_equal_a_fresh_fold(recorded: Recorded) -> None:
    with Journal.open(recorded.journal) as j:
        events = list(j.events())
    whole = _view(recorded.journal)
    whole.apply(events)
    parts = _view(recorded.journal)
    rng = np.random.default_rng(0)
    cuts = sorted(rng.choice(np.arange(1, len(events)), size=12, replace=False))
    for a, b in zip([0, *cuts], [*cuts, len(events)], strict=True):
        parts.apply(events[a:b])
    assert sections(parts) == sections(whole)
    assert parts.decomposition == decompose(read_session(recorded.journal))
    for view in (whole, parts):
        view.close()


def test_the_finished_session(recorded: Recorded) -> None:
    with Journal.open(recorded.journal) as j:
        stop = j.last(Kind.NOTE)
        decisions = sum(e.kind is Kind.DECISION for e in j.events())
    assert stop is not None and stop.payload["event"] == "stop"
    assert stop.payload["decisions"] == decisions
    out = io.StringIO()
    done = threading.Event()
    result: list[SessionView] = []

    def watch() -> None:
        result.append(
            run_watch(recorded.journal, exit_when_done=True, console=Console(file=out), every_s=60)
        )
        done.set()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    assert done.wait(30.0), "run_watch did not return on a finished session"
    assert result[0].done
    assert "| stopped" in out.getvalue() and "Equity and PnL" in out.getvalue()
    # On a terminal: the live dashboard (once).
    terminal = io.StringIO()
    run_watch(recorded.journal, once=True, console=Console(file=terminal, force_terminal=True))
    assert "Equity and PnL" in terminal.getvalue()


def test_run_watch_returns_when_stop_is_set(recorded: Recorded) -> None:
    stop = threading.Event()
    thread = threading.Thread(
        target=run_watch,
        args=(recorded.journal,),
        kwargs={"stop": stop, "console": Console(file=io.StringIO()), "every_s": 60},
        daemon=True,
    )
    thread.start()
    stop.set()
    thread.join(30.0)
    assert not thread.is_alive()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agents.ops.cli", "watch", *args],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip


def test_the_cli(recorded: Recorded, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    done = _cli(str(recorded.journal), "--once", "--plain")
    assert done.returncode == 0, done.stderr
    assert "Equity and PnL (quote)" in done.stdout and "stopped" in done.stdout
    done = _cli(str(recorded.journal), "--exit-when-done", "--every", "0.2")
    assert done.returncode == 0, done.stderr
    assert "Latency (ms)" in done.stdout

    text = tmp_path / "notes.txt"
    text.write_text("not a journal\n")
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    cases = (
        (tmp_path / "missing.db", "no such file"),
        (text, "not a journal"),
        (other, "not an mmgym journal"),
    )
    for k, (path, what) in enumerate(cases):
        if k == 0:  # the console script's process
            done = _cli(str(path), "--once", "--plain")
            code, err = done.returncode, done.stderr
        else:  # the same main, in this process
            code = cli.main(["watch", str(path), "--once", "--plain"])
            err = capsys.readouterr().err
        assert code == 2, (path, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("mmgym-ops watch: error:"), lines
        assert str(path) in lines[0] and what in lines[0]
    assert cli.main(["watch", str(recorded.journal), "--once", "--refresh", "0"]) == 2
    assert "--refresh must be > 0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as helped:
        cli.main(["watch", "--help"])
    assert helped.value.code == 0 and "--exit-when-done" in capsys.readouterr().out


def _alert(rule: str, state: str, opened_ms: int, **extra: object) -> dict[str, object]:
    return {
        "rule": rule, "severity": "warning", "action": "reduce", "state": state, "repeat": False,
        "incident": f"{rule}@{opened_ms}", "value": 0.02, "threshold": 0.01, "unit": "fraction",
        "message": f"{rule} {state}", "suppressed": 0, "venue_time_ms": None, **extra,
    }  # fmt: skip


@pytest.mark.skipif(not hasattr(Kind, "ALERT"), reason="this journal has no alert rows yet")
def test_the_alerts_panel(tmp_path: Path) -> None:
    path = tmp_path / "alerts.db"
    with Journal.open(path) as j:
        j.append(Kind.NOTE, {"event": "start"})
        j.append("alert", _alert("funding_drift", "firing", 1))
        j.append("alert", _alert("drawdown", "firing", 2))
        j.append("alert", _alert("funding_drift", "firing", 1, repeat=True))
        j.append("alert", _alert("funding_drift", "resolved", 1))
    with _view(path) as view:
        view.update()
        text = _text(view)
    _line_with(text, "warning", "funding_drift", "reduce", "resolved", "0.02 vs 0.01 fraction")
    _line_with(text, "funding_drift", "firing (repeat)")
    _line_with(text, "4 alert rows; firing: drawdown")
