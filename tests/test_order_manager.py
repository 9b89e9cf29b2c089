"""The order manager fed venue messages directly (plain data): fills once by tid and recorded
before they are booked, fills of orders it does not know, recovery, quote validation."""

from __future__ import annotations

from typing import Any, cast

import pytest
from order_events import CLOID, OTHER, ack, fill, update

from agents.live.order_manager import OrderManager, Quote
from agents.live.order_state import ManagedOrder, OrderPhase, Version
from agents.live.venues import Venue


class Recorder:
    """A sink that notes, for each fill it records, whether the manager had booked it yet."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str | None, int | None]] = []
        self.booked_before_record: list[bool] = []
        self.manager: OrderManager | None = None

    def __call__(
        self, kind: str, payload: Any, cloid: str | None = None, tid: int | None = None
    ) -> None:
        self.rows.append((kind, cloid, tid))
        if kind == "fill" and self.manager is not None:
            self.booked_before_record.append(tid in self.manager.fills)


def manager_with(recorder: Recorder, **options: Any) -> OrderManager:
    m = OrderManager(cast(Venue, None), recorder, seed=1, **options)
    recorder.manager = m
    return m


def test_fills_are_recorded_before_booking_and_booked_once_by_tid() -> None:
    recorder = Recorder()
    m = manager_with(recorder)
    order = ManagedOrder(CLOID, "BTC", True, Version(100.0, 1.0))
    m.restore([order], [])
    m.on_ack(order, ack(10))
    first = fill(1, 10, 0.5, px=100.0)
    assert m.on_fill(first) and not m.on_fill(first)
    assert m.on_fill(fill(2, 10, 0.25, px=101.0, is_buy=True))
    assert [r for r in recorder.rows if r[0] == "fill"] == [("fill", CLOID, 1), ("fill", CLOID, 2)]
    assert recorder.booked_before_record == [False, False]
    assert m.positions["BTC"] == 0.75
    assert m.cash == pytest.approx(-(0.5 * 100.0 + 0.25 * 101.0) - 2 * 0.01)
    assert order.phase == OrderPhase.PARTIALLY_FILLED


def test_a_fill_of_an_order_it_does_not_know_still_moves_the_position() -> None:
    m = manager_with(Recorder(), positions={"BTC": 2.0})
    m.handle(fill(5, 777, 0.5, cloid=None, is_buy=False))  # e.g. a hedge unwind, an orphan
    assert m.positions["BTC"] == 1.5 and m.orders == {}


def test_an_order_found_by_oid_when_the_fill_has_no_cloid() -> None:
    m = manager_with(Recorder())
    order = ManagedOrder(CLOID, "BTC", True, Version(100.0, 1.0))
    m.restore([order], [])
    m.on_ack(order, ack(10))
    m.handle(fill(3, 10, 1.0, cloid=None))
    assert order.phase == OrderPhase.FILLED and m.active() == []


def test_updates_of_other_orders_are_recorded_and_change_nothing() -> None:
    recorder = Recorder()
    m = manager_with(recorder)
    assert not m.on_update(update(99, "canceled", cloid=OTHER))
    assert recorder.rows == [("order_update", OTHER, None)]


def test_restore_books_recovered_fills_without_recording_them_again() -> None:
    recorder = Recorder()
    m = manager_with(recorder)
    order = ManagedOrder(CLOID.upper().replace("0X", "0x"), "BTC", True, Version(100.0, 1.0))
    order.phase, order.version.oid, order.oids = OrderPhase.RESTING, 10, [10]
    m.restore([order], [fill(1, 10, 0.25)])
    assert recorder.rows == []
    assert m.order(CLOID) is order and m.order(10) is order
    assert order.phase == OrderPhase.PARTIALLY_FILLED and m.positions["BTC"] == 0.25
    assert not m.on_fill(fill(1, 10, 0.25))  # already booked


def test_cloids_are_fresh_and_seeded() -> None:
    a, b = manager_with(Recorder()), manager_with(Recorder())
    cloids = [a.new_cloid() for _ in range(100)]
    assert cloids == [b.new_cloid() for _ in range(100)]
    assert len(set(cloids)) == 100
    assert all(len(c) == 34 and c.startswith("0x") and int(c, 16) >= 0 for c in cloids)


def test_a_quote_with_a_size_and_a_bad_price_is_refused() -> None:
    assert Quote(100.0, 0.0, float("nan"), 0.0).side(True) is None  # no order: price unused
    with pytest.raises(ValueError, match="quote price"):
        Quote(float("nan"), 1.0, 101.0, 1.0).side(True)


def test_a_restarted_manager_never_issues_a_journaled_cloid() -> None:
    """A seeded manager's cloids follow its seed; a restart (a new process, the same seed)
    must not issue the cloids of the process before it: a reused cloid merged two orders'
    fills in recovery and made the restart cancel its own order as an orphan."""
    first = manager_with(Recorder())
    first.restore([], [], restart=7)
    issued = [first.new_cloid() for _ in range(5)]
    assert len(set(issued)) == 5

    same_start = manager_with(Recorder())  # the same seed and restart: the same stream...
    orders = [ManagedOrder(c, "BTC", True, Version(100.0, 1.0)) for c in issued]
    same_start.restore(orders, [], restart=7)
    assert same_start.new_cloid() not in issued  # ...but none of the restored cloids

    later = manager_with(Recorder())  # a later start: another stream
    later.restore([], [], restart=8)
    assert not set(issued) & {later.new_cloid() for _ in range(5)}
    again = manager_with(Recorder())
    again.restore([], [], restart=8)
    assert again.new_cloid() == manager_with_restart(8)  # seeded: reproducible


def manager_with_restart(restart: int) -> str:
    m = manager_with(Recorder())
    m.restore([], [], restart=restart)
    return m.new_cloid()


def test_missed_fills_alone_are_repaired_not_out_of_step() -> None:
    from agents.live.order_manager import PositionDrift, ReconcileReport
    from agents.live.venues.base import OpenOrder

    imported = ReconcileReport(imported_fills=(fill(1, 10, 0.5),))
    assert imported.drift and not imported.out_of_step
    orphan = OpenOrder("BTC", 11, OTHER, True, 100.0, 1.0, 1.0, "Alo", False, 0)
    assert ReconcileReport(orphans_canceled=(orphan,)).out_of_step
    assert ReconcileReport(position_drift=(PositionDrift("BTC", 1.0, 0.5),)).out_of_step
    assert not ReconcileReport().drift and not ReconcileReport().out_of_step
