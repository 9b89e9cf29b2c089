"""The pure, vectorised market kernel (numba). Nothing here imports Gymnasium.

Compiled functions are cached on disk. Numba invalidates a cached function only when its own
file changes, not when a function it calls does, so the cache directory is keyed on a hash of
every source file of the package: any edit gets a fresh cache. ``NUMBA_CACHE_DIR``, when set,
takes precedence.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def _configure_numba_cache() -> None:
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    import numba

    package = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode())
        digest.update(path.read_bytes())
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    cache_dir = str(root / "mmgym" / "numba" / digest.hexdigest()[:16])
    numba.config.CACHE_DIR = cache_dir  # type: ignore[attr-defined]


_configure_numba_cache()
