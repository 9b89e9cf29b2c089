"""A seeded fault-injection proxy between a client and an HTTP + WebSocket server on 127.0.0.1.

It forwards every HTTP request and every WebSocket message (in both directions) to the server
and back, and injects the faults of its rules (:mod:`mmgym.exchange.faults`): dropped requests
and dropped answers, duplicates, delays, reordering, disconnects, 5xx answers and
Hyperliquid-shaped rejects. Every fault goes to the fault log (``FaultProxy.log``, and a
JSON-lines file if given) with whether the message reached the server.

    async with FaultProxy("http://127.0.0.1:8765", [FaultRule.parse("http:drop_response:nth=3")],
                          seed=7) as proxy:
        ...  # point the client at proxy.url
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO
from urllib.parse import urlsplit

import aiohttp
from aiohttp import WSMsgType, web

from mmgym.exchange.faults import Decision, FaultKind, FaultPlan, FaultRecord, FaultRule, Target

HOST = "127.0.0.1"
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "content-encoding",
    }
)
ORDER_LISTS = {"order": "orders", "batchModify": "modifies", "cancel": "cancels"}
ORDER_LISTS["cancelByCloid"] = "cancels"
RESPONSE_TYPES = {"order": "order", "batchModify": "batchModify"}
RESPONSE_TYPES["cancel"] = RESPONSE_TYPES["cancelByCloid"] = "cancel"


@dataclass(frozen=True)
class Answer:
    """The server's answer to one forwarded HTTP request (status 0: it did not answer)."""

    status: int
    body: bytes
    content_type: str | None
    error: str = ""

    def response(self) -> web.Response:
        """The answer as the proxy's response (a 502 naming the problem if the server did not
        answer)."""
        if self.status == 0:
            return web.Response(
                status=502, text=f"fault proxy: upstream did not answer: {self.error}"
            )
        headers = {"Content-Type": self.content_type} if self.content_type else None
        return web.Response(status=self.status, body=self.body, headers=headers)


Recorder = Callable[[bool, "Answer | None", str], None]
"""Logs a fault on an HTTP request: whether it reached the server, its answer, a detail."""


