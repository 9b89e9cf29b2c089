"""Each compiled function is cached in its own package's keyed directory, whatever the import
order: mmgym's under the kernel's key, agents' under the agents' key (agents/__init__.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = r"""
import importlib, json, pkgutil, sys
import agents  # first: the order that once put kernel functions in the agents' directory
import mmgym
from numba.core.registry import CPUDispatcher

found = {}
for package in (mmgym, agents):
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # an optional extra that is not installed
            continue
        for name, value in vars(module).items():
            if isinstance(value, CPUDispatcher) and value.__module__ == info.name:
                cache = value._cache
                if hasattr(cache, "_cache_path"):
                    found[f"{info.name}.{name}"] = cache._cache_path
print(json.dumps(found))
"""


@pytest.mark.skipif(bool(os.environ.get("NUMBA_CACHE_DIR")), reason="a user's NUMBA_CACHE_DIR")
def test_compiled_functions_are_cached_under_their_own_package_key() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300, check=True
    ).stdout
    paths: dict[str, str] = json.loads(out.strip().splitlines()[-1])
    mmgym_paths = {k: v for k, v in paths.items() if k.startswith("mmgym.")}
    agents_paths = {k: v for k, v in paths.items() if k.startswith("agents.")}
    assert mmgym_paths and agents_paths
    from agents import UNUSED_HERE

    misplaced = {
        k: v
        for k, v in mmgym_paths.items()
        if ("/agents-" in v or "/risk-" in v) and not k.startswith(UNUSED_HERE)
    }
    assert not misplaced, f"kernel-side functions cached in the agents' directory: {misplaced}"
    strays = {k: v for k, v in agents_paths.items() if "/agents-" not in v and "/risk-" not in v}
    assert not strays, f"agents' functions cached outside the agents' key: {strays}"


def test_compiled_modules_finds_the_kernel_and_the_features() -> None:
    from pathlib import Path

    import mmgym
    from agents import compiled_modules

    found = compiled_modules(Path(mmgym.__file__).resolve().parent, "mmgym")
    assert {"mmgym.core.kernel", "mmgym.features.observation", "mmgym.envs.outputs"} <= set(found)
    assert "mmgym.core" not in found and "mmgym.envs.registration" not in found
