"""Console entry points: ``mmgym-train``, ``mmgym-evaluate``, ``mmgym-demo``, ``mmgym-export``,
``mmgym-vet``, ``mmgym-paper-exchange``, ``mmgym-fault-proxy``.

Each runs the matching Hydra script in ``scripts/`` with the repository's ``conf/`` (the project
is installed in editable mode by ``make``), passing the command line through. ``job_main`` is
the ``main`` of the scripts that compose one job and return an exit code (``export.py``,
``vet.py``).
"""

from __future__ import annotations

import runpy
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
CONF = SCRIPTS.parent / "conf"
J = TypeVar("J")


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


def paper_exchange() -> None:
    """``mmgym-paper-exchange``: ``scripts/paper_exchange.py``."""
    _run("paper_exchange")


def live() -> None:
    """``mmgym-live``: ``scripts/live.py``."""
    _run("live")


def fault_proxy() -> None:
    """``mmgym-fault-proxy``: the fault-injection proxy (``mmgym.exchange.fault_proxy_cli``;
    argparse, no Hydra: it has no market to compose)."""
    from mmgym.exchange.fault_proxy_cli import main

    raise SystemExit(main())


def job_main(
    prog: str,
    config_name: str,
    schema: type[J],
    argv: list[str],
    run: Callable[[J], int],
    doc: str | None = None,
) -> int:
    """The ``main`` of a script that composes ``conf/<config_name>.yaml`` (with the overrides
    ``argv``) into the job ``schema`` and returns ``run(job)``'s exit code. ``-h`` or ``--help``
    prints ``doc``. Bad input (a Hydra or OmegaConf error, a ValueError) prints one line,
    ``<prog>: error: ...``, on stderr and returns 2."""
    if any(arg in ("-h", "--help") for arg in argv):
        print(doc or "")
        return 0
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from agents.config import to_job

    try:
        with initialize_config_dir(config_dir=str(CONF), version_base=None):
            cfg = compose(config_name=config_name, overrides=argv)
        return run(to_job(cfg, schema))
    except (HydraException, OmegaConfBaseException, ValueError) as err:
        cause = f" ({err.__cause__})" if err.__cause__ else ""
        message = " ".join(f"{err}{cause}".split())
        print(f"{prog}: error: {message}", file=sys.stderr)
        return 2
