"""Round trips between the venue adapter (HyperliquidVenue) and the paper exchange on 127.0.0.1:
every order action, every query and every WebSocket channel, a dropped socket, a restart, a
timed-out order POST resolved by cloid, and the key never shown."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from venue_support import (
    AGENT_KEY,
    OTHER_KEY,
    adapter,
    advance,
    best_bid_ask,
    drain,
    loopback_only,  # noqa: F401  (a fixture)
    of_type,
    paper_exchange,
    wait_for,
)

from agents.live.venues import (
    AssetContext,
    BookSnapshot,
    ConnectionChange,
    Fill,
    FundingPayment,
    HyperliquidVenue,
    OrderRequest,
    OrderState,
    OrderUpdate,
    Tif,
    Trade,
    Venue,
    VenueRejectedError,
    new_cloid,
)
from mmgym.exchange.server import BackgroundServer

pytestmark = pytest.mark.usefixtures("loopback_only")


@pytest.fixture
def server() -> Iterator[BackgroundServer]:
    with paper_exchange() as running:
        yield running


def run(coroutine: Any, timeout_s: float = 60.0) -> Any:
    """Run a test's coroutine with a bound on its time."""

    async def bounded() -> Any:
        return await asyncio.wait_for(coroutine, timeout_s)

    return asyncio.run(bounded())


async def quotes_inside(url: str, ticks_away: float = 0.05) -> tuple[float, float]:
    """A bid and an ask ``ticks_away`` (in price) outside the touch: they rest."""
    bid, ask = await best_bid_ask(url)
    return round(bid - ticks_away, 2), round(ask + ticks_away, 2)


def test_the_adapter_is_a_venue(server: BackgroundServer) -> None:
    assert isinstance(adapter(server.url), Venue)


def test_connect_reads_meta_and_signs_in_the_testnet_domain(server: BackgroundServer) -> None:
    async def body() -> None:
        async with adapter(server.url) as venue:
            assert not venue.is_mainnet
            assert venue.assets["BTC"].asset == 0
            assert venue.stream_url == server.url.replace("http", "ws") + "/ws"

    run(body())


def test_alo_and_gtc_orders_with_cloids_rest_and_stream_their_updates(
    server: BackgroundServer,
) -> None:
    async def body() -> None:
        async with adapter(server.url) as venue:
            await venue.subscribe_account()
            bid, ask = await quotes_inside(server.url)
            orders = [
                OrderRequest("BTC", True, 0.5, bid, new_cloid(), Tif.ALO),
                OrderRequest("BTC", False, 0.25, ask, new_cloid(), Tif.GTC),
            ]
            acks = await venue.place(orders)
            assert [a.state for a in acks] == [OrderState.RESTING, OrderState.RESTING]
            assert [a.cloid for a in acks] == [o.cloid for o in orders]
            assert acks[0].oid != acks[1].oid
            listed = {o.cloid: o for o in await venue.open_orders()}
            assert set(listed) == {o.cloid for o in orders}
            assert (listed[orders[0].cloid].tif, listed[orders[0].cloid].px) == ("Alo", bid)
            assert (listed[orders[1].cloid].tif, listed[orders[1].cloid].sz) == ("Gtc", 0.25)
            status = await venue.order_status(orders[1].cloid)
            assert status.state is OrderState.RESTING and status.order is not None
            assert status.order.oid == acks[1].oid
            events = await wait_for(venue, lambda es: len(of_type(es, OrderUpdate)) >= 2)
            updates = {u.cloid: u for u in of_type(events, OrderUpdate)}
            assert {updates[o.cloid].status for o in orders} == {"open"}

    run(body())


def test_unrounded_orders_are_rounded_passively_before_signing(server: BackgroundServer) -> None:
    async def body() -> None:
        async with adapter(server.url) as venue:
            bid, ask = await quotes_inside(server.url)
            cloids = new_cloid(), new_cloid()
            acks = await venue.place(
                [
                    OrderRequest("BTC", True, 0.123456789, bid + 0.004999, cloids[0]),
                    OrderRequest("BTC", False, 0.123456789, ask - 0.004999, cloids[1]),
                ]
            )
            assert all(a.state is OrderState.RESTING for a in acks), acks
            listed = {o.cloid: o for o in await venue.open_orders()}
            sz_decimals = venue.assets["BTC"].sz_decimals
            assert listed[cloids[0]].px == bid and listed[cloids[1]].px == ask
            assert listed[cloids[0]].sz == round(0.123456789 - 0.5 * 10**-sz_decimals, sz_decimals)

    run(body())


