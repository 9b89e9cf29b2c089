"""Session reports from a journal (agents.ops.report): a live session against the lockstep paper
exchange, reported from its journal alone; a hand-made journal with every kind of incident,
whose decomposition is known; and ``mmgym-ops report``'s bad inputs."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from markdown_tables import assert_tables_render, split_cells

from agents.baselines.registry import make_baseline
from agents.deploy.guard import GuardedPolicy
from agents.deploy.risk.limits import RiskLimits
from agents.live.journal import Journal, Kind
from agents.live.pacing import LockstepPacer
from agents.live.runner import LiveRunner, RunnerConfig
from agents.live.venues import Signer
from agents.ops.report import PLOTS, decompose, read_session, write_session_report
from agents.ops.report_cli import main
from mmgym.exchange import BackgroundServer, Clock, PaperExchange, PaperVenue
from mmgym.scenarios import make_params
from tests.venue_support import AGENT_KEY, USER, adapter, loopback_only  # noqa: F401

EPOCH_MS = 1_700_000_000_000
PNG = b"\x89PNG\r\n\x1a\n"


def _table(text: str, heading: str) -> list[list[str]]:
    """The body rows (cells stripped) of the first table after ``heading``."""
    lines = text.split(heading, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in split_cells(line)])
    return rows


def _check_pages(path: Path) -> str:
    text = path.read_text()
    assert_tables_render(text, str(path))
    for name, file in PLOTS.items():
        assert f"]({file})" in text, name
        assert (path.parent / file).read_bytes()[:8] == PNG, file
    for link in re.findall(r"!\[[^]]*\]\(([^)]+)\)", text):
        assert (path.parent / link).is_file(), link
    return text


def _session(journal_path: Path, decisions: int) -> None:
    """The Avellaneda-Stoikov baseline behind the guard, on the lockstep paper exchange in a
    liquidation cascade, with a tight position limit and window-loss trigger (the limiter
    acts, the account goes REDUCING) and funding every 15 s."""
    params = make_params(
        "liquidation_cascade", episode_seconds=3600.0, funding_interval_seconds=15.0
    )
    venue = PaperVenue(params, 5, ["BTC"], USER, EPOCH_MS)
    exchange = PaperExchange(venue, Signer(AGENT_KEY).address, Clock("lockstep"))
    server = BackgroundServer(exchange, timeout=30.0)
    limits = RiskLimits(
        max_position=1.0, reducing_window_loss_fraction=1e-5, reducing_hold_seconds=10.0
    )
    try:
        with Journal.open(journal_path) as journal:
            guarded = GuardedPolicy(make_baseline("avellaneda_stoikov", params), params, limits)
            config = RunnerConfig(
                coins=("BTC",),
                collateral=params.collateral,
                max_decisions=decisions,
                reconcile_every=10,
            )
            runner = LiveRunner(
                adapter(server.url), guarded, journal, config, LockstepPacer(server.url)
            )
            asyncio.run(runner.run())
    finally:
        server.close()


@pytest.mark.usefixtures("loopback_only")
def test_report_of_a_lockstep_session(tmp_path: Path) -> None:
    journal_path = tmp_path / "session.db"
    _session(journal_path, decisions=200)
    with Journal.open(journal_path) as journal:
        events = list(journal.events())
    kinds = Counter(e.kind for e in events)
    assert kinds[Kind.DECISION] == 200
    assert kinds[Kind.FILL] > 0 and kinds[Kind.FUNDING] > 0

    path = write_session_report(journal_path, tmp_path / "report")
    assert path == tmp_path / "report" / "session.md"
    text = _check_pages(path)

    # The components sum to the equity change of the journal's decision rows.
    decisions = [e.payload for e in events if e.kind is Kind.DECISION]
    change = decisions[-1]["equity"] - decisions[0]["equity"]
    d = decompose(read_session(journal_path))
    assert d is not None
    assert sum(d.components.values()) == pytest.approx(change, abs=1e-6)
    assert abs(d.residual) < 1e-6
    assert d.components["funding"] != 0.0 and d.components["spread"] != 0.0
    assert "The components sum to the equity change within" in text

    # The fills table counts every fill row; funding and markouts are there.
    fills = _table(text, "## Fills")
    assert fills[-1][0] == "all" and int(fills[-1][2]) == kinds[Kind.FILL]
    assert sum(int(r[2]) for r in fills[:-1]) == kinds[Kind.FILL]
    assert "(received positive)" in text
    markouts = _table(text, "## Markouts")
    assert [r[0] for r in markouts] == ["1", "10", "60"]
    assert 0 < int(markouts[2][1]) <= int(markouts[0][1]) <= kinds[Kind.FILL]

    # The interventions table is the decision rows' reasons, summed.
    expected: Counter[str] = Counter()
    for p in decisions:
        expected.update(p["reasons"])
    rows = _table(text, "## Limiter interventions")
    assert {r[0]: int(r[1]) for r in rows[:-1]} == dict(expected)
    assert rows[-1][:2] == ["all", str(sum(expected.values()))]
    assert expected["POSITION_LIMIT"] > 0

    transitions = _table(text, "### Risk transitions")
    assert ["ACTIVE", "REDUCING", "WINDOW_LOSS"] in [r[3:6] for r in transitions]
    # Each decision row after the first carries the previous decision's latencies.
    latency = {r[0]: r for r in _table(text, "## Latency")}
    assert set(latency) == {"decision", "message_to_order"}
    assert int(latency["decision"][1]) == kinds[Kind.DECISION] - 1
    assert 0 < int(latency["message_to_order"][1]) <= kinds[Kind.DECISION] - 1


T0 = EPOCH_MS


def _decision(
    t_ms: int,
    mid: float,
    mark: float,
    positions: dict[str, float],
    cash: float,
    mode: str,
    reasons: dict[str, int],
    latency_ms: float,
) -> dict[str, object]:
    equity = 1000.0 + cash + positions.get("BTC", 0.0) * mark
    return {
        "venue_time_ms": t_ms, "mids": {"BTC": mid}, "marks": {"BTC": mark},
        "positions": positions, "cash": cash, "equity": equity, "mode": mode,
        "untrusted": None, "quotes": {"BTC": [99.9, 1.0, 100.1, 1.0]},
        "hedge_fraction": [0.0], "reasons": reasons, "latency_ms": latency_ms,
    }  # fmt: skip


def _fill(
    tid: int, coin: str, is_buy: bool, px: float, sz: float, fee: float, t_ms: int
) -> dict[str, object]:
    return {
        "coin": coin, "oid": tid, "cloid": None, "tid": tid, "is_buy": is_buy, "px": px,
        "sz": sz, "fee": fee, "closed_pnl": 0.0, "start_position": 0.0, "crossed": False,
        "liquidation": False, "time_ms": t_ms,
    }  # fmt: skip


def _incident_journal(path: Path) -> None:
    """A short session with a fill, funding, a hedge fill, a lost and regained connection, a
    reconciliation that imported a missed fill, an operator's halt and a restart."""
    clock = iter(range(T0 + 10**7, T0 + 10**8, 250))
    with Journal.open(path, clock_ms=lambda: next(clock)) as j:
        j.append(Kind.NOTE, {"event": "start", "recovered_seq": 0, "open_orders": 0,
                             "positions": {}, "collateral": 1000.0})  # fmt: skip
        j.append(Kind.NOTE, {"event": "episode_start", "epoch_ms": T0})
        j.append(Kind.RISK_TRANSITION, {"from": "ACTIVE", "to": "ACTIVE",
                                        "reason": "ACCOUNT_OPENED", "time_s": None,
                                        "operator": None})  # fmt: skip
        j.append(Kind.DECISION, _decision(T0, 100.0, 100.0, {}, 0.0, "ACTIVE",
                                          {"ESTIMATOR_WARMUP": 2}, 3.0))  # fmt: skip
        j.append(Kind.FILL, _fill(1, "BTC", True, 99.9, 1.0, 0.01, T0 + 500))
        j.append(Kind.DECISION, _decision(T0 + 1000, 100.2, 100.25, {"BTC": 1.0}, -99.91,
                                          "ACTIVE", {"POSITION_LIMIT": 1}, 5.0))  # fmt: skip
        j.append(Kind.NOTE, {"event": "connection", "connected": False, "why": "ws closed"})
        j.append(Kind.RISK_TRANSITION, {"from": "ACTIVE", "to": "REDUCING",
                                        "reason": "STALE_MARKET_DATA", "time_s": 1.2,
                                        "operator": "runner: venue stream lost"})  # fmt: skip
        j.append(Kind.NOTE, {"event": "connection", "connected": True, "why": "resubscribed"})
        drift = {"imported_tids": [7], "orphans_canceled": [], "position_drift": []}
        j.append(Kind.RECONCILE, {**drift, "resolved": {}, "unresolved": []})
        j.append(Kind.FUNDING, {"coin": "BTC", "usdc": -0.05, "szi": 1.0, "rate": 5e-4,
                                "time_ms": T0 + 1500})  # fmt: skip
        j.append(Kind.FILL, _fill(2, "BTC-HEDGE", False, 100.1, 1.0, 0.02, T0 + 1600))
        j.append(Kind.OPERATOR_COMMAND, {"command": "halt", "operator": "alice"})
        j.append(Kind.RISK_TRANSITION, {"from": "REDUCING", "to": "HALTED",
                                        "reason": "OPERATOR_HALT", "time_s": 2.0,
                                        "operator": "alice"})  # fmt: skip
        positions = {"BTC": 1.0, "BTC-HEDGE": -1.0}
        j.append(Kind.DECISION, _decision(T0 + 2000, 100.0, 100.0, positions, 0.12, "HALTED",
                                          {"MODE_HALTED": 2}, 4.0))  # fmt: skip
        j.append(Kind.NOTE, {"event": "start", "recovered_seq": 13, "open_orders": 0,
                             "positions": positions})  # fmt: skip
        j.append(Kind.DECISION, _decision(T0 + 62000, 101.0, 101.05, positions, 0.12, "HALTED",
                                          {"MODE_HALTED": 2}, 40.0))  # fmt: skip


