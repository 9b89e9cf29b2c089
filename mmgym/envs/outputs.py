"""A simulator's step outputs: live views, or copies made by one compiled call per step.

``info`` holds dozens of per-env fields of the kernel's state. With ``copy=True`` every one must
be an array that no later step writes. Copying each field on its own costs an array allocation
per entry, more than the kernel's step itself for small batches. Instead:

- each group of fields is a set of :class:`Columns` of a 2-D array of state words (for a record
  array, its 8-byte fields are columns of the records seen as 64-bit words), so one loop
  gathers every field of the group into the rows of a ``(fields, num_envs[, num_assets])``
  block, each row contiguous;
- :class:`CopiedOutputs` fills the observation, reward and end flags and two such blocks in one
  compiled call, in buffers from a :class:`~mmgym.envs.recycled.Recycled` pool (reused only once
  nothing outside references them), and hands out the per-field rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numba as nb
import numpy as np
from numpy.typing import NDArray

from mmgym.envs.recycled import Recycled


@nb.njit(cache=True, error_model="numpy", inline="always")
def _gather(words: NDArray[Any], columns: NDArray[np.intp], out: NDArray[Any]) -> None:
    """``out[j, r] = words[r, columns[j]]``: columns of a 2-D array, as rows of ``out``."""
    for j in range(columns.shape[0]):
        column = columns[j]
        for r in range(words.shape[0]):
            out[j, r] = words[r, column]


@nb.njit(cache=True, error_model="numpy")
def copy_outputs(
    obs: NDArray[np.float32],
    reward: NDArray[np.float64],
    flags: NDArray[np.bool_],
    words_1: NDArray[Any],
    columns_1: NDArray[np.intp],
    words_2: NDArray[Any],
    columns_2: NDArray[np.intp],
    out_obs: NDArray[np.float32],
    out_reward: NDArray[np.float64],
    out_flags: NDArray[np.bool_],
    out_1: NDArray[Any],
    out_2: NDArray[Any],
) -> None:
    """Copy a step's observation, reward and flags, and gather two groups of columns."""
    out_obs[...] = obs
    out_reward[...] = reward
    out_flags[...] = flags
    _gather(words_1, columns_1, out_1)
    _gather(words_2, columns_2, out_2)


class Columns:
    """Named per-env fields that are columns of a 2-D array of words (a row per env or record).

    A field's row in a gathered block is read as ``dtype`` (same item size as the words) and
    reshaped to ``shape`` (``(num_envs,)`` or ``(num_envs, num_assets)``).
    """

    def __init__(
        self,
        words: NDArray[Any],
        fields: Sequence[tuple[str, int, np.dtype]],
        shape: tuple[int, ...],
        views: Mapping[str, NDArray[Any]],
    ) -> None:
        self.words = words
        self.names = tuple(name for name, _, _ in fields)
        self.columns = np.array([column for _, column, _ in fields], dtype=np.intp)
        self._dtypes = [np.dtype(dtype) for _, _, dtype in fields]
        self._shape = shape
        self._views = {name: views[name] for name in self.names}

    @classmethod
    def of_records(
        cls, records: NDArray[np.void], names: Sequence[str], first_only: bool = False
    ) -> Columns:
        """Scalar 8-byte fields of a C-contiguous record array ``(n,)`` or ``(n, k)`` (with
        ``first_only``, of its first column: a single perp), floats first."""
        if not records.flags.c_contiguous or records.dtype.itemsize % 8:
            raise ValueError("records must be C-contiguous with an itemsize a multiple of 8")
        fields = []
        for name in names:
            dtype, offset = records.dtype.fields[name][:2]  # type: ignore[index]
            if dtype.shape or dtype.itemsize != 8 or dtype.kind not in "fi" or offset % 8:
                raise ValueError(f"field {name!r} is not an aligned 8-byte scalar ({dtype})")
            fields.append((name, offset // 8, dtype))
        fields.sort(key=lambda f: f[2].kind != "f")
        words = records.view(np.int64).reshape(*records.shape, records.dtype.itemsize // 8)
        if first_only:
            words = words[:, 0]
        views = {name: records[name][:, 0] if first_only else records[name] for name in names}
        return cls(words.reshape(-1, words.shape[-1]), fields, words.shape[:-1], views)

    def views(self) -> dict[str, NDArray[Any]]:
        """Live views of the fields (the next step overwrites them)."""
        return dict(self._views)

    def new_block(self) -> tuple[NDArray[Any], dict[str, NDArray[Any]], list[NDArray[Any]]]:
        """An empty block to gather into, its per-field rows, and every array object made."""
        block = np.empty((len(self.columns), self.words.shape[0]), dtype=self.words.dtype)
        rows: dict[str, NDArray[Any]] = {}
        arrays = [block]
        for j, (name, dtype) in enumerate(zip(self.names, self._dtypes, strict=True)):
            row = block[j].view(dtype).reshape(self._shape)
            rows[name] = row
            arrays.append(row)
        return block, rows, arrays


class CopiedOutputs:
    """Copies of a simulator's step outputs in recycled buffers, made by one compiled call.

    The simulator keeps its observation, its reward and its per-env flags ``(rows, num_envs)``
    (terminated and truncated in the rows ``flag_rows`` names, other flags reported in
    ``info``), and two groups of :class:`Columns` for the rest of ``info``.
    """

    def __init__(
        self,
        obs: NDArray[np.float32],
        reward: NDArray[np.float64],
        flags: NDArray[np.bool_],
        flag_rows: Mapping[str, int],
        first: Columns,
        second: Columns,
    ) -> None:
        self._sources = (obs, reward, flags)
        self._flag_rows = dict(flag_rows)
        self._first = first
        self._second = second
        self._pool = Recycled(self._new_set)

    def _new_set(self) -> tuple[Any, list[NDArray[Any]]]:
        obs, reward, flags = (np.empty_like(a) for a in self._sources)
        block_1, rows_1, arrays_1 = self._first.new_block()
        block_2, rows_2, arrays_2 = self._second.new_block()
        flag_rows = {name: flags[row] for name, row in self._flag_rows.items()}
        terminated, truncated = flag_rows.pop("terminated"), flag_rows.pop("truncated")
        info = rows_1 | rows_2 | flag_rows
        value = ((obs, reward, flags, block_1, block_2), (obs, reward, terminated, truncated), info)
        arrays = [obs, reward, flags, terminated, truncated, *arrays_1, *arrays_2]
        return value, arrays + list(flag_rows.values())

    def fill(self) -> tuple[Any, ...]:
        """(obs, reward, terminated, truncated, info): copies that no later call writes to while
        anything references them."""
        buffers, outputs, info = self._pool.acquire()
        copy_outputs(
            *self._sources,
            self._first.words, self._first.columns, self._second.words, self._second.columns,
            *buffers,
        )  # fmt: skip
        return (*outputs, dict(info))
