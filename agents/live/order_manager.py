"""The order manager: the live runner's orders on a :class:`~agents.live.venues.base.Venue`,
tracked by client order id through the state machine of :mod:`agents.live.order_state`.

- Every order gets a cloid (16 bytes from a seeded or the OS's random stream) and its intent is
  recorded through the sink **before** it is sent; a send whose outcome is not known leaves the
  order UNKNOWN, looked up by cloid (``orderStatus``) and never sent again.
- :meth:`OrderManager.sync` moves the book towards the desired quotes (one bid and one ask per
  coin): it places, replaces (``batchModify``: same cloid, new oid) or cancels. A side whose
  order is in flight (PENDING_NEW, UNKNOWN, PENDING_CANCEL, PENDING_REPLACE) waits for the
  venue's answer. Cancels and replaces go out after a random delay (full jitter, seeded:
  anti-herding) and a failed one is retried after a full-jitter backoff.
- Rate limits are the RiskLimiter's buckets (:class:`~agents.live.order_throttle.SharedThrottle`):
  quotes the limiter admitted were charged there already; the manager charges retries and the
  cancels it decides on its own (orphans), and with ``ManagerConfig.charge_quotes`` every order.
- :meth:`OrderManager.handle` takes the venue's order updates and fills: fills once each by
  ``tid``, in any order, duplicated or late (a fill after a cancel still counts).
- :meth:`OrderManager.reconcile` compares orders, fills and positions with the venue's, imports
  missed fills, settles orders in doubt by cloid, cancels orphans and reports drift.
- Ended orders (FILLED, CANCELED, REJECTED) are kept ``ManagerConfig.ended_retention_s`` after
  they end, then pruned from every index (memory stays bounded over a long session); a late
  fill of a pruned order still moves the position and cash and is recorded, once by tid.

The sink is any ``record(kind, payload, cloid=None, tid=None)`` (the journal's ``append``
fits; the payloads are the journal's, docs/live.md "The journal"); kinds used: ``intent``,
``ack``, ``order_update``, ``fill``, ``reconcile``. :func:`from_recovered` turns what
:func:`agents.live.recovery.recover` rebuilt into what :meth:`OrderManager.restore` takes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from agents.live.order_state import ManagedOrder, OrderPhase, Version
from agents.live.order_throttle import SharedThrottle
from agents.live.recovery import RecoveredState
from agents.live.venues.backoff import Backoff
from agents.live.venues.base import (
    CancelAck,
    Fill,
    OpenOrder,
    OrderAck,
    OrderRequest,
    OrderState,
    OrderStatus,
    OrderUpdate,
    Tif,
    Venue,
    VenueEvent,
)
from agents.live.venues.nonce import wall_clock_ms

_UNKNOWN = OrderPhase.UNKNOWN
_QUOTING = (OrderPhase.RESTING, OrderPhase.PARTIALLY_FILLED)
"""Phases in which an order can be canceled or replaced."""
_LOOKED_UP_WHEN_MISSING = (*_QUOTING, OrderPhase.PENDING_CANCEL)
"""Phases in which an order missing from the venue's open orders is looked up by cloid."""
Side = tuple[str, bool]
"""A quoting slot: (coin, is_buy)."""


class Sink(Protocol):
    """Where the manager records what it is about to do and what the venue said (the
    journal's ``append`` fits)."""

    def __call__(
        self,
        kind: str,
        payload: Mapping[str, Any],
        cloid: str | None = None,
        tid: int | None = None,
    ) -> object: ...


@dataclass(frozen=True, slots=True)
class Quote:
    """The desired quotes of one coin (after the RiskLimiter); a size of 0 means no order."""

    bid_px: float
    bid_sz: float
    ask_px: float
    ask_sz: float

    def side(self, is_buy: bool) -> tuple[float, float] | None:
        px, sz = (self.bid_px, self.bid_sz) if is_buy else (self.ask_px, self.ask_sz)
        if not (math.isfinite(sz) and sz > 0.0):
            return None
        if not (math.isfinite(px) and px > 0.0):
            raise ValueError(f"quote price must be finite and > 0 for size {sz}, got {px}")
        return px, sz