def test_report_of_a_journal_with_every_incident(tmp_path: Path) -> None:
    journal_path = tmp_path / "incidents.db"
    _incident_journal(journal_path)
    text = _check_pages(write_session_report(journal_path, tmp_path / "out"))

    d = decompose(read_session(journal_path))
    assert d is not None
    expected = {
        "spread": 0.1,  # bought 1 at 99.9 with the mid at 100
        "inventory": 1.0,  # 1 x (100.2 - 100) + 1 x (100 - 100.2) + 1 x (101 - 100)
        "mark_basis": 0.05,  # 1 x (101.05 - 101) at the end, nothing held at the start
        "fees": -0.01,
        "funding": -0.05,
        "hedge": 100.08,  # sold 1 at 100.1, fee 0.02: cash in the equity, the position not
    }
    assert d.components == pytest.approx(expected, abs=1e-12)
    assert d.change == pytest.approx(101.17, abs=1e-9) and abs(d.residual) < 1e-9

    markouts = _table(text, "## Markouts")  # the hedge fill has no mid: one fill, no interval
    assert markouts[0][:4] == ["1", "1", "0.1", "n/a (n < 2)"]
    assert markouts[1][:3] == ["10", "1", "1.1"]
    transitions = _table(text, "### Risk transitions")
    assert [r[1:] for r in transitions[1:]] == [
        # journaled on the lost stream, outside a decision: at the limiter's time
        ["2023-11-14 22:13:21.200", "1.2", "ACTIVE", "REDUCING", "STALE_MARKET_DATA",
         "runner: venue stream lost"],
        # journaled with the decision at T0 + 2 s
        ["2023-11-14 22:13:22.000", "2", "REDUCING", "HALTED", "OPERATOR_HALT", "alice"],
    ]  # fmt: skip
    assert [r[3] for r in _table(text, "### Connection")] == ["connection lost", "reconnected"]
    assert "recovered to seq 13" in _table(text, "### Restarts")[0][4]
    assert "1 missed fill(s) imported" in _table(text, "### Reconciliation drift")[0][4]
    assert "4 reconciliation" not in text and "1 reconciliation(s) with the venue, 1 found" in text
    assert _table(text, "### Operator commands")[0][3:] == [
        "operator command", 'halt {"operator": "alice"}',
    ]  # fmt: skip
    latency = _table(text, "## Latency")
    assert latency == [["total", "4", "4.5", "29.5", "38.95", "40"]]
    time_rows = {r[0]: r[1] for r in _table(text, "quantity | value")}
    assert time_rows["time ACTIVE"].startswith("1.2 s (1.9 %)")
    assert time_rows["time REDUCING"].startswith("0.8 s (1.3 %)")
    assert time_rows["time HALTED"].startswith("60 s (96.8 %)")


