"""The fault proxy in front of a small real aiohttp server (an echo and counter server): every
fault class, what reached the server, the fault log, determinism from the seed, the command line.

Every scenario runs under ``asyncio.wait_for`` with a bound, on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from venue_support import loopback_only  # noqa: F401  (a fixture)

from mmgym.exchange.fault_proxy import FaultProxy, check_loopback, order_error_body
from mmgym.exchange.faults import FaultKind, FaultPlan, FaultRecord, FaultRule, Target, uniform

pytestmark = pytest.mark.usefixtures("loopback_only")

LIVE_PAGE = Path(__file__).resolve().parent.parent / "docs" / "live.md"
BOUND = 20.0  # s, the most any scenario may take
CLIENT_TIMEOUT = aiohttp.ClientTimeout(total=5.0)


class Upstream:
    """An echo and counter server: ``POST /info`` and ``POST /exchange`` answer the request's
    number and echo its body; ``/ws`` answers pings, acknowledges subscriptions and, on
    ``{"method": "stream", "n": k}``, sends k messages ``{"channel": "l2Book", "data": {"seq":
    i}}``. It records every request and WebSocket message it receives."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.ws_messages: list[dict[str, Any]] = []
        self.ws_closed = 0
        self.runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/info", self._post)
        app.router.add_post("/exchange", self._post)
        app.router.add_get("/ws", self._ws)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.port = int(self.runner.addresses[0][1])

    async def stop(self) -> None:
        assert self.runner is not None
        await self.runner.cleanup()

    async def _post(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        n = len(self.requests)
        if request.path == "/exchange":
            statuses = [{"resting": {"oid": n}}]
            return web.json_response(
                {"status": "ok", "response": {"type": "order", "data": {"statuses": statuses}}}
            )
        return web.json_response({"n": n, "echo": body})

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            payload = json.loads(message.data)
            self.ws_messages.append(payload)
            if payload.get("method") == "ping":
                await ws.send_json({"channel": "pong"})
            elif payload.get("method") == "subscribe":
                await ws.send_json({"channel": "subscriptionResponse", "data": payload})
            elif payload.get("method") == "stream":
                for i in range(1, payload["n"] + 1):
                    await ws.send_json({"channel": "l2Book", "data": {"seq": i}})
        self.ws_closed += 1
        return ws


Scenario = Callable[[Upstream, FaultProxy, aiohttp.ClientSession], Awaitable[None]]


def run(rules: list[FaultRule], scenario: Scenario, seed: int = 0) -> FaultProxy:
    """Start the server and the proxy, run ``scenario`` against them (``BOUND`` s at most),
    stop both; the proxy is returned for its log."""

    async def main() -> FaultProxy:
        upstream = Upstream()
        await upstream.start()
        proxy = FaultProxy(upstream.url, rules, seed=seed, upstream_timeout=5.0)
        try:
            async with proxy, aiohttp.ClientSession(timeout=CLIENT_TIMEOUT) as client:
                await asyncio.wait_for(scenario(upstream, proxy, client), BOUND)
        finally:
            await upstream.stop()
        return proxy

    return asyncio.run(main())


async def post(client: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> Any:
    async with client.post(url, json=body) as response:
        if response.status != 200:
            return response.status, await response.text()
        return await response.json()


def order(tag: int) -> dict[str, Any]:
    """An /exchange body shaped like the SDK's order action (two orders)."""
    orders = [{"a": 0, "b": True, "p": "100", "s": "1", "r": False, "t": {}}] * 2
    return {"action": {"type": "order", "orders": orders, "grouping": "na"}, "nonce": tag}


async def l2_stream(ws: aiohttp.ClientWebSocketResponse, n: int, quiet: float = 0.3) -> list[int]:
    """Ask the server for ``n`` l2Book messages; the sequence numbers received until the
    stream has been quiet for ``quiet`` s."""
    await ws.send_json({"method": "stream", "n": n})
    seqs: list[int] = []
    while True:
        try:
            message = await ws.receive(timeout=quiet)
        except TimeoutError:
            return seqs
        if message.type != aiohttp.WSMsgType.TEXT:
            return seqs
        seqs.append(json.loads(message.data)["data"]["seq"])


# --- HTTP ------------------------------------------------------------------------------------


def test_without_rules_requests_and_messages_pass_unchanged() -> None:
    async def scenario(up: Upstream, proxy: FaultProxy, client: aiohttp.ClientSession) -> None:
        answer = await post(client, proxy.url + "/info", {"type": "meta"})
        assert answer == {"n": 1, "echo": {"type": "meta"}}
        async with client.ws_connect(proxy.url + "/ws") as ws:
            await ws.send_json({"method": "ping"})
            assert await ws.receive_json(timeout=2) == {"channel": "pong"}
            assert await l2_stream(ws, 20) == list(range(1, 21))

    proxy = run([], scenario)
    assert proxy.log == []


def test_a_dropped_request_never_reaches_the_server() -> None:
    rule = FaultRule(FaultKind.DROP_REQUEST, nth=(2,))

    async def scenario(up: Upstream, proxy: FaultProxy, client: aiohttp.ClientSession) -> None:
        assert (await post(client, proxy.url + "/info", {"type": "a"}))["n"] == 1
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await post(client, proxy.url + "/info", {"type": "b"})
        assert (await post(client, proxy.url + "/info", {"type": "c"}))["n"] == 2
        assert [r["type"] for r in up.requests] == ["a", "c"]

    (record,) = run([rule], scenario).log
    assert (record.kind, record.message, record.delivered) == ("drop_request", 2, False)
    assert record.upstream_status is None


def test_a_dropped_answer_leaves_the_order_with_the_server_and_the_client_without_an_answer() -> (
    None
):
    rule = FaultRule.parse("http:drop_response:label=order:nth=3")

    async def scenario(up: Upstream, proxy: FaultProxy, client: aiohttp.ClientSession) -> None:
        for tag in (1, 2):
            assert (await post(client, proxy.url + "/exchange", order(tag)))["status"] == "ok"
        await post(client, proxy.url + "/info", {"type": "openOrders"})  # not an order: no count
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await post(client, proxy.url + "/exchange", order(3))
        assert [r.get("nonce") for r in up.requests] == [1, 2, None, 3]

    (record,) = run([rule], scenario).log
    assert (record.kind, record.label, record.match_index, record.message) == (
        "drop_response",
        "order",
        3,
        4,
    )
    assert record.delivered and record.upstream_status == 200


def test_a_held_dropped_request_outlasts_the_clients_time_out() -> None:
    rule = FaultRule(FaultKind.DROP_REQUEST, seconds=2.0)

    async def scenario(up: Upstream, proxy: FaultProxy, client: aiohttp.ClientSession) -> None:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            async with client.post(
                proxy.url + "/info", json={}, timeout=aiohttp.ClientTimeout(total=0.3)
            ):
                pass
        assert time.monotonic() - started < 1.5  # the client's own time-out ended the wait
        assert up.requests == []

    run([rule], scenario)


def test_a_duplicated_request_reaches_the_server_twice_and_the_client_gets_the_first_answer() -> (
    None
):
    rule = FaultRule(FaultKind.DUPLICATE, label="order")

    async def scenario(up: Upstream, proxy: FaultProxy, client: aiohttp.ClientSession) -> None:
        answer = await post(client, proxy.url + "/exchange", order(7))
        assert answer["response"]["data"]["statuses"] == [{"resting": {"oid": 1}}]
        assert [r["nonce"] for r in up.requests] == [7, 7]
        assert proxy.count(Target.HTTP, "order") == 1  # the copy is the proxy's, not counted

    (record,) = run([rule], scenario).log
    assert record.delivered and "second answer (200)" in record.detail


def test_a_delayed_request_reaches_the_server_after_the_delay() -> None:
    rule = FaultRule(FaultKind.DELAY, seconds=0.3)

    async def scenario(up: Upstream, proxy: FaultProxy, client: aiohttp.ClientSession) -> None:
        started = time.monotonic()
        assert (await post(client, proxy.url + "/info", {"type": "meta"}))["n"] == 1
        assert time.monotonic() - started >= 0.3

    (record,) = run([rule], scenario).log
    assert record.seconds == 0.3


def test_a_reordered_request_reaches_the_server_after_the_next_one() -> None:
    rule = FaultRule(FaultKind.REORDER, nth=(1,), seconds=5.0)

    async def scenario(up: Upstream, proxy: FaultProxy, client: aiohttp.ClientSession) -> None:
        first = asyncio.create_task(post(client, proxy.url + "/info", {"type": "first"}))
        while proxy.seen("http") < 1:  # the proxy holds the first request
            await asyncio.sleep(0.01)
        second = await post(client, proxy.url + "/info", {"type": "second"})
        assert second["n"] == 1
        assert (await first)["n"] == 2
        assert [r["type"] for r in up.requests] == ["second", "first"]

    (record,) = run([rule], scenario).log
    assert record.detail == "released after the next message"


def test_a_reordered_request_without_a_next_one_goes_after_its_window() -> None:
    rule = FaultRule(FaultKind.REORDER, seconds=0.2)

    async def scenario(up: Upstream, proxy: FaultProxy, client: aiohttp.ClientSession) -> None:
        assert (await post(client, proxy.url + "/info", {"type": "alone"}))["n"] == 1

    (record,) = run([rule], scenario).log
    assert record.detail == "released after 0.200 s without a next message"


def test_a_disconnect_closes_the_clients_connection_before_the_server_sees_the_request() -> None:
    rule = FaultRule.parse("http:disconnect:path=/exchange")

    async def scenario(up: Upstream, proxy: FaultProxy, client: aiohttp.ClientSession) -> None:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await post(client, proxy.url + "/exchange", order(1))
        assert (await post(client, proxy.url + "/info", {"type": "meta"}))["n"] == 1

    (record,) = run([rule], scenario).log
    assert (record.kind, record.path, record.delivered) == ("disconnect", "/exchange", False)


@pytest.mark.parametrize("after_forward", [False, True])
def test_a_5xx_answer_hides_whether_the_server_got_the_request(after_forward: bool) -> None:
    rule = FaultRule(FaultKind.ERROR_5XX, status=503, after_forward=after_forward)

    async def scenario(up: Upstream, proxy: FaultProxy, client: aiohttp.ClientSession) -> None:
        status, text = await post(client, proxy.url + "/exchange", order(1))
        assert (status, text) == (503, "503 (fault proxy)")
        assert len(up.requests) == int(after_forward)

    (record,) = run([rule], scenario).log
    assert record.delivered == after_forward
    assert record.upstream_status == (200 if after_forward else None)


def test_a_reject_answers_hyperliquids_whole_request_error() -> None:
    rule = FaultRule(FaultKind.REJECT, text="Too many requests")

    async def scenario(up: Upstream, proxy: FaultProxy, client: aiohttp.ClientSession) -> None:
        answer = await post(client, proxy.url + "/exchange", order(1))
        assert answer == {"status": "err", "response": "Too many requests"}
        assert up.requests == []

    run([rule], scenario)


def test_an_order_error_refuses_every_order_of_the_action_in_hyperliquids_shape() -> None:
    rule = FaultRule(FaultKind.ORDER_ERROR, path="/exchange", text="Insufficient margin")
    cancel = {"action": {"type": "cancelByCloid", "cancels": [{"asset": 0, "cloid": "0x1"}]}}

    async def scenario(up: Upstream, proxy: FaultProxy, client: aiohttp.ClientSession) -> None:
        answer = await post(client, proxy.url + "/exchange", order(1))
        error = {"error": "Insufficient margin"}
        data = {"type": "order", "data": {"statuses": [error, error]}}
        assert answer == {"status": "ok", "response": data}
        answer = await post(client, proxy.url + "/exchange", cancel)
        data = {"type": "cancel", "data": {"statuses": [error]}}
        assert answer == {"status": "ok", "response": data}
        assert up.requests == []

    run([rule], scenario)


def test_an_order_error_on_an_action_without_orders_is_a_whole_request_error() -> None:
    body = json.dumps({"action": {"type": "scheduleCancel", "time": 1}}).encode()
    assert order_error_body(body, "no") == {"status": "err", "response": "no"}
    assert order_error_body(b"not json", "no") == {"status": "err", "response": "no"}


def test_an_unreachable_server_is_a_502_naming_the_problem() -> None:
    async def scenario(up: Upstream, proxy: FaultProxy, client: aiohttp.ClientSession) -> None:
        await up.stop()
        status, text = await post(client, proxy.url + "/info", {"type": "meta"})
        assert status == 502 and "upstream did not answer" in text
        await up.start()  # for the fixture's stop

    run([], scenario)


# --- WebSocket -------------------------------------------------------------------------------


def test_dropped_messages_to_the_client_are_missing_from_its_stream() -> None:
    rule = FaultRule.parse("ws_down:drop:label=l2Book:nth=2,5")

    async def scenario(up: Upstream, proxy: FaultProxy, client: aiohttp.ClientSession) -> None:
        async with client.ws_connect(proxy.url + "/ws") as ws:
            assert await l2_stream(ws, 8) == [1, 3, 4, 6, 7, 8]

    records = run([rule], scenario).log
    assert [(r.stream, r.match_index, r.delivered) for r in records] == [
        ("ws_down#1", 2, False),
        ("ws_down#1", 5, False),
    ]


def test_duplicated_messages_reach_the_other_side_twice() -> None:
    rules = [
        FaultRule.parse("ws_up:duplicate:label=subscribe"),
        FaultRule.parse("ws_down:duplicate:label=l2Book:nth=3"),
    ]
    subscribe = {"method": "subscribe", "subscription": {"type": "l2Book", "coin": "BTC"}}

    async def scenario(up: Upstream, proxy: FaultProxy, client: aiohttp.ClientSession) -> None:
        async with client.ws_connect(proxy.url + "/ws") as ws:
            await ws.send_json(subscribe)
            for _ in range(2):
                assert (await ws.receive_json(timeout=2))["channel"] == "subscriptionResponse"
            assert await l2_stream(ws, 4) == [1, 2, 3, 3, 4]
        assert up.ws_messages[:2] == [subscribe, subscribe]
        assert proxy.count(Target.WS_UP, "subscribe") == proxy.count(Target.WS_UP, "l2Book") == 1
        assert proxy.count(Target.WS_DOWN, "l2Book") == 4

    assert [r.target for r in run(rules, scenario).log] == ["ws_up", "ws_down"]


def test_a_delayed_message_holds_its_stream_and_keeps_the_order() -> None:
    rule = FaultRule.parse("ws_down:delay:nth=2:seconds=0.3")

    async def scenario(up: Upstream, proxy: FaultProxy, client: aiohttp.ClientSession) -> None:
        async with client.ws_connect(proxy.url + "/ws") as ws:
            started = time.monotonic()
            assert await l2_stream(ws, 4, quiet=0.6) == [1, 2, 3, 4]
            assert time.monotonic() - started >= 0.3

    run([rule], scenario)


def test_a_reordered_message_arrives_after_the_next_one() -> None:
    rule = FaultRule.parse("ws_down:reorder:nth=2,5:seconds=5")

    async def scenario(up: Upstream, proxy: FaultProxy, client: aiohttp.ClientSession) -> None:
        async with client.ws_connect(proxy.url + "/ws") as ws:
            assert await l2_stream(ws, 6) == [1, 3, 2, 4, 6, 5]

    run([rule], scenario)


def test_a_reordered_last_message_arrives_after_its_window() -> None:
    rule = FaultRule.parse("ws_down:reorder:nth=3:seconds=0.2")

    async def scenario(up: Upstream, proxy: FaultProxy, client: aiohttp.ClientSession) -> None:
        async with client.ws_connect(proxy.url + "/ws") as ws:
            assert await l2_stream(ws, 3, quiet=1.0) == [1, 2, 3]

    run([rule], scenario)


@pytest.mark.parametrize("target", ["ws_up", "ws_down"])
def test_a_disconnect_closes_the_clients_socket_and_the_servers(target: str) -> None:
    label = "stream" if target == "ws_up" else "l2Book"
    rule = FaultRule.parse(f"{target}:disconnect:label={label}:nth=1:connections=1")

    async def scenario(up: Upstream, proxy: FaultProxy, client: aiohttp.ClientSession) -> None:
        async with client.ws_connect(proxy.url + "/ws") as ws:
            assert await l2_stream(ws, 3) == []
            assert ws.closed
        while up.ws_closed < 1:  # the server's side closes too
            await asyncio.sleep(0.01)
        async with client.ws_connect(proxy.url + "/ws") as ws:  # connection 2 is spared
            assert await l2_stream(ws, 3) == [1, 2, 3]

    (record,) = run([rule], scenario).log
    assert (record.stream, record.delivered) == (f"{target}#1", False)


def test_a_refused_handshake_is_a_5xx_and_the_next_one_connects() -> None:
    rule = FaultRule.parse("ws_connect:error_5xx:nth=1:status=503")

    async def scenario(up: Upstream, proxy: FaultProxy, client: aiohttp.ClientSession) -> None:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect(proxy.url + "/ws")
        assert refused.value.status == 503
        async with client.ws_connect(proxy.url + "/ws") as ws:
            assert await l2_stream(ws, 2) == [1, 2]

    (record,) = run([rule], scenario).log
    assert (record.target, record.delivered) == ("ws_connect", False)


def test_a_dropped_handshake_closes_the_connection_and_a_delayed_one_connects_late() -> None:
    # aiohttp's client retries a GET once after a disconnect: two handshakes to drop
    rules = [
        FaultRule.parse("ws_connect:disconnect:nth=1,2"),
        FaultRule.parse("ws_connect:delay:nth=3"),
    ]

    async def scenario(up: Upstream, proxy: FaultProxy, client: aiohttp.ClientSession) -> None:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await client.ws_connect(proxy.url + "/ws")
        started = time.monotonic()
        async with client.ws_connect(proxy.url + "/ws") as ws:
            assert time.monotonic() - started >= 0.2  # the default delay
            assert await l2_stream(ws, 2) == [1, 2]

    records = run(rules, scenario).log
    assert [(r.kind, r.delivered) for r in records] == [
        ("disconnect", False),
        ("disconnect", False),
        ("delay", True),
    ]


def test_stop_closes_open_websockets() -> None:
    async def main() -> None:
        upstream = Upstream()
        await upstream.start()
        proxy = FaultProxy(upstream.url)
        await proxy.start()
        async with aiohttp.ClientSession(timeout=CLIENT_TIMEOUT) as client:
            ws = await client.ws_connect(proxy.url + "/ws")
            await asyncio.wait_for(proxy.stop(), 5.0)
            message = await ws.receive(timeout=2.0)
            assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            await ws.close()
        await upstream.stop()

    asyncio.run(main())


# --- determinism -----------------------------------------------------------------------------

MIXED = [
    FaultRule.parse("http:drop_response:p=0.1"),
    FaultRule.parse("http:duplicate:p=0.1"),
    FaultRule.parse("http:reject:p=0.1"),
    FaultRule.parse("ws_down:drop:p=0.2"),
    FaultRule.parse("ws_down:duplicate:p=0.1"),
]


def mixed_run(seed: int) -> tuple[FaultProxy, list[Any], list[int]]:
    """60 sequential requests and a 200-message stream through ``MIXED``; what the client saw."""
    answers: list[Any] = []
    seqs: list[int] = []

    async def scenario(up: Upstream, proxy: FaultProxy, client: aiohttp.ClientSession) -> None:
        for i in range(60):
            try:
                answers.append(await post(client, proxy.url + "/info", {"type": f"q{i}"}))
            except aiohttp.ServerDisconnectedError:
                answers.append("disconnected")
        async with client.ws_connect(proxy.url + "/ws") as ws:
            seqs.extend(await l2_stream(ws, 200))

    return run(MIXED, scenario, seed=seed), answers, seqs


def test_the_same_seed_replays_the_same_faults_and_another_seed_does_not() -> None:
    first, answers, seqs = mixed_run(7)
    again, answers_again, seqs_again = mixed_run(7)
    other, _, other_seqs = mixed_run(8)
    assert first.log == again.log  # ``at`` (wall time) is not compared
    assert (answers, seqs) == (answers_again, seqs_again)
    assert first.log != other.log and seqs != other_seqs
    # 60 requests at p=0.1 + (0.9)(0.1) + (0.81)(0.1) = 0.271 faulted: mean 16.3, sd 3.4; the
    # stream's 200 messages at 0.2 + 0.8 * 0.1 = 0.28: mean 56, sd 6.3; 4 sd either side.
    http = first.records(target=Target.HTTP)
    down = first.records(target=Target.WS_DOWN)
    assert 16.3 - 4 * 3.4 <= len(http) <= 16.3 + 4 * 3.4
    assert 56 - 4 * 6.3 <= len(down) <= 56 + 4 * 6.3
    dropped = {r.message for r in down if r.kind == "drop"}
    doubled = {r.message for r in down if r.kind == "duplicate"}
    expected = [i for i in range(1, 201) if i not in dropped for _ in range(1 + (i in doubled))]
    assert seqs == expected


def test_decisions_depend_on_each_streams_own_order_not_on_interleaving() -> None:
    rules = [FaultRule.parse("ws_down:drop:p=0.5"), FaultRule.parse("http:reject:p=0.5")]
    one, two = FaultPlan(rules, seed=3), FaultPlan(rules, seed=3)
    down = [one.decide(Target.WS_DOWN, "ws_down#1", connection=1) for _ in range(50)]
    http = [one.decide(Target.HTTP, "http") for _ in range(50)]
    interleaved = [
        (two.decide(Target.HTTP, "http"), two.decide(Target.WS_DOWN, "ws_down#1", connection=1))
        for _ in range(50)
    ]
    assert http == [h for h, _ in interleaved] and down == [d for _, d in interleaved]


def test_uniform_draws_are_uniform() -> None:
    draws = [uniform(0, "x", i) for i in range(20_000)]
    # mean of 20,000 uniforms: 0.5, standard error sqrt(1/12/20000) = 0.0020; 5 se
    assert abs(sum(draws) / len(draws) - 0.5) < 0.01
    assert all(0.0 <= d < 1.0 for d in draws)


def test_limit_caps_how_often_a_rule_fires() -> None:
    plan = FaultPlan([FaultRule(FaultKind.REJECT, limit=2)])
    fired = [plan.decide(Target.HTTP, "http") is not None for _ in range(5)]
    assert fired == [True, True, False, False, False]


def test_the_first_matching_rule_that_fires_wins_and_every_rule_counts() -> None:
    first = FaultRule(FaultKind.REJECT, nth=(1, 2))
    second = FaultRule(FaultKind.ERROR_5XX, nth=(2, 3))
    plan = FaultPlan([first, second])
    kinds = [getattr(plan.decide(Target.HTTP, "http"), "rule", None) for _ in range(4)]
    assert kinds == [first, first, second, None]


# --- rules, log and command line ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("http", "expected target:kind"),
        ("tcp:drop", "target='tcp' is not one of"),
        ("http:explode", "kind='explode' is not one of"),
        ("http:drop", "drop does not apply to http"),
        ("ws_down:reject", "reject does not apply to ws_down"),
        ("http:reject:p=1.5", "p=1.5 is not a probability"),
        ("http:reject:p=0.5:nth=1", "either p or nth"),
        ("http:reject:nth=0", "indices count from 1"),
        ("http:delay:seconds=600", "outside [0, 60.0] s"),
        ("http:delay:seconds=2:max_seconds=1", "below seconds"),
        ("http:error_5xx:status=404", "not a 5xx status"),
        ("http:delay:after_forward=true", "after_forward applies to error_5xx"),
        ("http:reject:connections=1", "connections applies to ws_up and ws_down only"),
        ("http:reject:colour=red", "'colour=red' is not key=value with a key in"),
        ("http:reject:limit=x", "limit='x'"),
    ],
)
def test_a_bad_rule_is_refused_naming_what_is_wrong(spec: str, problem: str) -> None:
    with pytest.raises(ValueError, match="fault rule") as error:
        FaultRule.parse(spec)
    assert problem in str(error.value)