@dataclass(frozen=True)
class ManagerConfig:
    """How the manager trades."""

    tif: Tif = Tif.ALO
    jitter_s: float = 0.02
    """Cancels and replaces are sent after ``uniform(0, jitter_s)`` seconds (anti-herding)."""
    backoff: Backoff = field(default_factory=lambda: Backoff(base_s=0.25, cap_s=30.0))
    """Full-jitter wait before a side's next cancel or replace after a failed one."""
    charge_quotes: bool = False
    """Charge the throttle for every order of ``sync``; False when the quotes come from the
    RiskLimiter, which charged them when it admitted them."""
    relative_tolerance: float = 1e-9
    """Prices and sizes this close (relatively) count as equal; positions too."""
    order_ttl_ms: int | None = None
    """The venue's order expiry (``HyperliquidVenue(order_ttl_ms=...)``, sent as
    ``expiresAfter``): an UNKNOWN order the venue still does not know ``order_ttl_ms +
    expiry_margin_ms`` after its send returned never executes and ends REJECTED. None: UNKNOWN
    orders the venue does not know stay UNKNOWN (and their side waits)."""
    expiry_margin_ms: int = 5_000
    """Allowance for the difference between this host's clock and the venue's."""
    ended_retention_s: float | None = 60.0
    """How long (the manager's clock) an ended order (FILLED, CANCELED, REJECTED) is kept after
    it ended; then it is dropped from ``orders`` and the oid index. None: kept forever."""


@dataclass(frozen=True)
class SyncResult:
    """What one :meth:`OrderManager.sync` did, by cloid."""

    placed: tuple[str, ...] = ()
    replaced: tuple[str, ...] = ()
    canceled: tuple[str, ...] = ()
    waiting: tuple[Side, ...] = ()
    """Sides left alone: an order in flight, a backoff or a throttle denial."""


@dataclass(frozen=True)
class PositionDrift:
    coin: str
    local: float
    venue: float


@dataclass(frozen=True)
class ReconcileReport:
    """What :meth:`OrderManager.reconcile` found and did."""

    imported_fills: tuple[Fill, ...] = ()
    """Fills the venue has and the manager had not seen (now booked)."""
    orphans_canceled: tuple[OpenOrder, ...] = ()
    """Orders on the venue the manager does not know, or knows as ended (cancel sent)."""
    resolved: tuple[tuple[str, OrderPhase], ...] = ()
    """Orders in doubt or missing from the venue's book, settled by ``orderStatus``."""
    unresolved: tuple[str, ...] = ()
    """Cloids still UNKNOWN: the venue does not know them (yet)."""
    position_drift: tuple[PositionDrift, ...] = ()
    """Coins whose position from the fills differs from the venue's after the import."""

    @property
    def drift(self) -> bool:
        """Whether anything was out of step (an alert; positions call for a risk move)."""
        return bool(self.imported_fills or self.orphans_canceled or self.position_drift)

    @property
    def out_of_step(self) -> bool:
        """Whether the books disagree with the venue's beyond what a reconciliation repairs:
        orders on the venue the journal never sent (orphans) or a position that differs after
        the missed fills were imported. Missed fills alone (a lost message, the fills of a
        restart's downtime) are what reconciliation is for."""
        return bool(self.orphans_canceled or self.position_drift)

    def summary(self) -> dict[str, Any]:
        return {
            "imported_tids": [f.tid for f in self.imported_fills],
            "orphans_canceled": [o.oid for o in self.orphans_canceled],
            "resolved": {cloid: str(phase) for cloid, phase in self.resolved},
            "unresolved": list(self.unresolved),
            "position_drift": [dataclasses.asdict(d) for d in self.position_drift],
        }


