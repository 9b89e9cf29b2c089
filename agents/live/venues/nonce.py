"""Strictly increasing nonces for signed actions, monotonic across restarts.

Hyperliquid keeps the 100 highest nonces of each signer and refuses a nonce it has seen or one
below the smallest of them, and wants nonces within (now - 2 days, now + 1 day). The SDK uses
the millisecond clock, so two actions in one millisecond collide. :class:`NonceSource` issues
``max(now_ms, last + 1)``: never the same nonce twice, close to the clock. With a ``state_file``
it leases a block of nonces ahead (writes ``last + lease`` before issuing any of them), so a
process that restarts, even after kill -9, starts above every nonce it may have used.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

DEFAULT_LEASE = 10_000
"""Nonces leased per write of the state file (10 s of headroom at the millisecond clock)."""


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class NonceSource:
    """Issues strictly increasing nonces, each at least the wall clock in milliseconds."""

    def __init__(
        self,
        state_file: Path | None = None,
        clock_ms: Callable[[], int] = wall_clock_ms,
        lease: int = DEFAULT_LEASE,
    ) -> None:
        if lease < 1:
            raise ValueError(f"lease must be at least 1 nonce, got {lease}")
        self._clock_ms = clock_ms
        self._state_file = state_file
        self._lease = lease
        self._lock = threading.Lock()
        self._last = self._read_leased()
        self._leased_to = self._last

    @property
    def last(self) -> int:
        """The last nonce issued (or the floor read from the state file)."""
        return self._last

    def next(self) -> int:
        with self._lock:
            nonce = max(self._clock_ms(), self._last + 1)
            if self._state_file is not None and nonce > self._leased_to:
                self._write_lease(nonce + self._lease)
            self._last = nonce
            return nonce

    def _read_leased(self) -> int:
        if self._state_file is None or not self._state_file.exists():
            return 0
        text = self._state_file.read_text().strip()
        try:
            return int(text)
        except ValueError:
            raise ValueError(
                f"nonce state file {self._state_file} holds {text[:40]!r}, not an integer: "
                "restore it or remove it only if no other process signs with this key"
            ) from None

    def _write_lease(self, leased_to: int) -> None:
        assert self._state_file is not None
        self._state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._state_file.with_name(self._state_file.name + ".tmp")
        with open(tmp, "w") as f:
            f.write(f"{leased_to}\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._state_file)
        self._leased_to = leased_to
