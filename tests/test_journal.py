"""The journal's store: real SQLite files in WAL mode, every kind round-trips, replay in append
order, fills once per tid and funding once per (coin, time), the schema version and meta
checks, keys refused, and a corrupt row or file named in a clear error with nothing changed."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from markdown_tables import assert_tables_render

from agents.live.journal import (
    SCHEMA_VERSION,
    Journal,
    JournalCorruptError,
    JournalError,
    JournalMeta,
    JournalPayloadError,
    Kind,
    Synchronous,
)
from agents.live.venues.base import Fill, FundingPayment, OrderAck, OrderState

CLOID = "0x" + "1f" * 16
KEY = "0x" + "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
"""A well-known example key (eth_account's documentation), never a real account's."""

PAYLOADS: dict[Kind, tuple[dict[str, Any], str | None, int | None]] = {
    Kind.DECISION: ({"obs_digest": "ab12", "action": [0.1, -0.5], "nonce": 5}, None, None),
    Kind.INTENT: (
        {"action": "place", "order": {"coin": "BTC", "is_buy": True, "px": 99.5, "sz": 0.3,
                                      "cloid": CLOID, "tif": "Alo", "reduce_only": False}},
        CLOID, None,
    ),
    Kind.SENT: ({"nonce": 1_700_000_000_123}, CLOID, None),
    Kind.ACK: ({"cloid": CLOID, "state": "resting", "oid": 7, "filled_sz": 0.0, "avg_px": None,
                "error": None}, CLOID, None),
    Kind.ORDER_UPDATE: ({"coin": "BTC", "oid": 7, "cloid": CLOID, "is_buy": True, "px": 99.5,
                         "sz": 0.1, "orig_sz": 0.3, "status": "open", "state": "resting",
                         "time_ms": 5}, CLOID, None),
    Kind.FILL: ({"coin": "BTC", "oid": 7, "cloid": CLOID, "tid": 41, "is_buy": True, "px": 99.5,
                 "sz": 0.2, "fee": 0.003, "closed_pnl": 0.0}, CLOID, 41),
    Kind.FUNDING: ({"coin": "BTC", "usdc": -0.01, "szi": 0.2, "rate": 1e-4, "time_ms": 60_000},
                   None, None),
    Kind.RISK_TRANSITION: ({"from": "NORMAL", "to": "REDUCING", "reason": "drawdown"}, None,
                           None),
    Kind.OPERATOR_COMMAND: ({"command": "halt", "by": "ops"}, None, None),
    Kind.RECONCILE: ({"drift": False, "orphans": [], "missed_fills": 0}, None, None),
    Kind.NOTE: ({"text": "started, bundle 1a2b"}, None, None),
    Kind.ALERT: ({"rule": "funding_drift", "severity": "warning", "action": "reduce",
                  "state": "firing", "repeat": False, "incident": "funding_drift@1000",
                  "value": -3.5, "threshold": 2.0, "unit": "quote", "message": "drift",
                  "suppressed": 0, "venue_time_ms": 1_700_000_000_000}, None, None),
}  # fmt: skip


def test_every_kind_round_trips_through_a_reopened_file(tmp_path: Path) -> None:
    assert set(PAYLOADS) == set(Kind)
    path = tmp_path / "j.sqlite"
    clock = iter(range(1000, 2000))
    with Journal.open(path, clock_ms=lambda: next(clock)) as journal:
        seqs = [journal.append(kind, p, cloid, tid) for kind, (p, cloid, tid) in PAYLOADS.items()]
    assert seqs == list(range(1, len(PAYLOADS) + 1))
    with Journal.open(path) as journal:
        events = list(journal.events())
    assert [e.kind for e in events] == list(PAYLOADS)
    for event, (kind, (payload, cloid, tid)) in zip(events, PAYLOADS.items(), strict=True):
        assert (event.payload, event.cloid, event.tid) == (payload, cloid, tid), kind
    assert [e.time_ms for e in events] == list(range(1000, 1000 + len(PAYLOADS)))


def test_the_file_is_wal_and_synchronous_is_what_was_asked(tmp_path: Path) -> None:
    for mode, code in ((Synchronous.FULL, 2), (Synchronous.NORMAL, 1), ("normal", 1)):
        path = tmp_path / f"{mode}.sqlite"
        with Journal.open(path, synchronous=mode) as journal:
            journal.append(Kind.NOTE, {"text": "x"})
            assert journal.synchronous == code
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with pytest.raises(ValueError, match="OFF"):
        Journal.open(tmp_path / "off.sqlite", synchronous="OFF")


def test_dataclass_payloads_fill_cloid_and_tid_from_their_fields(tmp_path: Path) -> None:
    fill = Fill("BTC", 7, CLOID, 41, True, 99.5, 0.2, 0.003, 0.0, 0.0, False, False, 5)
    with Journal.open(tmp_path / "j.sqlite") as journal:
        journal.append(Kind.FILL, fill)
        journal.append(Kind.ACK, OrderAck(CLOID, OrderState.RESTING, oid=7))
        (f, a) = journal.events()
    assert (f.tid, f.cloid, f.payload["px"], f.payload["is_buy"]) == (41, CLOID, 99.5, True)
    assert (a.cloid, a.payload["state"]) == (CLOID, "resting")


def test_replay_is_in_append_order_and_since_seq_skips_the_head(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "j.sqlite") as journal:
        for i in range(50):
            journal.append(Kind.NOTE, {"i": i})
        assert [e.payload["i"] for e in journal.events()] == list(range(50))
        assert [e.seq for e in journal.events(since_seq=45)] == [46, 47, 48, 49, 50]
        assert journal.last_seq() == 50


def test_a_fill_is_recorded_once_per_tid(tmp_path: Path) -> None:
    payload, cloid, tid = PAYLOADS[Kind.FILL]
    with Journal.open(tmp_path / "j.sqlite") as journal:
        assert journal.append(Kind.FILL, payload, cloid, tid) == 1
        assert journal.append(Kind.FILL, {**payload, "sz": 9.0}, cloid, tid) is None
        assert journal.append(Kind.NOTE, {"after": "dup"}) == 2  # the duplicate used no seq
        assert journal.has_fill(41) and not journal.has_fill(42)
        fills = [e for e in journal.events() if e.kind is Kind.FILL]
    assert len(fills) == 1 and fills[0].payload["sz"] == 0.2  # the first one stays


def test_a_funding_payment_is_recorded_once_per_coin_and_time(tmp_path: Path) -> None:
    paid = FundingPayment("BTC", -0.01, 0.2, 1e-4, 60_000)
    with Journal.open(tmp_path / "j.sqlite") as journal:
        assert journal.append(Kind.FUNDING, paid) == 1
        replayed = FundingPayment("BTC", -0.01, 0.2, 1e-4, 60_000, snapshot=True)
        assert journal.append(Kind.FUNDING, replayed) is None
        assert journal.append(Kind.FUNDING, FundingPayment("ETH", -0.02, 1, 1e-4, 60_000)) == 2
        assert journal.append(Kind.FUNDING, FundingPayment("BTC", -0.01, 0.2, 1e-4, 120_000)) == 3


@pytest.mark.parametrize(
    ("kind", "payload", "tid", "message"),
    [
        (Kind.FILL, {"coin": "BTC", "is_buy": True, "px": 1.0, "sz": 1.0, "fee": 0.0}, None, "tid"),
        (Kind.FILL, {"coin": "BTC", "is_buy": 1, "px": 1.0, "sz": 1.0, "fee": 0.0}, 3, "is_buy"),
        (Kind.FILL, {"coin": "BTC", "is_buy": True, "px": "1", "sz": 1.0, "fee": 0.0}, 3, "'px'"),
        (Kind.FUNDING, {"coin": "BTC", "usdc": 1.0}, None, "time_ms"),
        (Kind.INTENT, {"action": "send twice", "order": {"cloid": CLOID}}, None, "action"),
        (Kind.INTENT, {"action": "place", "order": {"coin": "BTC"}}, None, "cloid"),
        (Kind.NOTE, {"x": 1}, 5, "only fills carry a tid"),
        (Kind.ACK, {"oid": 5}, None, "an ack is an order's"),
        (Kind.ORDER_UPDATE, {"oid": 5, "status": "open"}, None, "'state'"),
        (Kind.ALERT, {"rule": "x", "severity": "warning", "action": "none"}, None, "'state'"),
        (Kind.NOTE, {"x": float("nan")}, None, "not JSON"),
        (Kind.NOTE, {"x": object()}, None, "not JSON"),
        (Kind.NOTE, [1, 2], None, "mapping or a dataclass"),
        ("trade", {"x": 1}, None, "unknown event kind 'trade'"),
    ],
)
def test_bad_payloads_are_refused_and_nothing_is_written(
    tmp_path: Path, kind: Any, payload: Any, tid: int | None, message: str
) -> None:
    with Journal.open(tmp_path / "j.sqlite") as journal:
        with pytest.raises(JournalPayloadError, match=message):
            journal.append(kind, payload, tid=tid)
        assert journal.last_seq() == 0


@pytest.mark.parametrize(
    "payload",
    [
        {"key": KEY},
        {"nested": {"list": ["ok", f"signing with {KEY.upper().replace('0X', '0x')} now"]}},
        {KEY: "as a field name"},
    ],
)
def test_a_payload_holding_a_private_key_is_refused(tmp_path: Path, payload: Any) -> None:
    with Journal.open(tmp_path / "j.sqlite") as journal:
        with pytest.raises(JournalPayloadError, match="private key") as err:
            journal.append(Kind.NOTE, payload)
        assert KEY[2:].lower() not in str(err.value).lower()
        assert journal.last_seq() == 0
        # a cloid (32 hex digits) and a bundle sha (64 hex digits without 0x) are fine
        assert journal.append(Kind.NOTE, {"cloid": CLOID, "sha": KEY[2:]}) == 1
    with pytest.raises(JournalPayloadError, match="private key"):
        Journal.open(tmp_path / "k.sqlite", meta=JournalMeta(bundle_sha=KEY))


def test_the_meta_table_holds_what_the_journal_belongs_to(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    meta = JournalMeta("9f" * 32, "http://127.0.0.1:8765", "0x" + "ab" * 20)
    with Journal.open(path, meta=meta) as journal:
        stored = journal.meta()
    assert stored["schema_version"] == str(SCHEMA_VERSION)
    assert (stored["bundle_sha"], stored["venue_url"], stored["account_address"]) == (
        meta.bundle_sha, meta.venue_url, meta.account_address,
    )  # fmt: skip
    Journal.open(path, meta=meta).close()  # the same owner reopens it
    Journal.open(path).close()  # so does a reader that does not say
    other = JournalMeta(account_address="0x" + "cd" * 20)
    with pytest.raises(JournalError, match=f"{path}.*account_address.*ab.*not.*cd"):
        Journal.open(path, meta=other)


def test_a_journal_of_another_schema_version_is_refused_naming_both(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    Journal.open(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(JournalError, match=f"{path} has schema version 99.*version 1"):
        Journal.open(path)


def test_files_that_are_not_journals_are_refused_and_left_alone(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a database at all, but long enough to be read as a header\n" * 20)
    before = text.read_bytes()
    with pytest.raises(JournalCorruptError, match=f"{text} is not a readable SQLite database"):
        Journal.open(text)
    assert text.read_bytes() == before
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE t (x)")
    with pytest.raises(JournalError, match="not an mmgym journal"):
        Journal.open(other)


def test_a_corrupt_row_is_named_by_its_seq_and_no_row_is_lost(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    with Journal.open(path) as journal:
        for i in range(5):
            journal.append(Kind.NOTE, {"i": i})
    with sqlite3.connect(path) as db:  # a payload cut short, a kind this mmgym does not know
        db.execute("UPDATE events SET payload = substr(payload, 1, 4) WHERE seq = 3")
        db.execute("UPDATE events SET kind = 'bogus' WHERE seq = 5")
    with Journal.open(path) as journal:
        events = journal.events()
        assert [next(events).seq for _ in range(2)] == [1, 2]
        with pytest.raises(JournalCorruptError, match=r"event seq 3 \(note\).*truncated"):
            next(events)
        with pytest.raises(JournalCorruptError, match="event seq 5 has kind 'bogus'"):
            list(journal.events(since_seq=3))
        assert journal.append(Kind.NOTE, {"i": 5}) == 6  # appends go on after the bad rows
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 6


def test_a_truncated_file_gets_a_clear_error_and_is_not_changed(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    with Journal.open(path) as journal:
        for i in range(400):
            journal.append(Kind.NOTE, {"i": i, "pad": "x" * 200})
    cut = tmp_path / "cut.sqlite"
    shutil.copyfile(path, cut)
    with open(cut, "r+b") as f:
        f.truncate(cut.stat().st_size // 2)
    before = cut.read_bytes()
    with pytest.raises(JournalCorruptError, match=f"journal {cut}"), Journal.open(cut) as journal:
        list(journal.events())
    assert cut.read_bytes() == before


def test_docs_live_md_documents_the_journal() -> None:
    page = (Path(__file__).resolve().parent.parent / "docs" / "live.md").read_text()
    section = page[page.index("## The journal") :]
    section = section[: section.index("\n## ", 1)] if "\n## " in section[1:] else section
    assert_tables_render(section, "docs/live.md, The journal")
    for name in [*(k.value for k in Kind), *(m.value for m in Synchronous)]:
        assert f"`{name}`" in section, f"docs/live.md's journal section does not name `{name}`"
    for name in ("schema_version", "bundle_sha", "venue_url", "account_address"):
        assert f"`{name}`" in section, name
