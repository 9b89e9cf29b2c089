"""The paper exchange's server: Hyperliquid's HTTP and WebSocket API over a PaperVenue.

- ``POST /info``: the queries of :data:`INFO_TYPES`;
- ``POST /exchange``: signed actions (order, cancel, cancelByCloid, batchModify,
  scheduleCancel), each checked by :mod:`mmgym.exchange.auth` first;
- ``POST /paper/advance`` ``{"steps": n}``: advance a lockstep market (private to the paper
  exchange);
- ``GET /ws``: subscriptions to l2Book, trades, orderUpdates, userFills, userFundings and
  activeAssetCtx, and ``{"method": "ping"}``.

It binds 127.0.0.1 only. :func:`serve` runs it until SIGINT or SIGTERM;
:class:`BackgroundServer` runs it on a thread (tests, benchmarks).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from mmgym.extras import extra_needed

with extra_needed("mmgym.exchange.server"):
    from aiohttp import WSMsgType, web

from mmgym.exchange import wire
from mmgym.exchange.auth import NonceBook, SignatureError, recover_signer
from mmgym.exchange.clock import Clock
from mmgym.exchange.venue import Event, MarketClosedError, PaperVenue

HOST = "127.0.0.1"
WS_GREETING = "Websocket connection established."
SUBSCRIPTIONS = ("l2Book", "trades", "orderUpdates", "userFills", "userFundings", "activeAssetCtx")
COIN_SUBSCRIPTIONS = ("l2Book", "trades", "activeAssetCtx")
MAX_ADVANCE_STEPS = 100_000
INFO_TYPES = (
    "meta",
    "spotMeta",
    "metaAndAssetCtxs",
    "allMids",
    "l2Book",
    "clearinghouseState",
    "openOrders",
    "frontendOpenOrders",
    "orderStatus",
    "userFills",
    "userFillsByTime",
    "userFunding",
    "fundingHistory",
)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_compact)


def _compact(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"))


def _error(text: str) -> web.Response:
    """A whole request refused, as the venue answers it."""
    return _json({"status": "err", "response": text})


class PaperExchange:
    """The HTTP and WebSocket handlers over ``venue``; only ``agent`` may sign actions."""

    def __init__(
        self, venue: PaperVenue, agent: str, clock: Clock, *, start_on_subscribe: bool = False
    ) -> None:
        self.venue = venue
        self.agent = agent.lower()
        self.clock = clock
        self.start_on_subscribe = start_on_subscribe
        """Wall and accelerated modes: the market's clock starts at the first WebSocket
        subscription, not when the server starts (a client that takes seconds to start meets
        the market at its start)."""
        self.nonces = NonceBook()
        self._sockets: dict[web.WebSocketResponse, set[tuple[str, str]]] = {}
        self._lock = asyncio.Lock()
        self._subscribed = asyncio.Event() if start_on_subscribe else None
        """Set by the first subscription (with ``start_on_subscribe``)."""

    def app(self) -> web.Application:
        """The aiohttp application."""
        app = web.Application()
        app.router.add_post("/info", self.info)
        app.router.add_post("/exchange", self.exchange)
        app.router.add_post("/paper/advance", self.advance)
        app.router.add_get("/ws", self.websocket)
        if not self.clock.lockstep:
            app.cleanup_ctx.append(self._market_clock)
        return app

    # --- /info --------------------------------------------------------------------------------

    async def info(self, request: web.Request) -> web.Response:
        """``POST /info``."""
        body = await _body(request)
        if not isinstance(body, dict) or body.get("type") not in INFO_TYPES:
            kind = body.get("type") if isinstance(body, dict) else None
            return web.Response(
                status=422,
                text=f"Paper exchange: unknown or unsupported info type {kind!r}; served: "
                f"{', '.join(INFO_TYPES)}",
            )
        try:
            return _json(self._info(body))
        except ValueError as err:
            return web.Response(status=422, text=f"Paper exchange: {err}")

    def _info(self, body: dict[str, Any]) -> Any:
        v = self.venue
        kind = body["type"]
        if kind == "meta":
            return v.meta()
        if kind == "spotMeta":
            return {"universe": [], "tokens": []}
        if kind == "metaAndAssetCtxs":
            return [v.meta(), [v.asset_ctx(c.asset) for c in v.listed]]
        if kind == "allMids":
            return {c.name: v.asset_ctx(c.asset)["midPx"] for c in v.listed}
        if kind == "l2Book":
            coin = v.coin(str(body.get("coin")))
            if coin is None or coin.hedge:
                raise ValueError(f"no book for coin {body.get('coin')!r} (books: the perps)")
            return v.l2_book(coin)
        if kind == "fundingHistory":
            start, end = _window(body)
            coin = body.get("coin")
            return [f for f in v.funding_rates if f["coin"] == coin and start <= f["time"] <= end]
        mine = str(body.get("user", "")).lower() == v.user
        if kind == "clearinghouseState":
            return v.clearinghouse_state() if mine else _empty_state(v.time_ms())
        if kind == "openOrders":
            return [o.basic_view() for o in v.book.open_orders()] if mine else []
        if kind == "frontendOpenOrders":
            return [o.frontend_view() for o in v.book.open_orders()] if mine else []
        if kind == "orderStatus":
            key = body.get("oid")
            order = v.book.find(key) if mine else None
            if order is None:
                return {"status": "unknownOid"}
            view = order.update_view()
            return {
                "status": "order",
                "order": {
                    "order": order.frontend_view(),
                    "status": view["status"],
                    "statusTimestamp": view["statusTimestamp"],
                },
            }
        if kind == "userFills":
            return list(reversed(v.fills[-2000:])) if mine else []
        if kind == "userFillsByTime":
            start, end = _window(body)
            fills = [f for f in v.fills if start <= f["time"] <= end] if mine else []
            return fills[:2000]
        # userFunding
        start, end = _window(body)
        return [
            {"time": f["time"], "hash": "0x" + "0" * 64, "delta": {"type": "funding", **_delta(f)}}
            for f in (v.fundings if mine else [])
            if start <= f["time"] <= end
        ]

    # --- /exchange ----------------------------------------------------------------------------

    async def exchange(self, request: web.Request) -> web.Response:
        """``POST /exchange``: a signed action."""
        body = await _body(request)
        if not isinstance(body, dict) or not isinstance(body.get("action"), dict):
            return web.Response(
                status=422, text="Failed to deserialize the JSON body into the target type"
            )
        action = body["action"]
        nonce = body.get("nonce")
        if body.get("vaultAddress") is not None:
            return _error("Paper exchange: vault and subaccount trading is not served")
        if not isinstance(nonce, int) or isinstance(nonce, bool):
            return _error("Invalid nonce: must be an integer (milliseconds)")
        expires = body.get("expiresAfter")
        try:
            signer = recover_signer(action, body.get("signature"), None, nonce, expires)
        except SignatureError as err:
            return _error(f"Paper exchange: {err}")
        if signer != self.agent:
            return _error(wire.unknown_signer_error(signer))
        now = int(time.time() * 1000)
        refused = self.nonces.check(signer, nonce, now)
        if refused is not None:
            return _error(refused)
        if expires is not None and (not isinstance(expires, int) or expires < now):
            return _error(f"Paper exchange: action expired (expiresAfter {expires}, now {now})")
        self.nonces.use(signer, nonce)
        async with self._lock:
            answer = self._act(action)
            await self._publish()
        return _json(answer)

    def _act(self, action: dict[str, Any]) -> dict[str, Any]:
        v = self.venue
        kind = action.get("type")
        if kind == "order":
            orders = action.get("orders")
            if not isinstance(orders, list):
                return {"status": "err", "response": "Paper exchange: orders must be a list"}
            if action.get("grouping", "na") != "na":
                return {"status": "err", "response": "Paper exchange: only grouping 'na' is served"}
            return _statuses("order", [v.place(o) for o in orders])
        if kind in ("cancel", "cancelByCloid"):
            cancels = action.get("cancels")
            if not isinstance(cancels, list) or not all(isinstance(c, dict) for c in cancels):
                return {"status": "err", "response": "Paper exchange: cancels must be a list"}
            if kind == "cancel":
                return _statuses("cancel", [v.cancel(c.get("a"), c.get("o")) for c in cancels])
            results = [v.cancel(c.get("asset"), str(c.get("cloid")).lower()) for c in cancels]
            return _statuses("cancel", results)
        if kind == "batchModify":
            modifies = action.get("modifies")
            if not isinstance(modifies, list) or not all(isinstance(m, dict) for m in modifies):
                return {"status": "err", "response": "Paper exchange: modifies must be a list"}
            return _statuses("order", [v.modify(m.get("oid"), m.get("order")) for m in modifies])
        if kind == "scheduleCancel":
            refused = v.schedule_cancel(action.get("time"))
            if refused is not None:
                return {"status": "err", "response": refused}
            return {"status": "ok", "response": {"type": "default"}}
        return {
            "status": "err",
            "response": f"Paper exchange: action type {kind!r} is not served (order, cancel, "
            "cancelByCloid, batchModify, scheduleCancel)",
        }

    # --- the market's time --------------------------------------------------------------------

    async def advance(self, request: web.Request) -> web.Response:
        """``POST /paper/advance`` ``{"steps": n}`` (lockstep mode only)."""
        if not self.clock.lockstep:
            return _json(
                {
                    "error": f"the market runs on the {self.clock.mode} clock; /paper/advance "
                    "serves time_mode=lockstep only"
                },
                status=409,
            )
        body = await _body(request)
        steps = body.get("steps", 1) if isinstance(body, dict) else None
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
            steps = 0
        if not 1 <= steps <= MAX_ADVANCE_STEPS:
            return _json({"error": f"steps must be an integer in [1, {MAX_ADVANCE_STEPS}]"}, 422)
        async with self._lock:
            try:
                done = 0
                for _ in range(steps):
                    done += self.venue.advance(1)
                    await self._publish()
            except MarketClosedError as err:
                return _json({"error": str(err), "steps": done}, status=409)
        v = self.venue
        return _json({"steps": done, "time": v.time_ms(), "ended": v.ended})

    async def _market_clock(self, app: web.Application) -> Any:
        """Wall and accelerated modes: advance one interval per period of wall time."""
        task = asyncio.create_task(self._tick_forever())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _tick_forever(self) -> None:
        period = self.clock.seconds_per_decision(self.venue.params.decision_interval)
        loop = asyncio.get_running_loop()
        if self._subscribed is not None:
            await self._subscribed.wait()
        due = loop.time() + period
        while self.venue.ended is None:
            await asyncio.sleep(max(0.0, due - loop.time()))
            due += period
            async with self._lock:
                self.venue.advance(1)
                await self._publish()

    # --- /ws ----------------------------------------------------------------------------------

    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        """``GET /ws``: subscriptions and pings."""
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str(WS_GREETING)
        self._sockets[ws] = set()
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                async with self._lock:
                    await self._on_message(ws, msg.data)
        finally:
            self._sockets.pop(ws, None)
        return ws

    async def _on_message(self, ws: web.WebSocketResponse, text: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            await ws.send_json({"channel": "error", "data": f"Invalid JSON: {text[:200]}"})
            return
        method = msg.get("method") if isinstance(msg, dict) else None
        if method == "ping":
            await ws.send_json({"channel": "pong"})
            return
        sub = msg.get("subscription") if isinstance(msg, dict) else None
        if method not in ("subscribe", "unsubscribe") or not isinstance(sub, dict):
            await ws.send_json({"channel": "error", "data": f"Invalid message: {text[:200]}"})
            return
        key = self._subscription_key(sub)
        if key is None:
            await ws.send_json(
                {
                    "channel": "error",
                    "data": f"Paper exchange: unsupported subscription {sub}; "
                    f"served: {', '.join(SUBSCRIPTIONS)}",
                }
            )
            return
        subs = self._sockets.setdefault(ws, set())
        if method == "subscribe":
            subs.add(key)
            if self._subscribed is not None:
                self._subscribed.set()
        else:
            subs.discard(key)
        await ws.send_json(
            {"channel": "subscriptionResponse", "data": {"method": method, "subscription": sub}}
        )
        if method == "subscribe":
            for data in self._snapshot(key):
                await ws.send_json({"channel": key[0], "data": data})

    def _subscription_key(self, sub: dict[str, Any]) -> tuple[str, str] | None:
        kind = sub.get("type")
        if kind in COIN_SUBSCRIPTIONS:
            coin = self.venue.coin(str(sub.get("coin")))
            if coin is None or (coin.hedge and kind != "activeAssetCtx"):
                return None  # the hedge venue has no book and no tape, only a context
            return kind, coin.name.lower()
        if kind in SUBSCRIPTIONS:
            user = sub.get("user")
            return (kind, user.lower()) if isinstance(user, str) else None
        return None

    def _snapshot(self, key: tuple[str, str]) -> list[Any]:
        """What a new subscription receives first (Hyperliquid's snapshots)."""
        v = self.venue
        kind, who = key
        coin = next((c for c in v.listed if c.name.lower() == who), None)
        if kind == "l2Book" and coin is not None:
            return [v.l2_book(coin)]
        if kind == "activeAssetCtx" and coin is not None:
            return [{"coin": coin.name, "ctx": v.asset_ctx(coin.asset)}]
        mine = who == v.user
        if kind == "userFills":
            return [{"user": who, "isSnapshot": True, "fills": v.fills if mine else []}]
        if kind == "userFundings":
            return [{"user": who, "isSnapshot": True, "fundings": v.fundings if mine else []}]
        return []

    async def _publish(self) -> None:
        """Send the venue's pending events to their subscribers."""
        events: list[Event] = self.venue.outbox
        if not events:
            return
        self.venue.outbox = []
        for ws, subs in list(self._sockets.items()):
            for event in events:
                if (event.channel, event.key) in subs and not ws.closed:
                    with contextlib.suppress(ConnectionError, RuntimeError):
                        await ws.send_json({"channel": event.channel, "data": event.data})

    async def close_sockets(self) -> None:
        """Close every websocket (on shutdown)."""
        for ws in list(self._sockets):
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.close()


async def _body(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        return None


def _window(body: dict[str, Any]) -> tuple[int, int]:
    start = body.get("startTime", 0)
    end = body.get("endTime")
    if not isinstance(start, int) or not (end is None or isinstance(end, int)):
        raise ValueError("startTime and endTime must be integers (ms)")
    return start, (end if end is not None else 2**63)


def _delta(funding: dict[str, Any]) -> dict[str, Any]:
    return {k: funding[k] for k in ("coin", "usdc", "szi", "fundingRate")} | {"nSamples": None}


def _statuses(kind: str, statuses: list[Any]) -> dict[str, Any]:
    return {"status": "ok", "response": {"type": kind, "data": {"statuses": statuses}}}


def _empty_state(now: int) -> dict[str, Any]:
    summary = {"accountValue": "0", "totalNtlPos": "0", "totalRawUsd": "0", "totalMarginUsed": "0"}
    return {
        "marginSummary": summary,
        "crossMarginSummary": dict(summary),
        "crossMaintenanceMarginUsed": "0",
        "withdrawable": "0",
        "assetPositions": [],
        "time": now,
    }


async def start(exchange: PaperExchange, port: int = 0) -> tuple[web.AppRunner, str]:
    """Start serving ``exchange`` on 127.0.0.1:``port`` (0: a free port); the runner and the
    URL it serves."""
    runner = web.AppRunner(exchange.app(), handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, HOST, port)
    await site.start()
    server = site._server
    assert server is not None
    sockets = getattr(server, "sockets", None)
    assert sockets, "the server has no socket"
    bound = sockets[0].getsockname()[1]
    return runner, f"http://{HOST}:{bound}"


async def stop(exchange: PaperExchange, runner: web.AppRunner) -> None:
    """Close the websockets and stop serving."""
    await exchange.close_sockets()
    await runner.cleanup()


def serve(exchange: PaperExchange, port: int, ready: Callable[[str], None]) -> None:
    """Serve ``exchange`` until SIGINT or SIGTERM; ``ready(url)`` once it listens."""

    async def main() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        runner, url = await start(exchange, port)
        ready(url)
        try:
            await stopping.wait()
        finally:
            await stop(exchange, runner)

    asyncio.run(main())


class BackgroundServer:
    """``exchange`` served on a thread of its own (for tests and benchmarks): ``url`` once
    started; :meth:`close` stops it within ``timeout`` seconds."""

    def __init__(self, exchange: PaperExchange, port: int = 0, timeout: float = 10.0) -> None:
        self.exchange = exchange
        self.timeout = timeout
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(port,), daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"the paper exchange did not start within {timeout} s")
        if self._error is not None:
            raise RuntimeError(f"the paper exchange failed to start: {self._error}")

    def _run(self, port: int) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main(port))
        self._loop.close()

    async def _main(self, port: int) -> None:
        self._stopping = asyncio.Event()
        try:
            runner, self.url = await start(self.exchange, port)
        except BaseException as err:  # reported to the starting thread
            self._error = err
            self._ready.set()
            return
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            await stop(self.exchange, runner)

    def close(self) -> None:
        """Stop serving and join the thread."""
        if self._thread.is_alive() and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(self.timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"the paper exchange did not stop within {self.timeout} s")

    def __enter__(self) -> BackgroundServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