def _close(a: float, b: float, rel: float) -> bool:
    return abs(a - b) <= rel * max(abs(a), abs(b), 1.0)


def _payload(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj)


_PHASE_OF_STATE = {
    OrderState.RESTING: OrderPhase.RESTING,
    OrderState.FILLED: OrderPhase.FILLED,
    OrderState.CANCELED: OrderPhase.CANCELED,
    OrderState.REJECTED: OrderPhase.REJECTED,
    OrderState.UNKNOWN: OrderPhase.UNKNOWN,
}
_FILL_FIELDS = tuple(f.name for f in dataclasses.fields(Fill))


def from_recovered(state: RecoveredState) -> tuple[list[ManagedOrder], list[Fill]]:
    """What the journal recovered (:func:`agents.live.recovery.recover`) as the orders and
    fills :meth:`OrderManager.restore` takes: ``manager.restore(*from_recovered(state))``.

    Each order comes as it stood before its fills (the current version's price, size asked
    for and oid; the replaced oids first in ``oids``); ``restore`` books the fills onto it. A
    resting order with a cancel in flight is PENDING_CANCEL; an order in doubt is UNKNOWN, with
    its replacement pending if a replace under its cloid was in flight. Raises ValueError
    naming the order or fill the journal holds too little of.
    """
    orders: list[ManagedOrder] = []
    for rec in state.orders.values():
        if rec.coin is None or rec.is_buy is None or rec.px is None or rec.sz is None:
            raise ValueError(f"recovered order {rec.cloid} lacks its coin, side, price or size")
        phase = _PHASE_OF_STATE[rec.state]
        if phase == OrderPhase.RESTING and rec.pending == "cancel":
            phase = OrderPhase.PENDING_CANCEL
        version = Version(rec.px, rec.sz, rec.oid)
        pending = None
        if rec.modify_in_flight and rec.replaced is not None:
            pending, (px, sz) = Version(rec.px, rec.sz), rec.replaced
            version = Version(rec.px if px is None else px, rec.sz if sz is None else sz, rec.oid)
        order = ManagedOrder(rec.cloid, rec.coin, rec.is_buy, version, phase, pending)
        order.oids = sorted(rec.superseded) + ([rec.oid] if rec.oid is not None else [])
        order.error = rec.error
        orders.append(order)
    fills: list[Fill] = []
    for event in state.fills.values():
        missing = [name for name in _FILL_FIELDS if name not in event.payload]
        if missing and missing != ["snapshot"]:
            raise ValueError(f"journaled fill {event.tid} (seq {event.seq}) lacks {missing}")
        fills.append(Fill(**{k: v for k, v in event.payload.items() if k in _FILL_FIELDS}))
    return orders, fills


