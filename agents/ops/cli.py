"""``mmgym-ops``: the operator's command line (docs/operations.md). ``status``, ``halt``,
``reduce``, ``resume`` and ``flatten`` talk to a running ``mmgym-live``'s controls
(:mod:`agents.ops.control_cli`); ``report`` writes a session's report from its journal
(:mod:`agents.ops.report_cli`); ``watch`` shows a session's live dashboard from its journal
(:mod:`agents.ops.watch_cli`)."""

from __future__ import annotations

import sys
from collections.abc import Callable

USAGE = (
    "usage: mmgym-ops {status,halt,reduce,resume,flatten,report,watch} ...  "
    "(mmgym-ops <command> --help for a command's arguments)"
)


def _report(argv: list[str]) -> int:
    from agents.ops.report_cli import main

    return main(argv)


def _watch(argv: list[str]) -> int:
    from agents.ops.watch_cli import main

    return main(argv)


def _control(argv: list[str]) -> int:
    from agents.ops.control_cli import main

    return main(argv)


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "report": _report,
    "watch": _watch,
    **{name: _control for name in ("status", "halt", "reduce", "resume", "flatten")},
}


def main(argv: list[str] | None = None) -> int:
    """Dispatch to the command named first; 2 with the usage for an unknown one."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    command = COMMANDS.get(args[0])
    if command is None:
        print(f"mmgym-ops: error: unknown command {args[0]!r}; {USAGE}", file=sys.stderr)
        return 2
    return command(args if command is _control else args[1:])


def entry() -> None:
    """The console script."""
    raise SystemExit(main())


if __name__ == "__main__":
    entry()