def check_loopback(url: str) -> str:
    """``url`` without a trailing slash, if it is an http(s) URL on a loopback host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or parts.hostname not in LOOPBACK:
        raise ValueError(f"upstream {url!r}: the fault proxy forwards to http://127.0.0.1 only")
    return url.rstrip("/")


def http_labels(body: bytes) -> tuple[str, ...]:
    """The labels of an HTTP body: the ``type`` of an /info request or of an /exchange action."""
    payload = _json(body)
    if not isinstance(payload, dict):
        return ()
    action = payload.get("action")
    kind = action.get("type") if isinstance(action, dict) else payload.get("type")
    return (kind,) if isinstance(kind, str) else ()


def ws_labels(target: Target, data: str | bytes) -> tuple[str, ...]:
    """The labels of a WebSocket message: ``method`` and subscription ``type`` (to the server),
    ``channel`` (to the client)."""
    payload = _json(data)
    if not isinstance(payload, dict):
        return ()
    if target == Target.WS_DOWN:
        channel = payload.get("channel")
        return (channel,) if isinstance(channel, str) else ()
    labels = [payload.get("method")]
    subscription = payload.get("subscription")
    if isinstance(subscription, dict):
        labels.append(subscription.get("type"))
    return tuple(label for label in labels if isinstance(label, str))


def order_error_body(body: bytes, text: str) -> dict[str, Any]:
    """Hyperliquid's answer with every order (or cancel) of the action in ``body`` refused with
    ``{"error": text}``; a whole-request error if the action has no orders."""
    payload = _json(body)
    action = payload.get("action") if isinstance(payload, dict) else None
    if not isinstance(action, dict) or action.get("type") not in ORDER_LISTS:
        return {"status": "err", "response": text}
    kind = action["type"]
    items = action.get(ORDER_LISTS[kind])
    if not isinstance(items, list):
        return {"status": "err", "response": text}
    statuses = [{"error": text} for _ in items]
    data = {"type": RESPONSE_TYPES[kind], "data": {"statuses": statuses}}
    return {"status": "ok", "response": data}


def _json(data: str | bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None


class FaultProxy:
    """The proxy: ``start()`` binds 127.0.0.1 (``port`` 0: an ephemeral port, then ``port`` is
    the bound one), ``stop()`` closes every connection. ``upstream_timeout`` bounds each
    forwarded request and WebSocket handshake (s)."""

    def __init__(
        self,
        upstream: str,
        rules: Sequence[FaultRule] = (),
        seed: int = 0,
        port: int = 0,
        log_path: Path | None = None,
        upstream_timeout: float = 10.0,
    ) -> None:
        self.upstream = check_loopback(upstream)
        self.seed = seed
        self.plan = FaultPlan(list(rules), seed)
        self.port = port
        self.log: list[FaultRecord] = []
        self.log_path = log_path
        self.upstream_timeout = upstream_timeout
        self._log_file: TextIO | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._counts: dict[str, int] = {}
        self._labels: Counter[tuple[Target, str]] = Counter()
        self._connections = 0
        self._passed: dict[str, asyncio.Event] = {}
        self._sockets: set[web.WebSocketResponse] = set()
        self._upstream_sockets: set[aiohttp.ClientWebSocketResponse] = set()
        self._started = 0.0

    @property
    def url(self) -> str:
        """The proxy's HTTP base URL (a client's ``base_url``)."""
        return f"http://{HOST}:{self.port}"

    def set_rules(self, rules: Sequence[FaultRule], seed: int | None = None) -> None:
        """Replace the rules (their counts start again from zero)."""
        self.plan = FaultPlan(list(rules), self.seed if seed is None else seed)

    def seen(self, stream: str) -> int:
        """How many messages of ``stream`` (``http``, ``ws_connect``, ``ws_up#<n>``,
        ``ws_down#<n>``) the proxy has received so far, faulted or not."""
        return self._counts.get(stream, 0)

    def count(self, target: Target, label: str) -> int:
        """How many messages of ``target`` labelled ``label`` (e.g. HTTP ``order``, ``ws_up``
        ``subscribe``) the proxy has received, faulted or not; copies it made are not counted."""
        return self._labels[target, label]

    def records(
        self, kind: FaultKind | None = None, target: Target | None = None
    ) -> list[FaultRecord]:
        """The fault log, optionally narrowed to one kind and target."""
        return [
            record
            for record in self.log
            if (kind is None or record.kind == kind) and (target is None or record.target == target)
        ]

    async def start(self) -> None:
        """Bind and serve."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.upstream_timeout), auto_decompress=True
        )
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, HOST, self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        if self.log_path is not None:
            self._log_file = self.log_path.open("a", encoding="utf-8")
        self._started = time.monotonic()

    async def stop(self) -> None:
        """Close every WebSocket (both sides), stop serving and close the log file."""
        for ws in list(self._sockets):
            await ws.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"fault proxy stopping")
        for upstream_ws in list(self._upstream_sockets):
            await upstream_ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    async def __aenter__(self) -> FaultProxy:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    # --- bookkeeping ---------------------------------------------------------------------

    def _next(self, stream: str, target: Target, labels: tuple[str, ...] = ()) -> int:
        """Count one more message of ``stream``; its index in the stream."""
        self._counts[stream] = self._counts.get(stream, 0) + 1
        self._labels.update((target, label) for label in labels)
        return self._counts[stream]

    def _record(
        self,
        decision: Decision,
        target: Target,
        stream: str,
        message: int,
        path: str,
        labels: tuple[str, ...],
        delivered: bool,
        upstream_status: int | None = None,
        detail: str = "",
    ) -> None:
        record = FaultRecord(
            target=str(target),
            stream=stream,
            message=message,
            kind=str(decision.rule.kind),
            rule=decision.rule_index,
            match_index=decision.match_index,
            path=path,
            label=labels[0] if labels else "",
            delivered=delivered,
            upstream_status=upstream_status,
            seconds=decision.seconds,
            detail=detail,
            at=round(time.monotonic() - self._started, 6),
        )
        self.log.append(record)
        if self._log_file is not None:
            self._log_file.write(record.to_json() + "\n")
            self._log_file.flush()

    def _passed_event(self, stream: str) -> asyncio.Event:
        return self._passed.setdefault(stream, asyncio.Event())

    def _mark_passed(self, stream: str) -> None:
        """A message of ``stream`` went through: release what a reorder holds for it."""
        self._passed.pop(stream, asyncio.Event()).set()

    async def _wait_next(self, stream: str, seconds: float) -> str:
        """Wait until the next message of ``stream`` passed, ``seconds`` at most."""
        try:
            await asyncio.wait_for(self._passed_event(stream).wait(), seconds)
        except TimeoutError:
            return f"released after {seconds:.3f} s without a next message"
        return "released after the next message"

    # --- HTTP ------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._websocket(request)
        return await self._http(request)

    async def _forward(self, request: web.Request, body: bytes) -> Answer:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        url = self.upstream + request.rel_url.path_qs
        try:
            async with self._session.request(
                request.method, url, data=body, headers=headers
            ) as answer:
                payload = await answer.read()
                return Answer(answer.status, payload, answer.headers.get("Content-Type"))
        except (aiohttp.ClientError, TimeoutError) as error:
            return Answer(0, b"", None, f"{type(error).__name__}: {error}")

    async def _http(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        stream, target, path = "http", Target.HTTP, request.path
        labels = http_labels(body)
        message = self._next(stream, target, labels)
        decision = self.plan.decide(target, stream, path, labels)
        if decision is None:
            answer = await self._forward(request, body)
            self._mark_passed(stream)
            return answer.response()

        def record(reached: bool, answer: Answer | None = None, detail: str = "") -> None:
            status = answer.status if answer is not None and answer.status else None
            self._record(decision, target, stream, message, path, labels, reached, status, detail)

        kind = decision.rule.kind
        if kind in (FaultKind.DROP_REQUEST, FaultKind.DISCONNECT):
            record(False)
            if kind == FaultKind.DROP_REQUEST:
                await asyncio.sleep(decision.seconds)
            return _close_without_answer(request)
        if kind == FaultKind.DROP_RESPONSE:
            answer = await self._forward(request, body)
            self._mark_passed(stream)
            record(True, answer, "the answer was discarded")
            await asyncio.sleep(decision.seconds)
            return _close_without_answer(request)
        if kind == FaultKind.DUPLICATE:
            answer = await self._forward(request, body)
            second = await self._forward(request, body)
            self._mark_passed(stream)
            text = second.body[:300].decode("utf-8", "replace") or second.error
            record(
                True,
                answer,
                f"sent twice; the second answer ({second.status}) was discarded: {text}",
            )
            return answer.response()
        if kind in (FaultKind.DELAY, FaultKind.REORDER):
            if kind == FaultKind.DELAY:
                await asyncio.sleep(decision.seconds)
                detail = f"forwarded {decision.seconds:.3f} s late"
            else:
                detail = await self._wait_next(stream, decision.seconds)
            answer = await self._forward(request, body)
            self._mark_passed(stream)
            record(True, answer, detail)
            return answer.response()
        return await self._answer(request, body, decision, record)

    async def _answer(
        self, request: web.Request, body: bytes, decision: Decision, record: Recorder
    ) -> web.StreamResponse:
        """The answer kinds: a 5xx, a whole-request reject or per-order errors, after
        forwarding the request if the rule says so."""
        rule = decision.rule
        answer = await self._forward(request, body) if rule.after_forward else None
        if answer is not None:
            self._mark_passed("http")
        detail = "the server's answer was replaced" if answer is not None else ""
        record(answer is not None, answer, detail)
        if rule.kind == FaultKind.ERROR_5XX:
            return web.Response(status=rule.status, text=f"{rule.status} (fault proxy)")
        if rule.kind == FaultKind.REJECT:
            return web.json_response({"status": "err", "response": rule.text})
        return web.json_response(order_error_body(body, rule.text))

    # --- WebSocket --------------------------------------------------------------------------

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        stream, target, path = "ws_connect", Target.WS_CONNECT, request.path
        message = self._next(stream, target)
        decision = self.plan.decide(target, stream, path)
        if decision is not None:
            kind = decision.rule.kind
            delivered = kind == FaultKind.DELAY
            self._record(decision, target, stream, message, path, (), delivered)
            if kind == FaultKind.ERROR_5XX:
                return web.Response(status=decision.rule.status, text="fault proxy")
            if kind in (FaultKind.DROP_REQUEST, FaultKind.DISCONNECT):
                if kind == FaultKind.DROP_REQUEST:
                    await asyncio.sleep(decision.seconds)
                return _close_without_answer(request)
            await asyncio.sleep(decision.seconds)  # DELAY
        url = "ws" + self.upstream[len("http") :] + request.rel_url.path_qs
        try:
            upstream_ws = await self._session.ws_connect(url, autoping=True)
        except (aiohttp.ClientError, TimeoutError) as error:
            return web.Response(status=502, text=f"fault proxy: upstream WebSocket failed: {error}")
        client_ws = web.WebSocketResponse(autoping=True)
        try:
            await client_ws.prepare(request)
        except ConnectionError:  # the client left during the handshake
            await upstream_ws.close()
            return client_ws
        self._connections += 1
        connection = self._connections
        self._sockets.add(client_ws)
        self._upstream_sockets.add(upstream_ws)
        pair = _Pair(self, request, client_ws, upstream_ws, connection)
        try:
            await pair.run()
        finally:
            self._sockets.discard(client_ws)
            self._upstream_sockets.discard(upstream_ws)
            await upstream_ws.close()
        return client_ws


Socket = web.WebSocketResponse | aiohttp.ClientWebSocketResponse
Data = str | bytes


@dataclass(frozen=True)
class _Held:
    """A reordered WebSocket message, sent after the next one or at ``deadline``."""

    data: Data
    deadline: float


class _Pair:
    """One proxied WebSocket connection: a pump per direction, each applying the plan to the
    messages it carries."""

    def __init__(
        self,
        proxy: FaultProxy,
        request: web.Request,
        client_ws: web.WebSocketResponse,
        upstream_ws: aiohttp.ClientWebSocketResponse,
        connection: int,
    ) -> None:
        self.proxy = proxy
        self.request = request
        self.client_ws = client_ws
        self.upstream_ws = upstream_ws
        self.connection = connection

    async def run(self) -> None:
        """Pump both ways until either side closes or a disconnect fault fires."""
        up = asyncio.create_task(self._pump(self.client_ws, self.upstream_ws, Target.WS_UP))
        down = asyncio.create_task(self._pump(self.upstream_ws, self.client_ws, Target.WS_DOWN))
        try:
            await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (up, down):
                task.cancel()
            await asyncio.gather(up, down, return_exceptions=True)
            if not self.client_ws.closed:
                await self.client_ws.close()

    async def _pump(self, source: Socket, sink: Socket, target: Target) -> None:
        stream = f"{target}#{self.connection}"
        held: _Held | None = None
        while True:
            timeout = None if held is None else max(held.deadline - time.monotonic(), 1e-3)
            try:
                message = await source.receive(timeout=timeout)
            except TimeoutError:
                if held is not None:
                    await _send(sink, held.data)
                held = None
                continue
            if message.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                if held is not None:
                    await _send(sink, held.data)
                if not sink.closed:
                    await sink.close()
                return
            outcome = await self._deliver(message.data, sink, target, stream)
            if outcome is False:
                return
            if held is not None:
                await _send(sink, held.data)
            held = outcome if isinstance(outcome, _Held) else None

    async def _deliver(self, data: Data, sink: Socket, target: Target, stream: str) -> bool | _Held:
        """Apply the plan to one message: True when done with it, a ``_Held`` to send after the
        next message (a reorder), False when the connection was closed (a disconnect)."""
        proxy, path = self.proxy, self.request.path
        labels = ws_labels(target, data)
        message = proxy._next(stream, target, labels)
        decision = proxy.plan.decide(target, stream, path, labels, self.connection)
        if decision is None:
            await _send(sink, data)
            return True
        kind, seconds = decision.rule.kind, decision.seconds
        delivered = kind not in (FaultKind.DROP, FaultKind.DISCONNECT)
        proxy._record(decision, target, stream, message, path, labels, delivered)
        if kind == FaultKind.DISCONNECT:
            _close_without_answer(self.request)
            return False
        if kind == FaultKind.DELAY:
            await asyncio.sleep(seconds)
            await _send(sink, data)
        elif kind == FaultKind.DUPLICATE:
            await _send(sink, data)
            await _send(sink, data)
        elif kind == FaultKind.REORDER:
            return _Held(data, time.monotonic() + seconds)
        return True


async def _send(sink: Socket, data: Data) -> None:
    if sink.closed:
        return
    try:
        if isinstance(data, str):
            await sink.send_str(data)
        else:
            await sink.send_bytes(data)
    except (ConnectionError, aiohttp.ClientError):
        pass  # the other side went away; the pump reading it ends the connection


def _close_without_answer(request: web.Request) -> web.Response:
    """Close the client's connection at once (no answer, no WebSocket close frame)."""
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=499)
