"""The venue adapter (HyperliquidVenue) under the fault proxy, in front of the paper exchange:
for each fault class it never sends an order twice, reports what it could not confirm as
``UNKNOWN`` and resolves it by ``orderStatus`` by cloid, retries queries, and reconnects and
resubscribes its stream.

The proxy runs on the test's event loop, the lockstep exchange on a thread; 127.0.0.1 only,
every scenario bounded in time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from venue_support import (
    adapter,
    advance,
    best_bid_ask,
    loopback_only,  # noqa: F401  (a fixture)
    of_type,
    paper_exchange,
    wait_for,
)

from agents.live.venues import (
    BookSnapshot,
    ConnectionChange,
    Fill,
    HyperliquidVenue,
    OrderRequest,
    OrderState,
    OrderUpdate,
    new_cloid,
)
from mmgym.exchange.fault_proxy import FaultProxy
from mmgym.exchange.faults import FaultRule, Target
from mmgym.exchange.server import BackgroundServer

pytestmark = pytest.mark.usefixtures("loopback_only")

BOUND = 60.0  # s, the most any scenario may take
REQUEST_TIMEOUT = 10.0  # s, the adapter's HTTP time-out (generous: the machine may be loaded)
SHORT_TIMEOUT = 0.5  # s, the time-out a delayed order outlasts
RESOLVE_TIMEOUT = 1.0  # s, how long the adapter looks an unknown order up


@pytest.fixture
def server() -> Iterator[BackgroundServer]:
    with paper_exchange() as running:
        yield running


Body = Callable[[FaultProxy, HyperliquidVenue], Awaitable[None]]


def run(server: BackgroundServer, rules: list[FaultRule], body: Body, **options: Any) -> FaultProxy:
    """``body`` with the adapter trading ``server`` through a proxy with ``rules`` (HTTP and
    WebSocket both through it); the proxy, for its log and counts."""

    async def main() -> FaultProxy:
        async with FaultProxy(server.url, rules, upstream_timeout=10.0) as proxy:
            kwargs = {
                "request_timeout_s": REQUEST_TIMEOUT,
                "resolve_timeout_s": RESOLVE_TIMEOUT,
                **options,
            }
            async with adapter(proxy.url, **kwargs) as venue:
                await asyncio.wait_for(body(proxy, venue), BOUND)
        return proxy

    return asyncio.run(main())


async def resting_bid(server: BackgroundServer) -> OrderRequest:
    """A bid at the best bid (an Alo there rests) under a fresh cloid."""
    bid, _ = await best_bid_ask(server.url)
    return OrderRequest("BTC", True, 0.5, bid, new_cloid())


async def settled(venue: HyperliquidVenue, cloid: str) -> OrderUpdate | None:
    """The update that settled ``cloid``'s look-up, once the adapter stopped looking it up;
    None if there is none (the adapter gave up, or never had to look)."""
    while cloid in venue.unresolved:
        await asyncio.sleep(0.02)
    try:  # the look-up emits its update as it ends
        events = await wait_for(
            venue, lambda es: any(u.cloid == cloid for u in of_type(es, OrderUpdate)), 0.3
        )
    except TimeoutError:
        return None
    return next(u for u in of_type(events, OrderUpdate) if u.cloid == cloid)


@dataclass(frozen=True)
class OrderFault:
    """A fault on the order POST and what the adapter must make of it."""

    rule: str
    ack: OrderState  # what place() answers
    on_venue: bool  # whether the order reached the exchange (so the look-up finds it)


ORDER_FAULTS = {
    "dropped request": OrderFault("drop_request", OrderState.UNKNOWN, False),
    "dropped answer": OrderFault("drop_response", OrderState.UNKNOWN, True),
    "disconnect": OrderFault("disconnect", OrderState.UNKNOWN, False),
    "5xx": OrderFault("error_5xx", OrderState.UNKNOWN, False),
    "5xx after the venue": OrderFault("error_5xx:after_forward=true", OrderState.UNKNOWN, True),
    "delay within the time-out": OrderFault("delay:seconds=0.1", OrderState.RESTING, True),
    "delay past the time-out": OrderFault("delay:seconds=2.0", OrderState.UNKNOWN, True),
    "duplicate": OrderFault("duplicate", OrderState.RESTING, True),
    "reorder": OrderFault("reorder:seconds=0.1", OrderState.RESTING, True),
    "reject": OrderFault("reject:text=Too many requests", OrderState.REJECTED, False),
    "order error": OrderFault("order_error:text=Insufficient margin", OrderState.REJECTED, False),
}


@pytest.mark.parametrize("name", list(ORDER_FAULTS))
def test_an_order_fault_never_resends_and_unknown_orders_are_resolved_by_cloid(
    server: BackgroundServer, name: str
) -> None:
    fault = ORDER_FAULTS[name]
    kind, _, options = fault.rule.partition(":")
    rule = FaultRule.parse(f"http:{kind}:label=order:nth=1" + (f":{options}" if options else ""))

    async def body(proxy: FaultProxy, venue: HyperliquidVenue) -> None:
        order = await resting_bid(server)
        (ack,) = await venue.place([order])
        assert ack.state is fault.ack, ack
        update = await settled(venue, order.cloid)
        if fault.ack is OrderState.UNKNOWN:
            # settled by the look-up alone: the account is not subscribed
            assert proxy.count(Target.HTTP, "orderStatus") >= 1
            if fault.on_venue:
                assert update is not None and update.state is OrderState.RESTING
            else:
                assert update is None
                assert (await venue.order_status(order.cloid)).state is OrderState.UNKNOWN
        else:
            assert update is None and proxy.count(Target.HTTP, "orderStatus") == 0
        assert venue.unresolved == ()
        expected = [order.cloid] if fault.on_venue else []
        assert [o.cloid for o in await venue.open_orders()] == expected
        assert proxy.count(Target.HTTP, "order") == 1  # sent once, never retried

    # an order the venue has is found at once; one it never saw is looked up this long
    resolve_timeout = 10.0 if fault.on_venue else RESOLVE_TIMEOUT
    request_timeout = SHORT_TIMEOUT if name == "delay past the time-out" else REQUEST_TIMEOUT
    options = {"resolve_timeout_s": resolve_timeout, "request_timeout_s": request_timeout}
    (record,) = run(server, [rule], body, **options).log
    assert record.kind == kind and record.label == "order"


def test_a_duplicated_order_post_is_refused_by_the_venue_for_its_nonce(
    server: BackgroundServer,
) -> None:
    rule = FaultRule.parse("http:duplicate:label=order")

    async def body(proxy: FaultProxy, venue: HyperliquidVenue) -> None:
        order = await resting_bid(server)
        (ack,) = await venue.place([order])
        assert ack.state is OrderState.RESTING
        assert [o.cloid for o in await venue.open_orders()] == [order.cloid]

    (record,) = run(server, [rule], body).log
    assert "Invalid nonce" in record.detail


def test_a_cancel_whose_answer_is_lost_is_reported_unknown_and_the_order_is_gone(
    server: BackgroundServer,
) -> None:
    rule = FaultRule.parse("http:drop_response:label=cancel")

    async def body(proxy: FaultProxy, venue: HyperliquidVenue) -> None:
        order = await resting_bid(server)
        (ack,) = await venue.place([order])
        assert ack.oid is not None
        cancel = await venue.cancel("BTC", ack.oid)
        assert cancel.unknown and not cancel.ok
        assert (await venue.order_status(order.cloid)).state is OrderState.CANCELED
        assert await venue.open_orders() == ()
        assert proxy.count(Target.HTTP, "cancel") == 1

    run(server, [rule], body)


@pytest.mark.parametrize("kind", ["drop_request", "drop_response", "disconnect", "error_5xx"])
def test_queries_are_retried_through_a_lost_request(server: BackgroundServer, kind: str) -> None:
    rule = FaultRule.parse(f"http:{kind}:label=frontendOpenOrders:nth=1")

    async def body(proxy: FaultProxy, venue: HyperliquidVenue) -> None:
        order = await resting_bid(server)
        await venue.place([order])
        assert [o.cloid for o in await venue.open_orders()] == [order.cloid]
        assert proxy.count(Target.HTTP, "frontendOpenOrders") == 2

    run(server, [rule], body)


# --- the stream ------------------------------------------------------------------------------

SUBSCRIPTIONS = 6  # l2Book, trades, activeAssetCtx; orderUpdates, userFills, userFundings


async def subscribed(venue: HyperliquidVenue) -> list[Any]:
    await venue.subscribe_market("BTC")
    await venue.subscribe_account()
    return await wait_for(venue, lambda es: bool(of_type(es, BookSnapshot)))


async def streams_again(server: BackgroundServer, venue: HyperliquidVenue) -> None:
    """Books and the account's order updates arrive (what was subscribed before a drop)."""
    order = await resting_bid(server)
    await venue.place([order])
    await advance(server.url, 1)
    await wait_for(
        venue,
        lambda es: (
            bool(of_type(es, BookSnapshot))
            and any(u.cloid == order.cloid for u in of_type(es, OrderUpdate))
        ),
    )


