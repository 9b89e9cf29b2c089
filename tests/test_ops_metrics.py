"""The live runner's metrics, scraped over HTTP from 127.0.0.1 and parsed, equal the runner's
state (the runner trading the lockstep paper exchange in-process)."""

from __future__ import annotations

import asyncio
import math
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agents.deploy.risk import Reason
from agents.live.journal import Kind
from agents.ops.metrics import LATENCY_BUCKETS
from tests.ops_support import Session
from tests.venue_support import loopback_only  # noqa: F401

pytestmark = pytest.mark.usefixtures("loopback_only")


def _scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=30.0) as response:
        text = response.read().decode()
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def test_scraped_metrics_equal_the_runners_state(tmp_path: Path) -> None:
    async def main() -> None:
        async with Session(tmp_path, ops=False, metrics=True) as s:
            runner = s.runner
            assert s.metrics is not None and s.metrics.url is not None
            assert s.metrics.url.startswith("http://127.0.0.1:")
            await s.step(25)
            await s.step_until(lambda: bool(runner.manager.positions.get("BTC")), "a fill", 300)
            samples = await asyncio.to_thread(_scrape, s.metrics.url)
            stats = runner.stats
            feed = runner.feed
            assert feed is not None
            account = runner.account_view()
            equity = feed.equity(account)
            position = account.positions["BTC"]
            mark = float(feed.marks()[0])
            assert _value(samples, "mmgym_equity") == equity
            assert _value(samples, "mmgym_pnl") == equity - feed.collateral
            assert _value(samples, "mmgym_position", coin="BTC") == position
            assert _value(samples, "mmgym_exposure", coin="BTC") == position * mark
            for side, is_buy in (("bid", True), ("ask", False)):
                order = account.orders.get(("BTC", is_buy))
                notional = order.px * order.sz if order is not None else 0.0
                got = _value(samples, "mmgym_resting_notional", coin="BTC", side=side)
                assert got == pytest.approx(notional, rel=1e-12)
            limiter = runner.guarded.limiter
            assert _value(samples, "mmgym_risk_mode") == int(limiter.state.mode[0])
            assert _value(samples, "mmgym_operator_reducing") == 0.0
            for reason, n in limiter.state.counts(0).items():
                if reason != Reason.NONE:
                    got = _value(samples, "mmgym_limiter_counts_total", reason=reason.name)
                    assert got == n, reason
            assert _value(samples, "mmgym_decisions_total") == stats.decisions
            assert _value(samples, "mmgym_reconciles_total") == stats.reconciles
            assert _value(samples, "mmgym_reconcile_drift_total") == stats.drift
            assert _value(samples, "mmgym_feed_messages_total") == feed.messages
            assert _value(samples, "mmgym_feed_conflated_total") == feed.conflated
            assert _value(samples, "mmgym_venue_connected") == 1.0
            assert _value(samples, "mmgym_disconnects_total") == 0.0
            assert _value(samples, "mmgym_reconnects_total") == 0.0
            latencies = np.array(stats.decision_latency_s)
            count = _value(samples, "mmgym_decision_latency_seconds_count")
            assert count == len(latencies) == stats.decisions
            total = _value(samples, "mmgym_decision_latency_seconds_sum")
            assert total == pytest.approx(float(latencies.sum()), rel=1e-9)
            for bound in LATENCY_BUCKETS[:-1]:
                le = f"{bound}" if bound != int(bound) else f"{bound:.1f}"
                got = _value(samples, "mmgym_decision_latency_seconds_bucket", le=le)
                assert got == np.count_nonzero(latencies <= bound), bound
            assert LATENCY_BUCKETS[0] < 1e-3  # sub-millisecond buckets
            sent = np.array(stats.message_to_order_s)
            assert len(sent) > 0, "decisions that sent an order are timed"
            assert _value(samples, "mmgym_message_to_order_seconds_count") == len(sent)
            assert _value(samples, "mmgym_message_to_order_seconds_sum") == pytest.approx(
                float(sent.sum()), rel=1e-9
            )

            # the operator's REDUCING shows, and the counts follow
            limiter.reduce(0, "alice")
            await s.step()
            samples = await asyncio.to_thread(_scrape, s.metrics.url)
            assert _value(samples, "mmgym_risk_mode") == 1.0
            assert _value(samples, "mmgym_operator_reducing") == 1.0
            assert _value(samples, "mmgym_limiter_counts_total", reason="OPERATOR_REDUCE") == 1.0
            assert not math.isnan(_value(samples, "mmgym_equity"))

    asyncio.run(main())


def test_message_to_order_latencies_are_observed_and_the_url_journaled(tmp_path: Path) -> None:
    async def main() -> None:
        async with Session(tmp_path, ops=False, metrics=True) as s:
            assert s.metrics is not None and s.metrics.url is not None
            await s.step(5)
            samples = await asyncio.to_thread(_scrape, s.metrics.url)
            sent = s.runner.stats.message_to_order_s
            assert _value(samples, "mmgym_message_to_order_seconds_count") == len(sent)
            fast = sum(1 for x in sent if x <= 0.01)
            assert _value(samples, "mmgym_message_to_order_seconds_bucket", le="0.01") == fast
            note = [
                e
                for e in s.journal.events()
                if e.kind is Kind.NOTE and e.payload.get("event") == "metrics_listening"
            ]
            assert [e.payload["url"] for e in note] == [s.metrics.url]

    asyncio.run(main())
