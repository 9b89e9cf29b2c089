"""Checks of baseline settings: a ``ValueError`` that names the setting, the rule and the value."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable

import numpy as np


def require(ok: bool, name: str, requirement: str, value: object) -> None:
    """Raise ``ValueError("<name> must be <requirement>, got <value>")`` unless ``ok``."""
    if not ok:
        raise ValueError(f"{name} must be {requirement}, got {value!r}")


def is_real(value: object) -> bool:
    """A finite real number: Python and numpy numbers, not booleans."""
    real = isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)
    return real and math.isfinite(value)  # type: ignore[arg-type]


def check_positive(**values: float) -> None:
    """Every value a finite number > 0; the message names the first that is not."""
    _check_numbers(values, lambda v: v > 0, "> 0")


def check_non_negative(**values: float) -> None:
    """Every value a finite number >= 0; the message names the first that is not."""
    _check_numbers(values, lambda v: v >= 0, ">= 0")


def _check_numbers(values: dict[str, float], holds: Callable[[float], bool], bound: str) -> None:
    for name, value in values.items():
        require(is_real(value) and holds(value), name, f"a finite number {bound}", value)
