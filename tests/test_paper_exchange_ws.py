"""The paper exchange's WebSocket with the SDK's own websocket manager, in lockstep, and a
client that disconnects and reconnects reading the venue's state back."""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from typing import Any

import websocket
from hyperliquid.exchange import Exchange
from hyperliquid.info import Info
from hyperliquid.utils.signing import Cloid
from paper_exchange_support import TIMEOUT, Running, running_exchange, wait_for

ALO = {"limit": {"tif": "Alo"}}


def _quote_both_sides(running: Running, exchange: Exchange, size: float = 0.5) -> list[int]:
    best_bid, best_ask = running.venue.best_ticks(0)
    tick = running.venue.params.tick_size
    oids = []
    for is_buy, ticks in ((True, best_bid), (False, best_ask)):
        answer = exchange.order("BTC", is_buy, size, round(ticks * tick, 2), ALO)
        oids.append(answer["response"]["data"]["statuses"][0]["resting"]["oid"])
    return oids


def test_subscriptions_stream_what_the_venue_books_in_lockstep() -> None:
    # a market (seed) in which the one pair of touch quotes fills and leaves a position
    # through a funding settlement
    with running_exchange(seed=0) as running:
        user = running.wallet.address
        info = Info(running.url, skip_ws=False, timeout=TIMEOUT)
        got: dict[str, list[Any]] = defaultdict(list)
        lock = threading.Lock()

        def keep(msg: Any) -> None:
            with lock:
                got[msg["channel"]].append(msg["data"])

        try:
            for sub in (
                {"type": "l2Book", "coin": "BTC"},
                {"type": "trades", "coin": "BTC"},
                {"type": "activeAssetCtx", "coin": "BTC"},
                {"type": "orderUpdates", "user": user},
                {"type": "userFills", "user": user},
                {"type": "userFundings", "user": user},
            ):
                info.subscribe(sub, keep)  # type: ignore[arg-type]
            # the snapshots a subscription starts with
            wait_for(lambda: len(got["userFundings"]) == 1, "the userFundings snapshot")
            wait_for(lambda: len(got["l2Book"]) == 1 and len(got["userFills"]) == 1, "snapshots")
            assert got["userFills"][0] == {"user": user.lower(), "isSnapshot": True, "fills": []}
            exchange = Exchange(running.wallet, base_url=running.url, timeout=TIMEOUT)
            oids = _quote_both_sides(running, exchange)
            wait_for(lambda: len(got["orderUpdates"]) == 2, "the orders' updates")
            opened = [u[0] for u in got["orderUpdates"]]
            assert [(u["order"]["oid"], u["status"]) for u in opened] == [(o, "open") for o in oids]

            steps = 90  # past a funding settlement (every 60 s)
            for _ in range(steps):
                running.advance(1)
            venue = running.venue
            wait_for(lambda: len(got["l2Book"]) == 1 + steps, "one book per interval")
            wait_for(lambda: len(got["activeAssetCtx"]) == 1 + steps, "one context per interval")
            assert got["l2Book"][-1] == info.l2_snapshot("BTC")
            assert got["activeAssetCtx"][-1] == {"coin": "BTC", "ctx": venue.asset_ctx(0)}
            assert [m["time"] for m in got["l2Book"][1:]] == [
                venue.epoch_ms + 1000 * (i + 1) for i in range(steps)
            ]
            wait_for(
                lambda: len(venue.fills) == sum(len(m["fills"]) for m in got["userFills"]),
                "every fill",
            )
            fills = [f for m in got["userFills"][1:] for f in m["fills"]]
            assert fills == venue.fills and fills, "the stream holds every fill, once, in order"
            assert all(not m["isSnapshot"] for m in got["userFills"][1:])
            assert venue.fundings, "the position paid or earned funding"
            wait_for(
                lambda: sum(len(m["fundings"]) for m in got["userFundings"]) == len(venue.fundings),
                "every funding payment",
            )
            fundings = [f for m in got["userFundings"][1:] for f in m["fundings"]]
            assert fundings == venue.fundings
            assert got["trades"] and all(t["coin"] == "BTC" for m in got["trades"] for t in m)
            updates = [u for m in got["orderUpdates"] for u in m]
            filled = {u["order"]["oid"] for u in updates if u["status"] == "filled"}
            assert filled == {o.oid for o in venue.book.orders.values() if o.status == "filled"}
        finally:
            info.disconnect_websocket()


def test_ping_unsubscribe_and_bad_messages() -> None:
    with running_exchange() as running:
        ws = websocket.create_connection(running.url.replace("http", "ws") + "/ws", timeout=TIMEOUT)
        try:
            assert ws.recv() == "Websocket connection established."
            ws.send(json.dumps({"method": "ping"}))
            assert json.loads(ws.recv()) == {"channel": "pong"}
            sub = {"type": "l2Book", "coin": "BTC"}
            ws.send(json.dumps({"method": "subscribe", "subscription": sub}))
            answer = json.loads(ws.recv())
            assert answer == {
                "channel": "subscriptionResponse",
                "data": {"method": "subscribe", "subscription": sub},
            }
            assert json.loads(ws.recv())["channel"] == "l2Book"  # the snapshot
            ws.send(json.dumps({"method": "unsubscribe", "subscription": sub}))
            assert json.loads(ws.recv())["data"]["method"] == "unsubscribe"
            running.advance(2)
            ws.send(json.dumps({"method": "subscribe", "subscription": {"type": "candle"}}))
            error = json.loads(ws.recv())  # no book arrived after the unsubscribe
            assert error["channel"] == "error" and "unsupported subscription" in error["data"]
            ws.send("not json")
            assert json.loads(ws.recv())["channel"] == "error"
        finally:
            ws.close()


def test_a_client_that_reconnects_reads_the_same_state_back() -> None:
    with running_exchange() as running:
        user = running.wallet.address
        first = Exchange(running.wallet, base_url=running.url, timeout=TIMEOUT)
        _quote_both_sides(running, first)
        first.order("BTC", True, 0.1, 1.0, ALO, cloid=Cloid.from_int(9))  # refused: far away
        running.advance(40)
        reader = Info(running.url, skip_ws=True, timeout=TIMEOUT)
        before = {
            "orders": reader.frontend_open_orders(user),
            "fills": reader.user_fills(user),
            "state": reader.user_state(user),
            "status": reader.query_order_by_cloid(user, Cloid.from_int(9)),
        }
        assert before["fills"], "the market filled something to read back"
        del first, reader  # the client dies; the venue keeps its state

        again = Info(running.url, skip_ws=False, timeout=TIMEOUT)
        try:
            after = {
                "orders": again.frontend_open_orders(user),
                "fills": again.user_fills(user),
                "state": again.user_state(user),
                "status": again.query_order_by_cloid(user, Cloid.from_int(9)),
            }
            assert after == before
            snapshot: list[Any] = []
            again.subscribe({"type": "userFills", "user": user}, snapshot.append)
            wait_for(lambda: len(snapshot) == 1, "the userFills snapshot")
            assert snapshot[0]["data"]["isSnapshot"] is True
            assert sorted(f["tid"] for f in snapshot[0]["data"]["fills"]) == sorted(
                f["tid"] for f in before["fills"]
            )
        finally:
            again.disconnect_websocket()
