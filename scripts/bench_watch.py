"""The cost of ``mmgym-ops watch``'s refresh on a long journal.

Writes a synthetic session with the real :class:`~agents.live.journal.Journal` (in a temporary
folder): ``--decisions`` decisions, each with the runner's decision payload (mids, marks,
positions, cash, equity, quotes, reasons, latencies), a replace of both quotes (two intents,
two acks, two order updates), a fill every third decision and a funding payment every 60.
Then times, on the host's clock:

- the first fold of the whole journal (``SessionView.open`` and ``update``), once;
- a steady refresh: the writer appends ``--per-refresh`` decisions' rows, then the view reads
  and folds them (``update``) and draws the dashboard (``render`` onto a 160-column terminal
  console, and ``plain_text``), ``--refreshes`` times: p50 and p99 of each part, and of
  ``report.decompose`` on the whole session for comparison (the view folds the decomposition
  row by row instead).

    PYTHONPATH=. python scripts/bench_watch.py --decisions 10000
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console

from agents.live.journal import Journal, Kind, Synchronous
from agents.ops.report import decompose
from agents.ops.watch import SessionView, plain_text, render

EPOCH_MS = 1_700_000_000_000


class Writer:
    """A synthetic session's rows, decision by decision."""

    def __init__(self, journal: Journal, seed: int = 0) -> None:
        self.journal = journal
        self.rng = np.random.default_rng(seed)
        self.i = 0
        self.mid = 100.0
        self.q = 0.0
        self.cash = 0.0
        self.oid = 1
        self.tid = 1

    def decisions(self, n: int) -> None:
        with self.journal.batch():
            for _ in range(n):
                self._one()

    def _one(self) -> None:
        i, j = self.i, self.journal
        self.i += 1
        self.mid += float(self.rng.normal(0.0, 0.05))
        mark = self.mid + 0.01
        j.append(
            Kind.DECISION,
            {
                "venue_time_ms": EPOCH_MS + 1000 * i,
                "mids": {"BTC": self.mid},
                "marks": {"BTC": mark},
                "positions": {"BTC": self.q} if self.q else {},
                "cash": self.cash,
                "equity": 10_000.0 + self.cash + self.q * mark,
                "mode": "ACTIVE",
                "untrusted": None,
                "quotes": {"BTC": [self.mid - 0.05, 0.1, self.mid + 0.05, 0.1]},
                "hedge_fraction": [0.0],
                "reasons": {"SOFT_POSITION_LIMIT": 1} if i % 7 == 0 else {},
                "latency_ms": {
                    "decision": float(self.rng.gamma(2.0, 1.0)),
                    "message_to_order": float(self.rng.gamma(2.0, 1.5)),
                },
            },
        )
        for is_buy, px in ((True, self.mid - 0.05), (False, self.mid + 0.05)):
            cloid = f"0x{2 * i + is_buy:032x}"
            order = {"coin": "BTC", "is_buy": is_buy, "px": px, "sz": 0.1, "cloid": cloid}
            j.append(Kind.INTENT, {"action": "place", "order": order, "nonce": i})
            j.append(Kind.ACK, {"cloid": cloid, "state": "resting", "oid": self.oid})
            if i % 3 == 0 and is_buy:
                signed = 0.1 if self.q <= 0 else -0.1
                fee = 0.1 * px * 1e-4
                j.append(
                    Kind.FILL,
                    {"coin": "BTC", "is_buy": signed > 0, "px": px, "sz": 0.1, "fee": fee,
                     "oid": self.oid, "cloid": cloid, "tid": self.tid,
                     "time_ms": EPOCH_MS + 1000 * i + 500},
                )  # fmt: skip
                self.tid += 1
                self.q += signed
                self.cash -= signed * px + fee
            j.append(Kind.ORDER_UPDATE, {"cloid": cloid, "oid": self.oid, "state": "canceled"})
            self.oid += 1
        if i % 60 == 59:
            usdc = -self.q * self.mid * 1e-5
            j.append(Kind.FUNDING, {"coin": "BTC", "usdc": usdc, "time_ms": EPOCH_MS + 1000 * i})
            self.cash += usdc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=10_000)
    parser.add_argument("--per-refresh", type=int, default=1, help="decisions per refresh")
    parser.add_argument("--refreshes", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.db"
        with Journal.open(path, synchronous=Synchronous.NORMAL) as journal:
            writer = Writer(journal)
            journal.append(Kind.NOTE, {"event": "start", "collateral": 10_000.0})
            for _ in range(args.decisions // 1000):
                writer.decisions(1000)
            writer.decisions(args.decisions % 1000)
            rows = journal.last_seq()
            started = time.perf_counter()
            view = SessionView.open(path)
            view.update()
            first = time.perf_counter() - started
            console = Console(file=io.StringIO(), width=160, force_terminal=True)
            times: dict[str, list[float]] = {"update": [], "render": [], "plain_text": []}
            decomposing = []
            for _ in range(args.refreshes):
                writer.decisions(args.per_refresh)
                t0 = time.perf_counter()
                view.update()
                t1 = time.perf_counter()
                console.print(render(view))
                t2 = time.perf_counter()
                plain_text(view)
                t3 = time.perf_counter()
                decompose(view.session)
                t4 = time.perf_counter()
                for name, dt in zip(times, (t1 - t0, t2 - t1, t3 - t2), strict=True):
                    times[name].append(dt)
                decomposing.append(t4 - t3)
            view.close()
    print(f"journal: {args.decisions} decisions, {rows} rows")
    print(f"first fold of the whole journal (open + update): {1000.0 * first:.0f} ms")
    print(f"per refresh ({args.per_refresh} new decision(s)), {args.refreshes} refreshes:")
    times["report.decompose (for comparison)"] = decomposing
    for name, values in times.items():
        ms = 1000.0 * np.array(values)
        print(f"  {name}: p50 {np.percentile(ms, 50):.1f} ms, p99 {np.percentile(ms, 99):.1f} ms")


if __name__ == "__main__":
    main()
