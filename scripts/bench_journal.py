"""The journal's cost per decision (``scripts/bench.py --journal N``).

One decision journals three events: the decision, the intent of one order and its ack. Two
ways to journal them: each append committed on its own (three commits), or the decision and its
intent as one :meth:`~agents.live.journal.Journal.batch` (one commit, before the order may be
sent) and the ack as it arrives (a second commit), as the live runner does. Each is timed with
``synchronous=FULL`` and ``NORMAL``, each of the four on its own fresh journal in a temporary
folder (on the disk that holds the system's temporary files), the four taking turns in blocks of
100 decisions so that they share the machine's conditions. Timed: until the order may be sent
(the decision and the intent committed) and the whole decision (the ack committed too).
Each of the four also runs with SQLite's automatic WAL checkpoints (the append that takes the
WAL past 1,000 pages checkpoints) against the journal's checkpoint thread (the default,
:mod:`agents.live.checkpointer`): eight journals in all.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from agents.live.checkpointer import DEFAULT_EVERY_S
from agents.live.journal import Journal, Kind, Synchronous

BLOCK = 100
WARMUP = 20
_DECISION = {"obs_digest": "5f1c0e9a", "action": [0.12, -0.8, 0.05, 0.0, -1.0],
             "bid": [99.97, 0.5], "ask": [100.03, 0.5], "risk": "NORMAL"}  # fmt: skip


def _events(i: int) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    cloid = f"0x{i:032x}"
    order = {"coin": "BTC", "is_buy": True, "sz": 0.5, "px": 99.97, "cloid": cloid,
             "tif": "Alo", "reduce_only": False}  # fmt: skip
    return (
        {"step": i, **_DECISION},
        {"action": "place", "order": order, "nonce": 1_700_000_000 + i},
        {"cloid": cloid, "state": "resting", "oid": i, "filled_sz": 0.0},
    )


def _each(journal: Journal, i: int) -> tuple[int, int]:
    """Three appends, each its own commit; (ns until the send may go, ns for the decision)."""
    decision, intent, ack = _events(i)
    t0 = time.perf_counter_ns()
    journal.append(Kind.DECISION, decision)
    journal.append(Kind.INTENT, intent)
    t1 = time.perf_counter_ns()
    journal.append(Kind.ACK, ack)
    return t1 - t0, time.perf_counter_ns() - t0


def _batched(journal: Journal, i: int) -> tuple[int, int]:
    """The decision and its intent in one batch, then the ack: two commits."""
    decision, intent, ack = _events(i)
    t0 = time.perf_counter_ns()
    with journal.batch():
        journal.append(Kind.DECISION, decision)
        journal.append(Kind.INTENT, intent)
    t1 = time.perf_counter_ns()
    journal.append(Kind.ACK, ack)
    return t1 - t0, time.perf_counter_ns() - t0


WAYS: dict[str, Callable[[Journal, int], tuple[int, int]]] = {
    "each append (3 commits)": _each,
    "batch(decision, intent), then ack (2 commits)": _batched,
}


CHECKPOINTS = {"thread": DEFAULT_EVERY_S, "on the append": None}
"""Who checkpoints the WAL: the journal's thread (every second), or SQLite on an append."""


def journal_table(decisions: int) -> str:
    """A markdown table of the cost per decision (µs) for each way, ``synchronous`` mode and
    checkpointer."""
    arms = [
        (m, way, ckpt)
        for m in (Synchronous.FULL, Synchronous.NORMAL)
        for way in WAYS
        for ckpt in CHECKPOINTS
    ]
    costs: dict[tuple[Synchronous, str, str], list[tuple[int, int]]] = {arm: [] for arm in arms}
    with tempfile.TemporaryDirectory(prefix="mmgym-journal-bench-") as folder:
        journals = {
            (m, way, ckpt): Journal.open(
                Path(folder) / f"{m.value}-{k}.sqlite",
                synchronous=m,
                checkpoint_every_s=CHECKPOINTS[ckpt],
            )
            for k, (m, way, ckpt) in enumerate(arms)
        }
        try:
            for arm in arms:
                for i in range(WARMUP):
                    WAYS[arm[1]](journals[arm], -1 - i)
            i = 0
            while i < decisions:
                n = min(BLOCK, decisions - i)
                for arm in arms:
                    costs[arm] += [WAYS[arm[1]](journals[arm], i + k) for k in range(n)]
                i += n
        finally:
            for journal in journals.values():
                journal.close()
    lines = [
        "| synchronous | journaled as | WAL checkpoints | decisions | until the send, p50 µs "
        "| p99 µs | p99.9 µs | max µs | whole decision, p50 µs | p99 µs | mean µs |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m, way, ckpt in arms:
        us = np.array(costs[(m, way, ckpt)]) / 1e3
        send50, send99, send999 = np.percentile(us[:, 0], [50, 99, 99.9])
        all50, all99 = np.percentile(us[:, 1], [50, 99])
        lines.append(
            f"| {m.value} | {way} | {ckpt} | {len(us):,} | {send50:,.0f} | {send99:,.0f} "
            f"| {send999:,.0f} | {us[:, 0].max():,.0f} | {all50:,.0f} | {all99:,.0f} "
            f"| {us[:, 1].mean():,.0f} |"
        )
    return (
        "Journal cost per decision (a decision, an order intent and its ack; 'until the send': "
        "the decision and the intent committed):\n\n" + "\n".join(lines)
    )