def test_a_rule_round_trips_through_its_description() -> None:
    rule = FaultRule.parse("ws_down:delay:label=l2Book:p=0.25:seconds=0.1:max_seconds=0.4")
    assert FaultRule.parse(rule.describe()) == rule
    assert FaultRule.from_dict({"kind": "reject", "target": "http", "nth": [2]}) == FaultRule(
        FaultKind.REJECT, nth=(2,)
    )
    with pytest.raises(ValueError, match="unknown fields"):
        FaultRule.from_dict({"kind": "reject", "when": "now"})


def test_delays_are_drawn_in_their_range_from_the_seed() -> None:
    rule = FaultRule.parse("http:delay:seconds=0.1:max_seconds=0.5")
    plan = FaultPlan([rule], seed=1)
    seconds = [d.seconds for d in (plan.decide(Target.HTTP, "http") for _ in range(100)) if d]
    assert all(0.1 <= s <= 0.5 for s in seconds) and len(set(seconds)) == 100


def test_the_proxy_forwards_to_loopback_only() -> None:
    assert check_loopback("http://127.0.0.1:8765/") == "http://127.0.0.1:8765"
    for url in ("http://10.0.0.1:8765", "https://api.hyperliquid.xyz", "ftp://127.0.0.1"):
        with pytest.raises(ValueError, match=r"127\.0\.0\.1 only"):
            FaultProxy(url)


