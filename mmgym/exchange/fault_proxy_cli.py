"""``mmgym-fault-proxy``: run the fault proxy in front of a server on 127.0.0.1 until SIGINT or
SIGTERM.

    mmgym-fault-proxy --upstream http://127.0.0.1:8765 --port 8766 --seed 7 \\
        --fault http:drop_response:label=order:nth=3 --fault ws_down:drop:p=0.01 \\
        --log faults.jsonl

A fault is ``target:kind[:key=value...]`` (targets: http, ws_connect, ws_up, ws_down; kinds and
keys in ``mmgym.exchange.faults``); ``--plan FILE`` reads a JSON list of rules as mappings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections import Counter
from pathlib import Path

from mmgym.exchange.fault_proxy import FaultProxy
from mmgym.exchange.faults import FaultRule

PROG = "mmgym-fault-proxy"


def parser() -> argparse.ArgumentParser:
    """The command line."""
    doc = __doc__ or ""
    result = argparse.ArgumentParser(
        prog=PROG,
        description=doc.splitlines()[0],
        epilog="\n".join(doc.splitlines()[2:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    result.add_argument("--upstream", required=True, help="the server, http://127.0.0.1:PORT")
    result.add_argument("--port", type=int, default=0, help="port to bind (0: any free port)")
    result.add_argument("--seed", type=int, default=0, help="seed of every fault decision")
    result.add_argument(
        "--fault", action="append", default=[], metavar="SPEC", help="a rule (repeatable)"
    )
    result.add_argument("--plan", type=Path, help="a JSON file with a list of rules")
    result.add_argument("--log", type=Path, help="append the fault log here (JSON lines)")
    result.add_argument(
        "--upstream-timeout", type=float, default=10.0, help="bound on each forwarded request (s)"
    )
    return result


def rules_from(specs: list[str], plan: Path | None) -> list[FaultRule]:
    """The rules of ``--plan`` (first) and ``--fault`` (after), in order."""
    rules: list[FaultRule] = []
    if plan is not None:
        try:
            entries = json.loads(plan.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ValueError(f"--plan {plan}: {error}") from None
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise ValueError(f"--plan {plan}: expected a JSON list of rule mappings")
        rules.extend(FaultRule.from_dict(entry) for entry in entries)
    rules.extend(FaultRule.parse(spec) for spec in specs)
    return rules


async def serve(proxy: FaultProxy) -> None:
    """Run ``proxy`` until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await proxy.start()
    try:
        print(f"{PROG}: {proxy.url} -> {proxy.upstream}", flush=True)
        await stop.wait()
    finally:
        await proxy.stop()
    kinds = Counter(record.kind for record in proxy.log)
    summary = ", ".join(f"{kind} {count}" for kind, count in sorted(kinds.items())) or "none"
    print(f"{PROG}: stopped; faults injected: {summary}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and serve; bad input exits 2 with one line naming it."""
    args = parser().parse_args(argv)
    try:
        rules = rules_from(args.fault, args.plan)
        proxy = FaultProxy(
            args.upstream,
            rules,
            seed=args.seed,
            port=args.port,
            log_path=args.log,
            upstream_timeout=args.upstream_timeout,
        )
    except ValueError as error:
        parser().error(str(error))
    try:
        asyncio.run(serve(proxy))
    except OSError as error:  # the port is taken, the log file cannot be written
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
