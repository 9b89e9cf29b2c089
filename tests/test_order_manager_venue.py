"""The order manager against the real paper exchange (lockstep, 127.0.0.1) through
HyperliquidVenue, directly and through the fault proxy: quotes placed, replaced (same cloid, new
oid) and canceled; a dropped order answer is UNKNOWN, settled by cloid and never sent twice; an
orphan on the venue is canceled by reconcile; a fill lost on the WebSocket is imported once;
the RiskLimiter's throttle and the seeded jitter."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from venue_support import (
    adapter,
    advance,
    best_bid_ask,
    loopback_only,  # noqa: F401  (a fixture)
    paper_exchange,
    pumping,
)

from agents.deploy.risk import RiskLimiter, RiskLimits, VenueSpec
from agents.live.order_manager import ManagerConfig, OrderManager, Quote
from agents.live.order_state import OrderPhase
from agents.live.order_throttle import SharedThrottle
from agents.live.venues import HyperliquidVenue, OrderRequest, new_cloid
from mmgym.exchange.fault_proxy import FaultProxy
from mmgym.exchange.faults import FaultRule, Target
from mmgym.exchange.server import BackgroundServer

pytestmark = pytest.mark.usefixtures("loopback_only")

BOUND = 60.0  # s, the most any scenario may take
REQUEST_TIMEOUT = 5.0  # s, the adapter's HTTP time-out (a dropped answer fails at once)


class Journal:
    """The sink: what the manager recorded, in order (an in-memory stand-in for the journal's
    ``append``, which has the same signature)."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, dict[str, Any], str | None, int | None]] = []

    def __call__(
        self, kind: str, payload: Any, cloid: str | None = None, tid: int | None = None
    ) -> None:
        self.rows.append((kind, dict(payload), cloid, tid))

    def kinds(self, cloid: str) -> list[str]:
        return [row[0] for row in self.rows if row[2] == cloid]


@pytest.fixture
def server() -> Iterator[BackgroundServer]:
    with paper_exchange() as running:
        yield running


