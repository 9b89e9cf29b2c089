"""The venue's WebSocket, kept up: it reconnects with full-jitter backoff after any drop,
resubscribes everything it was subscribed to, pings when the line is quiet and treats a line
that stays silent after a ping as dead.

Messages are handed, parsed from JSON, to a callback; connection changes to another.
Subscriptions are Hyperliquid's (``{"type": "l2Book", "coin": "BTC"}`` ...); ``subscribe``
returns once the venue acknowledged the subscription (its ``subscriptionResponse``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from mmgym.extras import extra_needed

from .backoff import Backoff

with extra_needed("agents.live.venues"):
    import aiohttp

Subscription = dict[str, Any]
STABLE_AFTER_S = 10.0
"""A socket up this long counts as healthy: the next drop starts the backoff over."""


def subscription_key(subscription: Subscription) -> tuple[str, str, str]:
    """What identifies a subscription in the venue's acknowledgement."""
    return (
        str(subscription.get("type")),
        str(subscription.get("coin", "")).lower(),
        str(subscription.get("user", "")).lower(),
    )


class Stream:
    """One WebSocket to ``url`` that survives drops."""

    def __init__(
        self,
        url: str,
        session: aiohttp.ClientSession,
        on_message: Callable[[dict[str, Any]], None],
        on_connection: Callable[[bool, int, str], None],
        backoff: Backoff,
        rng: random.Random,
        logger: logging.Logger,
        ping_interval_s: float = 50.0,
        connect_timeout_s: float = 10.0,
    ) -> None:
        self.url = url
        self._session = session
        self._on_message = on_message
        self._on_connection = on_connection
        self._backoff = backoff
        self._rng = rng
        self._log = logger
        self._ping_interval_s = ping_interval_s
        self._connect_timeout_s = connect_timeout_s
        self._subscriptions: dict[tuple[str, str, str], Subscription] = {}
        self._acked: dict[tuple[str, str, str], asyncio.Event] = {}
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.connections = 0
        """How many times the socket was (re)established."""
        self.received_s = float("nan")
        """The host's monotonic clock (``time.monotonic``) when the frame being handed on was
        read from the socket (the arrival of the newest message)."""

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"stream {self.url}")

    async def close(self) -> None:
        self._closing = True
        if self._ws is not None:
            await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def drop(self) -> None:
        """Close the current socket as a network failure would (the stream reconnects)."""
        if self._ws is not None:
            await self._ws.close()

    async def subscribe(self, subscription: Subscription, timeout_s: float = 10.0) -> None:
        """Subscribe (now and after every reconnect) and wait for the venue's acknowledgement."""
        key = subscription_key(subscription)
        acked = self._acked.setdefault(key, asyncio.Event())
        if key not in self._subscriptions:
            self._subscriptions[key] = dict(subscription)
            if self._ws is not None and self.connected:
                await self._send_subscribe(self._ws, subscription)
        try:
            await asyncio.wait_for(acked.wait(), timeout_s)
        except TimeoutError:
            raise TimeoutError(
                f"the venue did not acknowledge subscription {subscription} within {timeout_s} s"
            ) from None

    async def _send_subscribe(
        self, ws: aiohttp.ClientWebSocketResponse, subscription: Subscription
    ) -> None:
        await ws.send_json({"method": "subscribe", "subscription": subscription})

    async def _run(self) -> None:
        attempt = 0
        while not self._closing:
            opened = asyncio.get_running_loop().time()
            try:
                established, reason = await self._connect_and_read(attempt)
            except Exception as err:  # a defect must not end the stream for good
                self._log.exception("stream %s failed", self.url)
                established, reason = False, f"{type(err).__name__}: {err}"
            lived = asyncio.get_running_loop().time() - opened
            self._connected.clear()
            self._ws = None
            for acked in self._acked.values():
                acked.clear()
            if self._closing:
                return
            self._on_connection(False, attempt, reason)
            delay = self._backoff.delay(attempt, self._rng)
            self._log.warning("stream %s down (%s); retry in %.2f s", self.url, reason, delay)
            await asyncio.sleep(delay)
            # a socket that stayed up a while starts the backoff over; one that the venue drops
            # right after connecting keeps backing off
            attempt = 0 if established and lived >= STABLE_AFTER_S else attempt + 1

    async def _connect_and_read(self, attempt: int) -> tuple[bool, str]:
        """Connect, resubscribe and read until the socket ends: whether it was established,
        and why it ended."""
        try:
            ws = await self._session.ws_connect(
                self.url, timeout=aiohttp.ClientWSTimeout(ws_close=self._connect_timeout_s)
            )
        except (TimeoutError, aiohttp.ClientError, OSError) as err:
            return False, f"connect failed: {type(err).__name__}: {err}"
        async with ws:
            self._ws = ws
            try:
                for subscription in list(self._subscriptions.values()):
                    await self._send_subscribe(ws, subscription)
                self.connections += 1
                self._connected.set()
                if self.connections > 1:
                    self._on_connection(True, attempt, "reconnected and resubscribed")
                return True, await self._read(ws)
            except (TimeoutError, aiohttp.ClientError, OSError, ConnectionError) as err:
                return True, f"{type(err).__name__}: {err}"

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> str:
        pinged = False
        while True:
            try:
                msg = await ws.receive(timeout=self._ping_interval_s)
            except TimeoutError:
                if pinged:
                    return f"no message for {2 * self._ping_interval_s:g} s"
                await ws.send_json({"method": "ping"})
                pinged = True
                continue
            pinged = False
            if msg.type == aiohttp.WSMsgType.TEXT:
                self.received_s = time.monotonic()
                self._dispatch(msg.data)
            elif msg.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSING,
                aiohttp.WSMsgType.CLOSED,
            ):
                return "closed by the venue"
            elif msg.type == aiohttp.WSMsgType.ERROR:
                return f"socket error: {ws.exception()}"

    def _dispatch(self, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            if text != "Websocket connection established.":
                self._log.error("stream message is not JSON: %r", text[:200])
            return
        if not isinstance(message, dict):
            self._log.error("stream message is not an object: %r", text[:200])
            return
        channel = message.get("channel")
        if channel == "pong":
            return
        if channel == "subscriptionResponse":
            subscription = (message.get("data") or {}).get("subscription") or {}
            acked = self._acked.get(subscription_key(subscription))
            if acked is not None:
                acked.set()
            return
        if channel == "error":
            self._log.error("venue stream error: %s", str(message.get("data"))[:500])
            return
        try:
            self._on_message(message)
        except Exception:  # one message the consumer cannot take must not end the stream
            self._log.exception("dropped a %s message: %r", channel, text[:200])
