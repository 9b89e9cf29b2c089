"""Type of a structured-array row as the compiled kernels see it, and the names rows go by.

Every kernel module calls a record of one type by the same name:

====  ===============================================================================
name  record
====  ===============================================================================
P     the packed market parameters (``layout.param_dtype``); ``Pa`` its one-row array
e     the account record of one env (``layout.account_dtype``): regime, clock, crowd
a     the record of one perp of one env (``layout.asset_dtype``); ``A`` an env's row
w     the event window of one perp (``layout.window_dtype``); ``W`` an env's row
v     the account window of one env (``layout.ACCOUNT_WINDOW_DTYPE``)
C     the observation builder's packed configuration; ``Ca`` its one-row array
f     the observation builder's feature state of one perp
====  ===============================================================================

``rng`` is the array of random streams and ``i`` the env whose stream a function draws from.
"""

from __future__ import annotations

from typing import Any, TypeAlias

Record: TypeAlias = Any
"""One row of a NumPy structured array; numba exposes its fields as attributes."""
