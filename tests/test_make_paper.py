"""``make paper`` (scripts/paper.py) end to end on 127.0.0.1: the adaptive baseline vetted and
bundled when there is no demo run, the paper exchange and the live runner started and stopped,
the limiter acting inside the liquidation cascade, the report written; SIGTERM on the script
stops both children."""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest
from markdown_tables import assert_tables_render

from agents.deploy.export import export_baseline
from agents.live.journal import Kind
from agents.ops.market_log import cascades, interventions_by_window, read_market_log
from agents.ops.report import read_session
from mmgym.scenarios import make_params

ROOT = Path(__file__).resolve().parents[1]
SEED = 190
"""A liquidation_cascade market whose crowd is liquidated from 73 s to 133 s (the mid from 97.77
down to 96.91): the adaptive baseline withdraws while the forced orders sweep and quotes again
before 200 s, when the paper limits' tail override (a move of 1 % within 120 s) cuts what it
adds."""
SMALL_VETTING = [
    "vet.scenarios=[liquidation_cascade]",
    "vet.thresholds.kill_switch_scenarios=[liquidation_cascade]",
    "vet.episode_seconds=30",
    "vet.baselines=[linear_skew]",
]
URL = re.compile(r"http://127\.0\.0\.1:(\d+)")


def _paper_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("paper_script", ROOT / "scripts" / "paper.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _closed(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", port)) != 0


def _processes_naming(text: str) -> list[int]:
    """Live processes whose command line holds ``text`` (a session folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().split(")")[-1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def test_a_paper_session_of_the_adaptive_baseline_shows_the_limiter_in_the_cascade(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paper = _paper_script()
    settings = [f"runs={tmp_path}", f"seed={SEED}", "market_seconds=200", "progress_every=50"]
    code = paper.main([*settings, *SMALL_VETTING])
    output = capsys.readouterr().out
    assert code == 0, output
    assert "Equity and PnL (quote)" in output, "the dashboard's plain-text summary at the end"
    assert "200 decisions" in output and "| stopped" in output
    assert "the adaptive baseline, not the demo's policy" in output
    assert f"no demo run in {tmp_path / 'demo'}" in output

    sessions = [p for p in (tmp_path / "paper").iterdir() if p.name[0].isdigit()]
    assert len(sessions) == 1
    out = sessions[0]
    report = out / "report" / "session.md"
    assert f"report        {report}" in output
    assert report.is_file()
    assert (out / "ops-token").stat().st_mode & 0o077 == 0
    assert (out / "paper-key").stat().st_mode & 0o077 == 0
    for secret in ("ops-token", "paper-key"):
        assert (out / secret).read_text().strip() not in output

    session = read_session(out / "journal.db")
    assert len(session.decisions) == 200
    windows = cascades(read_market_log(out / "market.jsonl"), 30.0, 120.0)
    assert windows, "the market's crowd was liquidated"
    cascade = windows[0]
    first = session.decisions[0].payload["venue_time_ms"]
    last = session.decisions[-1].payload["venue_time_ms"]
    assert first < cascade.start_ms < last, "the cascade is inside the session"
    inside, outside = interventions_by_window(session.decisions, cascade)
    acting = {r: n for r, n in inside.items() if r != "ESTIMATOR_WARMUP"}
    assert acting, f"the limiter acts in the cascade: {inside}"
    assert set(outside) <= {"ESTIMATOR_WARMUP"}, f"and only there (besides warm-up): {outside}"

    text = report.read_text()
    assert_tables_render(text)
    section = text[text.index("## Market events") :]
    assert "### liquidation cascade" in section
    for reason, n in acting.items():
        assert re.search(rf"^\| {reason} \| {n} \| 0 \|$", section, re.MULTILINE), section
    said = next(line for line in output.splitlines() if line.startswith("limiter in the cascade:"))
    assert all(f"{reason} {n}" in said for reason, n in acting.items()), said

    ports = [int(p) for p in URL.findall(output)]
    assert len(set(ports)) >= 3, "exchange, operator controls and metrics"
    assert all(_closed(p) for p in set(ports)), "every server stopped"
    assert _processes_naming(str(out)) == [], "no child left"
    assert not [e for e in session.events if e.kind is Kind.NOTE and "error" in e.payload]


def test_sigterm_stops_the_runner_and_the_exchange(tmp_path: Path) -> None:
    """The demo's bundle branch (a bundle under runs/demo/<time>/bundle), stopped midway."""
    bundle = tmp_path / "demo" / "20260101-000000" / "bundle"
    export_baseline("adaptive", bundle, make_params("liquidation_cascade"), force=True)
    log = tmp_path / "paper.out"
    with log.open("w") as out:
        parent = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "paper.py"), f"runs={tmp_path}",
             f"seed={SEED}", "market_seconds=3000", "progress_every=10"],
            stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 120.0
        while "decision   10/" not in log.read_text() and time.monotonic() < deadline:
            assert parent.poll() is None, log.read_text()
            time.sleep(0.1)
        assert "decision   10/" in log.read_text(), "the session did not start"
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(60.0) == 1
    finally:
        if parent.poll() is None:
            parent.kill()
    output = log.read_text()
    assert f"bundle: {bundle} (the newest demo run" in output
    assert "SIGTERM: stopping the runner, then the exchange" in output
    sessions = [p for p in (tmp_path / "paper").iterdir() if p.name[0].isdigit()]
    assert len(sessions) == 1
    assert _processes_naming(str(sessions[0])) == [], "no child left"
    ports = {int(p) for p in URL.findall(output)}
    assert len(ports) >= 3 and all(_closed(p) for p in ports)
    assert (sessions[0] / "report" / "session.md").is_file(), "the report of what ran"


def test_on_a_terminal_the_session_shows_the_live_dashboard(tmp_path: Path) -> None:
    """stdout a pseudo-terminal: the dashboard (rich, redrawn in place) instead of the progress
    lines, and the session still ends, stops both children and is reported."""
    import pty
    import select

    bundle = tmp_path / "demo" / "20260101-000000" / "bundle"
    export_baseline("adaptive", bundle, make_params("liquidation_cascade"), force=True)
    leader, follower = pty.openpty()
    parent = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "paper.py"), f"runs={tmp_path}", f"seed={SEED}",
         "market_seconds=60", "progress_every=10"],
        stdin=follower, stdout=follower, stderr=follower, cwd=ROOT, close_fds=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "160", "LINES": "60",
             "TERM": "xterm-256color"},
    )  # fmt: skip
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 300.0
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                try:
                    data = os.read(leader, 65536)
                except OSError:  # the terminal closed: every writer exited
                    break
                if not data:
                    break
                chunks.append(data)
            elif parent.poll() is not None:
                break
        code = parent.wait(60.0)
    finally:
        if parent.poll() is None:
            parent.kill()
        os.close(leader)
    output = b"".join(chunks).decode(errors="replace")
    assert code == 0, output[-4000:]
    assert "\x1b[" in output, "drawn with terminal escapes"
    assert "Equity and PnL (quote)" in output and "Risk" in output, output[-4000:]
    assert "decision   10/" not in output, "no progress lines on a terminal"
    sessions = [p for p in (tmp_path / "paper").iterdir() if p.name[0].isdigit()]
    assert len(sessions) == 1 and (sessions[0] / "report" / "session.md").is_file()
    assert _processes_naming(str(sessions[0])) == [], "no child left"
