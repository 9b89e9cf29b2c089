"""Venue answers for the order manager's tests: plain frozen data of agents.live.venues.base."""

from __future__ import annotations

from agents.live.order_state import ManagedOrder, OrderPhase, Version
from agents.live.venues import (
    CancelAck,
    Fill,
    OpenOrder,
    OrderAck,
    OrderState,
    OrderStatus,
    OrderUpdate,
)

CLOID = "0x" + "0a" * 16
OTHER = "0x" + "0b" * 16
STATES = {
    "open": OrderState.RESTING,
    "filled": OrderState.FILLED,
    "canceled": OrderState.CANCELED,
    "badAloPxRejected": OrderState.REJECTED,
    "mystery": OrderState.UNKNOWN,
}


def new_order(sz: float = 1.0, px: float = 100.0, is_buy: bool = True) -> ManagedOrder:
    return ManagedOrder(CLOID, "BTC", is_buy, Version(px, sz))


def order_in(phase: OrderPhase, oid: int = 10, sz: float = 1.0) -> ManagedOrder:
    """An order in ``phase`` the way it gets there (acked resting at ``oid`` first)."""
    order = new_order(sz)
    if phase == OrderPhase.PENDING_NEW:
        return order
    if phase == OrderPhase.UNKNOWN:
        order.on_ack(OrderAck(CLOID, OrderState.UNKNOWN, error="timed out"))
        return order
    order.on_ack(ack(oid))
    if phase == OrderPhase.PARTIALLY_FILLED:
        order.on_fill(fill(1, oid, sz / 4))
    elif phase == OrderPhase.PENDING_CANCEL:
        order.request_cancel()
    elif phase == OrderPhase.PENDING_REPLACE:
        order.request_replace(101.0, 2.0)
    assert order.phase == phase
    return order


def ack(oid: int | None, state: OrderState = OrderState.RESTING, cloid: str = CLOID) -> OrderAck:
    error = "rejected" if state == OrderState.REJECTED else None
    return OrderAck(cloid, state, oid=oid, error=error)


def update(
    oid: int | None,
    status: str = "open",
    sz: float = 1.0,
    orig_sz: float = 1.0,
    cloid: str | None = CLOID,
    px: float = 100.0,
    time_ms: int = 0,
) -> OrderUpdate:
    return OrderUpdate("BTC", oid, cloid, True, px, sz, orig_sz, status, STATES[status], time_ms)


def fill(
    tid: int,
    oid: int,
    sz: float,
    cloid: str | None = CLOID,
    px: float = 100.0,
    is_buy: bool = True,
    time_ms: int = 0,
) -> Fill:
    return Fill("BTC", oid, cloid, tid, is_buy, px, sz, 0.01, 0.0, 0.0, False, False, time_ms)


def status(oid: int | None, word: str = "open", sz: float = 1.0) -> OrderStatus:
    if oid is None:
        return OrderStatus(OrderState.UNKNOWN, "unknownOid", None, None)
    listed = OpenOrder("BTC", oid, CLOID, True, 100.0, sz, 1.0, "Alo", False, 0)
    return OrderStatus(STATES[word], word, listed, 0)


CANCELED = CancelAck(True)
CANCEL_FAILED = CancelAck(False, error="Order was never placed, already canceled, or filled.")
CANCEL_UNKNOWN = CancelAck(False, error="timed out", unknown=True)