async def until(check: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not check():
            await asyncio.sleep(0.01)
    assert check(), what


Body = Callable[[HyperliquidVenue, OrderManager, Journal], Awaitable[None]]


def run(
    server: BackgroundServer,
    body: Body,
    rules: list[str] | None = None,
    manager_options: dict[str, Any] | None = None,
) -> FaultProxy | None:
    """``body`` with a manager trading ``server`` (through a fault proxy with ``rules`` if
    given); the proxy, for its counts."""

    async def main() -> FaultProxy | None:
        async with contextlib.AsyncExitStack() as stack:
            proxy = None
            url = server.url
            if rules is not None:
                parsed = [FaultRule.parse(rule) for rule in rules]
                proxy = await stack.enter_async_context(
                    FaultProxy(server.url, parsed, upstream_timeout=10.0)
                )
                url = proxy.url
            venue = await stack.enter_async_context(
                adapter(url, request_timeout_s=REQUEST_TIMEOUT, resolve_timeout_s=10.0)
            )
            journal = Journal()
            options = {"seed": 0, "config": ManagerConfig(jitter_s=0.0), **(manager_options or {})}
            manager = OrderManager(venue, journal, **options)
            await asyncio.wait_for(body(venue, manager, journal), BOUND)
            return proxy

    return asyncio.run(main())


async def touch_quote(server: BackgroundServer, size: float = 0.5, away: float = 0.0) -> Quote:
    bid, ask = await best_bid_ask(server.url)
    return Quote(round(bid - away, 2), size, round(ask + away, 2), size)


def test_sync_places_replaces_under_the_same_cloid_and_cancels(server: BackgroundServer) -> None:
    async def body(venue: HyperliquidVenue, m: OrderManager, journal: Journal) -> None:
        quote = await touch_quote(server, away=0.05)
        first = await m.sync({"BTC": quote}, now_s=0.0)
        assert len(first.placed) == 2 and not first.waiting
        for cloid in first.placed:
            assert journal.kinds(cloid)[:2] == ["intent", "ack"]  # intent before the send
            assert m.orders[cloid].phase == OrderPhase.RESTING
        listed = {o.cloid: o.oid for o in await venue.open_orders()}
        assert set(listed) == set(first.placed)
        assert (await m.sync({"BTC": quote}, now_s=1.0)).placed == ()  # nothing to change
        moved = Quote(round(quote.bid_px - 0.05, 2), 0.25, quote.ask_px, quote.ask_sz)
        second = await m.sync({"BTC": moved}, now_s=2.0)
        (bid_cloid,) = second.replaced
        assert second.placed == () and second.canceled == ()
        bid = m.orders[bid_cloid]
        assert bid.phase == OrderPhase.RESTING and bid.oids[0] == listed[bid_cloid]
        assert bid.oid != listed[bid_cloid] and len(bid.oids) == 2
        again = {o.cloid: o for o in await venue.open_orders()}
        assert set(again) == set(first.placed)  # same cloids, the bid under a new oid
        assert (again[bid_cloid].oid, again[bid_cloid].px, again[bid_cloid].sz) == (
            bid.oid,
            moved.bid_px,
            0.25,
        )
        third = await m.sync({}, now_s=3.0)
        assert sorted(third.canceled) == sorted(first.placed)
        assert await venue.open_orders() == ()
        assert all(m.orders[c].phase == OrderPhase.CANCELED for c in first.placed)
        assert m.active() == []

    run(server, body)


def test_a_dropped_order_answer_is_unknown_settled_by_cloid_and_never_sent_twice(
    server: BackgroundServer,
) -> None:
    async def body(venue: HyperliquidVenue, m: OrderManager, journal: Journal) -> None:
        bid, _ = await best_bid_ask(server.url)
        quote = Quote(bid, 0.5, 0.0, 0.0)
        (cloid,) = (await m.sync({"BTC": quote}, now_s=0.0)).placed
        order = m.orders[cloid]
        assert order.phase == OrderPhase.UNKNOWN
        again = await m.sync({"BTC": quote}, now_s=1.0)  # no answer seen yet: wait
        assert again.placed == () and again.waiting == (("BTC", True),)
        async with pumping(m.handle, venue):  # the adapter's look-up by cloid reports it
            await until(lambda: order.phase == OrderPhase.RESTING, "the order resolved")
        assert (await m.sync({"BTC": quote}, now_s=2.0)).placed == ()
        report = await m.reconcile()
        assert not report.drift and report.unresolved == ()
        assert [o.cloid for o in await venue.open_orders()] == [cloid]

    proxy = run(server, body, rules=["http:drop_response:label=order:nth=1"])
    assert proxy is not None
    assert proxy.count(Target.HTTP, "order") == 1  # one order for one intent
    assert proxy.count(Target.HTTP, "orderStatus") >= 1


def test_reconcile_settles_an_unknown_order_by_cloid_itself(server: BackgroundServer) -> None:
    async def body(venue: HyperliquidVenue, m: OrderManager, journal: Journal) -> None:
        bid, _ = await best_bid_ask(server.url)
        (cloid,) = (await m.sync({"BTC": Quote(bid, 0.5, 0.0, 0.0)}, now_s=0.0)).placed
        assert m.orders[cloid].phase == OrderPhase.UNKNOWN
        report = await m.reconcile()  # before any streamed answer
        assert report.resolved == ((cloid, OrderPhase.RESTING),)
        assert report.unresolved == () and report.orphans_canceled == ()
        assert "order_update" in journal.kinds(cloid)

    run(server, body, rules=["http:drop_response:label=order:nth=1"])


def test_a_request_that_never_reached_the_venue_stays_unknown(server: BackgroundServer) -> None:
    async def body(venue: HyperliquidVenue, m: OrderManager, journal: Journal) -> None:
        bid, _ = await best_bid_ask(server.url)
        (cloid,) = (await m.sync({"BTC": Quote(bid, 0.5, 0.0, 0.0)}, now_s=0.0)).placed
        for _ in range(2):
            report = await m.reconcile()
            assert report.unresolved == (cloid,)  # never forced final
            assert m.orders[cloid].phase == OrderPhase.UNKNOWN
        assert (await m.sync({"BTC": Quote(bid, 0.5, 0.0, 0.0)}, now_s=1.0)).placed == ()
        assert await venue.open_orders() == ()

    proxy = run(server, body, rules=["http:drop_request:label=order:nth=1"])
    assert proxy is not None and proxy.count(Target.HTTP, "order") == 1


def test_reconcile_cancels_an_orphan(server: BackgroundServer) -> None:
    async def body(venue: HyperliquidVenue, m: OrderManager, journal: Journal) -> None:
        bid, ask = await best_bid_ask(server.url)
        ours = (await m.sync({"BTC": Quote(bid, 0.5, 0.0, 0.0)}, now_s=0.0)).placed
        orphan = OrderRequest("BTC", False, 0.5, round(ask + 0.05, 2), new_cloid())
        await venue.place([orphan])  # an order the manager never sent
        report = await m.reconcile()
        assert [o.cloid for o in report.orphans_canceled] == [orphan.cloid]
        assert report.drift and report.position_drift == ()
        assert [o.cloid for o in await venue.open_orders()] == list(ours)
        assert not (await m.reconcile()).drift  # converged

    run(server, body)


def test_a_fill_missed_on_the_websocket_is_imported_once_by_reconcile(
    server: BackgroundServer,
) -> None:
    async def body(venue: HyperliquidVenue, m: OrderManager, journal: Journal) -> None:
        await venue.subscribe_account()
        async with pumping(m.handle, venue):
            for step in range(30):  # quote at the touch until the venue has fills
                await m.sync({"BTC": await touch_quote(server)}, now_s=float(step))
                await advance(server.url, 10)
                if len(await venue.fills_since(0)) >= 2:
                    break
            venue_fills = {f.tid for f in await venue.fills_since(0)}
            await asyncio.sleep(0.5)  # what the stream delivers has arrived
            seen = set(m.fills)
            missed = venue_fills - seen
            assert missed, "the dropped userFills message carried no fill"
            report = await m.reconcile()
            assert {f.tid for f in report.imported_fills} == missed
            assert report.position_drift == () and report.drift
            second = await m.reconcile()
            assert second.imported_fills == () and not second.position_drift
        recorded = [row[3] for row in journal.rows if row[0] == "fill"]
        assert sorted(recorded) == sorted(set(recorded)) and set(recorded) == set(m.fills)
        theirs = {p.coin: p.szi for p in (await venue.account()).positions}
        assert m.positions["BTC"] == pytest.approx(theirs.get("BTC", 0.0), abs=1e-9)

    # message 1 is the subscription's snapshot (empty); message 2 the first fills
    run(server, body, rules=["ws_down:drop:label=userFills:nth=2"])


def test_the_throttle_is_the_risk_limiters(server: BackgroundServer) -> None:
    limits = RiskLimits(order_burst=1.0, max_orders_per_second=0.5)
    limiter = RiskLimiter(limits, VenueSpec(0.01, 0.0, 0.0, ((0.0, 0.01, 0.0),)))
    throttle = SharedThrottle(limiter)

    async def body(venue: HyperliquidVenue, m: OrderManager, journal: Journal) -> None:
        quote = await touch_quote(server, away=0.05)
        result = await m.sync({"BTC": quote}, now_s=0.0)
        assert len(result.placed) == 1 and len(result.waiting) == 1  # one token, two orders
        assert throttle.tokens[0] == 0.0
        assert limiter.state.counts(0)  # the denial is counted in the limiter's state
        later = await m.sync({"BTC": quote}, now_s=60.0)  # refilled, backoff over
        assert len(later.placed) == 1 and later.waiting == ()
        assert len(await venue.open_orders()) == 2

    options = {"throttle": throttle, "config": ManagerConfig(jitter_s=0.0, charge_quotes=True)}
    run(server, body, manager_options=options)


def test_cancels_and_replaces_wait_a_seeded_full_jitter(server: BackgroundServer) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async def body(venue: HyperliquidVenue, m: OrderManager, journal: Journal) -> None:
        quote = await touch_quote(server, away=0.05)
        await m.sync({"BTC": quote}, now_s=0.0)
        assert waits == []  # new orders go at once
        await m.sync(
            {"BTC": Quote(round(quote.bid_px - 0.05, 2), 0.5, quote.ask_px, 0.5)}, now_s=1.0
        )
        await m.sync({}, now_s=2.0)
        assert len(waits) == 3 and all(0.0 <= w <= 0.05 for w in waits)

    options = {"config": ManagerConfig(jitter_s=0.05), "sleep": sleep, "seed": 4}
    run(server, body, manager_options=options)
    first, waits[:] = list(waits), []
    run(server, body, manager_options=options)
    assert waits == first  # seeded: the same draws


def test_reconcile_settles_an_order_canceled_behind_its_back_and_an_ended_one_still_listed(
    server: BackgroundServer,
) -> None:
    async def body(venue: HyperliquidVenue, m: OrderManager, journal: Journal) -> None:
        quote = await touch_quote(server, away=0.05)
        bid_cloid, ask_cloid = (await m.sync({"BTC": quote}, now_s=0.0)).placed
        ask = m.orders[ask_cloid]
        assert ask.oid is not None
        assert (await venue.cancel("BTC", ask.oid)).ok  # its update is never pumped
        m.orders[bid_cloid].phase = OrderPhase.CANCELED  # a local record gone wrong
        report = await m.reconcile()
        assert report.resolved == ((ask_cloid, OrderPhase.CANCELED),)
        assert [o.cloid for o in report.orphans_canceled] == [bid_cloid]
        assert await venue.open_orders() == ()
        assert not (await m.reconcile()).drift

    run(server, body)


def test_a_failed_replace_is_retried_after_a_full_jitter_backoff(server: BackgroundServer) -> None:
    async def body(venue: HyperliquidVenue, m: OrderManager, journal: Journal) -> None:
        bid, _ = await best_bid_ask(server.url)
        quote = Quote(round(bid - 0.05, 2), 0.5, 0.0, 0.0)
        (cloid,) = (await m.sync({"BTC": quote}, now_s=0.0)).placed
        moved = Quote(round(bid - 0.1, 2), 0.5, 0.0, 0.0)
        assert (await m.sync({"BTC": moved}, now_s=1.0)).replaced == (cloid,)
        order = m.orders[cloid]
        assert order.phase == OrderPhase.UNKNOWN  # the modify was refused: what stands?
        assert (await m.reconcile()).resolved == ((cloid, OrderPhase.RESTING),)
        assert order.version.px == quote.bid_px  # the old version still rests
        # the first retry waits uniform(0, 0.25 s) after the failure at 1.0 s (0 has chance 2^-53)
        assert (await m.sync({"BTC": moved}, now_s=1.0)).waiting == (("BTC", True),)
        assert (await m.sync({"BTC": moved}, now_s=1.25)).replaced == (cloid,)
        assert order.phase == OrderPhase.RESTING and order.version.px == moved.bid_px
        assert [o.px for o in await venue.open_orders()] == [moved.bid_px]

    proxy = run(server, body, rules=["http:order_error:label=batchModify:nth=1"])
    assert proxy is not None and proxy.count(Target.HTTP, "batchModify") == 2


def test_an_unknown_order_past_its_expiry_ends_and_frees_its_side(
    server: BackgroundServer,
) -> None:
    now_ms = [1_000_000]

    async def body(venue: HyperliquidVenue, m: OrderManager, journal: Journal) -> None:
        bid, _ = await best_bid_ask(server.url)
        quote = {"BTC": Quote(bid, 0.5, 0.0, 0.0)}
        (lost,) = (await m.sync(quote, now_s=0.0)).placed
        now_ms[0] += 1_500  # within ttl + margin (2 s): still unknown
        assert (await m.reconcile()).unresolved == (lost,)
        now_ms[0] += 501
        report = await m.reconcile()
        assert report.resolved == ((lost, OrderPhase.REJECTED),) and report.unresolved == ()
        (again,) = (await m.sync(quote, now_s=1.0)).placed
        assert again != lost and [o.cloid for o in await venue.open_orders()] == [again]

    config = ManagerConfig(jitter_s=0.0, order_ttl_ms=1_000, expiry_margin_ms=1_000)
    options = {"config": config, "clock_ms": lambda: now_ms[0]}
    proxy = run(
        server, body, rules=["http:drop_request:label=order:nth=1"], manager_options=options
    )
    assert proxy is not None and proxy.count(Target.HTTP, "order") == 2
