"""When the live runner decides: on the host's clock (a venue in real or accelerated time) or in
lockstep with the paper exchange (the runner advances its market one decision interval, then
decides once that interval's messages have arrived)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Protocol

import aiohttp

from agents.live.feed import MarketFeed


class Pacer(Protocol):
    """Waits for the next decision; returns its venue time (ms), or None when the market has
    ended."""

    async def next_decision(self, feed: MarketFeed) -> int | None: ...

    async def close(self) -> None: ...


class WallPacer:
    """Decides every ``interval_s`` of the host's monotonic clock, on the newest venue time
    the feed has; the first decision waits (at most ``first_data_timeout_s``) for every perp's
    first book."""

    def __init__(self, interval_s: float, first_data_timeout_s: float = 30.0) -> None:
        if not interval_s > 0.0:
            raise ValueError(f"decision interval must be > 0 s, got {interval_s}")
        self.interval_s = interval_s
        self.first_data_timeout_s = first_data_timeout_s
        self._next: float | None = None

    async def next_decision(self, feed: MarketFeed) -> int | None:
        if self._next is None:
            async with asyncio.timeout(self.first_data_timeout_s):
                while feed.time_ms() is None:
                    await asyncio.sleep(0.01)
            self._next = time.monotonic()
        else:
            self._next += self.interval_s
            delay = self._next - time.monotonic()
            if delay > 0.0:
                await asyncio.sleep(delay)
            else:  # late: decide now, and keep the grid from here
                self._next = time.monotonic()
        return feed.time_ms()

    async def close(self) -> None:
        return None


class LockstepPacer:
    """The first decision is at the market's current time (its subscription snapshots); each
    next one advances the paper exchange at ``url`` one decision interval (``POST
    /paper/advance``) and waits until the feed has every perp's book and asset context of the
    new time (at most ``data_wait_s``: past it a message was lost, and the decision comes
    without it, on stale data). So the runner decides at the times the env's agent does: at
    the start, then after every interval. The first decision waits ``timeout_s`` for the
    subscriptions' snapshots (TimeoutError past it).

    While ``connected()`` is false (the venue's stream is down: the live runner sets it to its
    own connection state) the market data cannot arrive: after an advance the pacer waits at
    most ``disconnected_wait_s`` for the stream to come back, then returns the new time without
    its data (the runner skips that decision; :attr:`incomplete` counts them), so the market's
    clock goes on while the runner is cut off and the pacer never times out for it."""

    def __init__(
        self,
        url: str,
        timeout_s: float = 30.0,
        *,
        connected: Callable[[], bool] | None = None,
        disconnected_wait_s: float = 0.05,
        data_wait_s: float = 5.0,
    ) -> None:
        if not disconnected_wait_s >= 0.0:
            raise ValueError(f"disconnected_wait_s must be >= 0 s, got {disconnected_wait_s}")
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.connected = connected
        """The stream's state (None: always connected)."""
        self.disconnected_wait_s = disconnected_wait_s
        self.data_wait_s = data_wait_s
        """How long a connected stream may take to deliver an interval's book and context;
        past it the decision comes without them (a message was lost): the feed reports its
        data as stale, the guard untrusts the observation and the limiter takes its safe
        action."""
        self._session: aiohttp.ClientSession | None = None
        self.advanced = 0
        self.incomplete = 0
        """Decision times returned without their market data (the stream was down)."""
        self._started = False

    async def next_decision(self, feed: MarketFeed) -> int | None:
        if not self._started:
            self._started = True
            return await self._wait(feed, None)
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s)
            )
        feed.expect_new()
        async with self._session.post(self.url + "/paper/advance", json={"steps": 1}) as answer:
            if answer.status == 409:  # the market ended
                return None
            if answer.status != 200:
                raise RuntimeError(
                    f"paper exchange /paper/advance answered {answer.status}: "
                    f"{(await answer.text())[:200]}"
                )
            body = await answer.json()
        self.advanced += 1
        if body.get("ended") is not None:
            return None
        return await self._wait(feed, int(body["time"]))

    async def _wait(self, feed: MarketFeed, time_ms: int | None) -> int:
        """Wait for every perp's data of ``time_ms`` (None: of any time); its venue time
        (``time_ms`` itself when the stream stayed down, counted in :attr:`incomplete`)."""
        try:
            async with asyncio.timeout(self.timeout_s if time_ms is None else self.data_wait_s):
                if not await self._arrived(feed, time_ms):
                    assert time_ms is not None
                    self.incomplete += 1
                    return time_ms
        except TimeoutError:
            if time_ms is None:
                raise TimeoutError(
                    f"the market's first data did not arrive within {self.timeout_s} s"
                ) from None
            self.incomplete += 1  # a message was lost: decide on what arrived (stale)
            return time_ms
        now_ms = feed.time_ms()
        assert now_ms is not None  # complete: every perp has a book
        feed.expect_new()
        return now_ms

    async def _arrived(self, feed: MarketFeed, time_ms: int | None) -> bool:
        """Whether the feed became complete at ``time_ms``; False once the stream has been down
        for ``disconnected_wait_s`` after an advance (the first decision waits for its data)."""
        loop = asyncio.get_running_loop()
        down_since: float | None = None
        while not feed.complete(time_ms if time_ms is not None else 0):
            if time_ms is not None and self.connected is not None and not self.connected():
                now = loop.time()
                if down_since is None:
                    down_since = now
                if now - down_since >= self.disconnected_wait_s:
                    return False
                await asyncio.sleep(0.0005)  # down: poll for the stream's return
                continue
            down_since = None
            feed.updated.clear()  # set by each book and asset context: no polling
            if time_ms is None or self.connected is None:
                await feed.updated.wait()
                continue
            # woken by the data, or soon enough to notice a dropped stream
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(self.disconnected_wait_s / 2.0, 0.0005)):
                    await feed.updated.wait()
        return True

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
