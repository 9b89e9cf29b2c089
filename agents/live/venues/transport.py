"""HTTP to a Hyperliquid-compatible venue over aiohttp: ``/info`` queries, retried with backoff
(they change nothing), and signed ``/exchange`` actions, sent exactly once.

An action whose POST timed out or failed in transport (or got a 5xx, or an unreadable body) may
or may not have reached the venue: :class:`OutcomeUnknownError` says so, and the caller resolves it
by looking the order up, never by sending it again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from typing import Any

from mmgym.extras import extra_needed

from .backoff import Backoff

with extra_needed("agents.live.venues"):
    import aiohttp


class OutcomeUnknownError(RuntimeError):
    """An /exchange request may or may not have been executed by the venue."""


class VenueRequestError(RuntimeError):
    """The venue refused a request outright (a 4xx answer), or /info stayed unreachable after
    its retries."""


class HttpTransport:
    """POSTs JSON to ``base_url + /info`` and ``/exchange`` on one aiohttp session."""

    def __init__(
        self,
        base_url: str,
        timeout_s: float,
        backoff: Backoff,
        info_attempts: int,
        rng: random.Random,
        logger: logging.Logger,
    ) -> None:
        if info_attempts < 1:
            raise ValueError(f"info_attempts must be at least 1, got {info_attempts}")
        self.base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._backoff = backoff
        self._info_attempts = info_attempts
        self._rng = rng
        self._log = logger
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            raise RuntimeError("the venue is not connected: use `async with venue:`")
        return self._session

    async def open(self) -> None:
        self._session = aiohttp.ClientSession(timeout=self._timeout)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def info(self, payload: dict[str, Any]) -> Any:
        """The answer to an /info query, retried with backoff on transport errors and 5xx."""
        last = ""
        for attempt in range(self._info_attempts):
            if attempt:
                await asyncio.sleep(self._backoff.delay(attempt - 1, self._rng))
            try:
                return await self._post("/info", payload)
            except OutcomeUnknownError as err:
                last = str(err)
                self._log.warning("info %s failed (attempt %d): %s", payload["type"], attempt, err)
        raise VenueRequestError(
            f"info {payload['type']} failed {self._info_attempts} times; last: {last}"
        )

    async def exchange(self, payload: dict[str, Any]) -> Any:
        """The answer to a signed /exchange request, sent once."""
        return await self._post("/exchange", payload)

    async def _post(self, path: str, payload: dict[str, Any]) -> Any:
        url = self.base_url + path
        try:
            async with self.session.post(url, json=payload) as response:
                text = await response.text()
                status = response.status
        except (TimeoutError, aiohttp.ClientError, OSError) as err:
            kind = "timed out" if isinstance(err, TimeoutError) else type(err).__name__
            raise OutcomeUnknownError(f"POST {path} {kind}: {err}") from None
        if status >= 500:
            raise OutcomeUnknownError(f"POST {path} answered HTTP {status}: {text[:200]}")
        if status >= 400:
            raise VenueRequestError(f"POST {path} refused with HTTP {status}: {text[:200]}")
        try:
            return json.loads(text)
        except ValueError:
            unreadable = f"POST {path} answered unreadable JSON: {text[:200]!r}"
            raise OutcomeUnknownError(unreadable) from None
