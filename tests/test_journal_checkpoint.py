"""The journal's WAL checkpoints run on a thread of their own, never on an append: real SQLite
files, the writer's automatic checkpoint off, the thread's checkpoints moving the WAL into the
database file, and a failed checkpoint counted and logged, never raised."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from agents.config import LiveJob
from agents.live.checkpointer import WalCheckpointer
from agents.live.journal import Journal, Kind, Synchronous

PAGE = 4096
AUTO_PAGES = 1000
"""SQLite's default ``wal_autocheckpoint``: a committing connection checkpoints past this."""


def _append_rows(journal: Journal, n: int) -> None:
    for k in range(n):
        journal.append(Kind.NOTE, {"text": f"row {k}", "pad": "x" * 3000})


def _wal_pages(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return wal.stat().st_size // PAGE if wal.exists() else 0


def test_appends_never_checkpoint_when_the_thread_does(tmp_path: Path) -> None:
    # With SQLite's automatic checkpoints the WAL is reset once it passes 1,000 pages; with the
    # thread (here too slow to run during the appends) no append checkpoints, so it grows on.
    auto = tmp_path / "auto.sqlite"
    with Journal.open(auto, synchronous=Synchronous.NORMAL, checkpoint_every_s=None) as journal:
        assert journal.checkpointer is None
        _append_rows(journal, 1500)
        assert _wal_pages(auto) <= AUTO_PAGES + 10
    threaded = tmp_path / "threaded.sqlite"
    with Journal.open(threaded, synchronous=Synchronous.NORMAL, checkpoint_every_s=3600.0) as j:
        assert j.checkpointer is not None and j.checkpointer.alive
        (auto_pages,) = j._db.execute("PRAGMA wal_autocheckpoint").fetchone()
        assert auto_pages == 0
        size_before = threaded.stat().st_size
        _append_rows(j, 1500)
        assert _wal_pages(threaded) > 1.5 * AUTO_PAGES
        assert threaded.stat().st_size == size_before  # nothing reached the database file
        assert j.checkpointer.checkpoints == 0


def test_the_thread_moves_the_wal_into_the_database_file(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    journal = Journal.open(path, checkpoint_every_s=0.05)
    checkpointer = journal.checkpointer
    assert checkpointer is not None
    size_before = path.stat().st_size
    _append_rows(journal, 200)
    deadline = time.monotonic() + 10.0
    while path.stat().st_size <= size_before + 100 * PAGE and time.monotonic() < deadline:
        time.sleep(0.02)
    assert path.stat().st_size > size_before + 100 * PAGE
    assert checkpointer.checkpoints >= 1 and checkpointer.failures == 0
    journal.close()
    assert not checkpointer.alive
    assert not path.with_name(path.name + "-wal").exists()  # the last close checkpoints
    with Journal.open(path, checkpoint_every_s=None) as reopened:
        assert reopened.last_seq() == 200


def test_a_failed_checkpoint_is_counted_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "secret-name-is-fine.sqlite"
    checkpointer = WalCheckpointer(path, 1.0)
    db = sqlite3.connect(tmp_path / "other.sqlite")
    db.close()
    checkpointer.checkpoint(db)  # a closed connection: sqlite3.ProgrammingError
    assert (checkpointer.checkpoints, checkpointer.failures) == (0, 1)
    assert "WAL checkpoint failed" in caplog.text and path.name in caplog.text
    assert str(tmp_path) not in caplog.text


@pytest.mark.parametrize("period", [0.0, -1.0, float("nan")])
def test_a_bad_checkpoint_period_is_refused(tmp_path: Path, period: float) -> None:
    with pytest.raises(ValueError, match="checkpoint_every_s"):
        Journal.open(tmp_path / "j.sqlite", checkpoint_every_s=period)
    with pytest.raises(ValueError, match="checkpoint period"):
        WalCheckpointer(tmp_path / "j.sqlite", period)
    with pytest.raises(ValueError, match="checkpoint_seconds"):
        LiveJob(bundle="b", account="0x" + "ab" * 20, journal="j", checkpoint_seconds=period)
    assert not (tmp_path / "j.sqlite").exists()
