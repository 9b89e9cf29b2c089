"""The garbage collector runs between decisions only, on CPython's own thresholds
(agents/live/collector.py): unit checks, and a lockstep session on the paper exchange in which
every collection starts outside the runner's decisions."""

from __future__ import annotations

import asyncio
import gc
import itertools
from pathlib import Path
from typing import Any

import pytest

from agents.live.collector import DecisionCollector
from agents.live.journal import Journal
from tests.test_live_runner import _runner, _serve
from tests.venue_support import loopback_only  # noqa: F401


def _garbage(n: int) -> None:
    for _ in range(n):
        a: list[Any] = []
        a.append(a)  # a cycle: only the collector frees it


def test_the_automatic_collector_is_off_inside_and_restored_after() -> None:
    assert gc.isenabled()
    with DecisionCollector() as collector:
        assert not gc.isenabled() and gc.get_freeze_count() > 0
        threshold = gc.get_threshold()[0]
        _garbage(3 * threshold)
        assert gc.get_count()[0] > threshold  # nothing collected them automatically
        assert collector.collect() == 0
        assert gc.get_count()[0] < threshold
        assert collector.collect() is None  # below the threshold: nothing
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_older_generations_follow_cpythons_counts() -> None:
    """CPython's rule: a middle collection once more than t1 young ones ran since the last, a
    full one once more than t2 middle ones ran since the last full one."""
    with DecisionCollector() as collector:
        t0, t1, t2 = gc.get_threshold()
        generations: list[int] = []
        for _ in range(20 * (t1 + 2) * (t2 + 2)):  # bounded; breaks at the first full one
            _garbage(t0 + 1)
            generation = collector.collect()
            if generation is not None:
                generations.append(generation)
            if generation == 2:
                break
    middle = [i for i, g in enumerate(generations) if g == 1]
    assert generations[-1] == 2 and generations.count(2) == 1
    assert middle[0] == t1 + 1  # after t1 + 1 young ones
    assert all(b - a == t1 + 2 for a, b in itertools.pairwise(middle))
    assert len(middle) == t2 + 1 and len(generations) - 1 == middle[-1] + 1  # then the full one


def test_a_collector_left_disabled_stays_disabled() -> None:
    gc.disable()
    try:
        with DecisionCollector():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


@pytest.mark.usefixtures("loopback_only")
def test_no_collection_starts_inside_a_decision(tmp_path: Path) -> None:
    server, _ = _serve(seed=5)
    inside = {"now": False}
    started: list[bool] = []

    def record(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started.append(inside["now"])

    try:
        with Journal.open(tmp_path / "journal.db") as journal:
            runner = _runner(server.url, journal, decisions=80)
            decide = runner.decide

            async def timed(now_ms: int) -> Any:
                inside["now"] = True
                try:
                    return await decide(now_ms)
                finally:
                    inside["now"] = False

            runner.decide = timed  # type: ignore[method-assign]
            gc.callbacks.append(record)
            try:
                stats = asyncio.run(runner.run())
            finally:
                gc.callbacks.remove(record)
    finally:
        server.close()
    assert stats.decisions == 80
    assert runner.collector is not None and sum(runner.collector.collections) > 0
    assert started.count(True) == 0, f"{started.count(True)} collections inside decisions"
    assert gc.isenabled()
