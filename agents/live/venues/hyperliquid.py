"""``HyperliquidVenue``: the :class:`~agents.live.venues.base.Venue` of Hyperliquid and of the
paper exchange, which speaks the same protocol; the URL chooses which.

It signs with the official SDK (``hyperliquid.utils.signing``) and talks over its own aiohttp
transport, adding what the SDK lacks: reconnect with resubscription, strictly increasing
nonces, rounding onto the venue's grid before signing, ``scheduleCancel`` as a dead-man's
switch, and no blind retries: an order whose POST timed out is reported ``UNKNOWN`` and looked
up by its cloid (``orderStatus``) until the venue's record settles it.

With ``conflate_books`` (the live runner sets it) book updates are conflated: the queue of
events holds at most one unread ``l2Book`` per coin (a newer one replaces it in its place,
parsed only when taken), so a burst of books never queues work for the consumer; every other
event keeps its order and is never dropped. Without it every book is delivered.

Addresses: ``signer`` holds the key that signs (the account's own key, or an API wallet the
account approved); ``account_address`` is the account whose orders, fills and positions these
are (the signer's own address when not given). The paper exchange checks signatures against its
configured agent address, as Hyperliquid does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .backoff import Backoff
from .base import (
    AccountState,
    CancelAck,
    ConnectionChange,
    Fill,
    FundingPayment,
    OpenOrder,
    OrderAck,
    OrderRequest,
    OrderState,
    OrderStatus,
    Position,
    VenueEvent,
)
from .keys import RedactingFilter, Signer
from .nonce import NonceSource, wall_clock_ms
from .stream import Stream
from .transport import HttpTransport, OutcomeUnknownError, VenueRequestError
from .wire import (
    AssetMeta,
    VenueMessageError,
    cancel_action,
    cancel_by_cloid_action,
    check_default_answer,
    modify_action,
    order_action,
    order_wire,
    parse_asset_ctx,
    parse_book,
    parse_cancel_answer,
    parse_clearinghouse,
    parse_fill_list,
    parse_funding_history,
    parse_meta,
    parse_open_orders,
    parse_order_answer,
    parse_order_status,
    parse_order_updates,
    parse_trades,
    parse_user_fills,
    parse_user_fundings,
    schedule_cancel_action,
)

MAINNET_API_URL = "https://api.hyperliquid.xyz"
"""Only this URL signs in the mainnet domain (as the SDK decides); any other URL, the paper
exchange's included, signs in the testnet domain."""
TESTNET_API_URL = "https://api.hyperliquid-testnet.xyz"
FILLS_PAGE = 2000
"""Hyperliquid answers at most this many fills per ``userFillsByTime`` query."""
FUNDING_PAGE = 500
"""... and at most this many payments per ``userFunding`` query."""
SEEN_LIMIT = 100_000
"""Fill trade ids (and funding keys) remembered to drop duplicates (replays on resubscribe)."""
MIN_SCHEDULE_AHEAD_S = 5.0
"""Hyperliquid wants a ``scheduleCancel`` time at least 5 s ahead."""

_CLOSED = object()
_MARKET_CHANNELS = frozenset(("l2Book", "trades", "activeAssetCtx"))


def new_cloid() -> str:
    """A random client order id: "0x" and 32 hex digits."""
    return "0x" + secrets.token_hex(16)


def is_mainnet(base_url: str) -> bool:
    return base_url.rstrip("/") == MAINNET_API_URL


def ws_url(base_url: str) -> str:
    """The WebSocket of a venue at ``base_url`` (``http`` -> ``ws``, ``https`` -> ``wss``)."""
    return "ws" + base_url.rstrip("/")[len("http") :] + "/ws"


class _Seen:
    """A bounded set: remembers the last ``limit`` keys added."""

    def __init__(self, limit: int) -> None:
        self._keys: set[object] = set()
        self._order: deque[object] = deque()
        self._limit = limit

    def add(self, key: object) -> bool:
        """Whether ``key`` is new (and remember it)."""
        if key in self._keys:
            return False
        self._keys.add(key)
        self._order.append(key)
        if len(self._order) > self._limit:
            self._keys.discard(self._order.popleft())
        return True


