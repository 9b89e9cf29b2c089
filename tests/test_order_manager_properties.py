"""Properties of the order manager over shuffled and duplicated venue messages (hypothesis,
derandomized): the position from its fills is the sum of the unique fills; no order is both
ended and active, and an ended one never comes back; the outcome does not depend on the order
of arrival; an UNKNOWN order leaves UNKNOWN only on a venue answer about its cloid."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, cast

from hypothesis import given, settings
from hypothesis import strategies as st
from order_events import fill, update

from agents.live.order_manager import OrderManager
from agents.live.order_state import ManagedOrder, OrderPhase, Version
from agents.live.venues import OrderAck, OrderState, OrderStatus, Venue

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True)


def manager() -> OrderManager:
    """A manager fed directly (the venue is never called by handle/on_ack)."""
    return OrderManager(cast(Venue, None), lambda *args, **kwargs: None, seed=0)


def cloid_of(i: int) -> str:
    return f"0x{i + 1:032x}"


@dataclass
class Truth:
    """One order's messages and the phase they end in, in any order of arrival."""

    order: ManagedOrder
    messages: list[Any]
    final: OrderPhase | None  # None: still on the book
    fills: list[Any]


@st.composite
def lifecycles(draw: st.DrawFn, i: int) -> Truth:
    cloid = cloid_of(i)
    is_buy = draw(st.booleans())
    oid = 1000 * (i + 1)
    size = 1.0
    order = ManagedOrder(cloid, "BTC", is_buy, Version(100.0, size))
    messages: list[Any] = [("ack", OrderAck(cloid, OrderState.RESTING, oid=oid))]
    messages.append(update_of(cloid, oid, "open", size, is_buy))
    tid = 100 * (i + 1)
    fills: list[Any] = []
    replace = draw(st.booleans())
    if replace:  # replaced after the ack: the replace's messages may come in any order
        old_fills = draw(st.integers(0, 2))  # partial fills of the old version on its way out
        for _ in range(old_fills):
            tid += 1
            fills.append(fill(tid, oid, 0.25, cloid=cloid, is_buy=is_buy))
        order.on_ack(OrderAck(cloid, OrderState.RESTING, oid=oid))
        order.request_replace(101.0, 2.0)
        messages = [update_of(cloid, oid, "canceled", size, is_buy)]
        oid, size = oid + 1, 2.0
        messages.append(("ack", OrderAck(cloid, OrderState.RESTING, oid=oid)))
        messages.append(update_of(cloid, oid, "open", size, is_buy))
    end = draw(st.sampled_from(["open", "filled", "canceled"]))
    parts = 4 if end == "filled" else draw(st.integers(0, 3))
    for _ in range(parts):
        tid += 1
        fills.append(fill(tid, oid, size / 4, cloid=cloid, is_buy=is_buy))
    final: OrderPhase | None = None
    if end == "filled":
        messages.append(update_of(cloid, oid, "filled", 0.0, is_buy, size))
        final = OrderPhase.FILLED
    elif end == "canceled":
        messages.append(update_of(cloid, oid, "canceled", size, is_buy))
        final = OrderPhase.CANCELED
    return Truth(order, messages + fills, final, fills)


def update_of(
    cloid: str, oid: int, word: str, sz: float, is_buy: bool, orig_sz: float | None = None
) -> Any:
    u = update(oid, word, sz=sz, orig_sz=orig_sz if orig_sz is not None else sz, cloid=cloid)
    return dataclasses.replace(u, is_buy=is_buy)


def deliver(m: OrderManager, message: Any) -> None:
    if isinstance(message, tuple):
        m.on_ack(m.orders[message[1].cloid], message[1])
    else:
        m.handle(message)


@st.composite
def sessions(draw: st.DrawFn) -> tuple[list[Truth], list[Any]]:
    count = draw(st.integers(1, 3))
    truths = [draw(lifecycles(i)) for i in range(count)]
    messages = [msg for truth in truths for msg in truth.messages]
    duplicated = messages + draw(st.lists(st.sampled_from(messages), max_size=len(messages)))
    return truths, draw(st.permutations(duplicated))


@SETTINGS
@given(sessions())
def test_any_arrival_order_gives_the_same_fills_positions_and_outcome(
    session: tuple[list[Truth], list[Any]],
) -> None:
    truths, messages = session
    m = manager()
    m.restore([t.order for t in truths], [])
    ended: set[str] = set()
    for message in messages:
        deliver(m, message)
        active = {o.cloid for o in m.active()}
        for order in m.orders.values():
            assert order.final != (order.cloid in active)  # never both ended and active
            if order.final:
                ended.add(order.cloid)
        assert ended.isdisjoint(active)  # an ended order never comes back
    unique = {f.tid: f for t in truths for f in t.fills}
    expected = sum(f.sz if f.is_buy else -f.sz for f in unique.values())
    assert abs(m.positions.get("BTC", 0.0) - expected) < 1e-12
    assert set(m.fills) == set(unique)
    for truth in truths:
        order = m.orders[truth.order.cloid]
        assert abs(order.filled_sz - sum(f.sz for f in truth.fills)) < 1e-12
        if truth.final is None:
            assert order.phase in (OrderPhase.RESTING, OrderPhase.PARTIALLY_FILLED)
        else:
            assert order.phase == truth.final


@st.composite
def noise_then_answers(draw: st.DrawFn) -> list[tuple[bool, Any]]:
    """Messages that are no answer about the UNKNOWN order (False), and maybe some that are."""
    others: list[tuple[bool, Any]] = []
    for k in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["other update", "other fill", "unknown ack", "unknownOid"]))
        word = draw(st.sampled_from(["open", "filled", "canceled", "badAloPxRejected"]))
        if kind == "other update":
            others.append((False, update(500 + k, word, cloid=cloid_of(7))))
        elif kind == "other fill":
            others.append((False, fill(900 + k, 500 + k, 0.5, cloid=None)))
        elif kind == "unknown ack":
            others.append((False, ("ack", OrderAck(cloid_of(0), OrderState.UNKNOWN))))
        else:
            others.append(
                (False, ("status", OrderStatus(OrderState.UNKNOWN, "unknownOid", None, None)))
            )
    answers: list[tuple[bool, Any]] = []
    if draw(st.booleans()):
        word = draw(st.sampled_from(["open", "filled", "canceled", "badAloPxRejected"]))
        answers.append((True, update(77, word, cloid=cloid_of(0))))
    if draw(st.booleans()):
        answers.append((True, fill(999, 77, draw(st.sampled_from([0.5, 1.0])), cloid=cloid_of(0))))
    return draw(st.permutations(others + answers))


@SETTINGS
@given(noise_then_answers())
def test_unknown_leaves_unknown_only_on_a_venue_answer_about_its_cloid(
    messages: list[tuple[bool, Any]],
) -> None:
    m = manager()
    order = ManagedOrder(cloid_of(0), "BTC", True, Version(100.0, 1.0))
    m.restore([order], [])
    m.on_ack(order, OrderAck(order.cloid, OrderState.UNKNOWN, error="timed out"))
    assert order.phase == OrderPhase.UNKNOWN
    answered = False
    for about_it, message in messages:
        if isinstance(message, tuple) and message[0] == "status":
            m.on_status(order.cloid, message[1])
        else:
            deliver(m, message)
        answered = answered or about_it
        if not answered:
            assert order.phase == OrderPhase.UNKNOWN
    if not answered:
        assert order.phase == OrderPhase.UNKNOWN and order.cloid in {o.cloid for o in m.active()}
