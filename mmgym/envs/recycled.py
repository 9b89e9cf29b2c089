"""Buffers handed out as fresh copies and reused once nothing outside holds them.

A vector env with ``copy=True`` must return arrays that no later step overwrites. Allocating them
anew each step costs an array object per entry (dozens for ``info``), more than the kernel's own
step for small batches. :class:`Recycled` keeps a few sets of preallocated buffers instead. A set
is filled and handed out again only when none of its arrays (nor their shared base) is referenced
from outside: the caller's reference count check (CPython's exact reference counts). In the
usual loop, ``obs, reward, ..., info = env.step(a)``, the previous step's arrays are still bound
while the next step runs, so two sets alternate. When the caller keeps every result (say, in a
list), each step gets a new set and no kept array is ever written again.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from numpy.typing import NDArray

T = TypeVar("T")


class _Slot(Generic[T]):
    __slots__ = ("arrays", "baseline", "value")

    def __init__(self, value: T, arrays: list[NDArray[Any]]) -> None:
        self.value = value
        self.arrays = arrays
        self.baseline = _counts(arrays)


def _counts(arrays: list[NDArray[Any]]) -> list[int]:
    return list(map(sys.getrefcount, arrays))


class Recycled(Generic[T]):
    """A pool of buffer sets made by ``make() -> (value, arrays)``.

    ``value`` is what the owner fills and hands out (for example a dict of views); ``arrays``
    lists every array object an outside holder could keep (the views and their base).
    """

    def __init__(self, make: Callable[[], tuple[T, list[NDArray[Any]]]], keep: int = 3) -> None:
        self._make = make
        self._keep = keep
        self._slots: list[_Slot[T]] = []
        self._next = 0

    def acquire(self) -> T:
        """A buffer set that nothing outside references (a new one if all are held)."""
        slots = self._slots
        for _ in range(len(slots)):
            slot = slots[self._next]
            self._next = (self._next + 1) % len(slots)
            if _counts(slot.arrays) == slot.baseline:
                return slot.value
        slot = _Slot(*self._make())
        if len(slots) < self._keep:
            slots.append(slot)
        else:  # forget the oldest set: its holder keeps it, it is never written again
            slots[self._next] = slot
            self._next = (self._next + 1) % len(slots)
        return slot.value
