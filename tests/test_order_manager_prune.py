"""Ended orders are pruned after ``ManagerConfig.ended_retention_s`` (the manager's clock): a
long session keeps the order map and the oid index bounded; a late fill of a canceled order is
booked once whether or not the order is still kept; reconcile after pruning cancels no known
order and books no fill twice."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from order_events import CLOID, ack, fill, update

from agents.live.order_manager import ManagerConfig, OrderManager, Quote
from agents.live.order_state import ManagedOrder, OrderPhase, Version
from agents.live.venues import Venue
from agents.live.venues.base import (
    AccountState,
    CancelAck,
    Fill,
    OpenOrder,
    OrderAck,
    OrderRequest,
    OrderState,
    OrderStatus,
    Position,
)


class Clock:
    def __init__(self) -> None:
        self.ms = 1_000_000

    def __call__(self) -> int:
        return self.ms


class BookVenue:
    """A venue that rests every order it is sent and cancels on request; its fills, open
    orders and positions are what the test puts there."""

    def __init__(self) -> None:
        self.next_oid = 1
        self.book: dict[int, OpenOrder] = {}
        self.fills: list[Fill] = []
        self.canceled: list[int] = []

    async def place(self, requests: list[OrderRequest]) -> tuple[OrderAck, ...]:
        acks = []
        for r in requests:
            oid, self.next_oid = self.next_oid, self.next_oid + 1
            self.book[oid] = OpenOrder(
                r.coin, oid, r.cloid, r.is_buy, r.px, r.sz, r.sz, "Alo", False, 0
            )
            acks.append(OrderAck(r.cloid, OrderState.RESTING, oid=oid))
        return tuple(acks)

    async def cancel(self, coin: str, oid: int) -> CancelAck:
        self.canceled.append(oid)
        ok = self.book.pop(oid, None) is not None
        return CancelAck(ok, error=None if ok else "already canceled or filled")

    async def open_orders(self) -> tuple[OpenOrder, ...]:
        return tuple(self.book.values())

    async def fills_since(self, start_ms: int) -> tuple[Fill, ...]:
        return tuple(f for f in self.fills if f.time_ms >= start_ms)

    async def order_status(self, cloid: str) -> OrderStatus:
        for o in self.book.values():
            if o.cloid == cloid:
                return OrderStatus(OrderState.RESTING, "open", o, 0)
        return OrderStatus(OrderState.UNKNOWN, "unknownOid", None, None)

    async def account(self) -> AccountState:
        szi: dict[str, float] = {}
        for f in self.fills:
            szi[f.coin] = szi.get(f.coin, 0.0) + (f.sz if f.is_buy else -f.sz)
        positions = tuple(Position(c, q, None, 0.0, None, 0.0) for c, q in szi.items())
        return AccountState(positions, 0.0, 0.0, 0.0, 0.0)


class Sink:
    def __init__(self) -> None:
        self.rows: list[tuple[str, dict[str, Any], str | None, int | None]] = []

    def __call__(
        self, kind: str, payload: Any, cloid: str | None = None, tid: int | None = None
    ) -> None:
        self.rows.append((kind, dict(payload), cloid, tid))

    def fills(self) -> list[int | None]:
        return [tid for kind, _, _, tid in self.rows if kind == "fill"]


def manager(
    retention_s: float | None = 60.0, venue: object = None
) -> tuple[OrderManager, Sink, Clock]:
    sink, clock = Sink(), Clock()
    config = ManagerConfig(jitter_s=0.0, ended_retention_s=retention_s)
    m = OrderManager(cast(Venue, venue), sink, config=config, seed=3, clock_ms=clock)
    return m, sink, clock


def canceled_order(m: OrderManager, oid: int = 10) -> ManagedOrder:
    """``CLOID`` acked resting at ``oid``, then canceled by an update."""
    order = ManagedOrder(CLOID, "BTC", True, Version(100.0, 1.0))
    m.restore([order], [])
    m.on_ack(order, ack(oid))
    m.on_update(update(oid, "canceled"))
    assert order.phase == OrderPhase.CANCELED
    return order


def test_a_long_session_keeps_the_order_map_bounded() -> None:
    venue = BookVenue()
    m, _, clock = manager(retention_s=5.0, venue=venue)

    async def session() -> list[int]:
        sizes = []
        for step in range(3_000):  # one decision every 100 ms, quotes moving: 5 min
            px = 100.0 + (step % 7) * 0.01
            await m.sync({"BTC": Quote(px, 0.5, px + 0.1, 0.5)}, now_s=step / 10)
            for o in list(venue.book.values()):  # the venue cancels what it rests
                venue.book.pop(o.oid)
                m.on_update(update(o.oid, "canceled", cloid=o.cloid))
            clock.ms += 100
            sizes.append(len(m.orders))
        return sizes

    sizes = asyncio.run(session())
    ended_per_s = 2 * 10
    assert max(sizes) <= ended_per_s * 5 + 2 + ended_per_s  # retention window, active, slack
    assert m.pruned >= 6_000 - max(sizes) and len(m._by_oid) == len(m.orders)
    assert len(m.fills) == 0 and m.active() == []


def test_none_keeps_every_ended_order() -> None:
    m, _, clock = manager(retention_s=None)
    order = canceled_order(m)
    clock.ms += 10**9
    assert m.prune() == 0 and m.order(CLOID) is order and m.order(10) is order


def test_an_ended_order_is_kept_for_the_retention_then_dropped_from_every_index() -> None:
    m, _, clock = manager(retention_s=60.0)
    order = canceled_order(m)
    clock.ms += 59_999
    assert m.prune() == 0 and m.order(CLOID) is order and m.order(10) is order
    clock.ms += 1
    assert m.prune() == 1 and m.order(CLOID) is None and m.order(10) is None
    assert m.orders == {} and m._by_oid == {} and m.pruned == 1


@pytest.mark.parametrize("pruned", [False, True])
def test_a_late_fill_of_a_canceled_order_is_booked_and_recorded_once(pruned: bool) -> None:
    m, sink, clock = manager(retention_s=60.0)
    order = canceled_order(m)
    clock.ms += 61_000 if pruned else 1_000
    m.prune()
    late = fill(7, 10, 0.25)  # crossed before the cancel took effect
    assert m.on_fill(late)
    assert not m.on_fill(late) and not m.on_fill(fill(7, 10, 0.25, cloid=None))  # duplicates
    assert sink.fills() == [7] and m.positions["BTC"] == 0.25 and set(m.fills) == {7}
    assert m.cash == pytest.approx(-0.25 * 100.0 - 0.01)
    assert order.phase == OrderPhase.CANCELED  # never revived
    assert order.filled_sz == (0.0 if pruned else 0.25)  # a pruned order is not updated
    assert (m.order(CLOID) is None) == pruned


def test_news_of_a_pruned_order_does_not_index_it_again() -> None:
    m, _, _ = manager(retention_s=0.0)  # dropped as soon as it ends
    order = canceled_order(m)
    assert m.orders == {} and m._by_oid == {}
    m.on_ack(order, ack(10))  # a caller still holding it
    assert not m.on_update(update(10, "open"))
    assert m.orders == {} and m._by_oid == {} and m.active() == []
    assert m.on_fill(fill(1, 10, 0.5, cloid=None)) and m.positions["BTC"] == 0.5


def test_reconcile_after_pruning_cancels_no_known_order_and_books_no_fill_twice() -> None:
    venue = BookVenue()
    m, sink, clock = manager(retention_s=1.0, venue=venue)

    async def main() -> None:
        first = await m.sync({"BTC": Quote(100.0, 0.5, 100.1, 0.5)}, now_s=0.0)
        bid_cloid = next(c for c in first.placed if m.orders[c].is_buy)
        bid = m.orders[bid_cloid]
        # the bid fills and ends; its fill (and a second, late one) is known to the venue
        venue.book.pop(cast(int, bid.oid))
        filled = fill(1, cast(int, bid.oid), 0.5, cloid=bid_cloid, time_ms=5)
        venue.fills.append(filled)
        m.on_fill(filled)
        assert bid.phase == OrderPhase.FILLED
        clock.ms += 2_000
        assert m.prune() == 1 and m.order(bid_cloid) is None
        late = fill(2, cast(int, bid.oid), 0.0001, cloid=bid_cloid, time_ms=6)
        venue.fills.append(late)  # missed on the stream: imported by reconcile
        report = await m.reconcile(now_s=2.0)
        assert report.orphans_canceled == () and venue.canceled == []
        assert [f.tid for f in report.imported_fills] == [2]
        assert report.position_drift == () and not report.unresolved
        assert [o.cloid for o in m.active()] == [c for c in first.placed if c != bid_cloid]
        again = await m.reconcile(now_s=3.0)
        assert again.imported_fills == () and again.orphans_canceled == ()
        assert sink.fills() == [1, 2] and m.positions["BTC"] == pytest.approx(0.5001)
        # an order the venue still lists under a pruned cloid is an orphan, as an ended one is
        venue.book[99] = OpenOrder("BTC", 99, bid_cloid, True, 99.0, 0.1, 0.1, "Alo", False, 0)
        orphaned = await m.reconcile(now_s=4.0)
        assert [o.oid for o in orphaned.orphans_canceled] == [99] and venue.canceled == [99]

    asyncio.run(main())


def test_restored_ended_orders_are_pruned_after_the_retention() -> None:
    m, _, clock = manager(retention_s=10.0)
    ended = ManagedOrder(CLOID, "BTC", True, Version(100.0, 1.0, 10), OrderPhase.FILLED)
    ended.oids = [10]
    m.restore([ended], [fill(1, 10, 1.0)])
    assert m.order(10) is ended and m.positions["BTC"] == 1.0
    clock.ms += 10_000
    assert m.prune() == 1 and m.orders == {} and m.positions["BTC"] == 1.0


def test_a_bad_retention_is_refused() -> None:
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="ended_retention_s"):
            manager(retention_s=bad)
