"""``Journal.batch``: the appends of a block are one transaction on a real SQLite file, all or
nothing; seqs without gaps; duplicates within and across batches; nesting; other threads and
asyncio tasks; a writer SIGKILLed inside batches leaves whole batches only."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from agents.live.journal import Journal, JournalError, Kind
from agents.live.recovery import recover

TIMEOUT = 60.0
"""Seconds any wait of this test may take."""


class BoomError(Exception):
    pass


def _fill(tid: int, sz: float = 0.5) -> dict[str, Any]:
    return {"coin": "BTC", "is_buy": True, "px": 100.0, "sz": sz, "fee": 0.01, "tid": tid}


def _decision(journal: Journal, i: int) -> list[int | None]:
    cloid = f"0x{i:032x}"
    order = {"coin": "BTC", "is_buy": True, "px": 100.0, "sz": 0.5, "cloid": cloid}
    return [
        journal.append(Kind.DECISION, {"i": i}),
        journal.append(Kind.INTENT, {"action": "place", "order": order, "i": i}),
    ]


def _rows(path: Path) -> list[tuple[int, str, dict[str, Any]]]:
    with Journal.open(path) as journal:
        return [(e.seq, e.kind.value, e.payload) for e in journal.events()]


def test_a_batch_commits_all_its_appends_with_their_seqs(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    with Journal.open(path) as journal:
        assert journal.append(Kind.NOTE, {"i": -1}) == 1
        with journal.batch():
            seqs = _decision(journal, 0) + _decision(journal, 1)
            assert journal.last_seq() == 5  # this connection sees its own batch
        assert seqs == [2, 3, 4, 5]
    assert [(seq, kind) for seq, kind, _ in _rows(path)] == [
        (1, "note"), (2, "decision"), (3, "intent"), (4, "decision"), (5, "intent"),
    ]  # fmt: skip


def test_a_batch_that_raises_leaves_nothing_and_the_seqs_have_no_gap(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    with Journal.open(path) as journal:
        with journal.batch():
            _decision(journal, 0)
        with pytest.raises(BoomError), journal.batch():
            assert _decision(journal, 1) == [3, 4]
            journal.append(Kind.FILL, _fill(7))
            raise BoomError
        assert journal.last_seq() == 2 and not journal.has_fill(7)
        assert journal.append(Kind.FILL, _fill(7)) == 3  # the seq after the rolled-back batch
        with pytest.raises(BoomError), journal.batch():
            _decision(journal, 2)
            raise BoomError
    rows = _rows(path)  # reopened: nothing of the failed batches is there
    assert [seq for seq, _, _ in rows] == [1, 2, 3]
    assert [payload.get("i") for _, kind, payload in rows if kind == "decision"] == [0]


def _seen_elsewhere(path: Path) -> list[int]:
    """The seqs another connection sees (what a crash now would leave)."""
    with Journal.open(path) as other:
        return [e.seq for e in other.events()]


def test_a_deferred_batch_is_committed_with_the_next_append(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    with Journal.open(path) as journal:
        journal.append(Kind.NOTE, {"i": -1})
        with journal.batch(defer=True):
            journal.append(Kind.DECISION, {"i": 0})
            journal.append(Kind.NOTE, {"i": 0})
        assert journal.last_seq() == 3  # this connection sees them
        assert _seen_elsewhere(path) == [1]  # not committed yet
        order = {"coin": "BTC", "is_buy": True, "px": 100.0, "sz": 0.5, "cloid": "0x" + "1" * 32}
        assert journal.append(Kind.INTENT, {"action": "place", "order": order}) == 4
        assert _seen_elsewhere(path) == [1, 2, 3, 4]  # one commit: the intent and the batch
        with journal.batch(defer=True):
            journal.append(Kind.DECISION, {"i": 1})
        journal.commit()  # a decision that sent nothing
        assert _seen_elsewhere(path) == [1, 2, 3, 4, 5]
        journal.commit()  # nothing waits: nothing happens
        with journal.batch(defer=True):
            journal.append(Kind.DECISION, {"i": 2})
    assert [seq for seq, _, _ in _rows(path)] == [1, 2, 3, 4, 5, 6]  # close() committed it


def test_a_batch_after_a_deferred_one_joins_it_and_rolls_back_only_itself(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j.sqlite"
    with Journal.open(path) as journal:
        with journal.batch(defer=True):
            journal.append(Kind.DECISION, {"i": 0})
        with pytest.raises(BoomError), journal.batch():
            journal.append(Kind.FILL, _fill(7))
            raise BoomError
        assert not journal.has_fill(7) and journal.last_seq() == 1
        assert _seen_elsewhere(path) == []  # the deferred row still waits
        with journal.batch():
            journal.append(Kind.FILL, _fill(8))
        assert _seen_elsewhere(path) == [1, 2]  # committed together


def test_a_refused_payload_inside_a_batch_rolls_the_batch_back(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    with Journal.open(path) as journal:
        with pytest.raises(ValueError, match="needs its trade id"), journal.batch():
            _decision(journal, 0)
            journal.append(Kind.FILL, {k: v for k, v in _fill(1).items() if k != "tid"})
        assert journal.append(Kind.NOTE, {"after": True}) == 1
    assert [kind for _, kind, _ in _rows(path)] == ["note"]


def test_duplicate_fills_within_and_across_batches_answer_none(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    with Journal.open(path) as journal:
        with journal.batch():
            assert journal.append(Kind.FILL, _fill(1)) == 1
            assert journal.append(Kind.FILL, _fill(1)) is None  # within the batch
            assert journal.append(Kind.FILL, _fill(2)) == 2
        with journal.batch():
            assert journal.append(Kind.FILL, _fill(2)) is None  # across batches
            assert journal.append(Kind.FILL, _fill(3)) == 3
        with pytest.raises(BoomError), journal.batch():
            assert journal.append(Kind.FILL, _fill(4)) == 4
            raise BoomError
        assert journal.append(Kind.FILL, _fill(4)) == 4  # the rolled-back fill is not known
        funding = {"coin": "BTC", "usdc": -0.1, "time_ms": 60_000}
        with journal.batch():
            assert journal.append(Kind.FUNDING, funding) == 5
            assert journal.append(Kind.FUNDING, funding) is None
        state = recover(journal)
    assert sorted(state.fills) == [1, 2, 3, 4] and state.positions["BTC"] == 2.0


def test_nested_batches_join_the_outer_one(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    with Journal.open(path) as journal, pytest.raises(BoomError), journal.batch():
        journal.append(Kind.NOTE, {"i": 0})
        with journal.batch():
            journal.append(Kind.NOTE, {"i": 1})
        raise BoomError  # the inner block's appends go with the outer one
    assert _rows(path) == []
    with Journal.open(path) as journal:
        with journal.batch():
            journal.append(Kind.NOTE, {"i": 0})
            with pytest.raises(BoomError), journal.batch():
                journal.append(Kind.NOTE, {"i": 1})
                raise BoomError  # caught inside the outer block: the inner block's appends go
            assert journal.append(Kind.NOTE, {"i": 2}) == 2
            with journal.batch():
                journal.append(Kind.NOTE, {"i": 3})
        assert not journal._db.in_transaction
    assert [(seq, p["i"]) for seq, _, p in _rows(path)] == [(1, 0), (2, 2), (3, 3)]


def test_another_thread_waits_for_the_batch_to_end(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    seqs: list[int | None] = []
    with Journal.open(path) as journal:
        other = threading.Thread(target=lambda: seqs.append(journal.append(Kind.NOTE, {})))
        with pytest.raises(BoomError), journal.batch():
            journal.append(Kind.DECISION, {"i": 0})
            other.start()
            other.join(0.2)  # it cannot append into this batch: it waits on the lock
            assert seqs == []
            raise BoomError
        other.join(TIMEOUT)
        assert not other.is_alive()
    assert seqs == [1]
    assert [kind for _, kind, _ in _rows(path)] == ["note"]


def test_another_asyncio_task_cannot_append_into_a_batch(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"

    async def main(journal: Journal) -> None:
        async def intruder() -> None:
            journal.append(Kind.NOTE, {"from": "another task"})

        with journal.batch():
            journal.append(Kind.DECISION, {"i": 0})
            with pytest.raises(JournalError, match="do not await inside"):
                await asyncio.create_task(intruder())
        journal.append(Kind.NOTE, {"after": True})  # and outside a batch it may
        await asyncio.create_task(intruder())

    with Journal.open(path) as journal:
        asyncio.run(main(journal))
    assert [kind for _, kind, _ in _rows(path)] == ["decision", "note", "note"]


WRITER = """
import sys
from agents.live.journal import Journal, Kind

