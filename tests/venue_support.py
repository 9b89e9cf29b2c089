"""A paper exchange on 127.0.0.1 for the venue adapter's round trips, and helpers to drive it:
advance its lockstep market, wait for events, and refuse any connection off the loopback."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from agents.live.venues import Backoff, HyperliquidVenue, Signer, VenueEvent
from mmgym.exchange import Clock, PaperExchange, PaperVenue
from mmgym.exchange.server import BackgroundServer
from mmgym.scenarios import make_params

AGENT_KEY = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
"""The API wallet (agent) that signs for the account: eth_account's documented test key."""
OTHER_KEY = "0x" + "11" * 32
"""A key the exchange does not know."""
USER = "0x" + "ab" * 20
"""The account whose orders, fills and positions these are."""
FAST = Backoff(base_s=0.02, cap_s=0.2)
"""Backoff for tests: reconnects within a fraction of a second."""
LOOPBACK = ("127.0.0.1", "::1", "localhost")


@contextmanager
def paper_exchange(seed: int = 0, funding_seconds: float = 60.0) -> Iterator[BackgroundServer]:
    """The ``calm`` market (one perp, "BTC") in lockstep, served on an ephemeral port; funding
    every ``funding_seconds`` of market time."""
    params = make_params(
        "calm", episode_seconds=6 * 3600.0, funding_interval_seconds=funding_seconds
    )
    venue = PaperVenue(params, seed, ["BTC"], USER, int(time.time()) * 1000)
    exchange = PaperExchange(venue, Signer(AGENT_KEY).address, Clock("lockstep"))
    server = BackgroundServer(exchange, timeout=10.0)
    try:
        yield server
    finally:
        server.close()


def adapter(url: str, key: str = AGENT_KEY, **kwargs: Any) -> HyperliquidVenue:
    """The adapter for the paper account, signing with ``key``."""
    options: dict[str, Any] = {"account_address": USER, "backoff": FAST, "seed": 0}
    return HyperliquidVenue(url, Signer(key), **{**options, **kwargs})


async def advance(url: str, steps: int) -> dict[str, Any]:
    """Move the lockstep market ``steps`` decision intervals."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + "/paper/advance", json={"steps": steps}) as response,
    ):
        assert response.status == 200, await response.text()
        answer: dict[str, Any] = await response.json()
        return answer


async def best_bid_ask(url: str, coin: str = "BTC") -> tuple[float, float]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + "/info", json={"type": "l2Book", "coin": coin}) as answer,
    ):
        book = await answer.json()
    bids, asks = book["levels"]
    return float(bids[0]["px"]), float(asks[0]["px"])


async def wait_for(
    venue: HyperliquidVenue,
    done: Callable[[list[VenueEvent]], bool],
    timeout_s: float = 10.0,
    seen: list[VenueEvent] | None = None,
) -> list[VenueEvent]:
    """Events from ``venue`` (appended to ``seen``) until ``done(seen)``; TimeoutError if it
    does not happen within ``timeout_s``."""
    events = [] if seen is None else seen
    if done(events):
        return events
    async with asyncio.timeout(timeout_s):
        async for event in venue.events():
            events.append(event)
            if done(events):
                return events
    raise AssertionError("the venue closed before the events arrived")


async def drain(venue: HyperliquidVenue, seconds: float, seen: list[VenueEvent]) -> None:
    """Append to ``seen`` every event that arrives within ``seconds``."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            async for event in venue.events():
                seen.append(event)


@contextlib.asynccontextmanager
async def pumping(
    handle: Callable[[VenueEvent], object], venue: HyperliquidVenue
) -> AsyncIterator[None]:
    """Feed the venue's events to ``handle`` (e.g. ``OrderManager.handle``) while the block
    runs."""

    async def pump() -> None:
        async for event in venue.events():
            handle(event)

    task = asyncio.create_task(pump())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def of_type(events: list[VenueEvent], kind: type[Any]) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection or name lookup off 127.0.0.1 fails the test."""
    guard_loopback(monkeypatch)


def guard_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any connection or name lookup off 127.0.0.1 fail (undone with ``monkeypatch``;
    for a fixture of a wider scope: ``with pytest.MonkeyPatch.context() as mp``)."""
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in LOOPBACK:
            raise AssertionError(f"a test tried to reach {address}")
        return real_connect(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in (*LOOPBACK, None):
            raise AssertionError(f"a test tried to resolve {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def run_live_script(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``scripts/live.py`` (``mmgym-live``) with ``args`` in a child process, a bare environment
    plus ``env``; its exit code and output."""
    root = Path(__file__).resolve().parents[1]
    return subprocess.run(
        [sys.executable, str(root / "scripts" / "live.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=root,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root), **(env or {})},
    )
