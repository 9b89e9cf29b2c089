"""The write-ahead journal: every decision, order intent, ack, fill, funding payment, risk
transition, operator command and alert, appended to SQLite before the runner acts on it.

One append-only table ``events(seq, time_ms, kind, cloid, tid UNIQUE, payload)`` (payload a
JSON object) and a ``meta`` table (schema version, bundle sha, venue url, account address).
SQLite runs in WAL mode, checkpointed by a thread of its own (:mod:`agents.live.checkpointer`);
``synchronous=FULL`` (the default) syncs the WAL at every commit, so
an append that returned survives a killed process and a power loss; ``NORMAL`` syncs at
checkpoints only: it survives a killed process, a power loss may lose the last commits.
Each :meth:`Journal.append` is one transaction, committed before it returns, unless it is made
inside :meth:`Journal.batch`: then the batch's appends are one transaction, committed (all of
them, with one sync) when its block exits, or none of them if it raises. Rows are never
updated or deleted. A fill is recorded once per ``tid`` and a funding payment once per (coin,
time): a duplicate is a no-op that returns None. Payloads never hold keys: a string that looks
like a private key (``0x`` and 64 hex digits) is refused.

:func:`agents.live.recovery.recover` rebuilds the runner's state from the events.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import json
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.live.checkpointer import DEFAULT_EVERY_S, WalCheckpointer

SCHEMA_VERSION = 1
"""The version of the tables below; a journal of another version is refused."""

_SCHEMA = (
    """CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)""",
    """CREATE TABLE events (
        seq INTEGER PRIMARY KEY,
        time_ms INTEGER NOT NULL,
        kind TEXT NOT NULL,
        cloid TEXT NULL,
        tid INTEGER NULL UNIQUE,
        payload TEXT NOT NULL
    )""",
    """CREATE INDEX events_cloid ON events(cloid) WHERE cloid IS NOT NULL""",
    """CREATE UNIQUE INDEX funding_once ON events(
        json_extract(payload, '$.coin'), json_extract(payload, '$.time_ms')
    ) WHERE kind = 'funding'""",
)
_INSERT = (
    "INSERT INTO events (time_ms, kind, cloid, tid, payload) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT DO NOTHING"
)
_PRIVATE_KEY = re.compile(r"0x[0-9a-fA-F]{64}(?![0-9a-fA-F])")
_META_FIELDS = ("bundle_sha", "venue_url", "account_address")


class Kind(enum.StrEnum):
    """What an event records (docs/live.md, "The journal", lists each payload)."""

    DECISION = "decision"
    INTENT = "intent"
    SENT = "sent"
    ACK = "ack"
    ORDER_UPDATE = "order_update"
    FILL = "fill"
    FUNDING = "funding"
    RISK_TRANSITION = "risk_transition"
    OPERATOR_COMMAND = "operator_command"
    RECONCILE = "reconcile"
    NOTE = "note"
    ALERT = "alert"


class Synchronous(enum.StrEnum):
    """SQLite's ``synchronous`` in WAL mode. ``FULL``: the WAL is synced at every commit (a
    returned append survives a power loss). ``NORMAL``: synced at checkpoints (a returned
    append survives a killed process; a power loss may lose the last commits)."""

    FULL = "FULL"
    NORMAL = "NORMAL"


class JournalError(RuntimeError):
    """The journal cannot be opened or read as it is (the message names the file)."""


class JournalCorruptError(JournalError):
    """A row (named by its seq) or the file is unreadable; nothing was changed."""


class JournalPayloadError(ValueError):
    """A payload the journal refuses (not a JSON object, a key in it, a field missing)."""


@dataclass(frozen=True, slots=True)
class JournalMeta:
    """What the journal belongs to. Never a key: the account's address, not its secret."""

    bundle_sha: str | None = None
    venue_url: str | None = None
    account_address: str | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """One journal row. ``time_ms``: the host's clock at the append (ms since the epoch)."""

    seq: int
    time_ms: int
    kind: Kind
    cloid: str | None
    tid: int | None
    payload: dict[str, Any]


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class Journal:
    """An open journal file. Use :meth:`open`; thread-safe (one connection, one lock)."""

    def __init__(
        self, path: Path, connection: sqlite3.Connection, clock_ms: Callable[[], int]
    ) -> None:
        self.path = path
        self._db = connection
        self._clock_ms = clock_ms
        self._lock = threading.RLock()
        self._depth = 0
        """How many :meth:`batch` blocks are open (0: each append commits on its own)."""
        self._batch_task: asyncio.Task[Any] | None = None
        self._deferred = False
        """A ``batch(defer=True)`` ended and its rows wait for the next commit."""
        self.checkpointer: WalCheckpointer | None = None
        """The thread that checkpoints the WAL (None: SQLite's automatic checkpoints)."""

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        synchronous: Synchronous | str = Synchronous.FULL,
        meta: JournalMeta | None = None,
        clock_ms: Callable[[], int] = wall_clock_ms,
        checkpoint_every_s: float | None = DEFAULT_EVERY_S,
    ) -> Journal:
        """Open (or create) the journal at ``path``.

        A new file (and its folder) gets the schema and ``meta``. An existing one must be an
        mmgym journal of this schema version, and its meta must agree with ``meta``'s fields
        that are given (another account's or venue's journal is refused).

        ``checkpoint_every_s``: the WAL is checkpointed by a thread of its own this often
        (:mod:`agents.live.checkpointer`), never by an append; None leaves SQLite's automatic
        checkpoints on (an append that crosses 1,000 WAL pages pays for one).
        """
        if checkpoint_every_s is not None and not checkpoint_every_s > 0.0:
            raise ValueError(f"checkpoint_every_s must be > 0 or None, got {checkpoint_every_s!r}")
        path = Path(path)
        try:
            mode = Synchronous(str(synchronous).upper())
        except ValueError:
            raise ValueError(
                f"synchronous must be one of {[m.value for m in Synchronous]}, got {synchronous!r}"
            ) from None
        if meta is not None:
            _refuse_keys(json.dumps(dataclasses.asdict(meta)), f"the meta of {path}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as e:
            raise JournalError(f"journal {path}: cannot open it ({e})") from e
        try:
            db.execute("PRAGMA busy_timeout = 10000")
            mode_set = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode_set).lower() != "wal":
                raise JournalError(f"journal {path}: SQLite refused WAL mode (got {mode_set})")
            db.execute(f"PRAGMA synchronous = {mode.value}")
            if checkpoint_every_s is not None:
                db.execute("PRAGMA wal_autocheckpoint = 0")
            _init_or_check(db, path, meta)
        except sqlite3.DatabaseError as e:
            db.close()
            raise JournalCorruptError(
                f"journal {path} is not a readable SQLite database ({e}); it was not changed"
            ) from e
        except BaseException:
            db.close()
            raise
        journal = cls(path, db, clock_ms)
        if checkpoint_every_s is not None:
            journal.checkpointer = WalCheckpointer(path, checkpoint_every_s).start()
        return journal

    # --- writing ----------------------------------------------------------------------------

    def append(
        self,
        kind: Kind | str,
        payload: Mapping[str, Any] | Any,
        cloid: str | None = None,
        tid: int | None = None,
    ) -> int | None:
        """Append one event, committed (and, with ``FULL``, synced) before this returns, or,
        inside :meth:`batch`, with the batch when its block exits.

        ``payload`` is a JSON object: a mapping or a dataclass (e.g. a venue ``Fill``).
        ``cloid`` and ``tid`` default to the payload's fields of those names. A fill needs a
        ``tid``. Returns the event's seq, or None when the event was already recorded (a fill
        of the same ``tid``, a funding payment of the same coin and time): nothing is written.
        """
        kind = _kind(kind)
        body = _as_dict(payload)
        if cloid is None and isinstance(body.get("cloid"), str):
            cloid = body["cloid"]
        if cloid is None and isinstance(body.get("order"), Mapping):
            order_cloid = body["order"].get("cloid")
            cloid = order_cloid if isinstance(order_cloid, str) else None
        if tid is None and isinstance(body.get("tid"), int):
            tid = body["tid"]
        if kind is Kind.INTENT and cloid is None and body.get("action") != "cancel":
            raise JournalPayloadError("an intent to place or replace needs its order's cloid")
        _check(kind, body, tid)
        try:
            text = json.dumps(body, allow_nan=False, sort_keys=True, separators=(",", ":"))
        except (TypeError, ValueError) as e:
            raise JournalPayloadError(f"{kind.value} payload is not JSON: {e}") from e
        _refuse_keys(text, f"a {kind.value} payload")
        with self._lock:
            if self._depth:
                self._check_batch_task()
            cursor = self._db.execute(_INSERT, (self._clock_ms(), kind.value, cloid, tid, text))
            if self._deferred and not self._depth:
                self._commit_deferred()  # this row, and the deferred batch's before it
            return cursor.lastrowid if cursor.rowcount == 1 else None

    @contextlib.contextmanager
    def batch(self, defer: bool = False) -> Iterator[None]:
        """Make the appends of this block one transaction: committed (with ``FULL``, one sync)
        when the block exits, or, if it raises, rolled back (none of them is in the journal)
        and the exception re-raised.

        ``defer``: the block's rows are committed not at its exit but with the next append
        (one commit, one sync, for both) or at :meth:`commit`, whichever comes first. The
        runner defers its decision's rows to the commit of the decision's first order intent,
        which precedes the send: one sync before the order leaves instead of two. Until then
        the rows are visible on this connection only, and a crash loses them (as it would
        have a moment earlier); appends of other tasks and threads commit them too.

        ``append`` inside returns each event's seq as usual (a duplicate fill or funding
        payment, even of this batch, returns None), but the events are written only when the
        outermost block exits: send what they announce after that. A batch opened inside
        another joins it (committed with the outermost); an exception leaving the inner block
        undoes the inner block's appends only (an SQLite savepoint). The batch holds the
        journal's lock: other threads' appends and reads wait for it to end. Never ``await``
        inside one: another asyncio task's append would land in it, so it is refused.
        """
        with self._lock:
            if self._depth:
                self._check_batch_task()
                savepoint = f"batch{self._depth}"
                self._db.execute(f"SAVEPOINT {savepoint}")
                self._depth += 1
                try:
                    yield
                except BaseException:
                    self._db.execute(f"ROLLBACK TO {savepoint}")
                    raise
                finally:
                    self._depth -= 1
                    self._db.execute(f"RELEASE {savepoint}")
                return
            joins = self._deferred  # the deferred rows' transaction is still open: join it
            self._db.execute("SAVEPOINT batch0" if joins else "BEGIN IMMEDIATE")
            self._deferred = False
            self._depth, self._batch_task = 1, _current_task()
            try:
                yield
                if joins:
                    self._db.execute("RELEASE batch0")
                if defer:
                    self._deferred = True
                else:
                    self._db.execute("COMMIT")
            except BaseException:
                if joins and self._db.in_transaction:  # undo this block only
                    self._db.execute("ROLLBACK TO batch0")
                    self._db.execute("RELEASE batch0")
                    self._deferred = True
                elif self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            finally:
                self._depth, self._batch_task = 0, None

    def commit(self) -> None:
        """Commit the rows of a deferred :meth:`batch`, if any wait (else nothing)."""
        with self._lock:
            if self._deferred:
                self._commit_deferred()

    def _commit_deferred(self) -> None:
        self._deferred = False
        self._db.execute("COMMIT")

    def _check_batch_task(self) -> None:
        if _current_task() is not self._batch_task:
            raise JournalError(
                f"journal {self.path}: an append from another asyncio task while a batch is "
                "open (a batch's block awaited): it would be committed or rolled back with "
                "that batch; do not await inside Journal.batch()"
            )

    # --- reading ----------------------------------------------------------------------------

    def events(self, since_seq: int = 0) -> Iterator[Event]:
        """Events with ``seq > since_seq`` in append order. A row that cannot be read raises
        :class:`JournalCorruptError` naming its seq (the rows before it were yielded)."""
        with self._lock:
            try:
                rows = self._db.execute(
                    "SELECT seq, time_ms, kind, cloid, tid, payload FROM events WHERE seq > ? "
                    "ORDER BY seq",
                    (since_seq,),
                ).fetchall()
            except sqlite3.DatabaseError as e:
                raise JournalCorruptError(
                    f"journal {self.path}: the events after seq {since_seq} cannot be read "
                    f"({e}); the file was not changed"
                ) from e
        for row in rows:
            yield self._event(row)

    def last(self, kind: Kind | str) -> Event | None:
        """The latest event of ``kind`` (None when there is none): read from the end, so cheap
        when the event is recent (the operator's status reads the last risk transition)."""
        with self._lock:
            try:
                row = self._db.execute(
                    "SELECT seq, time_ms, kind, cloid, tid, payload FROM events WHERE kind = ? "
                    "ORDER BY seq DESC LIMIT 1",
                    (_kind(kind).value,),
                ).fetchone()
            except sqlite3.DatabaseError as e:
                raise JournalCorruptError(
                    f"journal {self.path}: the last {kind} event cannot be read ({e}); the file "
                    "was not changed"
                ) from e
        return None if row is None else self._event(row)

    def meta(self) -> dict[str, str]:
        """The meta table (schema version, created time, what the journal belongs to)."""
        with self._lock:
            return dict(self._db.execute("SELECT key, value FROM meta").fetchall())

    @property
    def synchronous(self) -> int:
        """SQLite's ``synchronous`` of this connection (2 FULL, 1 NORMAL)."""
        with self._lock:
            return int(self._db.execute("PRAGMA synchronous").fetchone()[0])

    def last_seq(self) -> int:
        with self._lock:
            (seq,) = self._db.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
        return int(seq)

    def has_fill(self, tid: int) -> bool:
        """Whether the fill ``tid`` is recorded."""
        with self._lock:
            row = self._db.execute("SELECT 1 FROM events WHERE tid = ?", (tid,)).fetchone()
        return row is not None

    def close(self) -> None:
        """Commit a deferred batch's rows, stop the checkpoint thread, then close the file (the
        last connection to close checkpoints the WAL)."""
        if self.checkpointer is not None:
            self.checkpointer.stop()
        with self._lock:
            if self._deferred:
                self._commit_deferred()
            self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _event(self, row: tuple[Any, ...]) -> Event:
        seq, time_ms, kind, cloid, tid, text = row
        where = f"journal {self.path}: event seq {seq}"
        try:
            kind = Kind(kind)
        except ValueError:
            raise JournalCorruptError(f"{where} has kind {kind!r}, not one of {_KINDS}") from None
        if not isinstance(time_ms, int) or not isinstance(text, str):
            raise JournalCorruptError(f"{where} has a malformed time or payload column")
        if cloid is not None and not isinstance(cloid, str):
            raise JournalCorruptError(f"{where} has a cloid {cloid!r} that is not text")
        try:
            payload = json.loads(text)
        except json.JSONDecodeError as e:
            raise JournalCorruptError(
                f"{where} ({kind.value}): payload is not valid JSON ({e}; it holds "
                f"{len(text)} characters): the row may be truncated; the file was not changed"
            ) from None
        if not isinstance(payload, dict):
            raise JournalCorruptError(f"{where} ({kind.value}): payload is not a JSON object")
        return Event(seq, time_ms, kind, cloid, tid, payload)


