"""The live runner under the fault proxy: each fault class of the proxy (dropped, duplicated,
delayed and reordered messages, disconnects, 5xx answers and rejects, on HTTP and on the
WebSocket) through a lockstep session, and a lost stream mid-session.

The proxy stands between the runner's venue adapter and the paper exchange; the LockstepPacer
advances the exchange directly (it is the test's clock, not venue traffic). At the end of every
session the crash test's invariants hold: every exchange fill is in the journal exactly once,
the journal's position and cash equal the exchange's, no order rests on the exchange that the
journal does not know, and no order reached the exchange more often than the runner journaled
an intent to send it (nothing was sent twice because of a retry).

127.0.0.1 only; every session is bounded in time.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agents.baselines.registry import make_baseline
from agents.deploy.guard import GuardedPolicy
from agents.deploy.risk import Reason, RiskLimits, TradingMode
from agents.live.journal import Journal, Kind
from agents.live.order_manager import ManagerConfig
from agents.live.pacing import LockstepPacer
from agents.live.recovery import recover
from agents.live.runner import LiveRunner, RunnerConfig, RunnerStats
from agents.live.venues import Signer
from mmgym.exchange import BackgroundServer, Clock, PaperExchange, PaperVenue
from mmgym.exchange.fault_proxy import FaultProxy
from mmgym.exchange.faults import FaultRule
from mmgym.scenarios import make_params
from tests.venue_support import AGENT_KEY, USER, adapter, loopback_only  # noqa: F401

pytestmark = pytest.mark.usefixtures("loopback_only")

EPOCH_MS = 1_700_000_000_000
BOUND_S = 90.0
"""The most one session may take (a loaded machine; a session takes a few seconds)."""
DECISIONS = 40


def _market():  # type: ignore[no-untyped-def]
    return make_params("calm", episode_seconds=3600.0, funding_interval_seconds=10.0)


@dataclass
class Exchange:
    """The paper exchange on a thread, and what reached its order book per cloid."""

    server: BackgroundServer
    venue: PaperVenue
    reached: Counter[str]

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture
def exchange() -> Iterator[Exchange]:
    # seed 6: a market in which the baseline trades within every fault class's 40 decisions
    # (the tests' invariants need fills to mean something; in a calmer path it may not trade)
    venue = PaperVenue(_market(), 6, ["BTC"], USER, EPOCH_MS)
    reached: Counter[str] = Counter()
    place = venue.place

    def counting(order_wire: Any, replacing: Any = None) -> dict[str, Any]:
        if isinstance(order_wire, dict) and isinstance(order_wire.get("c"), str):
            reached[order_wire["c"].lower()] += 1  # a place, or a replace's new order
        return place(order_wire, replacing=replacing)

    venue.place = counting  # type: ignore[method-assign]
    server = BackgroundServer(
        PaperExchange(venue, Signer(AGENT_KEY).address, Clock("lockstep")), timeout=30.0
    )
    try:
        yield Exchange(server, venue, reached)
    finally:
        server.close()


Body = Callable[[FaultProxy, LiveRunner], Awaitable[None]]


def session(
    exchange: Exchange,
    journal: Journal,
    rules: list[FaultRule],
    *,
    decisions: int | None = DECISIONS,
    body: Body | None = None,
    on_disconnect: str = "reduce",
    limits: RiskLimits | None = None,
    dead_mans_switch_s: float | None = 60.0,
    **venue_options: Any,
) -> tuple[LiveRunner, RunnerStats, FaultProxy]:
    """A runner session through a proxy with ``rules``: ``decisions`` decisions, or until
    ``body`` (run beside the runner) returns and stops it."""
    params = _market()
    guarded = GuardedPolicy(make_baseline("avellaneda_stoikov", params), params, limits)
    config = RunnerConfig(
        coins=("BTC",),
        epoch_ms=EPOCH_MS,
        collateral=params.collateral,
        max_decisions=decisions,
        reconcile_every=10,
        on_disconnect=on_disconnect,
        dead_mans_switch_s=dead_mans_switch_s,
        manager=ManagerConfig(jitter_s=0.0),
    )
    options = {"request_timeout_s": 5.0, "resolve_timeout_s": 2.0, **venue_options}

    async def main() -> tuple[LiveRunner, RunnerStats, FaultProxy]:
        async with FaultProxy(exchange.url, rules, upstream_timeout=10.0) as proxy:
            pacer = LockstepPacer(exchange.url, timeout_s=20.0, data_wait_s=1.0)
            runner = LiveRunner(adapter(proxy.url, **options), guarded, journal, config, pacer)
            task = asyncio.create_task(runner.run())
            try:
                if body is not None:
                    await asyncio.wait_for(body(proxy, runner), BOUND_S)
                    runner.stop()
                stats = await asyncio.wait_for(asyncio.shield(task), BOUND_S)
            finally:
                if not task.done():
                    task.cancel()
        return runner, stats, proxy

    return asyncio.run(main())


def check_invariants(exchange: Exchange, journal: Journal) -> None:
    """The crash test's invariants, and nothing sent twice because of a retry."""
    venue = exchange.venue
    state = recover(journal)
    events = list(journal.events())
    journaled = sorted(e.tid for e in events if e.kind is Kind.FILL)
    assert journaled == sorted(f["tid"] for f in venue.fills), "every exchange fill exactly once"
    kernel = venue.assets[0]
    assert state.positions.get("BTC", 0.0) == pytest.approx(float(kernel["inventory"]), abs=1e-9)
    assert state.cash.get("BTC", 0.0) == pytest.approx(float(kernel["cash"]), rel=1e-9, abs=1e-9)
    intents: Counter[str] = Counter()
    for e in events:
        if e.kind is Kind.INTENT and e.cloid and e.payload.get("action") in ("place", "replace"):
            intents[e.cloid.lower()] += 1
    unknown = [o.cloid for o in venue.book.open_orders() if (o.cloid or "") not in intents]
    assert not unknown, f"resting on the exchange, unknown to the journal: {unknown}"
    resent = {c: n for c, n in exchange.reached.items() if n > intents[c]}
    assert not resent, f"orders that reached the exchange more often than intended: {resent}"