class OrderManager:
    """The orders of one account on ``venue``, recorded through ``sink``.

    Args:
        venue: the venue (connected; its events are passed to :meth:`handle`).
        sink: records intents, acks, updates, fills and reconciliations.
        throttle: the RiskLimiter's buckets of this account (None: no rate limit here).
        config: see :class:`ManagerConfig`.
        seed: seeds cloids and jitter (None: the OS's random stream).
        positions: positions held before the first fill this manager sees (coin -> signed).
        fills_since_ms: where :meth:`reconcile` starts asking the venue for fills.
        sleep: how to wait (``asyncio.sleep``; tests may pass their own).
        clock_ms: this host's clock in ms (for ``ManagerConfig.order_ttl_ms``).
    """

    def __init__(
        self,
        venue: Venue,
        sink: Sink,
        *,
        throttle: SharedThrottle | None = None,
        config: ManagerConfig | None = None,
        seed: int | None = None,
        positions: Mapping[str, float] | None = None,
        fills_since_ms: int = 0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock_ms: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self.venue = venue
        self.config = config or ManagerConfig()
        if self.config.jitter_s < 0.0:
            raise ValueError(f"jitter_s must be >= 0, got {self.config.jitter_s}")
        retention = self.config.ended_retention_s
        if retention is not None and not (math.isfinite(retention) and retention >= 0.0):
            raise ValueError(f"ended_retention_s must be finite and >= 0 or None, got {retention}")
        self._record = sink
        self._throttle = throttle
        self._seed = seed
        self._rng = random.Random(seed) if seed is not None else random.SystemRandom()
        self._journaled_cloids: set[str] = set()
        """The cloids of the orders :meth:`restore` took up: never issued again."""
        self._sleep = sleep
        self._clock_ms = clock_ms
        self.orders: dict[str, ManagedOrder] = {}
        """The orders by cloid (lower case): the active ones and those that ended less than
        ``ManagerConfig.ended_retention_s`` ago."""
        self._active: dict[str, ManagedOrder] = {}
        self._by_oid: dict[int, str] = {}
        self._ended: OrderedDict[str, int] = OrderedDict()
        """Ended orders by cloid -> when they ended (the manager's clock, ms), oldest first."""
        self.pruned = 0
        """How many ended orders were dropped so far."""
        self.fills: dict[int, Fill] = {}
        """Every fill booked, by tid."""
        self.positions: dict[str, float] = dict(positions or {})
        self._traded: dict[str, float] = {}
        self.cash = 0.0
        """Quote currency from the fills booked: proceeds of sales less purchases and fees."""
        self._fills_since_ms = fills_since_ms
        self._attempts: dict[Side, int] = {}
        self._retry_at: dict[Side, float] = {}

    # --- views ---------------------------------------------------------------------------------

    def active(self, coin: str | None = None) -> list[ManagedOrder]:
        """Orders not ended (oldest first), of ``coin`` or of every coin."""
        return [o for o in self._active.values() if coin is None or o.coin == coin]

    def order(self, cloid_or_oid: str | int) -> ManagedOrder | None:
        if isinstance(cloid_or_oid, int):
            cloid = self._by_oid.get(cloid_or_oid)
            return None if cloid is None else self.orders.get(cloid)
        return self.orders.get(cloid_or_oid.lower())

    def new_cloid(self) -> str:
        """A fresh client order id: "0x" and 32 hex digits, none of a restored order's."""
        while True:
            cloid = f"0x{self._rng.getrandbits(128):032x}"
            if cloid not in self._journaled_cloids:
                return cloid

    def _after(self, order: ManagedOrder) -> None:
        """Keep the indexes in step with ``order``'s phase and oids."""
        if order.final and self.orders.get(order.cloid) is not order:
            return  # pruned (or never this manager's): not indexed again
        for oid in order.oids:
            self._by_oid.setdefault(oid, order.cloid)
        if order.final:
            self._active.pop(order.cloid, None)
            if order.cloid not in self._ended:
                self._ended[order.cloid] = self._clock_ms()
                self.prune()
        else:
            self._active.setdefault(order.cloid, order)

    def prune(self, now_ms: int | None = None) -> int:
        """Drop the orders that ended ``ManagerConfig.ended_retention_s`` or longer before
        ``now_ms`` (default: the manager's clock) from ``orders`` and the oid index; how many.
        Done as orders end and at each :meth:`sync`; fills stay booked by tid."""
        retention = self.config.ended_retention_s
        if retention is None or not self._ended:
            return 0
        cutoff = (self._clock_ms() if now_ms is None else now_ms) - retention * 1000.0
        dropped = 0
        while self._ended:
            cloid, ended_ms = next(iter(self._ended.items()))
            if ended_ms > cutoff:
                break  # kept in the order they ended: the rest are younger
            self._ended.popitem(last=False)
            order = self.orders.pop(cloid, None)
            if order is not None:
                for oid in order.oids:
                    if self._by_oid.get(oid) == cloid:
                        del self._by_oid[oid]
            dropped += 1
        self.pruned += dropped
        return dropped

    # --- recovery ------------------------------------------------------------------------------

    def restore(
        self, orders: Iterable[ManagedOrder], fills: Iterable[Fill], restart: int = 0
    ) -> None:
        """Take up orders and fills recovered from the journal (fills are booked, not
        recorded again; :func:`from_recovered` converts a ``RecoveredState``). Call
        :meth:`reconcile` next, before quoting.

        ``restart`` tells this start from every earlier one (the runner passes the journal's
        last seq, which every start moves): a seeded manager's cloid stream is seeded with
        it, so a restarted process does not issue the cloids of the one before it, and no cloid
        of a restored order is issued again (a reused cloid would merge two orders' fills)."""
        if self._seed is not None:
            self._rng = random.Random(f"{self._seed}/{restart}")
        for order in orders:
            order.cloid = order.cloid.lower()
            self._journaled_cloids.add(order.cloid)
            self.orders[order.cloid] = order
            self._after(order)
        for fill in fills:
            self._book(fill, record=False)

    # --- venue events --------------------------------------------------------------------------

    def handle(self, event: VenueEvent) -> None:
        """An event of the venue's stream: order updates and fills; the rest is ignored."""
        if isinstance(event, Fill):
            self.on_fill(event)
        elif isinstance(event, OrderUpdate):
            self.on_update(event)

    def on_update(self, update: OrderUpdate) -> bool:
        """Apply an order update (recorded first); whether an order's phase changed."""
        order = self._find(update.cloid, update.oid)
        self._record("order_update", _payload(update), update.cloid)
        if order is None:
            return False
        changed = order.on_update(update)
        self._after(order)
        return changed

    def on_fill(self, fill: Fill) -> bool:
        """Book a fill once (by tid; recorded first); whether it was new."""
        return self._book(fill, record=True)

    def _book(self, fill: Fill, record: bool) -> bool:
        if fill.tid in self.fills:
            return False
        if record:
            self._record("fill", _payload(fill), fill.cloid, fill.tid)
        self.fills[fill.tid] = fill
        signed = fill.sz if fill.is_buy else -fill.sz
        self.positions[fill.coin] = self.positions.get(fill.coin, 0.0) + signed
        self._traded[fill.coin] = self._traded.get(fill.coin, 0.0) + fill.sz
        self.cash -= signed * fill.px + fill.fee
        order = self._find(fill.cloid, fill.oid)
        if order is not None:
            order.on_fill(fill)
            self._after(order)
        return True

    def _find(self, cloid: str | None, oid: int | None) -> ManagedOrder | None:
        if cloid is not None and cloid.lower() in self.orders:
            return self.orders[cloid.lower()]
        if oid is not None and oid in self._by_oid:
            return self.orders.get(self._by_oid[oid])
        return None

    def on_status(self, cloid: str, status: OrderStatus) -> bool:
        """Apply the venue's ``orderStatus`` answer for ``cloid`` (recorded first)."""
        order = self.orders.get(cloid.lower())
        update = status.as_update()
        payload: dict[str, Any] = {"source": "orderStatus"}
        if update is not None:  # recorded as the order update it amounts to
            payload.update(_payload(update))
        else:
            payload.update(state=status.state, status=status.status)
        self._record("order_update", payload, cloid)
        if order is None:
            return False
        changed = order.on_status(status)
        self._after(order)
        return changed

    # --- actions -------------------------------------------------------------------------------

    async def place(
        self, orders: Iterable[tuple[str, bool, float, float]], tif: Tif | None = None
    ) -> list[ManagedOrder]:
        """Place (coin, is_buy, px, sz) orders in one venue action, each under a new cloid
        whose intent is recorded before the send."""
        tif = tif or self.config.tif
        managed: list[ManagedOrder] = []
        requests: list[OrderRequest] = []
        for coin, is_buy, px, sz in orders:
            cloid = self.new_cloid()
            request = OrderRequest(coin, is_buy, sz, px, cloid, tif)
            self._record("intent", {"action": "place", "order": _payload(request)}, cloid)
            order = ManagedOrder(cloid, coin, is_buy, Version(px, sz))
            self.orders[cloid] = order
            self._after(order)
            managed.append(order)
            requests.append(request)
        if not requests:
            return managed
        try:
            acks: tuple[OrderAck, ...] = await self.venue.place(requests)
        except ValueError as err:  # refused before anything was sent
            acks = tuple(OrderAck(r.cloid, OrderState.REJECTED, error=str(err)) for r in requests)
        except Exception as err:  # (the send may have happened: in doubt)
            acks = tuple(OrderAck(r.cloid, OrderState.UNKNOWN, error=repr(err)) for r in requests)
        answered = self._clock_ms()
        for order, ack in zip(managed, acks, strict=True):
            order.answered_ms = answered
            self.on_ack(order, ack)
        return managed

    def on_ack(self, order: ManagedOrder, ack: OrderAck) -> bool:
        """Apply the venue's answer to ``order``'s place or replace (recorded first)."""
        self._record("ack", {"action": "order", **_payload(ack)}, order.cloid)
        changed = order.on_ack(ack)
        self._after(order)
        return changed

    async def cancel(self, order: ManagedOrder, now_s: float | None = None) -> CancelAck:
        """Cancel a resting order (by oid, or by cloid before its oid is known); with
        ``now_s``, the cancel is counted against the throttle's cancel bucket."""
        order.request_cancel()
        if self._throttle is not None and now_s is not None:
            self._throttle.cancel(now_s)
        target: int | str = order.oid if order.oid is not None else order.cloid
        intent = {"action": "cancel", "coin": order.coin, "target": target}
        self._record("intent", intent, order.cloid)
        try:
            if order.oid is not None:
                ack = await self.venue.cancel(order.coin, order.oid)
            else:
                ack = await self.venue.cancel_by_cloid(order.coin, order.cloid)
        except Exception as err:  # (in doubt: settled by an update or a look-up)
            ack = CancelAck(False, error=repr(err), unknown=True)
        self._record("ack", {"action": "cancel", **_payload(ack)}, order.cloid)
        order.on_cancel_ack(ack)
        self._after(order)
        return ack

    async def replace(self, order: ManagedOrder, px: float, sz: float) -> OrderAck:
        """Cancel-replace a resting order by (``px``, ``sz``) under the same cloid."""
        order.request_replace(px, sz)
        request = OrderRequest(order.coin, order.is_buy, sz, px, order.cloid, self.config.tif)
        target: int | str = order.oid if order.oid is not None else order.cloid
        intent = {"action": "replace", "target": target, "order": _payload(request)}
        self._record("intent", intent, order.cloid)
        try:
            ack = await self.venue.replace(target, request)
        except ValueError as err:
            ack = OrderAck(order.cloid, OrderState.REJECTED, error=str(err))
        except Exception as err:
            ack = OrderAck(order.cloid, OrderState.UNKNOWN, error=repr(err))
        self.on_ack(order, ack)
        return ack

    async def resolve(self, order: ManagedOrder) -> OrderPhase:
        """Look ``order`` up by cloid and apply the answer; its phase afterwards (UNKNOWN stays
        UNKNOWN while the venue does not know the cloid)."""
        status = await self.venue.order_status(order.cloid)
        self.on_status(order.cloid, status)
        if self._past_expiry(order) and order.on_expired_unseen(status):
            expired = {"source": "expiry", "state": OrderState.REJECTED, "error": order.error}
            self._record("order_update", expired, order.cloid)
            self._after(order)
        return order.phase

    def _past_expiry(self, order: ManagedOrder) -> bool:
        ttl = self.config.order_ttl_ms
        if ttl is None or order.answered_ms is None:
            return False
        return self._clock_ms() > order.answered_ms + ttl + self.config.expiry_margin_ms

    # --- quoting -------------------------------------------------------------------------------

    async def sync(self, desired: Mapping[str, Quote], now_s: float) -> SyncResult:
        """Place, replace or cancel towards ``desired`` (coin -> :class:`Quote`; a coin with
        active orders and no quote is canceled). ``now_s``: the RiskLimiter's clock."""
        self.prune()
        sides: dict[Side, tuple[float, float] | None] = {}
        for coin, quote in desired.items():
            for is_buy in (True, False):
                sides[(coin, is_buy)] = quote.side(is_buy)
        for order in self._active.values():
            sides.setdefault((order.coin, order.is_buy), None)
        to_place: list[tuple[str, bool, float, float]] = []
        tasks: list[Awaitable[list[tuple[str, str]]]] = []
        waiting: list[Side] = []
        for side, target in sides.items():
            orders = [o for o in self._active.values() if (o.coin, o.is_buy) == side]
            if any(o.phase not in _QUOTING for o in orders):
                waiting.append(side)  # in flight: wait for the venue's answer
                continue
            keep, extra = (orders[0], orders[1:]) if orders else (None, [])
            for order in extra:  # one order per side: the others go
                tasks.append(self._jittered_cancel(side, order, now_s, own=True))
            if keep is None:
                if target is not None and self._admit(now_s, replace=False, retry=False):
                    to_place.append((side[0], side[1], *target))
                elif target is not None:
                    waiting.append(side)
                continue
            if target is None:
                if now_s < self._retry_at.get(side, -math.inf):
                    waiting.append(side)
                else:
                    tasks.append(self._jittered_cancel(side, keep, now_s, own=False))
                continue
            if self._matches(keep, *target):
                continue
            retry = self._attempts.get(side, 0) > 0
            if now_s < self._retry_at.get(side, -math.inf) or not self._admit(
                now_s, replace=True, retry=retry
            ):
                waiting.append(side)
                continue
            tasks.append(self._jittered_replace(side, keep, *target, now_s))
        if to_place:
            tasks.append(self._place_all(to_place))
        by_kind: dict[str, list[str]] = {"place": [], "replace": [], "cancel": []}
        for done in await asyncio.gather(*tasks):
            for kind, cloid in done:
                by_kind[kind].append(cloid)
        return SyncResult(
            placed=tuple(by_kind["place"]),
            replaced=tuple(by_kind["replace"]),
            canceled=tuple(by_kind["cancel"]),
            waiting=tuple(waiting),
        )

    def _matches(self, order: ManagedOrder, px: float, sz: float) -> bool:
        rel = self.config.relative_tolerance
        return _close(order.version.px, px, rel) and _close(order.version.remaining, sz, rel)

    def _admit(self, now_s: float, replace: bool, retry: bool) -> bool:
        if self._throttle is None or not (retry or self.config.charge_quotes):
            return True
        return self._throttle.admit(now_s, replace) is None

    async def _place_all(
        self, orders: list[tuple[str, bool, float, float]]
    ) -> list[tuple[str, str]]:
        return [("place", order.cloid) for order in await self.place(orders)]

    async def _jitter(self) -> None:
        if self.config.jitter_s > 0.0:
            await self._sleep(self._rng.uniform(0.0, self.config.jitter_s))

    def _outcome(self, side: Side, ok: bool, now_s: float) -> None:
        if ok:
            self._attempts.pop(side, None)
            self._retry_at.pop(side, None)
            return
        attempt = self._attempts.get(side, 0)
        self._attempts[side] = attempt + 1
        self._retry_at[side] = now_s + self.config.backoff.delay(attempt, self._rng)

    async def _jittered_cancel(
        self, side: Side, order: ManagedOrder, now_s: float, own: bool
    ) -> list[tuple[str, str]]:
        """``own``: a cancel the RiskLimiter did not ask for (so did not charge)."""
        await self._jitter()
        if order.phase not in _QUOTING:
            return []  # it ended (or moved) while we waited
        charge = own or self.config.charge_quotes or self._attempts.get(side, 0) > 0
        ack = await self.cancel(order, now_s if charge else None)
        self._outcome(side, ack.ok or order.final, now_s)
        return [("cancel", order.cloid)]

    async def _jittered_replace(
        self, side: Side, order: ManagedOrder, px: float, sz: float, now_s: float
    ) -> list[tuple[str, str]]:
        await self._jitter()
        if order.phase not in _QUOTING:
            return []
        ack = await self.replace(order, px, sz)
        self._outcome(side, ack.state in (OrderState.RESTING, OrderState.FILLED), now_s)
        return [("replace", order.cloid)]

    # --- reconciliation ------------------------------------------------------------------------

    async def reconcile(self, now_s: float | None = None) -> ReconcileReport:
        """Compare with the venue: import missed fills, settle orders in doubt or missing from
        the venue's book by cloid, cancel orphans, compare positions. Recorded as one
        ``reconcile`` event."""
        imported = await self._import_fills()
        listed = await self.venue.open_orders()
        on_book = {o.cloid.lower() for o in listed if o.cloid is not None}
        on_book_oids = {o.oid for o in listed}
        resolved: list[tuple[str, OrderPhase]] = []
        for order in list(self._active.values()):
            # an order whose place or replace is in flight is settled by its ack
            missing = order.phase in _LOOKED_UP_WHEN_MISSING and not (
                order.cloid in on_book or order.oid in on_book_oids
            )
            # a cancel answered with an error or in doubt: gone, or still resting
            refused = order.phase == OrderPhase.PENDING_CANCEL and not order.cancel_in_flight
            if order.phase == OrderPhase.UNKNOWN or missing or refused:
                before = order.phase
                after = await self.resolve(order)
                if after != before:
                    resolved.append((order.cloid, after))
        orphans: list[OpenOrder] = []
        for listed_order in listed:
            known = self._find(listed_order.cloid, listed_order.oid)
            if known is None or known.final:
                orphans.append(listed_order)
        for orphan in orphans:
            await self._cancel_orphan(orphan, now_s)
        drift = self._position_drift((await self.venue.account()).positions)
        if drift:  # fills may have landed between the queries: once more
            imported += await self._import_fills()
            drift = self._position_drift((await self.venue.account()).positions)
        report = ReconcileReport(
            imported_fills=tuple(imported),
            orphans_canceled=tuple(orphans),
            resolved=tuple(resolved),
            unresolved=tuple(o.cloid for o in self._active.values() if o.phase == _UNKNOWN),
            position_drift=tuple(drift),
        )
        self._record("reconcile", report.summary())
        return report

    async def _import_fills(self) -> list[Fill]:
        fills = await self.venue.fills_since(self._fills_since_ms)
        imported = [fill for fill in fills if self._book(fill, record=True)]
        if fills:
            self._fills_since_ms = max(self._fills_since_ms, max(f.time_ms for f in fills))
        return imported

    async def _cancel_orphan(self, orphan: OpenOrder, now_s: float | None) -> None:
        if self._throttle is not None and now_s is not None:
            self._throttle.cancel(now_s)
        intent = {"action": "cancel", "target": orphan.oid, "orphan": _payload(orphan)}
        self._record("intent", intent, orphan.cloid)
        try:
            ack = await self.venue.cancel(orphan.coin, orphan.oid)
        except Exception as err:  # (the next reconciliation sees it again)
            ack = CancelAck(False, error=repr(err), unknown=True)
        self._record("ack", {"action": "cancel", "oid": orphan.oid, **_payload(ack)}, orphan.cloid)

    def _position_drift(self, venue_positions: Iterable[Any]) -> list[PositionDrift]:
        theirs = {p.coin: p.szi for p in venue_positions}
        rel = self.config.relative_tolerance
        drift = []
        for coin in sorted(set(theirs) | set(self.positions)):
            local, venue = self.positions.get(coin, 0.0), theirs.get(coin, 0.0)
            scale = max(1.0, self._traded.get(coin, 0.0))  # rounding grows with the fills
            if abs(local - venue) > rel * scale:
                drift.append(PositionDrift(coin, local, venue))
        return drift