def test_the_log_file_has_one_json_line_per_fault(tmp_path: Path) -> None:
    log = tmp_path / "faults.jsonl"

    async def main() -> list[FaultRecord]:
        upstream = Upstream()
        await upstream.start()
        rules = [FaultRule(FaultKind.REJECT, nth=(1, 3))]
        async with (
            FaultProxy(upstream.url, rules, log_path=log) as proxy,
            aiohttp.ClientSession(timeout=CLIENT_TIMEOUT) as client,
        ):
            assert proxy.port != 0
            for i in range(3):
                await post(client, proxy.url + "/info", {"type": f"q{i}"})
        await upstream.stop()
        return proxy.log

    records = asyncio.run(asyncio.wait_for(main(), BOUND))
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [FaultRecord(**line) for line in lines] == records
    assert [line["message"] for line in lines] == [1, 3]
    assert [replace(r, at=0.0) for r in records] == records  # ``at`` is not compared


def test_the_console_script_serves_until_sigterm_and_writes_its_log(tmp_path: Path) -> None:
    log = tmp_path / "faults.jsonl"

    async def main() -> None:
        upstream = Upstream()
        await upstream.start()
        command = [sys.executable, "-m", "mmgym.exchange.fault_proxy_cli"]
        command += ["--upstream", upstream.url, "--seed", "3", "--log", str(log)]
        command += ["--fault", "http:reject:nth=2:text=busy"]
        process = await asyncio.create_subprocess_exec(
            *command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            assert process.stdout is not None
            line = (await asyncio.wait_for(process.stdout.readline(), 30.0)).decode()
            assert line.startswith("mmgym-fault-proxy: http://127.0.0.1:"), line
            url = line.split()[1]
            async with aiohttp.ClientSession(timeout=CLIENT_TIMEOUT) as client:
                assert (await post(client, url + "/info", {"type": "a"}))["n"] == 1
                answer = await post(client, url + "/info", {"type": "b"})
                assert answer == {"status": "err", "response": "busy"}
            process.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.wait_for(process.communicate(), 10.0)
            assert process.returncode == 0
            assert "faults injected: reject 1" in stderr.decode()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
            await upstream.stop()

    asyncio.run(main())
    assert [json.loads(line)["kind"] for line in log.read_text().splitlines()] == ["reject"]


def test_the_console_script_refuses_a_bad_rule_in_one_line() -> None:
    command = [sys.executable, "-m", "mmgym.exchange.fault_proxy_cli"]
    result = subprocess.run(
        [*command, "--upstream", "http://127.0.0.1:1", "--fault", "ws_up:error_5xx"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "error: fault rule ws_up:error_5xx: error_5xx does not apply to ws_up" in result.stderr


@pytest.mark.parametrize(
    "name",
    [*FaultKind, *Target, *(f.name for f in dataclasses.fields(FaultRule))],
)
def test_docs_live_names_every_fault_kind_target_and_rule_key(name: str) -> None:
    assert f"`{name}" in LIVE_PAGE.read_text(), f"docs/live.md does not mention `{name}`"