def rules(*specs: str) -> list[FaultRule]:
    return [FaultRule.parse(spec) for spec in specs]


FAULTS: dict[str, list[str]] = {
    "http dropped requests and answers": [
        "http:drop_request:label=order:p=0.3:limit=3",
        "http:drop_response:label=cancel:p=0.3:limit=3",
        "http:drop_response:label=frontendOpenOrders:nth=1",
    ],
    "http duplicated orders and cancels": [
        "http:duplicate:label=order:p=0.5:limit=6",
        "http:duplicate:label=cancel:p=0.5:limit=6",
    ],
    "http delayed and reordered": [
        "http:delay:label=order:p=0.2:seconds=0.2:limit=4",
        "http:delay:label=batchModify:nth=2:seconds=6.0",  # past the request's time-out
        "http:reorder:p=0.2:seconds=0.2:limit=6",
    ],
    "http disconnects": ["http:disconnect:p=0.1:limit=6"],
    "http 5xx": [
        "http:error_5xx:label=order:nth=2:after_forward=true",
        "http:error_5xx:p=0.1:limit=5:status=503",
    ],
    "http rejects": [
        "http:reject:label=order:p=0.3:limit=3:text=Too many requests",
        "http:order_error:label=cancel:p=0.3:limit=3:text=Order was never placed",
        "http:order_error:label=batchModify:nth=1:text=Insufficient margin",
    ],
    "ws dropped account messages": [
        "ws_down:drop:label=userFills:p=0.5",
        "ws_down:drop:label=orderUpdates:p=0.3",
        "ws_down:drop:label=trades:p=0.3",
        "ws_up:drop:label=ping:p=0.5",
    ],
    "ws dropped market data": [  # a lost book or context: that decision is on stale data
        "ws_down:drop:label=l2Book:p=0.2:limit=2",
        "ws_down:drop:label=activeAssetCtx:nth=7",
    ],
    "ws duplicated": [
        "ws_down:duplicate:label=userFills",
        "ws_down:duplicate:label=orderUpdates:p=0.5",
        "ws_down:duplicate:label=l2Book:p=0.3",
    ],
    "ws delayed and reordered": [
        "ws_down:delay:label=l2Book:p=0.3:seconds=0.05",
        "ws_down:reorder:label=orderUpdates:p=0.3:seconds=0.2",
        "ws_down:reorder:label=userFills:p=0.3:seconds=0.2",
    ],
    "ws disconnects and refused handshakes": [
        "ws_down:disconnect:label=l2Book:nth=12:connections=1",
        "ws_down:disconnect:label=l2Book:nth=10:connections=2",
        "ws_connect:error_5xx:nth=2:status=503",
    ],
}


