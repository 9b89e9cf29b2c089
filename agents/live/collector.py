"""CPython's garbage collector, kept off the quote path while the runner trades.

CPython collects when allocations cross a threshold, wherever that happens: on the quote path
too. While the runner trades, :class:`DecisionCollector` turns the automatic collector off and
runs, between decisions (after a decision's orders left, before the wait for the next one), the
collection CPython would have run by then: the same thresholds and the same choice of
generation. The start-up's heap (modules, compiled code, the bundle) is collected once before
trading (a full collection of about 140 ms) and frozen (``gc.freeze``), so that a later full
collection scans only what the session allocated. ``python scripts/bench.py --live-gc 300``
counts the collections of a session with it and with CPython's own collector
(docs/benchmarks.md).
"""

from __future__ import annotations

import gc
from types import TracebackType


class DecisionCollector:
    """``with DecisionCollector() as collector:`` the automatic collector is off and the heap
    frozen; :meth:`collect` between decisions; on exit both are as they were."""

    def __init__(self) -> None:
        self._was_enabled = True
        self.collections = [0, 0, 0]
        """Collections run by :meth:`collect`, by generation."""

    def __enter__(self) -> DecisionCollector:
        self._was_enabled = gc.isenabled()
        gc.collect()
        gc.freeze()
        gc.disable()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        gc.unfreeze()
        if self._was_enabled:
            gc.enable()

    def collect(self) -> int | None:
        """Run the collection the automatic collector would have run by now: once the young
        generation's count passed its threshold, the oldest generation whose count passed its
        own (CPython's rule, without its ratio test that postpones full collections: with the
        start-up's heap frozen a full collection is small). The generation collected, or None
        when the young count has not passed its threshold."""
        counts, thresholds = gc.get_count(), gc.get_threshold()
        if thresholds[0] == 0 or counts[0] <= thresholds[0]:
            return None
        generation = max(g for g in range(3) if counts[g] > thresholds[g])
        gc.collect(generation)
        self.collections[generation] += 1
        return generation
