"""HTTP round trips with Hyperliquid's own SDK client (signed with a throwaway key) against a
paper exchange on 127.0.0.1: orders, cancels, modifies, the dead-man's switch, every /info
query, signature and nonce checks, and the venue's refusals."""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests
from eth_account import Account
from hyperliquid.exchange import Exchange
from hyperliquid.info import Info
from hyperliquid.utils.signing import Cloid, get_timestamp_ms, sign_l1_action
from paper_exchange_support import TIMEOUT, Running, running_exchange

ALO = {"limit": {"tif": "Alo"}}
GTC = {"limit": {"tif": "Gtc"}}


def _px(running: Running, ticks: int) -> float:
    return round(ticks * running.venue.params.tick_size, 2)


def _status(answer: dict[str, Any]) -> Any:
    assert answer["status"] == "ok", answer
    (status,) = answer["response"]["data"]["statuses"]
    return status


def _clients(running: Running) -> tuple[Exchange, Info]:
    exchange = Exchange(running.wallet, base_url=running.url, timeout=TIMEOUT)
    return exchange, Info(running.url, skip_ws=True, timeout=TIMEOUT)


def test_orders_cancels_modifies_and_every_info_query_round_trip() -> None:
    with running_exchange() as running:
        exchange, info = _clients(running)
        user = running.wallet.address
        venue = running.venue
        assert info.meta() == {
            "universe": [
                {"name": "BTC", "szDecimals": 4, "maxLeverage": 20},
                {"name": "BTC-HEDGE", "szDecimals": 4, "maxLeverage": 20},
            ]
        }
        assert info.spot_meta() == {"universe": [], "tokens": []}
        best_bid, best_ask = venue.best_ticks(0)
        book = info.l2_snapshot("BTC")
        assert book["levels"][0][0]["px"] == f"{_px(running, best_bid):.2f}"
        assert book["levels"][1][0]["px"] == f"{_px(running, best_ask):.2f}"

        bid_cloid, ask_cloid = Cloid.from_int(1), Cloid.from_int(2)
        bid = _status(
            exchange.order("BTC", True, 0.5, _px(running, best_bid - 1), ALO, cloid=bid_cloid)
        )["resting"]
        assert bid["cloid"] == bid_cloid.to_raw()
        ask = _status(
            exchange.order("BTC", False, 0.5, _px(running, best_ask + 1), GTC, cloid=ask_cloid)
        )["resting"]
        by_oid = info.query_order_by_oid(user, bid["oid"])
        assert by_oid["status"] == "order" and by_oid["order"]["status"] == "open"
        assert info.query_order_by_cloid(user, ask_cloid)["order"]["order"]["oid"] == ask["oid"]
        assert info.query_order_by_oid(user, 999_999) == {"status": "unknownOid"}
        front = {o["oid"]: o for o in info.frontend_open_orders(user)}
        assert front[bid["oid"]]["tif"] == "Alo" and front[ask["oid"]]["tif"] == "Gtc"
        assert front[bid["oid"]]["cloid"] == bid_cloid.to_raw()
        assert front[bid["oid"]]["origSz"] == "0.5" and front[bid["oid"]]["reduceOnly"] is False
        assert {o["oid"] for o in info.open_orders(user)} == {bid["oid"], ask["oid"]}
        assert info.open_orders("0x" + "0" * 40) == []

        for _ in range(200):  # until a fill leaves a position
            running.advance(1)
            if venue.assets[0]["inventory"] != 0.0:
                break
        fills = info.user_fills(user)
        assert fills and all(f["oid"] in (bid["oid"], ask["oid"]) for f in fills)
        assert {f["tid"] for f in fills} == {f["tid"] for f in venue.fills}
        assert info.user_fills_by_time(user, 0) == venue.fills
        (position,) = info.user_state(user)["assetPositions"]
        assert float(position["position"]["szi"]) == venue.assets[0]["inventory"]
        long = float(position["position"]["szi"]) > 0

        # reduce-only: the side that closes rests; the side that would grow is refused
        for oid in [o["oid"] for o in info.open_orders(user)]:
            assert _status(exchange.cancel("BTC", oid)) == "success"
        best_bid, best_ask = venue.best_ticks(0)
        close_px = _px(running, best_ask + 2) if long else _px(running, best_bid - 2)
        closing = _status(exchange.order("BTC", not long, 0.01, close_px, ALO, True))
        assert "resting" in closing
        grow_px = _px(running, best_bid - 2) if long else _px(running, best_ask + 2)
        growing = _status(exchange.order("BTC", long, 0.01, grow_px, ALO, True))
        assert growing == {"error": "Reduce only order would increase position. asset=0"}
        assert _status(exchange.cancel("BTC", closing["resting"]["oid"])) == "success"

        # batchModify is a cancel-replace: a new oid under the same cloid
        first = _status(
            exchange.order("BTC", True, 0.2, _px(running, best_bid - 3), ALO, cloid=bid_cloid)
        )["resting"]["oid"]
        modified = _status(
            exchange.modify_order(bid_cloid, "BTC", True, 0.3, _px(running, best_bid - 4), ALO)
        )["resting"]
        assert modified["oid"] != first and modified["cloid"] == bid_cloid.to_raw()
        assert info.query_order_by_oid(user, first)["order"]["status"] == "canceled"
        now = info.query_order_by_cloid(user, bid_cloid)["order"]
        assert now["order"]["oid"] == modified["oid"] and now["order"]["origSz"] == "0.3"
        assert _status(exchange.cancel_by_cloid("BTC", bid_cloid)) == "success"
        missing = _status(exchange.cancel_by_cloid("BTC", bid_cloid))
        assert missing == {"error": "Order was never placed, already canceled, or filled. asset=0"}
        assert info.open_orders(user) == []

        # the dead-man's switch: at least 5 s ahead on the exchange's clock, then it fires
        resting = _status(exchange.order("BTC", True, 0.1, _px(running, best_bid - 5), ALO))
        soon = venue.time_ms() + 1000
        assert exchange.schedule_cancel(soon)["status"] == "err"
        assert exchange.schedule_cancel(venue.time_ms() + 5000) == {
            "status": "ok",
            "response": {"type": "default"},
        }
        running.advance(6)
        status = info.query_order_by_oid(user, resting["resting"]["oid"])["order"]["status"]
        assert status == "scheduledCancel"
        assert exchange.schedule_cancel(None)["status"] == "ok"

        # funding: the market settles every minute; the position pays or earns
        running.advance(70)
        rates = info.funding_history("BTC", 0)
        assert rates and {"coin", "fundingRate", "premium", "time"} <= set(rates[0])
        payments = info.user_funding_history(user, 0)
        assert payments and payments[0]["delta"]["type"] == "funding"
        assert [p["delta"]["usdc"] for p in payments] == [f["usdc"] for f in venue.fundings]
        universe, ctxs = info.meta_and_asset_ctxs()
        assert universe == info.meta() and set(ctxs[0]) >= {"markPx", "oraclePx", "funding"}
        assert info.all_mids() == {"BTC": ctxs[0]["midPx"], "BTC-HEDGE": ctxs[1]["midPx"]}
        state = info.user_state(user)
        assert set(state["marginSummary"]) == {
            "accountValue",
            "totalNtlPos",
            "totalRawUsd",
            "totalMarginUsed",
        }


