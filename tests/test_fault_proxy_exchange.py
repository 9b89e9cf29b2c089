"""The fault proxy in front of the paper exchange, driven by the SDK's own ``Info`` and
``Exchange``: what each fault does to an order, seen from the client and from the exchange.

The exchange runs lockstep on a thread (``BackgroundServer``), the proxy on the test's event
loop; the SDK's blocking calls run off the loop. Everything binds 127.0.0.1 and every scenario
is bounded in time.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from eth_account import Account
from hyperliquid.exchange import Exchange
from hyperliquid.info import Info
from hyperliquid.utils.error import ServerError
from hyperliquid.utils.types import Cloid
from venue_support import loopback_only  # noqa: F401  (a fixture)

from agents.market import market_of
from mmgym.exchange import BackgroundServer, Clock, PaperExchange, PaperVenue
from mmgym.exchange.fault_proxy import FaultProxy
from mmgym.exchange.faults import FaultRule

pytestmark = pytest.mark.usefixtures("loopback_only")

BOUND = 30.0  # s, the most any scenario may take
COIN = "BTC"
KEY = "0x" + "5e" * 32  # a throwaway key for a local test account
ALO = {"limit": {"tif": "Alo"}}


@dataclass
class Market:
    """A lockstep paper exchange on a thread and the SDK account that trades it."""

    server: BackgroundServer
    wallet: Any

    @property
    def url(self) -> str:
        return self.server.url

    def advance(self, steps: int) -> None:
        answer = requests.post(self.url + "/paper/advance", json={"steps": steps}, timeout=30)
        assert answer.status_code == 200, answer.text

    def bid(self) -> float:
        """The best bid (an Alo there rests)."""
        book = Info(self.url, skip_ws=True, timeout=10).l2_snapshot(COIN)
        return float(book["levels"][0][0]["px"])


@pytest.fixture
def market() -> Iterator[Market]:
    wallet = Account.from_key(KEY)
    params = market_of("calm", 3600.0, {}).params
    # a scratch market's step compiles the kernel (a fresh numba cache) before any time-out runs
    PaperVenue(params, 3, [COIN], wallet.address, 0).advance(1)
    venue = PaperVenue(params, 3, [COIN], wallet.address, int(time.time()) * 1000)
    exchange = PaperExchange(venue, wallet.address, Clock("lockstep"))
    with BackgroundServer(exchange, timeout=30.0) as server:
        yield Market(server, wallet)


def through_proxy(
    market: Market, rules: list[FaultRule], scenario: Callable[[FaultProxy], Awaitable[None]]
) -> FaultProxy:
    """Run ``scenario`` with a proxy (seed 0) in front of ``market``; the proxy for its log."""

    async def main() -> FaultProxy:
        async with FaultProxy(market.url, rules, upstream_timeout=10.0) as proxy:
            await asyncio.wait_for(scenario(proxy), BOUND)
        return proxy

    return asyncio.run(main())


def status_of(market: Market, cloid: Cloid) -> Any:
    """The exchange's own record of ``cloid`` (asked directly, not through the proxy)."""
    info = Info(market.url, skip_ws=True, timeout=10)
    return info.query_order_by_cloid(market.wallet.address, cloid)


def open_cloids(market: Market) -> list[str]:
    info = Info(market.url, skip_ws=True, timeout=10)
    return [o.get("cloid") for o in info.frontend_open_orders(market.wallet.address)]


def test_a_duplicated_order_post_is_refused_the_second_time_for_its_nonce(market: Market) -> None:
    cloid = Cloid.from_int(1)
    px = market.bid()
    rule = FaultRule.parse("http:duplicate:label=order")

    async def scenario(proxy: FaultProxy) -> None:
        exchange = await asyncio.to_thread(Exchange, market.wallet, proxy.url, timeout=10)
        answer = await asyncio.to_thread(exchange.order, COIN, True, 0.1, px, ALO, False, cloid)
        assert "resting" in answer["response"]["data"]["statuses"][0], answer

    (record,) = through_proxy(market, [rule], scenario).log
    assert record.delivered and record.upstream_status == 200
    assert "second answer (200)" in record.detail and "Invalid nonce" in record.detail
    assert "already used" in record.detail
    assert open_cloids(market) == [str(cloid)]  # one order, not two


