"""``mmgym-ops report <journal> [--out DIR]``: write a live session's report from its journal.

:func:`main` takes the arguments after ``report`` (the ``mmgym-ops`` dispatcher passes them
on). It prints the report's path and returns 0; a journal that is missing or is not an mmgym
journal, or an output folder that cannot be written, prints one line ``mmgym-ops report:
error: ...`` on stderr naming the problem and returns 2. The journal is opened read-only, so a
running session's journal can be reported on while the runner writes it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agents.live.journal import JournalError

PROG = "mmgym-ops report"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Write a live session's report (session.md, PNG plots, fills.csv) from its "
        "journal alone.",
    )
    p.add_argument("journal", type=Path, help="the session's journal (an SQLite file)")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="the report's folder (default: <journal without its suffix>-report, next to it)",
    )
    return p


def default_out(journal: Path) -> Path:
    """``live/btc.db`` -> ``live/btc-report``."""
    return journal.with_name(f"{journal.stem}-report")


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    journal: Path = args.journal
    out: Path = args.out if args.out is not None else default_out(journal)
    from agents.ops.report import write_session_report

    try:
        path = write_session_report(journal, out)
    except JournalError as err:
        return _error(str(err), 2)
    except OSError as err:
        return _error(f"cannot write the report to {out}: {err}", 2)
    except ModuleNotFoundError as err:  # the plots' matplotlib, the intervals' scipy
        return _error(str(err), 1)
    print(path)
    return 0


def _error(message: str, code: int) -> int:
    print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr)
    return code