@pytest.mark.parametrize(
    ("rule", "ping_interval_s"),
    [
        ("ws_down:disconnect:label=l2Book:nth=2:connections=1", 50.0),  # on a book update
        ("ws_up:disconnect:label=ping:nth=1:connections=1", 1.0),  # on the client's first ping
    ],
)
def test_a_dropped_socket_reconnects_and_resubscribes_everything(
    server: BackgroundServer, rule: str, ping_interval_s: float
) -> None:
    async def body(proxy: FaultProxy, venue: HyperliquidVenue) -> None:
        await subscribed(venue)
        if rule.startswith("ws_down"):
            await advance(server.url, 1)  # the update that drops the socket
        # (else the adapter pings the quiet line after ping_interval_s)
        changes = await wait_for(
            venue, lambda es: any(c.connected for c in of_type(es, ConnectionChange))
        )
        down, up = of_type(changes, ConnectionChange)[:2]
        assert (down.connected, up.connected) == (False, True)
        while proxy.seen("ws_up#2") < SUBSCRIPTIONS:  # everything subscribed again
            await asyncio.sleep(0.01)
        assert proxy.count(Target.WS_UP, "subscribe") >= 2 * SUBSCRIPTIONS
        await streams_again(server, venue)

    proxy = run(server, [FaultRule.parse(rule)], body, ping_interval_s=ping_interval_s)
    (record,) = proxy.log
    assert record.kind == "disconnect" and record.stream.endswith("#1")


