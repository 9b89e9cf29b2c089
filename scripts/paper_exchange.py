"""Serve a market over Hyperliquid's API on 127.0.0.1 (``mmgym-paper-exchange``; docs/live.md).

    mmgym-paper-exchange user=0x<40 hex> env=calm port=8765 time_mode=lockstep seed=3
    mmgym-paper-exchange user=0x<40 hex> env=volatile port=0 time_mode=accelerated speed=20
    mmgym-paper-exchange user=0x<40 hex> env=liquidation_cascade market_log=market.jsonl

The settings are conf/paper_exchange.yaml (schema ``agents.config.PaperExchangeJob``); the
market is built as training builds it (``agents.market``). Prints the URL it serves (port=0
picks a free port) and serves until SIGINT or SIGTERM; with ``market_log`` it appends each
interval's crowd liquidations and forced volume to that JSON-lines file. Exit codes: 0 stopped
by a signal; 2 bad input, with a one-line message on stderr.
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from agents.cli import job_main
from agents.config import PaperExchangeJob
from agents.market import market_of


def run(job: PaperExchangeJob) -> int:
    """Build the market and serve it until a signal; ValueError for bad input."""
    from mmgym.exchange import Clock, PaperExchange, PaperVenue, serve

    market = market_of(job.env.scenario, job.episode_seconds, job.env.overrides)
    k = market.params.num_assets
    if k > len(job.coins):
        raise ValueError(f"the market has {k} perps but coins names {len(job.coins)}: {job.coins}")
    epoch = job.epoch_ms if job.epoch_ms is not None else int(time.time()) * 1000
    clock = Clock(job.time_mode, job.speed)
    venue = PaperVenue(market.params, job.seed, job.coins[:k], job.user, epoch)
    exchange = PaperExchange(
        venue, job.api_wallet or job.user, clock, start_on_subscribe=job.start_on_subscribe
    )

    def ready(url: str) -> None:
        print(
            f"mmgym-paper-exchange: {market.scenario} (seed {job.seed}, {clock.mode}) "
            f"serving {url}",
            flush=True,
        )

    with ExitStack() as stack:
        if job.market_log is not None:
            log = stack.enter_context(Path(job.market_log).open("a", buffering=1))

            def write(event: dict[str, object]) -> None:
                log.write(json.dumps(event) + "\n")

            venue.on_crowd_event = write
        serve(exchange, job.port, ready)
    print("mmgym-paper-exchange: stopped", flush=True)
    return 0


def main(argv: list[str]) -> int:
    """Serve until a signal; return the exit code."""
    return job_main("mmgym-paper-exchange", "paper_exchange", PaperExchangeJob, argv, run, __doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
