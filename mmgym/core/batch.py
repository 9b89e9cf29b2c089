"""What every batched kernel shares: the check of the actions and its serial and parallel builds.

A batched step is written once as a function of ``loop``, the range over envs. It is compiled
twice: with ``range`` (serial) and with ``numba.prange`` (``parallel=True``, envs split over
threads). Each env draws only from its own stream and writes only its own rows, so the two builds
give bit-identical results; the parallel one pays a few microseconds to start its threads and
pays off for large batches.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numba as nb
import numpy as np
from numpy.typing import NDArray


@nb.njit(cache=True, error_model="numpy")
def first_non_finite(actions: NDArray[np.floating]) -> int:
    """Flat index of the first non-finite entry of a ``(num_envs, action_dim)`` array, or -1."""
    cols = actions.shape[1]
    for i in range(actions.shape[0]):
        for j in range(cols):
            if not math.isfinite(actions[i, j]):
                return i * cols + j
    return -1


def compile_serial_and_parallel(
    make: Callable[[Any], Callable[..., Any]], serial_options: dict[str, Any] | None = None
) -> tuple[Any, Any]:
    """The serial and the parallel build of the batched step ``make(loop)``.

    The parallel build is named ``<name>_parallel``; each build has its own on-disk cache.
    ``serial_options`` are numba options of the serial build (default: cached, numpy's error
    model, as the parallel one).
    """
    serial = make(range)
    parallel = make(nb.prange)
    parallel.__name__ = parallel.__qualname__ = f"{serial.__name__}_parallel"
    serial.__qualname__ = serial.__name__
    return (
        nb.njit(**(serial_options or {"cache": True, "error_model": "numpy"}))(serial),
        nb.njit(cache=True, error_model="numpy", parallel=True)(parallel),
    )