path, mode = sys.argv[1], sys.argv[2]
journal = Journal.open(path, synchronous=mode)
decided = [e.payload["i"] for e in journal.events() if e.kind is Kind.DECISION]
i = max(decided, default=-1) + 1
print("ready", flush=True)
while True:
    c = "0x%032x" % i
    with journal.batch():
        seqs = [
            journal.append(Kind.DECISION, {"i": i, "action": [0.25, -0.5]}),
            journal.append(Kind.INTENT, {"action": "place", "i": i, "order": {"coin": "BTC",
                "is_buy": i % 2 == 0, "px": 100.0, "sz": 0.5, "cloid": c}}, c),
            journal.append(Kind.INTENT, {"action": "place", "i": i, "order": {"coin": "BTC",
                "is_buy": i % 2 == 1, "px": 101.0, "sz": 0.5, "cloid": c + "1"}}, c + "1"),
            journal.append(Kind.FILL, {"i": i, "coin": "BTC", "is_buy": True, "px": 100.0,
                "sz": 0.5, "fee": 0.01}, c, i),
        ]
    print(" ".join(map(str, seqs)), i, flush=True)
    i += 1
"""
PER_BATCH = 4


def _run_writer(path: Path, mode: str, rng: random.Random) -> list[tuple[list[int], int]]:
    """Start a writer, SIGKILL it at a random moment after its first batch; the batches it
    reported committed."""
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline() == "ready\n", "the writer did not start"
        first = writer.stdout.readline()  # one batch committed, however loaded the machine
        time.sleep(rng.uniform(0.0, 0.25))
        writer.send_signal(signal.SIGKILL)
        writer.wait(TIMEOUT)
        # read through the file objects: readline may have buffered lines that communicate(),
        # reading the pipes' descriptors, would never see
        assert writer.stderr is not None
        out, err = first + writer.stdout.read(), writer.stderr.read()
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait(TIMEOUT)
    assert writer.returncode == -signal.SIGKILL and err == "", err
    reported = []
    for line in out.splitlines(keepends=True):
        if line.endswith("\n"):  # a line cut by the kill was not reported
            *seqs, i = map(int, line.split())
            reported.append((seqs, i))
    return reported


def test_sigkill_inside_batches_leaves_whole_batches_only(tmp_path: Path) -> None:
    rng = random.Random(20261204)
    path = tmp_path / "journal.sqlite"
    Journal.open(path).close()
    committed: dict[int, list[int]] = {}
    for kill in range(12):
        mode = "FULL" if kill % 2 == 0 else "NORMAL"
        for seqs, i in _run_writer(path, mode, rng):
            committed[i] = seqs
        with Journal.open(path) as journal:
            rows = list(journal.events())
            assert [e.seq for e in rows] == list(range(1, len(rows) + 1)), f"kill {kill}: a gap"
            by_i: dict[int, list[int]] = {}
            for e in rows:
                by_i.setdefault(e.payload["i"], []).append(e.seq)
            assert len(rows) == PER_BATCH * len(by_i), f"kill {kill} ({mode}): a partial batch"
            for i, seqs in by_i.items():
                first = seqs[0]
                assert seqs == list(range(first, first + PER_BATCH)), (kill, i, seqs)
            for i, seqs in committed.items():
                assert by_i.get(i) == seqs, f"kill {kill} ({mode}): committed batch {i} lost"
            # at most one batch per kill committed before the writer could report it
            assert len(by_i) - len(committed) <= kill + 1
            assert sorted(by_i) == list(range(len(by_i))), "each writer went on in order"
            state = recover(journal)
            assert len(state.fills) == len(by_i) and state.positions.get("BTC", 0.0) == 0.5 * len(
                by_i
            )
    assert len(committed) >= 12, "each writer committed a batch before it was killed"
