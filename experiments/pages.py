"""What the experiments' pages share: confidence intervals written as text."""

from __future__ import annotations

import math


def interval(low: float, high: float, spec: str = ".3g") -> str:
    """``[low, high]`` formatted with ``spec``, or ``n/a`` where the interval could not be
    computed (a NaN bound: fewer than two samples)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return "n/a"
    return f"[{low:{spec}}, {high:{spec}}]"
