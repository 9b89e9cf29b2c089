"""Nonces: strictly increasing, never below the wall clock, and above every nonce used before a
restart (a leased block is written before any of it is used)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from agents.live.venues.nonce import NonceSource, wall_clock_ms


def test_nonces_in_one_millisecond_still_increase() -> None:
    source = NonceSource(clock_ms=lambda: 1_000)
    assert [source.next() for _ in range(4)] == [1_000, 1_001, 1_002, 1_003]


def test_nonces_follow_the_clock_and_never_go_back_with_it() -> None:
    times = iter([1_000, 5_000, 4_000, 4_001, 9_000])
    source = NonceSource(clock_ms=lambda: next(times))
    assert [source.next() for _ in range(5)] == [1_000, 5_000, 5_001, 5_002, 9_000]


def test_nonces_are_unique_across_threads() -> None:
    source = NonceSource()
    issued: list[int] = []
    lock = threading.Lock()

    def take() -> None:
        mine = [source.next() for _ in range(500)]
        with lock:
            issued.extend(mine)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(set(issued)) == 2_000
    assert min(issued) >= wall_clock_ms() - 60_000


def test_a_restart_starts_above_every_nonce_used_before(tmp_path: Path) -> None:
    state = tmp_path / "nonce"
    first = NonceSource(state, clock_ms=lambda: 1_000, lease=100)
    used = [first.next() for _ in range(250)]  # crosses two lease boundaries
    assert used[-1] == 1_249
    # a restart (even after kill -9, the file was written before the nonces were used) whose
    # clock went back
    second = NonceSource(state, clock_ms=lambda: 900, lease=100)
    assert second.next() > max(used)
    # and a restart with the clock ahead follows the clock
    third = NonceSource(state, clock_ms=lambda: 10**12, lease=100)
    assert third.next() == 10**12


def test_a_corrupt_state_file_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "nonce"
    state.write_text("not a number")
    with pytest.raises(ValueError, match="not an integer"):
        NonceSource(state)