def test_cli_writes_the_report_and_prints_its_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal_path = tmp_path / "live" / "btc.db"
    _incident_journal(journal_path)
    assert main([str(journal_path)]) == 0
    out = capsys.readouterr().out.strip()
    assert out == str(tmp_path / "live" / "btc-report" / "session.md") and Path(out).is_file()
    assert main([str(journal_path), "--out", str(tmp_path / "elsewhere")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "elsewhere" / "session.md")


def test_cli_refuses_a_missing_or_non_journal_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text_file = tmp_path / "notes.txt"
    text_file.write_text("not a journal\n")
    empty = tmp_path / "empty.db"
    empty.touch()
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE prices (t INTEGER, px REAL)")
    cases = {
        tmp_path / "missing.db": "no such file",
        tmp_path: "is not a file",
        text_file: "is not a journal (not an SQLite database)",
        empty: "is not a journal (not an SQLite database)",
        other: "is an SQLite database but not an mmgym journal",
    }
    for path, problem in cases.items():
        assert main([str(path), "--out", str(tmp_path / "out")]) == 2, path
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and captured.out == "", captured
        assert lines[0].startswith("mmgym-ops report: error: ") and str(path) in lines[0]
        assert problem in lines[0]
    assert empty.stat().st_size == 0, "the report never writes to the journal"
    assert not (tmp_path / "out").exists()
    # An output folder that is a file: one line naming it.
    _incident_journal(journal := tmp_path / "ok.db")
    assert main([str(journal), "--out", str(text_file)]) == 2
    assert "cannot write the report to" in capsys.readouterr().err


def test_importing_the_report_imports_no_training_stack_nor_matplotlib() -> None:
    code = (
        "import sys\n"
        "import agents.ops, agents.ops.report, agents.ops.report_cli\n"
        "heavy = ('torch', 'stable_baselines3', 'ray', 'matplotlib')\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "", f"imported: {done.stdout.strip()}"


def test_the_mmgym_ops_dispatcher() -> None:
    from agents.ops.cli import main

    assert main(["--help"]) == 0
    assert main([]) == 2
    assert main(["frobnicate"]) == 2
    assert main(["report", "/nonexistent/journal.db"]) == 2


def test_the_dispatcher_passes_control_commands_on(monkeypatch: pytest.MonkeyPatch) -> None:
    from agents.ops.cli import main

    monkeypatch.delenv("MMGYM_OPS_TOKEN", raising=False)
    monkeypatch.delenv("MMGYM_OPS_TOKEN_FILE", raising=False)
    # no token: refused before any connection, exit 2 (the command reached the control client)
    assert main(["status", "--url", "http://127.0.0.1:9"]) == 2
