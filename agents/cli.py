"""Console entry points: ``mmgym-train``, ``mmgym-evaluate``, ``mmgym-demo``, ``mmgym-export``,
``mmgym-vet``.

Each runs the matching Hydra script in ``scripts/`` with the repository's ``conf/`` (the project
is installed in editable mode by ``make``), passing the command line through.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def _run(name: str) -> None:
    script = SCRIPTS / f"{name}.py"
    if not script.is_file():
        raise SystemExit(f"{script} not found: mmgym's console scripts need a source checkout")
    sys.argv[0] = str(script)
    runpy.run_path(str(script), run_name="__main__")


def train() -> None:
    """``mmgym-train``: ``scripts/train.py``."""
    _run("train")


def evaluate() -> None:
    """``mmgym-evaluate``: ``scripts/evaluate.py``."""
    _run("evaluate")


def demo() -> None:
    """``mmgym-demo``: ``scripts/demo.py``."""
    _run("demo")


def export() -> None:
    """``mmgym-export``: ``scripts/export.py``."""
    _run("export")


def vet() -> None:
    """``mmgym-vet``: ``scripts/vet.py``."""
    _run("vet")
