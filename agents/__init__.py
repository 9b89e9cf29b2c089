"""mmgym's agents: baselines, training, deployment, the live side and operations.

Compiled functions of this package are cached on disk. Numba invalidates a cached function
only when its own file changes, not when a function or constant it takes from another module
does, so (as for the kernel, :mod:`mmgym.core`) the cache directory is keyed on a hash of every
source file of this package and on the kernel's key: any edit of either gets a fresh cache.
``NUMBA_CACHE_DIR``, when set, takes precedence.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def source_key(package: Path, base: str) -> str:
    """A hash of ``base`` and every ``*.py`` file below ``package`` (paths and contents)."""
    digest = hashlib.sha256(base.encode())
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _configure_numba_cache() -> None:
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    import numba

    import mmgym.core  # noqa: F401  (sets the kernel's keyed cache directory: part of this key)

    kernel = Path(str(numba.config.CACHE_DIR))  # type: ignore[attr-defined]
    key = source_key(Path(__file__).resolve().parent, kernel.name)
    numba.config.CACHE_DIR = str(kernel.parent / f"agents-{key}")  # type: ignore[attr-defined]


_configure_numba_cache()
