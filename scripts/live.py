"""Trade a bundle through the guarded live runner (``mmgym-live``; docs/live.md).

    MMGYM_HL_KEY_FILE=~/.mmgym/key mmgym-live bundle=bundles/as account=0x<40 hex> \\
        journal=live/as.db url=http://127.0.0.1:8765 pacing=lockstep max_decisions=600

The settings are conf/live.yaml (schema ``agents.config.LiveJob``). The key comes from
``$MMGYM_HL_PRIVATE_KEY`` or a 0600 file named by ``$MMGYM_HL_KEY_FILE``, never from config. An
existing journal is recovered from, reconciled with the venue, and only then quoted from. With
``ops_port`` the operator's controls listen on 127.0.0.1 (token from ``$MMGYM_OPS_TOKEN`` or
``$MMGYM_OPS_TOKEN_FILE``), with ``metrics_port`` the Prometheus metrics; the alert rules of
``alerts`` (conf/live/alerts, ``live/alerts@alerts=none`` for none) run after each decision
(docs/operations.md).
SIGINT or SIGTERM stops after the decision in progress and cancels the open orders. Exit codes:
0 stopped (a signal, ``max_decisions`` or the market's end); 1 the runner failed (its open
orders canceled where the venue answered; the dead-man's switch covers the rest); 2 bad input,
with a one-line message on stderr.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import signal
import sys
from pathlib import Path

from agents.cli import job_main
from agents.config import LiveJob


def run(job: LiveJob) -> int:
    """Load the bundle, key and journal, then trade until stopped; ValueError for bad input."""
    from agents.deploy.bundle import MANIFEST
    from agents.deploy.guard import GuardedPolicy
    from agents.live.journal import Journal, JournalMeta
    from agents.live.pacing import LockstepPacer, Pacer, WallPacer
    from agents.live.runner import LiveRunner, RunnerConfig
    from agents.live.venues import HyperliquidVenue, load_signer
    from agents.live.venues.keys import RedactingFilter

    guarded = GuardedPolicy.from_bundle(job.bundle, job.risk.to_limits())  # BundleError: 2
    market = guarded.market
    k = market.num_assets
    if k > len(job.coins):
        raise ValueError(f"the bundle trades {k} perp(s) but coins names {len(job.coins)}")
    coins = tuple(job.coins[:k])
    signer = load_signer()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter(signer))
    journal_path = Path(job.journal)
    nonce_file = Path(job.nonce_file) if job.nonce_file else journal_path.with_suffix(".nonce")
    bundle_sha = hashlib.sha256((Path(job.bundle) / MANIFEST).read_bytes()).hexdigest()
    meta = JournalMeta(bundle_sha=bundle_sha, venue_url=job.url, account_address=job.account)
    venue = HyperliquidVenue(
        job.url,
        signer,
        account_address=job.account,
        nonce_file=nonce_file,
        order_ttl_ms=job.order_ttl_ms,
        seed=job.seed,
    )
    pacer: Pacer = (
        LockstepPacer(job.url)
        if job.pacing == "lockstep"
        else WallPacer(job.decision_seconds or market.decision_interval)
    )
    config = RunnerConfig(
        coins=coins,
        hedge_coins=tuple(f"{c}-HEDGE" for c in coins) if job.hedge else None,
        epoch_ms=job.epoch_ms,
        collateral=job.collateral,
        max_decisions=job.max_decisions,
        reconcile_every=job.reconcile_every,
        on_disconnect=job.on_disconnect,
        dead_mans_switch_s=job.dead_mans_switch_s,
        seed=job.seed,
    )
    ops_token = None
    if job.ops_port is not None:
        from agents.ops.control import load_token

        ops_token = load_token()  # TokenError (a ValueError): exit 2, before any trading
    with Journal.open(
        journal_path,
        synchronous=job.synchronous,
        meta=meta,
        checkpoint_every_s=job.checkpoint_seconds,
    ) as journal:
        runner = LiveRunner(venue, guarded, journal, config, pacer)
        if ops_token is not None and job.ops_port is not None:
            from agents.ops.control import OpsControl

            runner.ops = OpsControl(runner, ops_token, job.ops_port)
        if job.metrics_port is not None:
            from agents.ops.metrics import LiveMetrics

            runner.metrics = LiveMetrics(runner, job.metrics_port)
        rules = job.alerts.to_rules()
        if rules or job.alerts.webhook.url:
            from agents.ops.alerts import from_config

            runner.alerts = from_config(runner, rules, job.alerts.webhook)

        async def main() -> None:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, runner.stop)
            await runner.run()

        print(f"mmgym-live: trading {job.bundle} on {job.url} ({', '.join(coins)})", flush=True)
        try:
            asyncio.run(main())
        except Exception as err:
            print(f"mmgym-live: the runner failed: {signer.redact(repr(err))}", file=sys.stderr)
            return 1
        stats = runner.stats
        positions = {c: round(q, 10) for c, q in runner.manager.positions.items() if q}
        print(
            f"mmgym-live: stopped after {stats.decisions} decisions, "
            f"{len(runner.manager.fills)} fills, positions {positions}; journal {journal_path}",
            flush=True,
        )
    return 0


def main(argv: list[str]) -> int:
    """Trade until stopped; return the exit code."""
    return job_main("mmgym-live", "live", LiveJob, argv, run, __doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
