"""mmgym's agents: baselines, training, deployment, the live side and operations.

Compiled functions of this package are cached on disk. Numba invalidates a cached function
only when its own file changes, not when a function or constant it takes from another module
does, so (as for the kernel, :mod:`mmgym.core`) the cache directory is keyed on a hash of every
source file of this package and on the kernel's key: any edit of either gets a fresh cache.
``NUMBA_CACHE_DIR``, when set, takes precedence.

The directory is chosen when a function is decorated, so every module of :mod:`mmgym` with
compiled functions (:func:`compiled_modules`) is imported before the switch: imported later,
its functions would be compiled again into this package's directory (and again after every
edit here).
tests/test_numba_cache.py checks that each compiled function sits in its own package's cache.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from pathlib import Path

UNUSED_HERE = ("mmgym.analysis.",)
"""Kernel-side packages this package never imports (the market analysis, which needs pandas,
would add a third of a second to every import of :mod:`agents`)."""


def compiled_modules(package: Path, name: str) -> list[str]:
    """The modules below ``package`` (importable as ``name``) whose source has ``.njit(``."""
    found = []
    for path in sorted(package.rglob("*.py")):
        if b".njit(" in path.read_bytes():
            parts = path.relative_to(package).with_suffix("").parts
            found.append(".".join((name, *parts)).removesuffix(".__init__"))
    return found


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

    import mmgym.core  # (sets the kernel's keyed cache directory: part of this key)

    kernel_side = Path(mmgym.core.__file__).resolve().parent.parent
    for module in compiled_modules(kernel_side, "mmgym"):
        if not module.startswith(UNUSED_HERE):
            importlib.import_module(module)  # decorated under the kernel's directory

    kernel = Path(str(numba.config.CACHE_DIR))  # type: ignore[attr-defined]
    key = source_key(Path(__file__).resolve().parent, kernel.name)
    numba.config.CACHE_DIR = str(kernel.parent / f"agents-{key}")  # type: ignore[attr-defined]


_configure_numba_cache()
