"""Full-jitter backoff: every delay in [0, min(cap, base * 2**n)], uniform in between."""

from __future__ import annotations

import math
import random

import pytest

from agents.live.venues.backoff import Backoff


def test_ceilings_double_up_to_the_cap() -> None:
    backoff = Backoff(base_s=0.5, cap_s=5.0)
    assert [backoff.ceiling(n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert backoff.ceiling(10_000) == 5.0


@pytest.mark.parametrize("attempt", [0, 3, 20])
def test_delays_are_uniform_below_the_ceiling(attempt: int) -> None:
    backoff = Backoff(base_s=0.25, cap_s=30.0)
    rng = random.Random(7)
    n = 4_000
    delays = [backoff.delay(attempt, rng) for _ in range(n)]
    ceiling = backoff.ceiling(attempt)
    assert all(0.0 <= d <= ceiling for d in delays)
    # uniform(0, c): mean c/2, standard error c / sqrt(12 n); allow 5 standard errors
    standard_error = ceiling / math.sqrt(12 * n)
    assert abs(sum(delays) / n - ceiling / 2) < 5 * standard_error
    below_half = sum(d < ceiling / 2 for d in delays) / n  # 1/2, standard error 1/(2 sqrt n)
    assert abs(below_half - 0.5) < 5 * 0.5 / math.sqrt(n)


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="0 < base_s <= cap_s"):
        Backoff(base_s=2.0, cap_s=1.0)
