"""The journal's cost per decision (``scripts/bench.py --journal N``).

One decision journals three events, each committed before the next: the decision, the intent
of one order and its ack. Measured for ``synchronous=FULL`` and ``NORMAL``, each on its own
fresh journal in a temporary folder (on the disk that holds the system's temporary files), the
two modes taking turns in blocks of 100 decisions so that they share the machine's conditions.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from agents.live.journal import Journal, Kind, Synchronous

BLOCK = 100
WARMUP = 20


def _decision(journal: Journal, i: int) -> int:
    """Journal one decision, its order intent and the ack; the nanoseconds it took."""
    cloid = f"0x{i:032x}"
    t0 = time.perf_counter_ns()
    journal.append(
        Kind.DECISION,
        {"step": i, "obs_digest": "5f1c0e9a", "action": [0.12, -0.8, 0.05, 0.0, -1.0],
         "bid": [99.97, 0.5], "ask": [100.03, 0.5], "risk": "NORMAL"},
    )  # fmt: skip
    order = {"coin": "BTC", "is_buy": True, "sz": 0.5, "px": 99.97, "cloid": cloid,
             "tif": "Alo", "reduce_only": False}  # fmt: skip
    journal.append(Kind.INTENT, {"action": "place", "order": order, "nonce": 1_700_000_000 + i})
    journal.append(Kind.ACK, {"cloid": cloid, "state": "resting", "oid": i, "filled_sz": 0.0})
    return time.perf_counter_ns() - t0


def journal_table(decisions: int) -> str:
    """A markdown table of the cost per decision (µs) for each ``synchronous`` mode."""
    modes = (Synchronous.FULL, Synchronous.NORMAL)
    costs: dict[Synchronous, list[int]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory(prefix="mmgym-journal-bench-") as folder:
        journals = {
            m: Journal.open(Path(folder) / f"{m.value}.sqlite", synchronous=m) for m in modes
        }
        try:
            for m in modes:
                for i in range(WARMUP):
                    _decision(journals[m], -1 - i)
            i = 0
            while i < decisions:
                n = min(BLOCK, decisions - i)
                for m in modes:
                    costs[m] += [_decision(journals[m], i + k) for k in range(n)]
                i += n
        finally:
            for journal in journals.values():
                journal.close()
    lines = [
        "| synchronous | decisions | p50, µs | p99, µs | mean, µs |",
        "|---|---:|---:|---:|---:|",
    ]
    for m in modes:
        us = np.array(costs[m]) / 1e3
        p50, p99 = np.percentile(us, [50, 99])
        lines.append(f"| {m.value} | {len(us):,} | {p50:,.0f} | {p99:,.0f} | {us.mean():,.0f} |")
    return (
        "Journal cost per decision (a decision, an order intent and its ack: three appends, "
        "each committed before it returns):\n\n" + "\n".join(lines)
    )
