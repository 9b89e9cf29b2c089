"""Named fields of a state record array, read as live views or copied in one call.

An env's ``info`` holds dozens of per-env fields of the kernel's state records. Copying each
field view on its own costs dozens of small strided copies per step. Instead, every 8-byte
field is a column of the records seen as 64-bit words: one compiled call gathers all the
requested columns into a ``(fields, num_envs[, num_assets])`` block, whose rows are the
per-field arrays (each contiguous).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numba as nb
import numpy as np
from numpy.typing import NDArray


@nb.njit(cache=True)
def gather_columns(words: NDArray[Any], columns: NDArray[np.intp], out: NDArray[Any]) -> None:
    """``out[j, r] = words[r, columns[j]]``: columns of a 2-D array, as rows of ``out``."""
    for j in range(columns.shape[0]):
        column = columns[j]
        for r in range(words.shape[0]):
            out[j, r] = words[r, column]


class RecordFields:
    """Scalar 8-byte fields of ``records`` (shape ``(n,)`` or ``(n, k)``, C-contiguous).

    With ``first_only`` the second axis is dropped (a single perp): each field reads as
    ``records[name][:, 0]``.
    """

    def __init__(
        self, records: NDArray[np.void], names: Sequence[str], first_only: bool = False
    ) -> None:
        if not records.flags.c_contiguous or records.dtype.itemsize % 8:
            raise ValueError("records must be C-contiguous with an itemsize a multiple of 8")
        floats: list[tuple[str, int]] = []
        ints: list[tuple[str, int]] = []
        for name in names:
            dtype, offset = records.dtype.fields[name][:2]  # type: ignore[index]
            if dtype.shape or dtype.itemsize != 8 or dtype.kind not in "fi" or offset % 8:
                raise ValueError(f"field {name!r} is not an aligned 8-byte scalar ({dtype})")
            (floats if dtype.kind == "f" else ints).append((name, offset // 8))
        self.names: tuple[str, ...] = tuple(name for name, _ in floats + ints)
        """Field names, floats first: the order of :meth:`views` and :meth:`copy`."""
        self._float_names = tuple(name for name, _ in floats)
        self._int_names = tuple(name for name, _ in ints)
        self._columns = np.array([column for _, column in floats + ints], dtype=np.intp)
        self._num_floats = len(floats)
        words = records.view(np.int64).reshape(*records.shape, records.dtype.itemsize // 8)
        if first_only:
            words = words[:, 0]
        self._shape = words.shape[:-1]  # (n,) or (n, k)
        self._words = words.reshape(-1, words.shape[-1])  # a row per record, a column per word
        self._views = {
            name: records[name][:, 0] if first_only else records[name] for name in self.names
        }

    def views(self) -> dict[str, NDArray[Any]]:
        """Live views of the fields (the next step overwrites them)."""
        return dict(self._views)

    def new_block(self) -> tuple[NDArray[np.int64], dict[str, NDArray[Any]], list[NDArray[Any]]]:
        """An empty block for :meth:`gather_into`, its per-field rows, and every array object
        made (the block, its float view and the rows)."""
        block = np.empty((len(self._columns), self._words.shape[0]), dtype=np.int64)
        fields = block.reshape(len(self._columns), *self._shape)
        floats = fields[: self._num_floats].view(np.float64)
        rows = dict(zip(self._float_names, floats, strict=False))
        rows.update(zip(self._int_names, fields[self._num_floats :], strict=False))
        return block, rows, [block, fields, floats, *rows.values()]

    def gather_into(self, block: NDArray[np.int64]) -> None:
        """Copy every field into ``block`` (from :meth:`new_block`) in one call."""
        gather_columns(self._words, self._columns, block)
