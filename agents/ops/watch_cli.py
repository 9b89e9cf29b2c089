"""``mmgym-ops watch <journal>``: the live dashboard of a session (:mod:`agents.ops.watch`).

:func:`main` takes the arguments after ``watch``. Exit codes: 0 (shown once, the session
ended with ``--exit-when-done``, or Ctrl-C); 2 bad input: a journal that is missing or is not
an mmgym journal, or a bad option, with one line ``mmgym-ops watch: error: ...`` on stderr; 1
the ``live`` extra (rich) is not installed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agents.live.journal import JournalError

PROG = "mmgym-ops watch"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="A live dashboard of a running (or finished) live session, read from its "
        "journal: equity and PnL decomposition, positions and exposure, open orders, risk "
        "state, alerts, latency percentiles, connection. On a terminal it refreshes in place; "
        "otherwise (or with --plain) it prints plain-text summaries.",
    )
    p.add_argument("journal", type=Path, help="the session's journal (an SQLite file)")
    p.add_argument(
        "--refresh", type=float, default=1.0, metavar="S",
        help="seconds between refreshes of the terminal dashboard (default 1.0)",
    )  # fmt: skip
    p.add_argument(
        "--plain", action="store_true",
        help="plain-text summaries instead of the terminal dashboard (automatic when stdout "
        "is not a terminal)",
    )  # fmt: skip
    p.add_argument(
        "--every", type=float, default=10.0, metavar="S",
        help="seconds between plain-text summaries (default 10)",
    )  # fmt: skip
    p.add_argument("--once", action="store_true", help="show one snapshot and exit")
    p.add_argument(
        "--exit-when-done", action="store_true",
        help="exit once the journal shows the runner stopped (its stop note)",
    )  # fmt: skip
    p.add_argument(
        "--url", default=None,
        help="the runner's control API (http://127.0.0.1:PORT) for its live status; default: "
        "the URL the runner journaled, asked only when $MMGYM_OPS_TOKEN or "
        "$MMGYM_OPS_TOKEN_FILE is set",
    )  # fmt: skip
    p.add_argument(
        "--window", type=int, default=1000, metavar="N",
        help="latency percentiles over the last N decisions (default 1000)",
    )  # fmt: skip
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    for name in ("refresh", "every"):
        if not getattr(args, name) > 0:
            return _error(f"--{name} must be > 0 seconds, got {getattr(args, name)}", 2)
    if args.window < 1:
        return _error(f"--window must be >= 1 decision, got {args.window}", 2)
    try:
        from agents.ops.watch import run_watch

        run_watch(
            args.journal,
            refresh_s=args.refresh,
            plain=args.plain,
            once=args.once,
            exit_when_done=args.exit_when_done,
            every_s=args.every,
            url=args.url,
            window=args.window,
        )
    except KeyboardInterrupt:
        return 0
    except (JournalError, ValueError) as err:
        return _error(str(err), 2)
    except ModuleNotFoundError as err:  # rich (the live extra)
        return _error(str(err), 1)
    return 0


def _error(message: str, code: int) -> int:
    print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr)
    return code