def test_a_crossing_alo_is_rejected_with_the_venues_words(server: BackgroundServer) -> None:
    async def body() -> None:
        async with adapter(server.url) as venue:
            _, ask = await best_bid_ask(server.url)
            (ack,) = await venue.place([OrderRequest("BTC", True, 0.5, ask, new_cloid())])
            assert ack.state is OrderState.REJECTED and ack.oid is None
            assert ack.error is not None
            assert ack.error.startswith("Post only order would have immediately matched")
            assert await venue.open_orders() == ()

    run(body())


def test_reduce_only_orders(server: BackgroundServer) -> None:
    async def body() -> None:
        async with adapter(server.url) as venue:
            bid, _ = await quotes_inside(server.url)
            order = OrderRequest("BTC", True, 0.5, bid, new_cloid(), Tif.GTC, reduce_only=True)
            (ack,) = await venue.place([order])  # flat: a reduce-only order cannot reduce
            assert ack.state is OrderState.REJECTED
            assert "Reduce only" in (ack.error or "")
            position = await fill_a_position(server.url, venue)
            bid, ask = await quotes_inside(server.url)
            is_buy = position < 0  # the side that reduces the position
            closing = OrderRequest(
                "BTC", is_buy, abs(position), bid if is_buy else ask, new_cloid(), reduce_only=True
            )
            (ack,) = await venue.place([closing])
            assert ack.state is OrderState.RESTING, ack
            (listed,) = [o for o in await venue.open_orders() if o.cloid == closing.cloid]
            assert listed.reduce_only

    run(body())