def test_a_refused_reconnect_is_retried_until_the_venue_takes_it(server: BackgroundServer) -> None:
    rules = [
        FaultRule.parse("ws_down:disconnect:label=l2Book:nth=2:connections=1"),
        FaultRule.parse("ws_connect:error_5xx:nth=2,3:status=503"),
    ]

    async def body(proxy: FaultProxy, venue: HyperliquidVenue) -> None:
        await subscribed(venue)
        await advance(server.url, 1)
        changes = await wait_for(
            venue, lambda es: any(c.connected for c in of_type(es, ConnectionChange))
        )
        downs = [c for c in of_type(changes, ConnectionChange) if not c.connected]
        assert len(downs) == 3 and "503" in downs[1].reason  # the drop, two refused handshakes
        assert proxy.seen("ws_connect") == 4
        await streams_again(server, venue)

    run(server, rules, body)


def test_a_lost_subscribe_is_sent_again_on_the_next_connection(
    server: BackgroundServer,
) -> None:
    rule = FaultRule.parse("ws_up:drop:label=userFills:nth=1:connections=1")
    rules = [rule, FaultRule.parse("ws_down:disconnect:label=l2Book:nth=2:connections=1")]

    async def body(proxy: FaultProxy, venue: HyperliquidVenue) -> None:
        await venue.subscribe_market("BTC")
        pending = asyncio.create_task(venue.subscribe_account())
        while proxy.count(Target.WS_UP, "userFills") < 1:  # sent, and dropped
            await asyncio.sleep(0.01)
        await advance(server.url, 1)  # the book update that drops the socket
        await asyncio.wait_for(pending, 10.0)  # acknowledged after the resubscription
        await streams_again(server, venue)

    run(server, rules, body)


def test_duplicated_fill_messages_yield_each_fill_once(server: BackgroundServer) -> None:
    rule = FaultRule.parse("ws_down:duplicate:label=userFills")

    async def body(proxy: FaultProxy, venue: HyperliquidVenue) -> None:
        events = await subscribed(venue)
        for _ in range(20):  # quote both sides at the touch until two fills
            if not await venue.open_orders():
                bid, ask = await best_bid_ask(server.url)
                await venue.place(
                    [
                        OrderRequest("BTC", True, 0.5, bid, new_cloid()),
                        OrderRequest("BTC", False, 0.5, ask, new_cloid()),
                    ]
                )
            await advance(server.url, 20)
            if len(await venue.fills_since(0)) >= 2:
                break
        tids = {f.tid for f in await venue.fills_since(0)}
        assert len(tids) >= 2
        await wait_for(venue, lambda es: {f.tid for f in of_type(es, Fill)} >= tids, seen=events)
        streamed = [f.tid for f in of_type(events, Fill)]
        assert len(streamed) == len(set(streamed))  # each fill once, though sent twice

    proxy = run(server, [rule], body)
    assert len(proxy.records(target=Target.WS_DOWN)) >= 2  # the snapshot and a fill


@pytest.mark.parametrize("kind", ["delay", "reorder"])
def test_late_and_reordered_book_updates_all_arrive_without_a_reconnect(
    server: BackgroundServer, kind: str
) -> None:
    # p=0.5 over the 11 book messages at seed 0 fires on 6 (4-7, 9, 10): a reordered update is
    # held until the next one passed (each advance takes milliseconds; 2 s at most)
    seconds = {"delay": 0.05, "reorder": 2.0}[kind]
    rule = FaultRule.parse(f"ws_down:{kind}:label=l2Book:p=0.5:seconds={seconds}")
    steps = 10

    async def body(proxy: FaultProxy, venue: HyperliquidVenue) -> None:
        # the book alone: a reordered update is swapped with the next message of the stream
        await venue.stream.subscribe({"type": "l2Book", "coin": "BTC"})
        events = await wait_for(venue, lambda es: bool(of_type(es, BookSnapshot)))
        for _ in range(steps):
            await advance(server.url, 1)
        await wait_for(venue, lambda es: len(of_type(es, BookSnapshot)) >= 1 + steps, seen=events)
        times = [book.time_ms for book in of_type(events, BookSnapshot)]
        assert len(times) == len(set(times)) == 1 + steps
        assert (times == sorted(times)) == (kind == "delay")
        assert not of_type(events, ConnectionChange) and venue.stream.connections == 1

    proxy = run(server, [rule], body, ping_interval_s=30.0)
    assert {r.kind for r in proxy.log} == {kind}
