"""The live runner killed with SIGKILL at 22 points of a paper session and restarted each time:
at the end the journal holds every exchange fill exactly once, and its positions, cash and PnL
equal the exchange's; at every restart no order rests on the exchange that the journal does not
know.

The exchange (lockstep, funding every 10 s of market time) runs in this process; the runner
is ``mmgym-live`` in a child process (tests/live_crash_child.py), trading until it is killed
at a journal append of a chosen kind (between an intent and its send, between a send and its
answer, at a fill, an order update, a decision or a funding payment) or at a random moment.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agents.deploy.export import export_baseline
from agents.live.journal import Journal, Kind
from agents.live.recovery import recover
from agents.live.venues import Signer
from mmgym.exchange import BackgroundServer, Clock, PaperExchange, PaperVenue
from mmgym.scenarios import make_params
from tests.venue_support import AGENT_KEY

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
EPOCH_MS = 1_700_000_000_000
CHILD_TIMEOUT_S = 300.0
"""A child's bound: a cold start compiles the guard (about a minute on a loaded machine)."""
KILL_POINTS = (
    "intent:after",  # between an order's intent and its send
    "ack:before",  # between the send and the journaled answer
    "fill:after",
    "order_update:before",
    "decision:after",
    "funding:after",
)
RANDOM_KILLS = 10
"""Kills at a random moment of a run (on top of 2 rounds of the points above)."""


def _market():  # type: ignore[no-untyped-def]
    return make_params("calm", episode_seconds=3600.0, funding_interval_seconds=10.0)


def _child(
    url: str, bundle: Path, journal: Path, decisions: int | None, kill_at: str | None
) -> subprocess.Popen[str]:
    """``mmgym-live`` in a child process: ``decisions`` decisions (None: until killed or the
    market's end), killed at ``kill_at`` if given."""
    env = {**os.environ, "MMGYM_HL_PRIVATE_KEY": AGENT_KEY, "PYTHONPATH": str(ROOT)}
    env.pop("MMGYM_TEST_KILL_AT", None)
    if kill_at is not None:
        env["MMGYM_TEST_KILL_AT"] = kill_at
    account = Signer(AGENT_KEY).address
    args = [
        f"bundle={bundle}",
        f"account={account}",
        f"journal={journal}",
        f"url={url}",
        "pacing=lockstep",
        f"max_decisions={'null' if decisions is None else decisions}",
        "synchronous=NORMAL",
        "reconcile_every=5",
    ]
    return subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "live_crash_child.py"), *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _unknown_resting(venue: PaperVenue, journal_path: Path) -> set[str | None]:
    """Cloids of orders resting on the exchange that the journal has no intent for."""
    with Journal.open(journal_path) as journal:
        known = {e.cloid for e in journal.events() if e.kind is Kind.INTENT and e.cloid}
    return {o.cloid for o in venue.book.open_orders() if o.cloid not in known}


def test_sigkill_at_random_points_loses_nothing(tmp_path: Path) -> None:
    params = _market()
    bundle = tmp_path / "bundle"
    export_baseline("avellaneda_stoikov", bundle, params, force=True)
    account = Signer(AGENT_KEY).address
    venue = PaperVenue(params, 11, ["BTC"], account, EPOCH_MS)
    server = BackgroundServer(PaperExchange(venue, account, Clock("lockstep")), timeout=60.0)
    journal = tmp_path / "live.db"
    rng = random.Random(20261203)
    plan: list[str | None] = [*KILL_POINTS, *KILL_POINTS, *([None] * RANDOM_KILLS)]
    rng.shuffle(plan)
    killed: list[str] = []
    try:
        for point in plan:
            kill_at = None if point is None else f"{point}:{rng.randint(1, 12)}"
            child = _child(server.url, bundle, journal, None, kill_at)  # runs until killed
            if point is None:  # a random moment once it trades
                assert child.stdout is not None
                line = child.stdout.readline()
                assert "trading" in line, line
                time.sleep(rng.uniform(0.05, 1.5))
                child.send_signal(signal.SIGKILL)
            out, _ = child.communicate(timeout=CHILD_TIMEOUT_S)
            assert child.returncode in (0, -signal.SIGKILL), out
            assert AGENT_KEY[2:] not in out.lower(), "the key never appears in the output"
            if child.returncode == -signal.SIGKILL:
                killed.append(kill_at or "random")
            assert not _unknown_resting(venue, journal), f"after {kill_at or 'random'}: {out}"
        final = _child(server.url, bundle, journal, 30, None)
        out, _ = final.communicate(timeout=CHILD_TIMEOUT_S)
        assert final.returncode == 0, out
    finally:
        server.close()
    assert len(killed) == len(plan), f"only {len(killed)} of {len(plan)} kills landed: {killed}"
    with Journal.open(journal) as j:
        state = recover(j)
        fill_tids = [e.tid for e in j.events() if e.kind is Kind.FILL]
        placed = [
            e.cloid for e in j.events() if e.kind is Kind.INTENT and e.payload["action"] == "place"
        ]
        halts = [
            e.payload
            for e in j.events()
            if e.kind is Kind.RISK_TRANSITION and e.payload["to"] == "HALTED"
        ]
    assert len(placed) == len(set(placed)), "no cloid placed twice, across restarts too"
    assert not halts, f"a crash and its recovery alone never halt: {halts}"
    exchange_tids = [f["tid"] for f in venue.fills]
    assert exchange_tids, "the session should trade"
    assert sorted(fill_tids) == sorted(exchange_tids), "every exchange fill exactly once"
    kernel = venue.assets[0]
    assert state.positions.get("BTC", 0.0) == pytest.approx(float(kernel["inventory"]), abs=1e-9)
    assert state.funding, "funding was paid in the session"
    assert state.cash["BTC"] == pytest.approx(float(kernel["cash"]), rel=1e-9, abs=1e-9)
    mark = float(kernel["mark"])
    equity_change = float(venue.account["equity"]) - params.collateral
    assert state.pnl({"BTC": mark}) == pytest.approx(equity_change, rel=1e-9, abs=1e-6)
    assert not venue.book.open_orders(), "the final run cancels its orders on exit"
    for written in tmp_path.iterdir():
        if written.is_file():
            assert AGENT_KEY[2:].encode() not in written.read_bytes().lower(), written