class HyperliquidVenue:
    """A Hyperliquid-protocol venue at ``base_url`` (Hyperliquid's mainnet or testnet, or the
    paper exchange on 127.0.0.1).

    Use as ``async with HyperliquidVenue(url, signer) as venue:``. ``nonce_file`` keeps nonces
    increasing across restarts (without it they are increasing within the process and never
    below the wall clock). ``order_ttl_ms`` sets ``expiresAfter`` on order actions: an order
    still unseen after that is known never to execute (the venue drops expired actions).
    ``stream_url`` overrides the WebSocket's URL (by default ``base_url``'s ``/ws``).
    ``conflate_books``: keep only the newest unread book per coin (a consumer that wants every
    book update leaves it off).
    """

    def __init__(
        self,
        base_url: str,
        signer: Signer,
        *,
        account_address: str | None = None,
        stream_url: str | None = None,
        nonce_file: Path | None = None,
        request_timeout_s: float = 10.0,
        info_attempts: int = 3,
        backoff: Backoff | None = None,
        ping_interval_s: float = 50.0,
        resolve_timeout_s: float = 30.0,
        order_ttl_ms: int | None = None,
        conflate_books: bool = False,
        clock_ms: Callable[[], int] = wall_clock_ms,
        seed: int | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"venue URL must be http:// or https://, got {base_url!r}")
        if order_ttl_ms is not None and order_ttl_ms <= 0:
            raise ValueError(f"order_ttl_ms must be positive (or None), got {order_ttl_ms}")
        self.base_url = base_url.rstrip("/")
        self.stream_url = stream_url or ws_url(self.base_url)
        self.is_mainnet = is_mainnet(self.base_url)
        self.signer = signer
        self.user = account_address or signer.address
        self._log = logger or logging.getLogger(__name__)
        self._redacting = RedactingFilter(signer)
        self._rng = random.Random(seed)
        self._backoff = backoff or Backoff()
        self._http = HttpTransport(
            self.base_url, request_timeout_s, self._backoff, info_attempts, self._rng, self._log
        )
        self._nonces = NonceSource(nonce_file, clock_ms)
        self._clock_ms = clock_ms
        self._ping_interval_s = ping_interval_s
        self._resolve_timeout_s = resolve_timeout_s
        self._order_ttl_ms = order_ttl_ms
        self._assets: dict[str, AssetMeta] = {}
        self._events: asyncio.Queue[Any] = asyncio.Queue()
        """Events in arrival order; a coin's name (a str) stands for its unread book."""
        self.conflate_books = conflate_books
        self._books: dict[str, Any] = {}
        """Coin -> the newest unread ``l2Book`` data (parsed when taken)."""
        self.conflated_books = 0
        """Books replaced unread by a newer one of their coin."""
        self.market_received_s = math.nan
        """Host monotonic clock when the newest market message (book, trades, asset context)
        was read from the WebSocket."""
        self.first_sent_s = math.nan
        """Host monotonic clock when the first signed order action (place, modify, cancel)
        since :meth:`mark_sends` was handed to the HTTP transport (NaN: none since)."""
        self.first_sign_s = math.nan
        """Seconds that action's signing took."""
        self._stream: Stream | None = None
        self._seen_fills = _Seen(SEEN_LIMIT)
        self._seen_fundings = _Seen(SEEN_LIMIT)
        self._unresolved: dict[str, asyncio.Task[OrderStatus]] = {}
        self._in_flight: dict[str, bool] = {}
        """Cloids of order actions awaiting their answer -> whether the stream settled them."""
        self._dead_mans_switch: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"HyperliquidVenue({self.base_url}, user={self.user}, signer={self.signer!r})"

    # -- lifecycle -----------------------------------------------------------------------------

    async def __aenter__(self) -> HyperliquidVenue:
        self._log.addFilter(self._redacting)
        await self._http.open()
        try:
            self._assets = parse_meta(await self._http.info({"type": "meta"}))
        except BaseException:
            await self._http.close()
            raise
        self._stream = Stream(
            self.stream_url,
            self._http.session,
            self._on_message,
            self._on_connection,
            self._backoff,
            self._rng,
            self._log,
            self._ping_interval_s,
        )
        self._stream.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop the stream, the dead-man's switch and pending look-ups (the switch stays armed
        at the venue: orders are canceled when it fires unless the caller unsets it first)."""
        tasks = [t for t in (self._dead_mans_switch, *self._unresolved.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._dead_mans_switch = None
        self._unresolved.clear()
        if self._stream is not None:
            await self._stream.close()
            self._stream = None
        await self._http.close()
        self._events.put_nowait(_CLOSED)
        self._log.removeFilter(self._redacting)

    @property
    def assets(self) -> dict[str, AssetMeta]:
        """The venue's perps (from ``meta``) by name."""
        return dict(self._assets)

    def asset(self, coin: str) -> AssetMeta:
        try:
            return self._assets[coin]
        except KeyError:
            known = sorted(self._assets)
            raise ValueError(f"unknown coin {coin!r}: the venue lists {known}") from None

    @property
    def stream(self) -> Stream:
        if self._stream is None:
            raise RuntimeError("the venue is not connected: use `async with venue:`")
        return self._stream

    @property
    def unresolved(self) -> tuple[str, ...]:
        """Cloids of orders whose fate is still being looked up."""
        return tuple(self._unresolved)

    # -- streams -------------------------------------------------------------------------------

    async def subscribe_market(self, coin: str) -> None:
        self.asset(coin)
        for kind in ("l2Book", "trades", "activeAssetCtx"):
            await self.stream.subscribe({"type": kind, "coin": coin})

    async def subscribe_account(self) -> None:
        for kind in ("orderUpdates", "userFills", "userFundings"):
            await self.stream.subscribe({"type": kind, "user": self.user})

    async def events(self) -> AsyncIterator[VenueEvent]:
        """Events until the venue is closed."""
        while True:
            item = await self._events.get()
            if item is _CLOSED:
                return
            event = self._take(item)
            if event is not None:
                yield event

    def ready_events(self) -> Iterator[VenueEvent]:
        """The events already received and not yet taken, without waiting (a consumer drains
        them before deciding, so that it decides on everything that has arrived)."""
        while not self._events.empty():
            item = self._events.get_nowait()
            if item is _CLOSED:  # the last item: leave it for events()
                self._events.put_nowait(item)
                return
            event = self._take(item)
            if event is not None:
                yield event

    def _take(self, item: Any) -> VenueEvent | None:
        """A queued item as its event: a coin's name stands for its newest unread book
        (conflated), parsed now; None when that book was malformed."""
        return self._take_book(item) if isinstance(item, str) else item

    def _take_book(self, coin: str) -> VenueEvent | None:
        data = self._books.pop(coin)
        try:
            return parse_book(data)
        except VenueMessageError as err:
            self._log.error("dropped a malformed l2Book message: %s", err)
            return None

    def mark_sends(self) -> None:
        """Start timing the next order action (:attr:`first_sent_s`, :attr:`first_sign_s`)."""
        self.first_sent_s = math.nan
        self.first_sign_s = math.nan

    def _emit(self, events: Iterable[VenueEvent]) -> None:
        for event in events:
            self._events.put_nowait(event)

    def _on_connection(self, connected: bool, attempt: int, reason: str) -> None:
        self._emit([ConnectionChange(connected, attempt, reason)])

    def _on_message(self, message: dict[str, Any]) -> None:
        channel, data = message.get("channel"), message.get("data")
        if channel in _MARKET_CHANNELS and self._stream is not None:
            self.market_received_s = self._stream.received_s
        if (
            channel == "l2Book"
            and self.conflate_books
            and isinstance(data, dict)
            and isinstance(data.get("coin"), str)
        ):
            coin = data["coin"]
            if coin in self._books:
                self.conflated_books += 1
            else:
                self._events.put_nowait(coin)
            self._books[coin] = data
            return
        try:
            self._emit(self._translate(channel, data))
        except VenueMessageError as err:
            self._log.error("dropped a malformed %s message: %s", channel, err)

    def _translate(self, channel: Any, data: Any) -> Iterable[VenueEvent]:
        if channel == "l2Book":
            return [parse_book(data)]
        if channel == "trades":
            return parse_trades(data)
        if channel == "activeAssetCtx":
            return [parse_asset_ctx(data)]
        if channel == "orderUpdates":
            updates = parse_order_updates(data)
            for update in updates:
                self._settle(update.cloid, update.state)
            return updates
        if channel == "userFills":
            return [f for f in parse_user_fills(data) if self._seen_fills.add(f.tid)]
        if channel == "userFundings":
            payments = parse_user_fundings(data)
            return [p for p in payments if self._seen_fundings.add((p.coin, p.time_ms))]
        self._log.warning("ignored a message on channel %r", channel)
        return []

    def _settle(self, cloid: str | None, state: OrderState) -> None:
        """An order update settles its cloid: a pending look-up of it, or one about to start
        (the update can arrive before the POST that caused it times out)."""
        if cloid is None or state == OrderState.UNKNOWN:
            return
        if cloid in self._in_flight:
            self._in_flight[cloid] = True
        if cloid in self._unresolved:
            self._unresolved.pop(cloid).cancel()

    # -- actions -------------------------------------------------------------------------------

    async def _act(self, action: dict[str, Any], expires_after: int | None = None) -> Any:
        nonce = self._nonces.next()
        signing = time.monotonic()
        signature = self.signer.sign_l1(
            action, nonce, is_mainnet=self.is_mainnet, expires_after=expires_after
        )
        payload = {
            "action": action,
            "nonce": nonce,
            "signature": signature,
            "vaultAddress": None,
            "expiresAfter": expires_after,
        }
        # the first order action (not the dead-man's switch) since mark_sends(): NaN until then
        if self.first_sent_s != self.first_sent_s and action["type"] != "scheduleCancel":
            self.first_sent_s = sent = time.monotonic()
            self.first_sign_s = sent - signing
        return await self._http.exchange(payload)

    def _expiry(self) -> int | None:
        return None if self._order_ttl_ms is None else self._clock_ms() + self._order_ttl_ms

    async def place(self, orders: Sequence[OrderRequest]) -> tuple[OrderAck, ...]:
        """Place ``orders`` in one signed action; one ack per order. Nothing is sent if any
        order is invalid (unknown coin, bad cloid, a size that rounds to zero, repeated
        cloids)."""
        cloids = [order.cloid.lower() for order in orders]
        if not cloids:
            raise ValueError("no orders to place")
        if len(set(cloids)) != len(cloids):
            raise ValueError(f"repeated cloids in one placement: {cloids}")
        wires = [order_wire(order, self.asset(order.coin)) for order in orders]
        return await self._send_orders(order_action(wires), cloids)

    async def replace(self, target: int | str, order: OrderRequest) -> OrderAck:
        """``batchModify``: the venue cancels ``target`` (an oid or a cloid) and places
        ``order`` in its stead (a new oid; the cloid of ``order``)."""
        wire = order_wire(order, self.asset(order.coin))
        (ack,) = await self._send_orders(modify_action(target, wire), [order.cloid.lower()])
        return ack

    async def _send_orders(self, action: dict[str, Any], cloids: list[str]) -> tuple[OrderAck, ...]:
        self._in_flight.update((c, False) for c in cloids)
        try:
            answer = await self._act(action, self._expiry())
        except OutcomeUnknownError as err:
            self._log.warning("%s %s unconfirmed (%s): looking up", action["type"], cloids, err)
            for cloid in cloids:
                if not self._in_flight[cloid]:  # the stream has not told its fate yet
                    self._resolve_later(cloid)
            return tuple(OrderAck(c, OrderState.UNKNOWN, error=str(err)) for c in cloids)
        except VenueRequestError as err:  # refused outright (4xx): nothing was placed
            return tuple(OrderAck(c, OrderState.REJECTED, error=str(err)) for c in cloids)
        finally:
            for cloid in cloids:
                self._in_flight.pop(cloid, None)
        return parse_order_answer(answer, cloids)

    async def cancel(self, coin: str, oid: int) -> CancelAck:
        return await self._cancel(cancel_action(self.asset(coin).asset, oid))

    async def cancel_by_cloid(self, coin: str, cloid: str) -> CancelAck:
        return await self._cancel(cancel_by_cloid_action(self.asset(coin).asset, cloid))

    async def _cancel(self, action: dict[str, Any]) -> CancelAck:
        try:
            return parse_cancel_answer(await self._act(action))
        except OutcomeUnknownError as err:
            return CancelAck(False, error=str(err), unknown=True)
        except VenueRequestError as err:
            return CancelAck(False, error=str(err))

    async def schedule_cancel(self, at_ms: int | None) -> None:
        """Arm (or with None, disarm) the venue's dead-man's switch: all open orders are
        canceled at ``at_ms`` unless it is moved again before. Raises ``OutcomeUnknownError`` when
        the request's fate is unknown and ``VenueRejectedError`` when refused."""
        check_default_answer(await self._act(schedule_cancel_action(at_ms)), "scheduleCancel")

    def start_dead_mans_switch(self, window_s: float = 60.0, refresh_s: float = 15.0) -> None:
        """Keep the switch ``window_s`` ahead, moving it every ``refresh_s``: if this process
        stops refreshing (it hangs, dies or loses the venue), the venue cancels every open
        order within ``window_s``."""
        if window_s <= MIN_SCHEDULE_AHEAD_S or not 0 < refresh_s < window_s:
            raise ValueError(
                f"dead-man's switch wants {MIN_SCHEDULE_AHEAD_S} s < window_s and "
                f"0 < refresh_s < window_s, got window_s={window_s}, refresh_s={refresh_s}"
            )
        if self._dead_mans_switch is not None:
            raise RuntimeError("the dead-man's switch is already running")
        self._dead_mans_switch = asyncio.create_task(self._refresh_switch(window_s, refresh_s))

    async def stop_dead_mans_switch(self, disarm: bool = True) -> None:
        """Stop refreshing; with ``disarm``, also unset the switch at the venue."""
        task, self._dead_mans_switch = self._dead_mans_switch, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if disarm:
            await self.schedule_cancel(None)

    async def venue_time_ms(self) -> int:
        """The venue's clock (``clearinghouseState``'s time; the paper exchange's is its
        simulated time), or this host's wall clock if the venue does not say."""
        state = await self.account()
        return state.time_ms if state.time_ms is not None else self._clock_ms()

    async def _refresh_switch(self, window_s: float, refresh_s: float) -> None:
        failures = 0
        while True:
            try:
                await self.schedule_cancel(await self.venue_time_ms() + int(window_s * 1000))
                failures = 0
                await asyncio.sleep(refresh_s)
            except (OutcomeUnknownError, RuntimeError, VenueMessageError) as err:
                self._log.warning("dead-man's switch refresh failed: %s", err)
                await asyncio.sleep(min(refresh_s, self._backoff.delay(failures, self._rng)))
                failures += 1

    # -- resolving unknown orders ----------------------------------------------------------------

    def _resolve_later(self, cloid: str) -> None:
        if cloid not in self._unresolved:
            self._unresolved[cloid] = asyncio.create_task(self._resolve_and_emit(cloid))

    async def _resolve_and_emit(self, cloid: str) -> OrderStatus:
        status = await self.resolve(cloid, self._resolve_timeout_s)
        self._unresolved.pop(cloid, None)
        update = status.as_update()
        if update is not None:
            self._emit([update])
        else:
            self._log.error(
                "order %s still unknown to the venue after %.0f s: not resent; reconcile it",
                cloid,
                self._resolve_timeout_s,
            )
        return status

    async def resolve(self, cloid: str, timeout_s: float) -> OrderStatus:
        """Look ``cloid`` up (``orderStatus``) with backoff until the venue knows it or
        ``timeout_s`` passed; the last answer (``UNKNOWN`` if never found)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        attempt = 0
        while True:
            try:
                status = await self.order_status(cloid)
                if status.state != OrderState.UNKNOWN:
                    return status
            except (OutcomeUnknownError, RuntimeError, VenueMessageError) as err:
                self._log.warning("orderStatus %s failed: %s", cloid, err)
                status = OrderStatus(OrderState.UNKNOWN, "unreachable", None, None)
            remaining = deadline - loop.time()
            if remaining <= 0:
                return status
            await asyncio.sleep(min(remaining, self._backoff.delay(attempt, self._rng)))
            attempt += 1

    # -- queries -------------------------------------------------------------------------------

    async def order_status(self, cloid_or_oid: str | int) -> OrderStatus:
        oid = cloid_or_oid.lower() if isinstance(cloid_or_oid, str) else cloid_or_oid
        answer = await self._http.info({"type": "orderStatus", "user": self.user, "oid": oid})
        return parse_order_status(answer)

    async def open_orders(self) -> tuple[OpenOrder, ...]:
        answer = await self._http.info({"type": "frontendOpenOrders", "user": self.user})
        return parse_open_orders(answer)

    async def account(self) -> AccountState:
        answer = await self._http.info({"type": "clearinghouseState", "user": self.user})
        return parse_clearinghouse(answer)

    async def positions(self) -> tuple[Position, ...]:
        return (await self.account()).positions

    async def fills_since(self, time_ms: int) -> tuple[Fill, ...]:
        """The account's fills at or after ``time_ms``, oldest first, once each."""
        query = {"type": "userFillsByTime", "user": self.user, "aggregateByTime": False}
        return await self._paged(query, time_ms, parse_fill_list, FILLS_PAGE, lambda f: f.tid)

    async def funding_since(self, time_ms: int) -> tuple[FundingPayment, ...]:
        """The account's funding payments at or after ``time_ms``, oldest first."""
        query = {"type": "userFunding", "user": self.user}
        return await self._paged(
            query, time_ms, parse_funding_history, FUNDING_PAGE, lambda p: (p.coin, p.time_ms)
        )

    async def _paged(
        self,
        query: dict[str, Any],
        start_ms: int,
        parse: Callable[[Any], Sequence[Any]],
        page: int,
        key: Callable[[Any], object],
    ) -> tuple[Any, ...]:
        found: dict[object, Any] = {}
        while True:
            batch = parse(await self._http.info({**query, "startTime": start_ms}))
            fresh = [item for item in batch if key(item) not in found]
            found.update((key(item), item) for item in fresh)
            if len(batch) < page or not fresh:
                return tuple(sorted(found.values(), key=lambda item: item.time_ms))
            start_ms = max(item.time_ms for item in batch)