@pytest.mark.parametrize("name", list(FAULTS))
def test_a_session_under_a_fault_class_keeps_the_invariants(
    exchange: Exchange, tmp_path: Path, name: str
) -> None:
    with Journal.open(tmp_path / "journal.db") as journal:
        runner, stats, proxy = session(exchange, journal, rules(*FAULTS[name]), ping_interval_s=0.5)
        check_invariants(exchange, journal)
        kinds = Counter(e.kind for e in journal.events())
    assert stats.decisions == DECISIONS
    assert proxy.log, "the faults fired"
    assert kinds[Kind.FILL] > 0, "the session traded"
    assert not exchange.venue.book.open_orders(), "the runner canceled its orders on exit"
    if name == "ws dropped market data":
        assert isinstance(runner.pacer, LockstepPacer) and runner.pacer.incomplete >= 1
        assert runner.guarded.counts().get(Reason.STALE_OBSERVATION, 0) >= 1, "untrusted"
    if name.startswith("ws disconnects"):
        assert stats.disconnects == 2
        assert runner.guarded.state.mode[0] != TradingMode.HALTED


# --- the stream lost mid-session -------------------------------------------------------------

STEP_S = 10.0
"""The most one step of a disconnect scenario may take."""
DROP_STREAM = "ws_down:disconnect:limit=1"  # the next message to the runner drops the socket
REFUSE_RECONNECTS = "ws_connect:error_5xx:status=503"


async def until(done: Callable[[], bool], what: str, timeout_s: float = STEP_S) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            while not done():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"not within {timeout_s} s: {what}") from None


def _transitions(journal: Journal) -> list[tuple[int, str, str | None]]:
    return [
        (e.seq, e.payload["to"], e.payload["operator"])
        for e in journal.events()
        if e.kind is Kind.RISK_TRANSITION
    ]


def _last_seq(journal: Journal) -> int:
    return max((e.seq for e in journal.events()), default=0)