@pytest.mark.parametrize("kind", ["drop_response", "drop_request"])
def test_a_lost_order_answer_raises_in_the_sdk_and_only_the_exchange_knows_the_outcome(
    market: Market, kind: str
) -> None:
    cloid = Cloid.from_int(2)
    px = market.bid()
    rule = FaultRule.parse(f"http:{kind}:label=order:nth=1")

    async def scenario(proxy: FaultProxy) -> None:
        exchange = await asyncio.to_thread(Exchange, market.wallet, proxy.url, timeout=10)
        with pytest.raises(requests.exceptions.ConnectionError):  # requests does not resend
            await asyncio.to_thread(exchange.order, COIN, True, 0.1, px, ALO, False, cloid)

    (record,) = through_proxy(market, [rule], scenario).log
    answer = status_of(market, cloid)
    if kind == "drop_response":  # the order reached the exchange and rests there
        assert (record.delivered, record.upstream_status) == (True, 200)
        assert answer["status"] == "order" and answer["order"]["status"] == "open", answer
        assert open_cloids(market) == [str(cloid)]
    else:  # it never reached the exchange
        assert (record.delivered, record.upstream_status) == (False, None)
        assert answer == {"status": "unknownOid"}
        assert open_cloids(market) == []


@pytest.mark.parametrize("after_forward", [False, True])
def test_a_5xx_answer_raises_in_the_sdk_whether_or_not_the_order_was_placed(
    market: Market, after_forward: bool
) -> None:
    cloid = Cloid.from_int(4)
    px = market.bid()
    rule = FaultRule(kind="error_5xx", label="order", after_forward=after_forward)

    async def scenario(proxy: FaultProxy) -> None:
        exchange = await asyncio.to_thread(Exchange, market.wallet, proxy.url, timeout=10)
        with pytest.raises(ServerError):
            await asyncio.to_thread(exchange.order, COIN, True, 0.1, px, ALO, False, cloid)

    through_proxy(market, [rule], scenario)
    assert open_cloids(market) == ([str(cloid)] if after_forward else [])


def test_rejects_reach_the_sdk_in_hyperliquids_shapes_and_nothing_trades(market: Market) -> None:
    px = market.bid()
    rules = [
        FaultRule.parse("http:reject:label=order:nth=1:text=Too many requests"),
        FaultRule.parse("http:order_error:label=order:nth=2:text=Insufficient margin"),
    ]

    async def scenario(proxy: FaultProxy) -> None:
        exchange = await asyncio.to_thread(Exchange, market.wallet, proxy.url, timeout=10)
        first = await asyncio.to_thread(exchange.order, COIN, True, 0.1, px, ALO)
        assert first == {"status": "err", "response": "Too many requests"}
        second = await asyncio.to_thread(exchange.order, COIN, True, 0.1, px, ALO)
        statuses = second["response"]["data"]["statuses"]
        assert second["status"] == "ok" and statuses == [{"error": "Insufficient margin"}]

    through_proxy(market, rules, scenario)
    assert open_cloids(market) == []


def test_the_sdks_websocket_misses_exactly_the_dropped_book_updates(market: Market) -> None:
    rule = FaultRule.parse("ws_down:drop:label=l2Book:nth=3,4")
    steps = 8

    async def scenario(proxy: FaultProxy) -> None:
        received: list[int] = []
        snapshot = threading.Event()

        def on_book(message: Any) -> None:
            received.append(int(message["data"]["time"]))
            snapshot.set()

        info = await asyncio.to_thread(Info, proxy.url, False, timeout=10)
        try:
            info.subscribe({"type": "l2Book", "coin": COIN}, on_book)
            assert await asyncio.to_thread(snapshot.wait, 10.0)  # the subscription's snapshot
            await asyncio.to_thread(market.advance, steps)
            while proxy.seen("ws_down#1") < 2 + 1 + steps:  # greeting, ack, snapshot, updates
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)  # the SDK's thread hands the last message over
        finally:
            await asyncio.to_thread(info.disconnect_websocket)
        assert len(received) == 1 + steps - 2
        assert len(set(received)) == len(received) and received == sorted(received)

    records = through_proxy(market, [rule], scenario).log
    assert [(r.label, r.match_index, r.delivered) for r in records] == [
        ("l2Book", 3, False),
        ("l2Book", 4, False),
    ]