def test_the_hedge_venue_trades_as_its_own_coin() -> None:
    with running_exchange() as running:
        exchange, info = _clients(running)
        user = running.wallet.address
        venue = running.venue
        while abs(venue.assets[0]["inventory"]) < 0.5:  # a perp position to hedge
            best_bid, best_ask = venue.best_ticks(0)
            for is_buy, ticks in ((True, best_bid), (False, best_ask)):
                if venue.book.resting_order(0, is_buy) is None:
                    exchange.order("BTC", is_buy, 1.0, _px(running, ticks), ALO)
            running.advance(1)
        for order in venue.book.open_orders():
            exchange.cancel("BTC", order.oid)
        position = float(venue.assets[0]["inventory"])
        hedge_buy = position < 0
        too_much = _status(exchange.order("BTC-HEDGE", hedge_buy, 5.0, 100.0, GTC))
        assert "the hedge venue offsets the perp's position" in too_much["error"]
        alo = _status(exchange.order("BTC-HEDGE", hedge_buy, 0.2, 100.0, ALO))
        assert "the hedge venue takes Gtc orders" in alo["error"]
        oid = _status(exchange.order("BTC-HEDGE", hedge_buy, 0.2, 100.0, GTC))["resting"]["oid"]
        assert [o["coin"] for o in info.frontend_open_orders(user)] == ["BTC-HEDGE"]
        for _ in range(30):
            running.advance(1)
            if info.query_order_by_oid(user, oid)["order"]["status"] == "filled":
                break
        assert info.query_order_by_oid(user, oid)["order"]["status"] == "filled"
        hedge_fills = [f for f in info.user_fills(user) if f["coin"] == "BTC-HEDGE"]
        assert hedge_fills and all(f["crossed"] and f["oid"] == oid for f in hedge_fills)
        assert sum(float(f["sz"]) for f in hedge_fills) == pytest.approx(0.2)
        positions = {
            p["position"]["coin"]: p["position"] for p in info.user_state(user)["assetPositions"]
        }
        assert float(positions["BTC-HEDGE"]["szi"]) == pytest.approx(0.2 if hedge_buy else -0.2)
        assert float(positions["BTC"]["szi"]) == position
        book = requests.post(
            f"{running.url}/info", json={"type": "l2Book", "coin": "BTC-HEDGE"}, timeout=10
        )
        assert book.status_code == 422 and "no book" in book.text


