"""The agents' compiled code is cached under a key of their sources and the kernel's: an edit
of any agents file (a callee or a constant another module compiles in) gets a fresh cache,
which numba's own per-file check does not give."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numba
import pytest

import agents
import mmgym
from agents import source_key

ROOT = Path(agents.__file__).resolve().parent


@pytest.mark.skipif(bool(os.environ.get("NUMBA_CACHE_DIR")), reason="the user's directory")
def test_the_cache_directory_is_keyed_on_the_agents_sources() -> None:
    directory = Path(str(numba.config.CACHE_DIR))  # type: ignore[attr-defined]
    import mmgym.core  # noqa: F401

    assert directory.name == f"agents-{source_key(ROOT, _kernel_key())}"


def _kernel_key() -> str:
    """The kernel's directory name, as mmgym.core computes it."""
    package = Path(mmgym.__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def test_an_edit_of_any_file_changes_the_key(tmp_path: Path) -> None:
    copy = tmp_path / "agents"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = source_key(copy, "kernel")
    assert source_key(copy, "kernel") == before, "the key is stable"
    assert source_key(copy, "another kernel") != before, "the kernel's key is part of it"
    callee = copy / "deploy" / "risk" / "throttle.py"
    callee.write_text(callee.read_text() + "\n# an edit\n")
    assert source_key(copy, "kernel") != before, "an edited callee gets a fresh cache"
