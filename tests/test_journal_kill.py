"""kill -9: a writer process appends journal events in a loop and is SIGKILLed at random
(seeded) moments, 24 times, half with ``synchronous=FULL`` and half with ``NORMAL``. After each
kill every append that returned is in the file with its payload, no row is half-written (the
seqs run 1..n without a gap and every row reads back), the journal reopens, recovers and takes
appends, and the next writer goes on where the last one stopped."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from agents.live.journal import Journal, Kind
from agents.live.recovery import recover

KILLS = 24
TIMEOUT = 60.0
"""Seconds any wait of this test may take (a writer's start, the end of its output)."""

WRITER = """
import sys
from agents.live.journal import Journal, Kind

path, mode = sys.argv[1], sys.argv[2]
journal = Journal.open(path, synchronous=mode)
decided = [e.payload["i"] for e in journal.events() if e.kind is Kind.DECISION]
i = max(decided, default=-1) + 1
print("ready", flush=True)
cloid = "0x%032x"
while True:
    c = cloid % i
    rows = [
        (Kind.DECISION, {"i": i, "action": [0.25, -0.5]}, None, None),
        (Kind.INTENT, {"action": "place", "i": i, "order": {"coin": "BTC", "is_buy": i % 2 == 0,
            "px": 100.0 + i % 7, "sz": 0.5, "cloid": c}}, c, None),
        (Kind.SENT, {"i": i, "nonce": 1_000_000 + i}, c, None),
        (Kind.ACK, {"i": i, "state": "resting", "oid": i}, c, None),
        (Kind.FILL, {"i": i, "coin": "BTC", "is_buy": i % 2 == 0, "px": 100.0 + i % 7,
            "sz": 0.5, "fee": 0.01, "oid": i}, c, i),
    ]
    for kind, payload, row_cloid, tid in rows:
        seq = journal.append(kind, payload, row_cloid, tid)
        print(seq, kind.value, i, flush=True)
    i += 1
"""


def _run_writer(path: Path, mode: str, rng: random.Random) -> list[tuple[int, str, int]]:
    """Start a writer, SIGKILL it at a random moment after it is ready; the appends it
    reported as returned: (seq, kind, i)."""
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert writer.stdout is not None
        for line in writer.stdout:
            if line == "ready\n":
                ready.set()
            else:
                lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(TIMEOUT), f"the writer did not start: {writer.stderr}"
        time.sleep(rng.uniform(0.0, 0.25))
        writer.send_signal(signal.SIGKILL)
        assert writer.wait(TIMEOUT) == -signal.SIGKILL
        reader.join(TIMEOUT)
        assert not reader.is_alive(), "the writer's output did not end"
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait(TIMEOUT)
    assert writer.stderr is not None
    stderr = writer.stderr.read()
    assert stderr == "", stderr
    reported = []
    for line in lines:
        if line.endswith("\n"):  # a line cut by the kill was not reported
            seq, kind, i = line.split()
            reported.append((int(seq), kind, int(i)))
    return reported


def test_sigkill_at_random_moments_loses_no_returned_append(tmp_path: Path) -> None:
    rng = random.Random(20261203)
    path = tmp_path / "journal.sqlite"
    Journal.open(path).close()
    returned: dict[int, tuple[str, int]] = {}
    appended_per_run = []
    for kill in range(KILLS):
        mode = "FULL" if kill % 2 == 0 else "NORMAL"
        reported = _run_writer(path, mode, rng)
        appended_per_run.append(len(reported))
        for seq, kind, i in reported:
            assert seq not in returned, f"seq {seq} returned twice"
            returned[seq] = (kind, i)
        with Journal.open(path) as journal:
            rows = list(journal.events())  # raises on a half-written row
            seqs = [e.seq for e in rows]
            assert seqs == list(range(1, len(rows) + 1)), f"kill {kill}: a gap in the seqs"
            by_seq = {e.seq: e for e in rows}
            for seq, (kind, i) in returned.items():
                assert seq in by_seq, f"kill {kill} ({mode}): returned append seq {seq} is lost"
                assert (by_seq[seq].kind.value, by_seq[seq].payload["i"]) == (kind, i)
            # at most the one append that committed before its report could be printed is
            # unreported per kill (plus the notes this test appends)
            unreported = [e for e in rows if e.seq not in returned and e.kind is not Kind.NOTE]
            assert len(unreported) <= kill + 1
            state = recover(journal)
            fills = [e for e in rows if e.kind is Kind.FILL]
            assert len(state.fills) == len(fills) == len({e.tid for e in fills})
            expected = sum(0.5 if e.payload["is_buy"] else -0.5 for e in fills)
            assert state.positions.get("BTC", 0.0) == expected
            note = {"i": -1, "reopened_after_kill": kill}
            assert journal.append(Kind.NOTE, note) == len(rows) + 1
            returned[len(rows) + 1] = ("note", -1)
    # the writers got appends in before they were killed
    assert sum(appended_per_run) > KILLS, appended_per_run
    with Journal.open(path) as journal:
        decided = sorted(e.payload["i"] for e in journal.events() if e.kind is Kind.DECISION)
    assert decided == list(range(len(decided))), "each writer went on where the last stopped"
