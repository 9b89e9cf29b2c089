"""Type of a structured-array row as the compiled kernels see it."""

from __future__ import annotations

from typing import Any, TypeAlias

Record: TypeAlias = Any
"""One row of a NumPy structured array; numba exposes its fields as attributes."""
