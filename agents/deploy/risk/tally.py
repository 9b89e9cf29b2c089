"""Counting reasons: one row of counts per account and decision.

Slot 0 (``Reason.NONE``, which names nothing) marks a row that counted something, so that an
account whose decision counted nothing leaves its row, and its totals, untouched: most
decisions count nothing, and a row is five cache lines.
"""

from __future__ import annotations

import numba as nb
import numpy as np
from numpy.typing import NDArray

from agents.deploy.risk.jit import JIT
from mmgym.core.records import Record


@nb.njit(**JIT, inline="always")
def tally(counts: NDArray[np.int64], reason: int) -> None:
    """Count one ``reason`` in this decision's row."""
    counts[reason] += 1
    counts[0] = 1


@nb.njit(**JIT, inline="always")
def start_row(counts: NDArray[np.int64], s: Record) -> None:
    """Zero the row if the account's previous decision counted anything."""
    if s.counted:
        for r in range(counts.shape[0]):
            counts[r] = 0
        s.counted = False


@nb.njit(**JIT, inline="always")
def close_row(counts: NDArray[np.int64], totals: NDArray[np.int64], s: Record) -> None:
    """Add a row that counted anything to the account's totals (slot 0 stays 0 there)."""
    if counts[0] != 0:
        counts[0] = 0
        for r in range(1, counts.shape[0]):
            totals[r] += counts[r]
        s.counted = True
