"""When the live runner decides: on the host's clock (a venue in real or accelerated time) or in
lockstep with the paper exchange (the runner advances its market one decision interval, then
decides once that interval's messages have arrived)."""

from __future__ import annotations

import asyncio
import time
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
    new time (at most ``timeout_s``; TimeoutError names the time). So the runner decides at
    the times the env's agent does: at the start, then after every interval."""

    def __init__(self, url: str, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None
        self.advanced = 0
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
        """Wait for every perp's data of ``time_ms`` (None: of any time); its venue time."""
        try:
            async with asyncio.timeout(self.timeout_s):
                while not feed.complete(time_ms if time_ms is not None else 0):
                    feed.updated.clear()  # set by each book and asset context
                    await feed.updated.wait()
        except TimeoutError:
            raise TimeoutError(
                f"the market data of venue time {time_ms} did not arrive within {self.timeout_s} s"
            ) from None
        now_ms = feed.time_ms()
        assert now_ms is not None  # complete: every perp has a book
        feed.expect_new()
        return now_ms

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