def test_a_wrong_key_is_refused_and_nothing_trades() -> None:
    with running_exchange() as running:
        intruder = Exchange(Account.create(), base_url=running.url, timeout=TIMEOUT)
        best_bid, _ = running.venue.best_ticks(0)
        answer = intruder.order("BTC", True, 0.5, _px(running, best_bid - 1), ALO)
        signer = intruder.wallet.address.lower()
        assert answer == {
            "status": "err",
            "response": f"User or API Wallet {signer} does not exist.",
        }
        assert intruder.schedule_cancel(None)["status"] == "err"
        assert running.venue.book.orders == {}
        running.advance(5)
        assert running.venue.fills == [] and running.venue.assets[0]["inventory"] == 0.0


def test_a_reused_nonce_is_refused() -> None:
    with running_exchange() as running:
        best_bid, _ = running.venue.best_ticks(0)
        order = {
            "a": 0,
            "b": True,
            "p": f"{_px(running, best_bid - 1):.2f}",
            "s": "0.5",
            "r": False,
            "t": ALO,
        }
        action = {"type": "order", "orders": [order], "grouping": "na"}
        nonce = get_timestamp_ms()
        signature = sign_l1_action(running.wallet, action, None, nonce, None, False)
        body = {"action": action, "nonce": nonce, "signature": signature, "vaultAddress": None}
        first = requests.post(f"{running.url}/exchange", json=body, timeout=TIMEOUT).json()
        assert "resting" in _status(first)
        again = requests.post(f"{running.url}/exchange", json=body, timeout=TIMEOUT).json()
        assert again["status"] == "err" and again["response"].startswith("Invalid nonce")
        stale = dict(body, nonce=nonce - 3 * 24 * 3600 * 1000)
        stale["signature"] = sign_l1_action(
            running.wallet, action, None, stale["nonce"], None, False
        )
        late = requests.post(f"{running.url}/exchange", json=stale, timeout=TIMEOUT).json()
        assert late["status"] == "err" and "Invalid nonce" in late["response"]
        assert len(running.venue.book.open_orders()) == 1


def test_refusals_name_the_rule() -> None:
    with running_exchange() as running:
        exchange, info = _clients(running)
        user = running.wallet.address
        best_bid, best_ask = running.venue.best_ticks(0)
        # Alo that would cross: Hyperliquid's text and an orderUpdates status
        cross = _status(exchange.order("BTC", True, 0.5, _px(running, best_ask), ALO))
        bbo = f"{_px(running, best_bid):.2f}@{_px(running, best_ask):.2f}"
        assert cross == {
            "error": f"Post only order would have immediately matched, bbo was {bbo}. asset=0"
        }
        rejected = [o for o in running.venue.book.orders.values() if o.status != "open"]
        assert [o.status for o in rejected] == ["badAloPxRejected"]
        gtc = _status(exchange.order("BTC", False, 0.5, _px(running, best_bid), GTC))
        assert gtc["error"].startswith("Paper exchange: a Gtc order that would cross")
        ioc = _status(exchange.order("BTC", True, 0.5, _px(running, best_bid), IOC))
        assert ioc["error"].startswith("Paper exchange: Ioc orders are refused")
        # unrounded price and size
        off_grid = _status(exchange.order("BTC", True, 0.5, 99.955, ALO))
        assert off_grid == {"error": "Price must be divisible by tick size. asset=0"}
        too_fine = _status(exchange.order("BTC", True, 0.12345, _px(running, best_bid - 1), ALO))
        assert too_fine == {"error": "Order has invalid size. asset=0"}
        too_big = _status(exchange.order("BTC", True, 5.0, _px(running, best_bid - 1), ALO))
        assert "max_quote_size" in too_big["error"]
        # one bid and one ask per coin
        assert "resting" in _status(exchange.order("BTC", True, 0.5, _px(running, best_bid), ALO))
        second = _status(exchange.order("BTC", True, 0.5, _px(running, best_bid - 1), ALO))
        assert re.fullmatch(
            r"Paper exchange: one resting bid per coin \(order \d+ rests\); cancel or modify it "
            r"first\. asset=0",
            second["error"],
        )
        far = _status(exchange.order("BTC", False, 0.5, _px(running, best_ask + 200), ALO))
        assert "beyond what the market's action can express" in far["error"]
        assert len(info.open_orders(user)) == 1
        unknown = requests.post(f"{running.url}/info", json={"type": "vaultDetails"}, timeout=10)
        assert unknown.status_code == 422 and "unsupported info type" in unknown.text