def test_a_lost_stream_cancels_reduces_and_trades_again_after_the_reconnect(
    exchange: Exchange, tmp_path: Path
) -> None:
    venue = exchange.venue
    seen: dict[str, Any] = {}

    async def body(proxy: FaultProxy, runner: LiveRunner) -> None:
        journal = runner.journal
        await until(
            lambda: runner.stats.decisions >= 5 and bool(venue.book.open_orders()), "quotes"
        )
        proxy.set_rules(rules(DROP_STREAM, REFUSE_RECONNECTS))
        await until(lambda: not runner.connected, "the stream drops")
        # HTTP still works: the runner cancels everything itself
        await until(lambda: not venue.book.open_orders(), "every order canceled")
        assert runner.guarded.state.mode[0] == TradingMode.REDUCING
        assert _transitions(journal)[-1][1:] == ("REDUCING", "runner: venue stream lost")
        decisions = runner.stats.decisions
        await until(lambda: runner.stats.skipped >= 20, "the clock goes on while cut off")
        assert runner.stats.decisions == decisions, "no decision while the stream is down"
        assert not venue.book.open_orders()
        back = _last_seq(journal)
        proxy.set_rules([])
        await until(lambda: runner.connected, "the stream is back")
        # reconciled, REDUCING for reducing_hold_seconds after the reconnect, then ACTIVE
        await until(lambda: runner.guarded.state.mode[0] == TradingMode.ACTIVE, "recovered")
        await until(lambda: bool(venue.book.open_orders()), "quoting again")
        events = [e for e in journal.events() if e.seq > back]
        kinds = [e.kind for e in events]
        assert Kind.RECONCILE in kinds and Kind.INTENT in kinds
        assert kinds.index(Kind.RECONCILE) < kinds.index(Kind.INTENT), "reconciled first"
        assert [e.payload["to"] for e in events if e.kind is Kind.RISK_TRANSITION] == ["ACTIVE"]
        seen["skipped"] = runner.stats.skipped
        await until(lambda: runner.stats.decisions >= decisions + 10, "decisions after it")

    limits = RiskLimits(reducing_hold_seconds=5.0)
    with Journal.open(tmp_path / "journal.db") as journal:
        runner, stats, _ = session(exchange, journal, [], decisions=None, body=body, limits=limits)
        check_invariants(exchange, journal)
    assert stats.disconnects == 1 and stats.skipped == seen["skipped"] >= 20
    assert isinstance(runner.pacer, LockstepPacer) and runner.pacer.incomplete >= 20
    assert not venue.book.open_orders()


def test_a_lost_stream_with_http_down_halts_and_the_dead_mans_switch_cancels(
    exchange: Exchange, tmp_path: Path
) -> None:
    venue = exchange.venue

    async def body(proxy: FaultProxy, runner: LiveRunner) -> None:
        journal = runner.journal
        await until(
            lambda: runner.stats.decisions >= 3 and bool(venue.book.open_orders()), "quotes"
        )
        proxy.set_rules(rules(DROP_STREAM, REFUSE_RECONNECTS, "http:error_5xx:path=/exchange"))
        await until(lambda: not runner.connected, "the stream drops")
        resting = {o.oid for o in venue.book.open_orders()}
        fired = len(venue._cancel_triggers)  # the switch's firings so far
        assert runner.guarded.state.mode[0] == TradingMode.HALTED
        halted = _transitions(journal)[-1]
        assert halted[1:] == ("HALTED", "runner: venue stream lost")
        await until(lambda: not runner._background, "the cancels end")
        acks = [
            e.payload
            for e in journal.events()
            if e.kind is Kind.ACK and e.payload.get("action") == "cancel" and e.seq > halted[0]
        ]
        assert not any(a["ok"] for a in acks), "HTTP is down: no cancel gets through"
        # the pacer advances the exchange past the switch's time: the venue cancels
        await until(lambda: len(venue._cancel_triggers) > fired, "the dead-man's switch fires")
        assert not venue.book.open_orders()
        statuses = {venue.book.orders[oid].status for oid in resting}
        assert statuses <= {"scheduledCancel", "filled"}, statuses  # (the market may fill one)
        proxy.set_rules([])
        await until(lambda: runner.connected, "the stream is back")
        back = runner.stats.decisions
        await until(lambda: runner.stats.decisions >= back + 10, "decisions after it")
        assert runner.guarded.state.mode[0] == TradingMode.HALTED, "only an operator resumes"
        assert not venue.book.open_orders()

    with Journal.open(tmp_path / "journal.db") as journal:
        _, stats, _ = session(
            exchange,
            journal,
            [],
            decisions=None,
            body=body,
            on_disconnect="halt",
            dead_mans_switch_s=6.0,
            request_timeout_s=1.0,
        )
        check_invariants(exchange, journal)
        reconcile_after = [e for e in journal.events() if e.kind is Kind.RECONCILE]
    assert stats.disconnects == 1 and stats.skipped > 0
    assert reconcile_after, "reconciled after the reconnect"
