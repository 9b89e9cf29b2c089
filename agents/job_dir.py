"""The output folder of a Hydra job (``scripts/train.py``, ``evaluate.py``, ``tune.py``,
``reproduce.py``): removed when the job fails before writing anything worth keeping, so failed
attempts do not pile up under ``runs/``.

Not worth keeping: Hydra's own files (``.hydra/``, the job's ``.log``), the job's
``config.yaml`` and TensorBoard event files without a single scalar. Anything else (a model, a
checkpoint, a summary, a report, logged scalars) keeps the folder.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SETTINGS_FILES = frozenset({"config.yaml"})
"""Top-level files that only restate what the job was asked to do."""


def results(out_dir: Path) -> list[Path]:
    """The files of ``out_dir`` worth keeping."""
    kept = []
    for path in sorted(out_dir.rglob("*")):
        relative = path.relative_to(out_dir)
        if not path.is_file() or relative.parts[0] == ".hydra":
            continue
        if len(relative.parts) == 1 and (path.suffix == ".log" or path.name in SETTINGS_FILES):
            continue
        if path.name.startswith("events.out.tfevents.") and not _holds_scalars(path):
            continue
        kept.append(path)
    return kept


def _holds_scalars(events_file: Path) -> bool:
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    for event in EventFileLoader(str(events_file)).Load():
        if event.HasField("summary") and len(event.summary.value) > 0:
            return True
    return False


@contextmanager
def discard_on_failure(out_dir: Path) -> Iterator[None]:
    """Run a job writing to ``out_dir``; if it fails and ``out_dir`` holds no result, remove
    the folder (and say so on stderr) before the error propagates."""
    try:
        yield
    except BaseException:
        if out_dir.is_dir() and not results(out_dir):
            shutil.rmtree(out_dir, ignore_errors=True)
            print(f"removed {out_dir}: the job failed before writing any result", file=sys.stderr)
        raise
