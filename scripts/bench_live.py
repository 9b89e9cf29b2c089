"""The live runner's message-to-order latency (``scripts/bench.py --live-latency N``).

The runner (this process) trades a baseline bundle (``avellaneda_stoikov``, exported with
``export_baseline``) behind its GuardedPolicy on the paper exchange on loopback, lockstep (the
exchange in its own process, as ``--exchange-rtt`` runs it, so its work never shares this
process's interpreter). Per decision that sends an order action:

- **message to order**: from the arrival of the market message that completes the decision
  interval (the host's monotonic clock, taken where the adapter reads the WebSocket frame: the
  newest market message the decision read) to the moment the decision's first order action is
  handed to the HTTP transport (signed, the POST leaving); the runner's own
  ``RunnerStats.message_to_order_s``;
- its parts: **wait** (from the arrival to the start of the decision: the pump taking the
  messages, the lockstep pacer's poll noticing the interval is complete), **feed + builder**
  (the account view, the feed's windows, the observation builder, the risk inputs),
  **guard** (``GuardedPolicy.decide``), **journal** (the journal's work before the first send:
  the decision's batch, begun and committed, and the first order's intent), **signing** (the
  first action's), **rest** (the decision's payload, the order manager and the wire: what
  remains).

The order manager's anti-herding jitter (``jitter_s``, a deliberate random delay of cancels and
replaces) is set to 0: it is a policy delay, not processing. Cells: the journal in
``synchronous=NORMAL`` and ``FULL``, at the exchange's usual message rate (per decision
interval one l2Book, the interval's trades and one activeAssetCtx per coin) and in a tenfold
burst (the exchange process sends every l2Book ten times: nine identical copies, then the book,
as ten WebSocket frames). Each run is a fresh exchange process and runner; the cells take turns
run by run; the first ``WARMUP`` decisions of a run are left out. The journal's whole cost per
decision (every append of the run: decisions, intents, acks, order updates, fills, over the
decisions) is given next to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import secrets
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import bench_exchange
import numpy as np

from mmgym.markdown import table

WARMUP = 20
BURST = 10
PARTS = ("total", "wait", "feed", "guard", "journal", "sign", "rest")
PART_NAMES = {
    "total": "message to order",
    "wait": "wait",
    "feed": "feed + builder",
    "guard": "guard",
    "journal": "journal",
    "sign": "signing",
    "rest": "rest",
}


class _Timing:
    """Per decision timestamps, from wrappers around the runner's decide, the guard's decide
    and the journal's append (installed on the instances; the runner's code is unchanged)."""

    def __init__(self, venue: Any) -> None:
        self.venue = venue
        self.current: dict[str, float] | None = None
        self.records: list[dict[str, float]] = []
        self.journal_s = 0.0
        self.appends = 0

    def _journal(self, seconds: float) -> None:
        self.journal_s += seconds
        record = self.current
        if record is not None and self.venue.first_sent_s != self.venue.first_sent_s:  # unsent
            record["journal"] += seconds

    def wrap_journal(self, journal: Any) -> None:
        """Time ``append`` and, if the journal has them, ``batch()``'s begin and commit and
        ``commit()`` (a deferred batch's)."""
        append = journal.append

        def timed_append(*args: Any, **kwargs: Any) -> Any:
            t0 = time.monotonic()
            result = append(*args, **kwargs)
            self._journal(time.monotonic() - t0)
            self.appends += 1
            return result

        journal.append = timed_append
        batch = getattr(journal, "batch", None)
        if batch is None:
            return

        @contextlib.contextmanager
        def timed_batch(*args: Any, **kwargs: Any) -> Iterator[None]:
            t0 = time.monotonic()
            with batch(*args, **kwargs):
                self._journal(time.monotonic() - t0)
                yield
                t1 = time.monotonic()
            self._journal(time.monotonic() - t1)

        journal.batch = timed_batch
        commit = getattr(journal, "commit", None)
        if commit is None:
            return

        def timed_commit() -> None:
            t0 = time.monotonic()
            commit()
            self._journal(time.monotonic() - t0)

        journal.commit = timed_commit

    def wrap_guard(self, guarded: Any) -> None:
        decide = guarded.decide

        def timed_decide(*args: Any, **kwargs: Any) -> Any:
            record = self.current
            t0 = time.monotonic()
            result = decide(*args, **kwargs)
            if record is not None:
                record["guard_start"], record["guard_end"] = t0, time.monotonic()
            return result

        guarded.decide = timed_decide

    def wrap_runner(self, runner: Any) -> None:
        decide = runner.decide
        venue = self.venue

        async def timed_decide(now_ms: int) -> Any:
            record = {"arrival": venue.market_received_s, "start": time.monotonic(), "journal": 0.0}
            self.current = record
            try:
                return await decide(now_ms)
            finally:
                self.current = None
                record["sent"], record["sign"] = venue.first_sent_s, venue.first_sign_s
                self.records.append(record)

        runner.decide = timed_decide

    def parts(self, skip: int) -> dict[str, np.ndarray]:
        rows = [r for r in self.records[skip:] if math.isfinite(r["sent"]) and "guard_end" in r]
        columns: dict[str, list[float]] = {p: [] for p in PARTS}
        for r in rows:
            columns["total"].append(r["sent"] - r["arrival"])
            columns["wait"].append(r["start"] - r["arrival"])
            columns["feed"].append(r["guard_start"] - r["start"])
            columns["guard"].append(r["guard_end"] - r["guard_start"])
            columns["journal"].append(r["journal"])
            columns["sign"].append(r["sign"])
            columns["rest"].append(r["sent"] - r["guard_end"] - r["journal"] - r["sign"])
        return {p: np.array(v) for p, v in columns.items()}


def _run(
    decisions: int,
    synchronous: str,
    books: int,
    bundle: Path,
    on_timing: Callable[[_Timing], None] | None = None,
) -> dict[str, Any]:
    """One session of ``WARMUP + decisions`` decisions on a fresh exchange process;
    ``on_timing`` sees the session's timing before it starts (``current`` is set while a
    decision runs)."""
    from agents.deploy.guard import GuardedPolicy
    from agents.live.journal import Journal, Synchronous
    from agents.live.order_manager import ManagerConfig
    from agents.live.pacing import LockstepPacer
    from agents.live.runner import LiveRunner, RunnerConfig
    from agents.live.venues import HyperliquidVenue, Signer

    signer = Signer(secrets.token_hex(32))
    guarded = GuardedPolicy.from_bundle(bundle)
    coins = bench_exchange.COINS[: guarded.market.num_assets]
    config = RunnerConfig(
        coins=tuple(coins),
        max_decisions=WARMUP + decisions,
        manager=ManagerConfig(jitter_s=0.0),
    )
    with (
        bench_exchange._exchange_process("lockstep", 1.0, signer.address, books) as url,
        tempfile.TemporaryDirectory(prefix="mmgym-live-bench-") as folder,
        Journal.open(Path(folder) / "journal.db", synchronous=Synchronous(synchronous)) as journal,
    ):
        venue = HyperliquidVenue(url, signer, seed=0)
        timing = _Timing(venue)
        timing.wrap_journal(journal)
        timing.wrap_guard(guarded)
        runner = LiveRunner(venue, guarded, journal, config, LockstepPacer(url))
        timing.wrap_runner(runner)
        if on_timing is not None:
            on_timing(timing)
        stats = asyncio.run(runner.run())
    if stats.decisions != WARMUP + decisions:
        raise RuntimeError(f"the session made {stats.decisions} decisions, not {decisions}")
    parts = timing.parts(WARMUP)
    own = np.array(stats.message_to_order_s[-len(parts["total"]) :]) if len(parts["total"]) else []
    if len(own) and not np.allclose(own, parts["total"], atol=1e-9):
        raise RuntimeError("the runner's message_to_order_s and the bench's timing disagree")
    return {
        "parts": parts,
        "journal_per_decision": timing.journal_s / stats.decisions,
        "conflated": venue.conflated_books + (runner.feed.conflated if runner.feed else 0),
        "books": runner.feed.messages if runner.feed else 0,
        "decisions": stats.decisions,
    }


def _ms(values: np.ndarray, q: float) -> str:
    return f"{np.percentile(values, q) * 1e3:.2f}" if len(values) else "-"


def latency_table(decisions: int, repeats: int) -> str:
    """The markdown table: per cell (rate, journal) p50 / p99 of message to order and its
    parts over all runs' decisions; the range of the runs' p99."""
    from agents.deploy.export import export_baseline

    cells = [(books, mode) for books in (1, BURST) for mode in ("NORMAL", "FULL")]
    runs: dict[tuple[int, str], list[dict[str, Any]]] = {cell: [] for cell in cells}
    with tempfile.TemporaryDirectory(prefix="mmgym-live-bundle-") as folder:
        bundle = Path(folder) / "bundle"
        export_baseline("avellaneda_stoikov", bundle, bench_exchange._params(), force=True)
        for _ in range(repeats):
            for books, mode in cells:
                runs[(books, mode)].append(_run(decisions, mode, books, bundle))
    rows = []
    for (books, mode), measured in runs.items():
        parts = {p: np.concatenate([m["parts"][p] for m in measured]) for p in PARTS}
        p99s = [np.percentile(m["parts"]["total"], 99) * 1e3 for m in measured]
        made = sum(m["decisions"] - WARMUP for m in measured)
        row = [
            "1x" if books == 1 else f"{books}x l2Book",
            mode,
            f"{len(parts['total'])} of {made}",
        ]
        row += [f"{_ms(parts[p], 50)} / {_ms(parts[p], 99)}" for p in PARTS]
        row.append(f"{min(p99s):.2f} to {max(p99s):.2f}")
        journal = [m["journal_per_decision"] * 1e6 for m in measured]
        row.append(f"{np.median(journal):,.0f}")
        row.append(f"{sum(m['conflated'] for m in measured):,}")
        rows.append(row)
    header = [
        "messages",
        "journal",
        "n (sent)",
        *(f"{PART_NAMES[p]} p50 / p99 (ms)" for p in PARTS),
        "p99 of each run (ms)",
        "journal per decision, all appends (µs, median of runs)",
        "books conflated",
    ]
    return table(header, rows, "lll" + "r" * (len(header) - 3))


def report(decisions: int, repeats: int) -> str:
    from importlib.metadata import version

    return (
        f"Live runner, message to order (lockstep on loopback, the paper exchange in its own "
        f"process; a baseline bundle (avellaneda_stoikov, {bench_exchange.SCENARIO}); "
        f"{repeats} runs per cell of {decisions} decisions after {WARMUP} of warm-up, the cells "
        f"taking turns; order jitter 0; signing with coincurve {version('coincurve')}):\n\n"
        + latency_table(decisions, repeats)
    )


class _AutomaticCollector:
    """Stands in for :class:`agents.live.collector.DecisionCollector`: CPython's collector left
    as it is (collecting wherever an allocation crosses its threshold)."""

    def __init__(self) -> None:
        self.collections = [0, 0, 0]

    def __enter__(self) -> _AutomaticCollector:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def collect(self) -> None:
        return None


class _GcWatch:
    """Every collection of a session: (generation, seconds, whether a decision was running)."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, float, bool]] = []
        self._timing: _Timing | None = None
        self._start: tuple[float, bool] | None = None

    def attach(self, timing: _Timing) -> None:
        self._timing = timing
        gc.callbacks.append(self._callback)

    def detach(self) -> None:
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            inside = self._timing is not None and self._timing.current is not None
            self._start = (time.perf_counter(), inside)
        elif self._start is not None:
            t0, inside = self._start
            self.seen.append((int(info["generation"]), time.perf_counter() - t0, inside))
            self._start = None


def collections_table(decisions: int) -> str:
    """The garbage collector in a session of ``decisions`` decisions (``NORMAL``, usual rate),
    with the runner's DecisionCollector and with CPython's automatic collector: per generation
    the collections, their p50 and largest duration, and how many started inside a decision
    (the runner's ``decide``, where the quote path is)."""
    import agents.live.runner as runner_module
    from agents.deploy.export import export_baseline

    rows = []
    original = runner_module.DecisionCollector
    with tempfile.TemporaryDirectory(prefix="mmgym-live-bundle-") as folder:
        bundle = Path(folder) / "bundle"
        export_baseline("avellaneda_stoikov", bundle, bench_exchange._params(), force=True)
        for name, collector in (
            ("DecisionCollector", original),
            ("automatic", _AutomaticCollector),
        ):
            watch = _GcWatch()
            runner_module.DecisionCollector = collector  # type: ignore[misc,assignment]
            try:
                _run(decisions, "NORMAL", 1, bundle, on_timing=watch.attach)
            finally:
                runner_module.DecisionCollector = original  # type: ignore[misc]
                watch.detach()
            for generation in range(3):
                took = np.array([t for g, t, _ in watch.seen if g == generation]) * 1e3
                inside = sum(1 for g, _, i in watch.seen if g == generation and i)
                rows.append([
                    name, generation, len(took),
                    f"{np.median(took):.3f}" if len(took) else "-",
                    f"{took.max():.3f}" if len(took) else "-", inside,
                ])  # fmt: skip
    return table(
        ["collector", "generation", "collections", "p50 (ms)", "largest (ms)", "inside a decision"],
        rows,
        "lrrrrr",
    )
