"""The cells every targets table of the page shares: a value with its standard error, and the
verdict against a published range (``yes`` inside, ``near`` within 2 SE of it, ``no`` beyond)."""

from __future__ import annotations

import math

NEAR = "near (within 2 SE)"


def plus_minus(value: float, se: float, digits: int = 2) -> str:
    """``value ± se`` (``-`` for an unknown value; the value alone for an unknown SE)."""
    if not math.isfinite(value):
        return "-"
    return f"{value:.{digits}f} ± {se:.{digits}f}" if math.isfinite(se) else f"{value:.{digits}f}"


def verdict(value: float, se: float, low: float, high: float = math.inf) -> str:
    """``yes`` inside ``[low, high]``, ``near`` within 2 SE of it, ``no`` beyond."""
    if not math.isfinite(value):
        return "-"
    if low <= value <= high:
        return "yes"
    gap = low - value if value < low else value - high
    return NEAR if math.isfinite(se) and gap <= 2 * se else "no"


def target_row(
    fact: str,
    target: str,
    source: str,
    run: str,
    value: float,
    se: float,
    low: float,
    high: float = math.inf,
    digits: int = 2,
) -> list[str]:
    """One row of a targets table: fact, target, source, run, ``value ± se``, verdict."""
    return [fact, target, source, run, plus_minus(value, se, digits), verdict(value, se, low, high)]
