"""Alerts through a real session: the runner trading the lockstep paper exchange in-process
(127.0.0.1 only). A funding drift moves the account to REDUCING, an orphan order found by a
reconciliation HALTS it; the journal holds the alert rows and the transitions naming the rule,
a loopback webhook receives exactly the de-duplicated alerts, one that is down stops nothing,
the status API and the session report show them, and the live PnL decomposition and funding
drift scraped from the metrics equal the report's of the same journal."""

from __future__ import annotations

import asyncio
import json
import math
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from agents.live.journal import Kind
from agents.live.venues.base import OrderRequest
from agents.ops.alert_rules import Rule
from agents.ops.alerts import Webhook
from agents.ops.pnl import COMPONENTS, PnlAccumulator
from agents.ops.report import decompose, read_session, write_session_report
from tests.ops_support import TOKEN, HookServer, Session, closed_port_url
from tests.test_ops_metrics import _scrape, _value
from tests.venue_support import loopback_only  # noqa: F401

pytestmark = pytest.mark.usefixtures("loopback_only")


def _status(url: str) -> dict[str, Any]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(
        url + "/v1/status", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with opener.open(request, timeout=30.0) as response:
        return dict(json.loads(response.read())["status"])


DRIFT_THRESHOLD = 1e-10
"""Quote currency: any drift of this calm market. Its drift is the position times the
oracle's move between the last decision and the funding time times the rate (2e-7): about
3e-10 at the first payment of this session (seed 3)."""


def _independent_funding_drift(events: list[Any]) -> tuple[float, int]:
    """Funding received less -position x oracle x published rate, the position being the last
    decision's plus the fills since (a plain loop over the rows, for the test)."""
    rate = oracle = None
    position = 0.0
    terms = []
    for e in events:
        p = e.payload
        if e.kind is Kind.DECISION:
            rate = p["funding_rates"].get("BTC")
            oracle = p["oracles"].get("BTC")
            position = p["positions"].get("BTC", 0.0)
        elif e.kind is Kind.FILL and p["coin"] == "BTC":
            position += p["sz"] if p["is_buy"] else -p["sz"]
        elif e.kind is Kind.FUNDING and p["coin"] == "BTC" and rate is not None and oracle:
            terms.append(p["usdc"] + position * oracle * rate)
    return math.fsum(terms), len(terms)


def test_funding_drift_reduces_and_the_live_decomposition_equals_the_reports(
    tmp_path: Path,
) -> None:
    rules = [
        Rule.parse(
            {
                "name": "funding_drift",
                "condition": "funding_drift",
                "threshold": DRIFT_THRESHOLD,
                "severity": "warning",
                "action": "reduce",
                "cooldown_s": None,
            }
        ),
        Rule.parse({"name": "mode", "condition": "risk_mode", "threshold": 0, "severity": "info"}),
    ]
    hook = HookServer()

    async def main() -> None:
        webhook = Webhook(hook.url)
        async with Session(tmp_path, metrics=True, rules=rules, webhook=webhook) as s:
            runner = s.runner
            limiter = runner.guarded.limiter

            def firing() -> bool:
                return any(e.kind is Kind.ALERT for e in s.journal.events())

            await s.step_until(firing, "a funding drift alert", 200)
            assert limiter.state.mode_of(0).name == "REDUCING"
            await s.step(20)  # the drift stays: one incident, counted, not sent again
            assert runner.alerts is not None
            active = {a["rule"]: a for a in runner.alerts.active()}
            assert set(active) == {"funding_drift", "mode"}
            assert active["funding_drift"]["suppressed"] >= 20
            status = await asyncio.to_thread(_status, s.url)
            assert [a["rule"] for a in status["alerts"]] == ["funding_drift", "mode"]
            assert status["mode"] == "REDUCING"
            assert s.metrics is not None and s.metrics.url is not None
            samples = await asyncio.to_thread(_scrape, s.metrics.url)
            events = list(s.journal.events())
            assert await asyncio.to_thread(webhook.flush, 30.0)

        alerts = [e for e in events if e.kind is Kind.ALERT]
        assert [(a.payload["rule"], a.payload["state"]) for a in alerts] == [
            ("funding_drift", "firing"),
            ("mode", "firing"),
        ]
        first = alerts[0].payload
        assert (
            first["action"] == "reduce"
            and first["value"] > DRIFT_THRESHOLD
            and first["unit"] == "quote"
        )
        # the transition right after the alert row names the rule
        i = events.index(alerts[0])
        transition = events[i + 1]
        assert transition.kind is Kind.RISK_TRANSITION
        assert (transition.payload["to"], transition.payload["reason"]) == ("REDUCING", "ALERT")
        assert transition.payload["operator"] == "alert:funding_drift"
        assert (transition.payload["alert"], transition.payload["alert_seq"]) == (
            "funding_drift",
            alerts[0].seq,
        )
        # from then on only reducing orders: nothing on the side that adds to the position
        later = [e.payload for e in events[i:] if e.kind is Kind.DECISION]
        assert len(later) >= 20 and all(d["mode"] == "REDUCING" for d in later)
        for d in later:
            q = d["positions"].get("BTC", 0.0)
            _, bid_sz, _, ask_sz = d["quotes"]["BTC"]
            assert bid_sz <= max(-q, 0.0) + 1e-12 and ask_sz <= max(q, 0.0) + 1e-12, d
        # the webhook got exactly the journaled alerts, each with its seq
        assert hook.bodies == [{**a.payload, "seq": a.seq} for a in alerts]

        # the live numbers equal the report's decomposition of the same journal: the same rows
        # through the same accumulator, whose sums are exact (rounded once when read), so the
        # split of the rows between updates cannot change them; Prometheus' text format writes
        # floats with repr, which reads back exactly. Equality is exact.
        session = read_session(s.journal_path)
        d = decompose(session)
        assert d is not None and d.fills > 0
        for name in COMPONENTS:
            got = _value(samples, "mmgym_pnl_component", component=name)
            assert got == d.components[name], name
        assert _value(samples, "mmgym_pnl_component", component="residual") == d.residual
        assert abs(d.residual) < 1e-6
        report_pnl = PnlAccumulator(session.coins).add_all(session.events)
        drift = _value(samples, "mmgym_funding_drift")
        assert drift == report_pnl.funding_drift != 0.0
        expected, payments = _independent_funding_drift(session.events)
        assert payments == report_pnl.funding_payments >= 1
        assert drift == pytest.approx(expected, rel=1e-12, abs=1e-12)

    try:
        asyncio.run(main())
    finally:
        hook.close()


def test_reconcile_drift_halts_and_a_webhook_that_is_down_stops_nothing(tmp_path: Path) -> None:
    rules = [
        Rule.parse(
            {
                "name": "reconcile_drift",
                "condition": "reconcile_drift",
                "threshold": 0,
                "severity": "critical",
                "action": "halt",
                "resolve_after_s": 0,
            }
        ),
    ]

    async def main() -> None:
        webhook = Webhook(closed_port_url() + "/token-in-path", timeout_s=2.0)
        async with Session(tmp_path, ops=False, rules=rules, webhook=webhook) as s:
            runner = s.runner
            await s.step(9)  # the next decision reconciles (every 10)
            assert runner.stats.drift == 0 and runner.stats.decisions == 9
            # behind the runner's back: its bid cancelled, an order it never sent in its place
            # (the paper exchange rests one bid per coin)
            (bid,) = [o for o in await runner.venue.open_orders() if o.coin == "BTC" and o.is_buy]
            assert (await runner.venue.cancel("BTC", bid.oid)).ok
            orphan = OrderRequest("BTC", True, bid.sz, bid.px, "0x" + "ab" * 16)
            ack = await runner.venue.place([orphan])
            assert ack[0].oid is not None, ack
            await s.step()
            assert runner.stats.drift == 1
            assert runner.guarded.limiter.state.mode_of(0).name == "HALTED"
            await s.step(5)  # HALTED: every order cancelled at the next decision
            assert not [o for o in await runner.venue.open_orders() if o.coin == "BTC"]
            assert await asyncio.to_thread(webhook.flush, 30.0)
            assert webhook.stats.failed == 2 and webhook.stats.posted == 0  # firing, resolved
            events = list(s.journal.events())

        alerts = [e.payload for e in events if e.kind is Kind.ALERT]
        assert [(a["rule"], a["state"]) for a in alerts] == [
            ("reconcile_drift", "firing"),
            ("reconcile_drift", "resolved"),
        ]
        transitions = [e.payload for e in events if e.kind is Kind.RISK_TRANSITION]
        assert [(t["to"], t["reason"], t.get("alert")) for t in transitions] == [
            ("ACTIVE", "ACCOUNT_OPENED", None),
            ("HALTED", "ALERT", "reconcile_drift"),
        ]
        decisions = [e.payload for e in events if e.kind is Kind.DECISION]
        assert decisions[-1]["mode"] == "HALTED"
        assert all(q[1] == 0.0 and q[3] == 0.0 for q in [decisions[-1]["quotes"]["BTC"]])
        out = write_session_report(s.journal_path, tmp_path / "report")
        text = out.read_text()
        alerts_section = text[text.index("### Alerts") :]
        assert "reconcile_drift firing, critical, action halt" in alerts_section
        assert "reconcile_drift resolved" in alerts_section
        assert "alert:reconcile_drift" in text  # the transition's operator

    asyncio.run(main())
