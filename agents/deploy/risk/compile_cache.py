"""Numba's on-disk cache for the limiter's compiled code, keyed on its sources.

Numba invalidates a cached function only when its own file changes, not when a function it
calls does (the limiter's gateway inlines checks from other modules). As for the kernel
(:mod:`mmgym.core`), the cache directory is therefore keyed on a hash of every source file of
this package and on the kernel's own key: any edit of either gets a fresh cache.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numba

import mmgym.core  # noqa: F401  (sets the kernel's cache directory, part of this key)


@contextmanager
def keyed_cache(package: Path) -> Iterator[None]:
    """Compile functions defined within this block into a cache keyed on ``package``'s
    sources (unless ``NUMBA_CACHE_DIR`` is set: then the user's directory is used)."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        yield
        return
    previous = str(numba.config.CACHE_DIR)  # type: ignore[attr-defined]
    digest = hashlib.sha256(previous.encode())
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode())
        digest.update(path.read_bytes())
    numba.config.CACHE_DIR = str(Path(previous).parent / f"risk-{digest.hexdigest()[:16]}")  # type: ignore[attr-defined]
    try:
        yield
    finally:
        numba.config.CACHE_DIR = previous  # type: ignore[attr-defined]
