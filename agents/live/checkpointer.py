"""WAL checkpoints off the quote path: a thread that checkpoints the journal every few seconds.

SQLite checkpoints a WAL database on the committing connection once the WAL passes
``wal_autocheckpoint`` pages (1,000 by default): the commit that crosses it copies the WAL into
the database file and syncs it, a pause of several milliseconds on whichever commit it falls.
The runner commits several times per decision, so that pause landed on about one decision in
30. The journal turns the automatic checkpoint off on its writing connection and runs this
thread instead: its own connection, a ``PASSIVE`` checkpoint every ``every_s`` seconds. A
passive checkpoint never blocks the writer (it copies what no reader still needs and returns),
and the thread spends its time in SQLite with the GIL released.

Durability does not change: a commit is in the WAL (synced with ``FULL``) before it returns,
checkpointed or not, and recovery reads the WAL. A failed checkpoint is logged (the file's
name only) and retried at the next period; the WAL then grows until one succeeds.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_EVERY_S = 1.0
"""Seconds between checkpoints."""


class WalCheckpointer:
    """A daemon thread that checkpoints the WAL of ``path`` every ``every_s`` seconds."""

    def __init__(self, path: Path, every_s: float = DEFAULT_EVERY_S) -> None:
        if not every_s > 0.0:
            raise ValueError(f"checkpoint period must be > 0 s, got {every_s!r}")
        self.path = path
        self.every_s = float(every_s)
        self.checkpoints = 0
        """Checkpoints that ran (whether or not they copied every frame)."""
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"wal-checkpoint-{path.name}", daemon=True
        )

    def start(self) -> WalCheckpointer:
        self._thread.start()
        return self

    def checkpoint(self, db: sqlite3.Connection) -> None:
        """One passive checkpoint on ``db``; errors are logged and counted, never raised."""
        try:
            db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            self.checkpoints += 1
        except sqlite3.Error as e:
            self.failures += 1
            log.warning("journal %s: WAL checkpoint failed (%s); retrying", self.path.name, e)

    def _run(self) -> None:
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as e:
            log.warning("journal %s: no checkpoint connection (%s)", self.path.name, e)
            return
        try:
            db.execute("PRAGMA busy_timeout = 1000")
            while not self._stop.wait(self.every_s):
                self.checkpoint(db)
        finally:
            db.close()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the thread (its last checkpoint finishes first)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()