IOC = {"limit": {"tif": "Ioc"}}


def test_advance_is_refused_outside_lockstep_where_the_clock_moves_the_market() -> None:
    with running_exchange(time_mode="accelerated", speed=20.0) as running:
        start = running.venue.steps
        answer = requests.post(f"{running.url}/paper/advance", json={"steps": 1}, timeout=10)
        assert answer.status_code == 409 and "lockstep" in answer.json()["error"]
        # 20 decision intervals per second of wall time
        from paper_exchange_support import wait_for

        wait_for(lambda: running.venue.steps >= start + 5, "the accelerated clock")


@pytest.mark.parametrize("steps", [0, -1, "3", 10**9])
def test_bad_advance_requests_are_refused(steps: object) -> None:
    with running_exchange() as running:
        answer = requests.post(f"{running.url}/paper/advance", json={"steps": steps}, timeout=10)
        assert answer.status_code == 422 and running.venue.steps == 0


def _signed(running: Running, action: Any) -> dict[str, Any]:
    nonce = get_timestamp_ms()
    signature = sign_l1_action(running.wallet, action, None, nonce, None, False)
    return {"action": action, "nonce": nonce, "signature": signature, "vaultAddress": None}


MALFORMED_ACTIONS: list[Any] = [
    {"type": "order", "orders": "x", "grouping": "na"},
    {"type": "order", "orders": [None, 3, {"a": "BTC"}], "grouping": "na"},
    {"type": "order", "orders": [{"a": 0, "b": "yes", "p": "1", "s": "1", "r": 0}]},
    {"type": "order", "orders": [{"a": 0, "b": True, "p": [], "s": {}, "r": False, "t": 1}]},
    {"type": "order", "orders": [{"a": 99, "b": True, "p": "1", "s": "1", "r": False}]},
    {"type": "cancel", "cancels": [{"a": 0, "o": [1]}, {"a": "x", "o": 1}, 7]},
    {"type": "cancelByCloid", "cancels": [{"asset": 0, "cloid": None}]},
    {"type": "batchModify", "modifies": [{"oid": {"x": 1}, "order": None}]},
    {"type": "batchModify", "modifies": None},
    {"type": "scheduleCancel", "time": "soon"},
    {"type": "usdSend", "amount": "1"},
    {"no": "type"},
]


def test_malformed_actions_get_a_clear_answer_and_change_nothing() -> None:
    with running_exchange() as running:
        for action in MALFORMED_ACTIONS:
            body = _signed(running, action)
            answer = requests.post(f"{running.url}/exchange", json=body, timeout=TIMEOUT)
            assert answer.status_code == 200, (action, answer.text)
            data = answer.json()
            if data["status"] == "err":
                assert isinstance(data["response"], str) and data["response"], action
            else:  # per-order or per-cancel errors
                statuses = data["response"]["data"]["statuses"]
                assert statuses, action
                assert all(isinstance(s, dict) and s.get("error") for s in statuses), action
        assert running.venue.book.open_orders() == []


BAD_REQUESTS: list[tuple[str, Any]] = [
    ("/exchange", "not json"),
    ("/exchange", {"action": 1}),
    ("/exchange", {"action": {"type": "order"}, "nonce": "1", "signature": {}}),
    ("/exchange", {"action": {"type": "order"}, "nonce": 1, "signature": {"r": 1}}),
    ("/info", "not json"),
    ("/info", {"type": "orderStatus", "user": 5, "oid": [1]}),
    ("/info", {"type": "userFillsByTime", "user": "0x", "startTime": "0"}),
    ("/info", {"type": "l2Book", "coin": None}),
    ("/paper/advance", "not json"),
]


def test_bad_requests_get_a_clear_error_never_a_server_error() -> None:
    with running_exchange() as running:
        for path, body in BAD_REQUESTS:
            kwargs: dict[str, Any] = {"data": body} if isinstance(body, str) else {"json": body}
            answer = requests.post(f"{running.url}{path}", timeout=TIMEOUT, **kwargs)
            assert answer.status_code in (200, 422), (path, body, answer.status_code)
            assert answer.text
            if answer.status_code == 200:
                data = answer.json()
                assert data == {"status": "unknownOid"} or data["status"] == "err", data
        assert running.venue.steps == 0