async def fill_a_position(url: str, venue: HyperliquidVenue, steps: int = 400) -> float:
    """Quote at the touch until the account holds a position; its signed size."""
    for _ in range(steps // 20):
        if not await venue.open_orders():
            bid, ask = await best_bid_ask(url)
            await venue.place(
                [
                    OrderRequest("BTC", True, 0.5, bid, new_cloid()),
                    OrderRequest("BTC", False, 0.3, ask, new_cloid()),
                ]
            )
        await advance(url, 20)
        positions = await venue.positions()
        if positions and positions[0].szi != 0.0:
            for order in await venue.open_orders():
                await venue.cancel("BTC", order.oid)
            return positions[0].szi
    raise AssertionError(f"no fill in {steps} decision intervals at the touch")


def test_a_hedge_order_on_the_hedge_coin_fills_as_taker_children(
    server: BackgroundServer,
) -> None:
    async def body() -> None:
        async with adapter(server.url) as venue:
            await venue.subscribe_account()
            assert venue.assets["BTC-HEDGE"].asset == 1  # listed after the perps
            position = await fill_a_position(server.url, venue)
            size = round(abs(position) / 2, 2)
            assert size >= 0.01, position
            _, ask = await best_bid_ask(server.url)  # the hedge order's price is no limit
            order = OrderRequest("BTC-HEDGE", position < 0, size, ask, new_cloid(), Tif.GTC)
            (ack,) = await venue.place([order])
            assert ack.state is OrderState.RESTING, ack
            await advance(server.url, 60)

            def children(events: list[Any]) -> list[Fill]:
                return [f for f in of_type(events, Fill) if f.coin == "BTC-HEDGE"]

            events = await wait_for(  # the order's end and its children, in either order
                venue,
                lambda es: (
                    sum(f.sz for f in children(es)) >= size - 1e-9
                    and any(
                        u.cloid == order.cloid and u.state is OrderState.FILLED
                        for u in of_type(es, OrderUpdate)
                    )
                ),
            )
            assert all(f.crossed and f.cloid == order.cloid for f in children(events))
            assert sum(f.sz for f in children(events)) == pytest.approx(size, abs=1e-9)
            hedge = {p.coin: p.szi for p in await venue.positions()}["BTC-HEDGE"]
            assert hedge == pytest.approx(size if position < 0 else -size, abs=1e-9)

    run(body())


def test_cancel_by_oid_and_by_cloid(server: BackgroundServer) -> None:
    async def body() -> None:
        async with adapter(server.url) as venue:
            await venue.subscribe_account()
            bid, ask = await quotes_inside(server.url)
            orders = [
                OrderRequest("BTC", True, 0.5, bid, new_cloid()),
                OrderRequest("BTC", False, 0.5, ask, new_cloid()),
            ]
            by_oid, _ = await venue.place(orders)
            assert by_oid.oid is not None
            assert (await venue.cancel("BTC", by_oid.oid)).ok
            again = await venue.cancel("BTC", by_oid.oid)
            assert not again.ok and not again.unknown and again.error
            assert (await venue.cancel_by_cloid("BTC", orders[1].cloid)).ok
            assert not (await venue.cancel_by_cloid("BTC", orders[1].cloid)).ok
            assert await venue.open_orders() == ()
            events = await wait_for(
                venue, lambda es: sum(u.status == "canceled" for u in of_type(es, OrderUpdate)) >= 2
            )
            canceled = {u.cloid for u in of_type(events, OrderUpdate) if u.status == "canceled"}
            assert canceled == {o.cloid for o in orders}
            assert all(
                u.state is OrderState.CANCELED
                for u in of_type(events, OrderUpdate)
                if u.status == "canceled"
            )
            assert (await venue.order_status(orders[0].cloid)).state is OrderState.CANCELED

    run(body())


@pytest.mark.parametrize("target", ["cloid", "oid"])
def test_replace_is_a_cancel_replace_under_the_cloid(server: BackgroundServer, target: str) -> None:
    async def body() -> None:
        async with adapter(server.url) as venue:
            bid, _ = await quotes_inside(server.url)
            first = OrderRequest("BTC", True, 0.5, bid, new_cloid())
            (placed,) = await venue.place([first])
            moved = OrderRequest("BTC", True, 0.4, round(bid - 0.03, 2), first.cloid)
            ack = await venue.replace(first.cloid if target == "cloid" else placed.oid, moved)
            assert ack.state is OrderState.RESTING and ack.oid not in (None, placed.oid)
            (listed,) = await venue.open_orders()
            assert (listed.oid, listed.cloid, listed.px, listed.sz) == (
                ack.oid,
                first.cloid,
                moved.px,
                0.4,
            )
            status = await venue.order_status(first.cloid)
            assert status.order is not None and status.order.oid == ack.oid

    run(body())


def test_schedule_cancel_cancels_everything_at_the_venues_time(server: BackgroundServer) -> None:
    async def body() -> None:
        async with adapter(server.url) as venue:
            await venue.subscribe_account()
            bid, ask = await quotes_inside(server.url)
            await venue.place(
                [
                    OrderRequest("BTC", True, 0.5, bid, new_cloid()),
                    OrderRequest("BTC", False, 0.5, ask, new_cloid()),
                ]
            )
            now = await venue.venue_time_ms()
            with pytest.raises(VenueRejectedError, match="at least"):
                await venue.schedule_cancel(now + 1000)  # Hyperliquid wants >= 5 s ahead
            await venue.schedule_cancel(now + 6000)
            await advance(server.url, 3)
            assert len(await venue.open_orders()) == 2
            await advance(server.url, 5)
            assert await venue.open_orders() == ()
            events = await wait_for(
                venue,
                lambda es: (
                    sum(u.status == "scheduledCancel" for u in of_type(es, OrderUpdate)) >= 2
                ),
            )
            assert all(
                u.state is OrderState.CANCELED
                for u in of_type(events, OrderUpdate)
                if u.status == "scheduledCancel"
            )

    run(body())


def test_the_dead_mans_switch_holds_while_refreshed_and_fires_when_not(
    server: BackgroundServer,
) -> None:
    async def body() -> None:
        async with adapter(server.url) as venue:
            bid, ask = await quotes_inside(server.url, 0.2)
            cloids = new_cloid(), new_cloid()
            await venue.place(
                [
                    OrderRequest("BTC", True, 0.5, bid, cloids[0]),
                    OrderRequest("BTC", False, 0.5, ask, cloids[1]),
                ]
            )
            venue.start_dead_mans_switch(window_s=6.0, refresh_s=0.05)
            for _ in range(6):  # 18 s of market time, the switch moved between each 3 s
                await asyncio.sleep(0.3)
                await advance(server.url, 3)
            statuses = [(await venue.order_status(c)).status for c in cloids]
            assert "scheduledCancel" not in statuses and "open" in statuses  # (or filled)
            await venue.stop_dead_mans_switch(disarm=False)  # the process "hangs"
            await advance(server.url, 7)
            assert await venue.open_orders() == ()
            after = [(await venue.order_status(c)).status for c in cloids]
            assert [a for a, b in zip(after, statuses, strict=True) if b == "open"] == [
                "scheduledCancel"
            ] * statuses.count("open")
            assert await venue.open_orders() == ()

    run(body())


def test_a_disarmed_switch_cancels_nothing(server: BackgroundServer) -> None:
    async def body() -> None:
        async with adapter(server.url) as venue:
            bid, _ = await quotes_inside(server.url, 0.2)
            await venue.place([OrderRequest("BTC", True, 0.5, bid, new_cloid())])
            venue.start_dead_mans_switch(window_s=6.0, refresh_s=1.0)
            await asyncio.sleep(0.2)
            await venue.stop_dead_mans_switch(disarm=True)
            await advance(server.url, 10)
            assert len(await venue.open_orders()) == 1

    run(body())


def test_every_channel_fills_positions_and_funding_round_trip(server: BackgroundServer) -> None:
    async def body() -> None:
        async with adapter(server.url) as venue:
            await venue.subscribe_market("BTC")
            await venue.subscribe_account()
            start = await venue.venue_time_ms()
            await fill_a_position(server.url, venue)
            await advance(server.url, 130)  # funding every 60 s of market time
            kinds = (BookSnapshot, Trade, AssetContext, OrderUpdate, Fill, FundingPayment)
            events = await wait_for(venue, lambda es: all(of_type(es, k) for k in kinds))
            streamed = of_type(events, Fill)
            assert len({f.tid for f in streamed}) == len(streamed)  # each fill once
            fills = await venue.fills_since(start)
            assert {f.tid for f in fills} == {f.tid for f in streamed}
            assert [f.time_ms for f in fills] == sorted(f.time_ms for f in fills)
            assert all(f.cloid is not None for f in fills)
            later = await venue.fills_since(fills[-1].time_ms)
            assert later and all(f.time_ms >= fills[-1].time_ms for f in later)
            state = await venue.account()
            (position,) = state.positions
            signed = sum((f.sz if f.is_buy else -f.sz) for f in fills)
            assert position.szi == pytest.approx(signed, abs=1e-9)
            payments = await venue.funding_since(start)
            assert payments and {p.coin for p in payments} == {"BTC"}
            streamed_payments = {(p.coin, p.time_ms) for p in of_type(events, FundingPayment)}
            assert streamed_payments <= {(p.coin, p.time_ms) for p in payments}
            book = of_type(events, BookSnapshot)[-1]
            assert book.bids[0].px < book.asks[0].px
            assert of_type(events, AssetContext)[-1].mark_px > 0

    run(body())


def test_the_stream_reconnects_and_resubscribes_after_the_server_drops_it(
    server: BackgroundServer,
) -> None:
    async def body() -> None:
        async with adapter(server.url) as venue:
            await venue.subscribe_market("BTC")
            await venue.subscribe_account()
            await wait_for(venue, lambda es: bool(of_type(es, BookSnapshot)))
            for drop in range(2):
                drop_every_socket(server)
                changes = await wait_for(
                    venue, lambda es: any(c.connected for c in of_type(es, ConnectionChange))
                )
                down, up = of_type(changes, ConnectionChange)[:2]
                assert (down.connected, up.connected) == (False, True)
                assert venue.stream.connections == drop + 2
                # everything subscribed before streams again: books and the account's orders
                bid, _ = await quotes_inside(server.url)
                cloid = new_cloid()
                await venue.place([OrderRequest("BTC", True, 0.5, bid, cloid)])
                await advance(server.url, 1)
                events = await wait_for(
                    venue,
                    lambda es, c=cloid: (
                        bool(of_type(es, BookSnapshot))
                        and any(u.cloid == c for u in of_type(es, OrderUpdate))
                    ),
                )
                assert of_type(events, BookSnapshot)
                await venue.cancel_by_cloid("BTC", cloid)

    run(body())


def test_fills_replayed_by_a_resubscription_are_not_streamed_twice(
    server: BackgroundServer,
) -> None:
    async def body() -> None:
        async with adapter(server.url) as venue:
            await venue.subscribe_account()
            await fill_a_position(server.url, venue)
            booked = {f.tid for f in await venue.fills_since(0)}
            seen = await wait_for(venue, lambda es: {f.tid for f in of_type(es, Fill)} >= booked)
            drop_every_socket(server)  # the resubscription replays every fill as a snapshot
            await wait_for(
                venue, lambda es: any(c.connected for c in of_type(es, ConnectionChange)), seen=seen
            )
            await advance(server.url, 2)
            await drain(venue, 0.5, seen)
            tids = [f.tid for f in of_type(seen, Fill)]
            assert len(tids) == len(set(tids))
        async with adapter(server.url) as restarted:  # a new process meets them as a snapshot
            await restarted.subscribe_account()
            replayed = await wait_for(
                restarted, lambda es: {f.tid for f in of_type(es, Fill)} >= booked
            )
            assert all(f.snapshot for f in of_type(replayed, Fill) if f.tid in booked)

    run(body())


def test_pings_keep_a_quiet_stream_up(server: BackgroundServer) -> None:
    async def body() -> None:
        async with adapter(server.url, ping_interval_s=0.1) as venue:
            await venue.subscribe_market("BTC")
            await asyncio.sleep(1.0)  # ten ping intervals without market data (lockstep)
            assert venue.stream.connections == 1 and venue.stream.connected

    run(body())


def test_a_malformed_message_is_logged_and_dropped_and_the_stream_goes_on(
    server: BackgroundServer, caplog: pytest.LogCaptureFixture
) -> None:
    async def body() -> None:
        async with adapter(server.url) as venue:
            await venue.subscribe_market("BTC")
            seen = await wait_for(venue, lambda es: bool(of_type(es, BookSnapshot)))
            for bad in (
                {"channel": "l2Book", "data": {"coin": "BTC", "time": 1}},
                {"channel": "userFills", "data": [1, 2]},
                {"channel": "trades", "data": [{"coin": "BTC", "side": "S"}]},
            ):
                venue.stream._dispatch(json.dumps(bad))  # as if the venue had sent it
            venue.stream._dispatch("not json")
            books = len(of_type(seen, BookSnapshot))
            await advance(server.url, 1)
            await wait_for(venue, lambda es: len(of_type(es, BookSnapshot)) > books, seen=seen)
            assert venue.stream.connections == 1

    with caplog.at_level(logging.ERROR, logger="agents.live.venues.hyperliquid"):
        run(body())
    assert "l2Book lacks 'levels'" in caplog.text
    assert "userFills is not an object" in caplog.text
    assert "'side' is 'S'" in caplog.text
    assert "not JSON" in caplog.text


def drop_every_socket(server: BackgroundServer) -> None:
    """Close every WebSocket from the server's side, as a venue restart would."""
    loop = server._loop  # the server's event loop (its thread)
    asyncio.run_coroutine_threadsafe(server.exchange.close_sockets(), loop).result(timeout=10)


def test_a_restarted_adapter_reads_the_venues_state_back(
    server: BackgroundServer, tmp_path: Path
) -> None:
    nonce_file = tmp_path / "nonce"

    async def first_life() -> tuple[set[str | None], set[int], float, int]:
        async with adapter(server.url, nonce_file=nonce_file) as venue:
            await fill_a_position(server.url, venue)
            bid, ask = await quotes_inside(server.url)
            await venue.place(
                [
                    OrderRequest("BTC", True, 0.5, bid, new_cloid()),
                    OrderRequest("BTC", False, 0.5, ask, new_cloid()),
                ]
            )
            orders = {o.cloid for o in await venue.open_orders()}
            fills = {f.tid for f in await venue.fills_since(0)}
            (position,) = await venue.positions()
            return orders, fills, position.szi, venue._nonces.last

    async def second_life(before: tuple[set[str | None], set[int], float, int]) -> None:
        orders, fills, szi, last_nonce = before
        async with adapter(server.url, nonce_file=nonce_file) as venue:
            assert {o.cloid for o in await venue.open_orders()} == orders
            assert {f.tid for f in await venue.fills_since(0)} == fills
            assert (await venue.positions())[0].szi == szi
            for cloid in orders:  # the new process manages the old one's orders
                assert cloid is not None
                assert (await venue.cancel_by_cloid("BTC", cloid)).ok
            assert venue._nonces.last > last_nonce
            assert await venue.open_orders() == ()

    before = run(first_life())
    run(second_life(before))


def test_orders_with_a_time_to_live_carry_a_signed_expiry(server: BackgroundServer) -> None:
    async def body() -> None:
        async with adapter(server.url, order_ttl_ms=5_000) as venue:
            bid, _ = await quotes_inside(server.url)
            (ack,) = await venue.place([OrderRequest("BTC", True, 0.5, bid, new_cloid())])
            assert ack.state is OrderState.RESTING  # the exchange verified the signed expiry
        late = int(time.time() * 1000) - 60_000  # a clock a minute behind: expired on arrival
        async with adapter(server.url, order_ttl_ms=5_000, clock_ms=lambda: late) as venue:
            (ack,) = await venue.place([OrderRequest("BTC", True, 0.5, bid, new_cloid())])
            assert ack.state is OrderState.REJECTED and "expired" in (ack.error or "")
            assert len(await venue.open_orders()) == 1

    run(body())


def test_a_wrong_key_is_refused_and_nothing_trades(server: BackgroundServer) -> None:
    async def body() -> None:
        async with adapter(server.url, key=OTHER_KEY) as venue:
            bid, _ = await quotes_inside(server.url)
            (ack,) = await venue.place([OrderRequest("BTC", True, 0.5, bid, new_cloid())])
            assert ack.state is OrderState.REJECTED
            assert ack.error == f"User or API Wallet {venue.signer.address.lower()} does not exist."
            assert await venue.open_orders() == ()

    run(body())


@pytest.mark.parametrize("streamed", [False, True], ids=["looked-up", "streamed"])
def test_a_timed_out_order_is_never_resent_and_settled(
    server: BackgroundServer, streamed: bool
) -> None:
    """The POST executes but its answer comes too late: the order is acknowledged unknown and
    settled by ``orderStatus`` on its cloid, or by its order update if the account's stream
    is subscribed (then nothing is looked up)."""

    async def body() -> None:
        async with behind_a_forwarder(
            server.url, request_timeout_s=1.0, resolve_timeout_s=10.0
        ) as (forwarder, venue):
            forwarder.stall_s = 2.0
            if streamed:
                await venue.subscribe_account()
            bid, _ = await quotes_inside(server.url)
            order = OrderRequest("BTC", True, 0.5, bid, new_cloid())
            forwarder.stall_exchange = True
            (ack,) = await venue.place([order])
            forwarder.stall_exchange = False
            assert ack.state is OrderState.UNKNOWN and ack.oid is None
            assert venue.unresolved == (() if streamed else (order.cloid,))
            events = await wait_for(
                venue, lambda es: any(u.cloid == order.cloid for u in of_type(es, OrderUpdate))
            )
            (update,) = [u for u in of_type(events, OrderUpdate) if u.cloid == order.cloid]
            assert update.state is OrderState.RESTING and update.oid is not None
            assert [o.cloid for o in await venue.open_orders()] == [order.cloid]
            assert forwarder.exchange_posts == 1  # sent once, never retried
            assert forwarder.info_posts.count("orderStatus") == (0 if streamed else 1)
            await asyncio.sleep(0.1)
            assert venue.unresolved == ()

    run(body())


def test_an_order_the_venue_never_saw_stays_unknown_and_is_not_resent(
    server: BackgroundServer, caplog: pytest.LogCaptureFixture
) -> None:
    async def body() -> None:
        async with behind_a_forwarder(server.url, request_timeout_s=0.3, resolve_timeout_s=0.5) as (
            forwarder,
            venue,
        ):
            bid, _ = await quotes_inside(server.url)
            order = OrderRequest("BTC", True, 0.5, bid, new_cloid())
            forwarder.drop_exchange = True  # the POST never reaches the venue
            (ack,) = await venue.place([order])
            assert ack.state is OrderState.UNKNOWN
            assert venue.unresolved == (order.cloid,)
            status = await venue.resolve(order.cloid, timeout_s=0.3)
            assert status.state is OrderState.UNKNOWN
            await asyncio.sleep(0.6)  # the background look-up gives up, logs, resends nothing
            assert forwarder.exchange_posts == 1
            assert await venue.open_orders() == ()

    with caplog.at_level(logging.WARNING, logger="agents.live.venues.hyperliquid"):
        run(body())
    assert "still unknown to the venue" in caplog.text and "not resent" in caplog.text


def test_the_key_never_appears_in_logs_reprs_errors_or_files(
    server: BackgroundServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    texts: list[str] = []

    async def body() -> None:
        nonce_file = tmp_path / "nonce"
        async with adapter(server.url, nonce_file=nonce_file) as venue:
            texts.append(repr(venue))
            texts.append(repr(venue.signer))
            await venue.subscribe_market("BTC")
            _, ask = await best_bid_ask(server.url)
            acks = await venue.place([OrderRequest("BTC", True, 0.5, ask, new_cloid())])
            texts.extend(repr(a) for a in acks)
            try:
                venue.asset("NOPE")
            except ValueError as err:
                texts.append(repr(err))
            try:
                await venue.place([])
            except ValueError as err:
                texts.append(repr(err))
            drop_every_socket(server)
            await wait_for(
                venue, lambda es: any(c.connected for c in of_type(es, ConnectionChange))
            )
            venue._log.error("a record quoting the key %s", AGENT_KEY)  # the filter's last line
        texts.append(nonce_file.read_text())

    with caplog.at_level(logging.DEBUG):
        run(body())
    texts.append(caplog.text)
    texts.extend(str(r.__dict__) for r in caplog.records)
    secret = AGENT_KEY[2:].lower()
    for text in texts:
        assert secret not in text.lower() and secret[:24] not in text.lower()
    assert "<redacted>" in caplog.text


@contextlib.asynccontextmanager
async def behind_a_forwarder(
    url: str, **options: Any
) -> AsyncIterator[tuple[StallingForwarder, HyperliquidVenue]]:
    """An adapter whose HTTP goes through a :class:`StallingForwarder` to the exchange at
    ``url`` (its WebSocket straight to the exchange)."""
    async with (
        StallingForwarder(url) as forwarder,
        adapter(forwarder.url, stream_url=url.replace("http", "ws") + "/ws", **options) as venue,
    ):
        yield forwarder, venue


class StallingForwarder:
    """An HTTP forwarder to the exchange whose /exchange answers can be held back past the
    client's time-out (``stall_exchange``: the venue executes the action, the answer is late) or
    dropped before they reach the venue (``drop_exchange``)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.stall_exchange = False
        self.drop_exchange = False
        self.exchange_posts = 0
        self.info_posts: list[str] = []
        """The types of the /info queries forwarded, in order."""
        self.stall_s = 1.0
        """How long a held-back answer waits (longer than the client's time-out)."""
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> StallingForwarder:
        app = web.Application()
        app.router.add_post("/{path:.*}", self._forward)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        self._session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None and self._session is not None
        await self._session.close()
        await self._runner.cleanup()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._session is not None
        body = await request.read()
        if request.path == "/info":
            self.info_posts.append(json.loads(body).get("type"))
        if request.path == "/exchange":
            self.exchange_posts += 1
            if self.drop_exchange:
                await asyncio.sleep(self.stall_s)
                return web.Response(status=504)
        async with self._session.post(
            self.upstream + request.path, data=body, headers={"Content-Type": "application/json"}
        ) as answer:
            text = await answer.text()
            status = answer.status
        if request.path == "/exchange" and self.stall_exchange:
            await asyncio.sleep(self.stall_s)  # executed upstream; the answer comes too late
        return web.Response(status=status, text=text, content_type="application/json")


def test_the_loopback_guard_refuses_other_hosts() -> None:
    with pytest.raises(AssertionError, match="tried to"):
        socket.create_connection(("192.0.2.1", 443), timeout=1)
    with pytest.raises(AssertionError, match="tried to resolve"):
        socket.getaddrinfo("api.hyperliquid-testnet.xyz", 443)
