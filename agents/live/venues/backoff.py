"""Bounded exponential backoff with full jitter: ``sleep = uniform(0, min(cap, base * 2**n))``
before the n-th retry (n = 0, 1, ...), so clients that lost the venue together do not return
together."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Full-jitter backoff in seconds."""

    base_s: float = 0.25
    cap_s: float = 30.0

    def __post_init__(self) -> None:
        if not 0.0 < self.base_s <= self.cap_s:
            raise ValueError(f"backoff wants 0 < base_s <= cap_s, got {self.base_s}, {self.cap_s}")

    def ceiling(self, attempt: int) -> float:
        """The largest sleep before retry ``attempt`` (0-based)."""
        return min(self.cap_s, self.base_s * 2.0 ** min(attempt, 64))

    def delay(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0.0, self.ceiling(attempt))