_KINDS = [k.value for k in Kind]


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # no event loop runs in this thread
        return None


def _kind(kind: Kind | str) -> Kind:
    try:
        return Kind(kind)
    except ValueError:
        raise JournalPayloadError(f"unknown event kind {kind!r}; one of {_KINDS}") from None


def _as_dict(payload: Mapping[str, Any] | Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(payload) and not isinstance(payload, type):
        return dataclasses.asdict(payload)
    if isinstance(payload, Mapping):
        return dict(payload)
    raise JournalPayloadError(
        f"a payload is a mapping or a dataclass instance, got {type(payload).__name__}"
    )


_REQUIRED: dict[Kind, tuple[tuple[str, type | tuple[type, ...]], ...]] = {
    Kind.FILL: (("coin", str), ("is_buy", bool), ("px", (int, float)), ("sz", (int, float)),
                ("fee", (int, float))),
    Kind.FUNDING: (("coin", str), ("usdc", (int, float)), ("time_ms", int)),
    Kind.INTENT: (("action", str),),
    Kind.ORDER_UPDATE: (("state", str),),
    Kind.RISK_TRANSITION: (("to", str),),
    Kind.ALERT: (("rule", str), ("severity", str), ("action", str), ("state", str)),
}  # fmt: skip
"""The payload fields recovery reads, per kind (other kinds are free-form objects)."""


def _check(kind: Kind, body: dict[str, Any], tid: int | None) -> None:
    for name, types in _REQUIRED.get(kind, ()):
        value = body.get(name)
        if not isinstance(value, types) or (types is not bool and isinstance(value, bool)):
            raise JournalPayloadError(
                f"a {kind.value} payload needs {name!r} ({_type_names(types)}), got {value!r}"
            )
    if kind is Kind.ACK and not (
        isinstance(body.get("state"), str) or isinstance(body.get("ok"), bool)
    ):
        raise JournalPayloadError(
            f"an ack is an order's (with its 'state') or a cancel's (with 'ok'), got {sorted(body)}"
        )
    if kind is Kind.FILL and tid is None:
        raise JournalPayloadError("a fill needs its trade id (tid): fills are unique by tid")
    if kind is not Kind.FILL and tid is not None:
        raise JournalPayloadError(f"only fills carry a tid, not a {kind.value} event")
    if kind is Kind.INTENT and body["action"] not in INTENT_ACTIONS:
        raise JournalPayloadError(
            f"an intent's action is one of {INTENT_ACTIONS}, got {body['action']!r}"
        )
    if kind is Kind.FILL and isinstance(body.get("tid"), int) and body["tid"] != tid:
        raise JournalPayloadError(f"the fill's payload tid {body['tid']} is not its tid {tid}")


INTENT_ACTIONS = ("place", "cancel", "replace")
"""What an intent is about to send."""


def _type_names(types: type | tuple[type, ...]) -> str:
    return " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))


def _refuse_keys(text: str, what: str) -> None:
    if _PRIVATE_KEY.search(text):
        raise JournalPayloadError(
            f"{what} holds a string that looks like a private key (0x and 64 hex digits); "
            "keys are never journaled"
        )


def _init_or_check(db: sqlite3.Connection, path: Path, meta: JournalMeta | None) -> None:
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not tables:
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA:
                db.execute(statement)
            rows = {"schema_version": str(SCHEMA_VERSION), "created_ms": str(wall_clock_ms())}
            for name in _META_FIELDS:
                value = getattr(meta, name) if meta is not None else None
                if value is not None:
                    rows[name] = value
            db.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", rows.items())
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return
    if not {"meta", "events"} <= tables:
        raise JournalError(
            f"{path} is an SQLite database but not an mmgym journal (tables {sorted(tables)})"
        )
    stored = dict(db.execute("SELECT key, value FROM meta").fetchall())
    version = stored.get("schema_version")
    if version != str(SCHEMA_VERSION):
        raise JournalError(
            f"journal {path} has schema version {version}, this mmgym reads version "
            f"{SCHEMA_VERSION}: open it with the mmgym that wrote it"
        )
    for name in _META_FIELDS:
        want = getattr(meta, name) if meta is not None else None
        if want is not None and stored.get(name) != want:
            raise JournalError(
                f"journal {path} belongs to {name} {stored.get(name)!r}, not {want!r}: "
                "use that journal's own configuration or another journal path"
            )
