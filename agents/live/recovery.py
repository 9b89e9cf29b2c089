"""Recovery: the runner's state rebuilt from the journal's events, replayed in seq order.

Orders by cloid with their last known state (an intent to place or replace without an ack is
``UNKNOWN``: it may or may not have reached the venue, and recovery never forces it final),
fills by trade id, positions and cash per coin from the fills and funding payments (booked as
the paper exchange books them: a fill moves the position by its signed size and the cash by
``-(signed size x px) - fee``; a funding payment moves the cash by its ``usdc``), the last
risk state, the last nonce used and the operator's commands. docs/live.md ("The journal")
gives every rule.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeGuard

from agents.live.journal import Event, Journal, JournalCorruptError, Kind
from agents.live.order_state import SIZE_TOLERANCE
from agents.live.venues.base import OrderState

FINAL_STATES = frozenset({OrderState.FILLED, OrderState.CANCELED, OrderState.REJECTED})


@dataclass(slots=True)
class RecoveredOrder:
    """One order (one cloid) as the journal last knew it.

    ``pending`` is ``"cancel"`` or ``"replace"`` while such an intent awaits its outcome;
    ``oid`` is the order's current venue id (a modify under the same cloid gives a new one;
    the replaced ids are in ``superseded``); ``px`` and ``sz`` are the current version's price
    and size asked for (an update's ``orig_sz``, not what is left of it); ``filled_sz`` sums its
    journaled fills.
    """

    cloid: str
    coin: str | None
    is_buy: bool | None
    px: float | None
    sz: float | None
    state: OrderState
    oid: int | None = None
    superseded: set[int] = field(default_factory=set)
    filled_sz: float = 0.0
    filled_by_oid: dict[int, float] = field(default_factory=dict)
    """Journaled fills per venue id: the current version ends FILLED when its fills reach
    its ``sz``."""
    pending: str | None = None
    modify_in_flight: bool = False
    """A replace under this same cloid awaits its outcome (its cancel half is not final)."""
    replaced: tuple[float | None, float | None] | None = None
    """(px, sz) of the version a replace in flight under this cloid is replacing (back in
    ``px`` and ``sz`` when the venue rejects the replace)."""
    sent: bool = False
    error: str | None = None
    last_seq: int = 0

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


class WindowSample(NamedTuple):
    """One journaled decision as the kill switch's rolling window saw it."""

    venue_ms: int
    equity: float
    """Quote currency; NaN when the decision did not know it."""
    rejects: float
    """Venue rejects counted since the decision before it (0 in journals that predate it)."""
    market_index: float
    """The mean log mark of the perps; NaN when a mark was not known."""


def _window_sample(payload: dict[str, Any]) -> WindowSample | None:
    """The window's sample of a decision's payload (None without a venue time)."""
    venue_ms = payload.get("venue_time_ms")
    if not isinstance(venue_ms, int) or isinstance(venue_ms, bool):
        return None
    equity, rejects = payload.get("equity"), payload.get("rejects", 0)
    marks = payload.get("marks")
    logs = [
        math.log(m)
        for m in (marks.values() if isinstance(marks, dict) else ())
        if _number(m) and math.isfinite(m) and m > 0.0
    ]
    known = isinstance(marks, dict) and len(logs) == len(marks) > 0
    return WindowSample(
        venue_ms,
        float(equity) if _number(equity) else math.nan,
        float(rejects) if _number(rejects) and rejects > 0 else 0.0,
        math.fsum(logs) / len(logs) if known else math.nan,
    )


def _number(x: object) -> TypeGuard[int | float]:
    return isinstance(x, int | float) and not isinstance(x, bool)


@dataclass(slots=True)
class RecoveredState:
    """What the journal says, as of its event ``last_seq``. Amounts in quote currency."""

    orders: dict[str, RecoveredOrder] = field(default_factory=dict)
    fills: dict[int, Event] = field(default_factory=dict)
    positions: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    """Signed position per coin (hedge coins are their own coins)."""
    cash: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    """Cash per coin: ``-sum(signed size x px + fee)`` over fills plus funding received."""
    fees: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    funding: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    """Funding received (negative when paid) per coin."""
    closed_pnl: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    """The venue's realised PnL of the fills (``closed_pnl``), before fees, per coin."""
    risk_state: str | None = None
    risk_transition: Event | None = None
    last_nonce: int | None = None
    operator_commands: list[Event] = field(default_factory=list)
    last_decision: Event | None = None
    peak_equity: float | None = None
    """The highest equity of the decisions since the last operator reset (the kill switch's
    peak, which an operator's reset restarts; None: no decision with a known equity)."""
    window_path: list[WindowSample] = field(default_factory=list)
    """The decisions since the last operator reset as the kill switch's rolling window saw
    them: the window is refilled from its end after a restart."""
    last_reconcile: Event | None = None
    last_seq: int = 0
    last_time_ms: int | None = None

    def unknown_orders(self) -> list[RecoveredOrder]:
        """Orders whose outcome is unknown: the runner looks each up by cloid."""
        return [o for o in self.orders.values() if o.state is OrderState.UNKNOWN]

    def open_orders(self) -> list[RecoveredOrder]:
        """Orders not known to be final (resting, unknown, or with a pending intent)."""
        return [o for o in self.orders.values() if not o.final]

    def pnl(self, marks: dict[str, float]) -> float:
        """Cash plus positions at ``marks`` (one mark per coin with a position)."""
        return sum(self.cash.values()) + sum(q * marks[c] for c, q in self.positions.items() if q)


class Replay:
    """Recovery's replay fed rows as they are read (a watcher reads a running session's journal
    by seq): :attr:`state` is what the rows so far say."""

    def __init__(self, path: object) -> None:
        self.path = path
        self.state = RecoveredState()
        self._by_oid: dict[int, str] = {}
        self._open: dict[str, RecoveredOrder] = {}

    def apply(self, events: Iterable[Event]) -> None:
        """Replay ``events`` (the rows after :attr:`state`'s ``last_seq``, in seq order). A row
        holding a field recovery needs in the wrong shape raises :class:`JournalCorruptError`
        naming its seq."""
        state = self.state
        for event in events:
            try:
                _apply(state, self._by_oid, event)
            except (KeyError, TypeError, ValueError) as e:
                raise JournalCorruptError(
                    f"journal {self.path}: event seq {event.seq} ({event.kind.value}) cannot be "
                    f"replayed: {type(e).__name__}: {e}; the file was not changed"
                ) from e
            state.last_seq = event.seq
            state.last_time_ms = event.time_ms
            self._track(event)

    def open_orders(self) -> list[RecoveredOrder]:
        """:meth:`RecoveredState.open_orders` kept up to date row by row (no scan of every
        order the session ever had)."""
        return list(self._open.values())

    def _track(self, event: Event) -> None:
        p = event.payload
        oid, target = _oid(p), p.get("target") if event.kind is Kind.INTENT else None
        for key in (event.cloid, oid, target):
            cloid = self._by_oid.get(key) if isinstance(key, int) else key
            order = self.state.orders.get(cloid) if isinstance(cloid, str) else None
            if order is None:
                continue
            if order.final:
                self._open.pop(order.cloid, None)
            else:
                self._open[order.cloid] = order


def recover(journal: Journal) -> RecoveredState:
    """Replay every event of ``journal``. A row that cannot be read or holds a field recovery
    needs in the wrong shape raises :class:`JournalCorruptError` naming its seq."""
    replay = Replay(journal.path)
    replay.apply(journal.events())
    state = replay.state
    state.positions = dict(state.positions)
    state.cash = dict(state.cash)
    state.fees = dict(state.fees)
    state.funding = dict(state.funding)
    state.closed_pnl = dict(state.closed_pnl)
    return state


def _apply(state: RecoveredState, by_oid: dict[int, str], event: Event) -> None:
    p = event.payload
    nonce = p.get("nonce")
    if isinstance(nonce, int) and not isinstance(nonce, bool):
        state.last_nonce = nonce if state.last_nonce is None else max(state.last_nonce, nonce)
    order = _order_of(state, by_oid, event)
    match event.kind:
        case Kind.INTENT:
            _intent(state, by_oid, event)
        case Kind.SENT:
            if order is not None:
                order.sent = True
        case Kind.ACK:
            if order is not None:
                _ack(order, by_oid, p)
                _filled_up(order)
        case Kind.ORDER_UPDATE:
            if order is not None:
                _set_state(order, by_oid, OrderState(p["state"]), _oid(p))
                asked = p.get("orig_sz", p.get("sz"))  # the size asked for, not what rests
                if order.oid == _oid(p) and asked is not None:
                    order.sz = float(asked)
                _filled_up(order)
        case Kind.FILL:
            _fill(state, order, event)
        case Kind.FUNDING:
            state.cash[p["coin"]] += float(p["usdc"])
            state.funding[p["coin"]] += float(p["usdc"])
        case Kind.RISK_TRANSITION:
            state.risk_state = str(p["to"])
            state.risk_transition = event
            if p.get("reason") == "OPERATOR_RESET":
                state.peak_equity = None
                state.window_path.clear()
        case Kind.OPERATOR_COMMAND:
            state.operator_commands.append(event)
        case Kind.DECISION:
            state.last_decision = event
            equity = p.get("equity")
            if _number(equity):
                peak = -math.inf if state.peak_equity is None else state.peak_equity
                if math.isfinite(equity) and equity > peak:
                    state.peak_equity = float(equity)
            sample = _window_sample(p)
            if sample is not None:
                state.window_path.append(sample)
        case Kind.RECONCILE:
            state.last_reconcile = event
        case Kind.NOTE | Kind.ALERT:
            pass  # what an alert changed is in its risk_transition row
    if order is not None:
        order.last_seq = event.seq


def _oid(payload: dict[str, Any]) -> int | None:
    oid = payload.get("oid")
    if oid is None:
        return None
    if not isinstance(oid, int) or isinstance(oid, bool):
        raise TypeError(f"oid {oid!r} is not an integer")
    return oid


def _order_of(state: RecoveredState, by_oid: dict[int, str], event: Event) -> RecoveredOrder | None:
    if event.kind is Kind.INTENT:
        return None  # _intent finds or makes it
    cloid = event.cloid
    if cloid is None:
        oid = _oid(event.payload)
        cloid = by_oid.get(oid) if oid is not None else None
    return state.orders.get(cloid) if cloid is not None else None


def _intent(state: RecoveredState, by_oid: dict[int, str], event: Event) -> None:
    p = event.payload
    action = p["action"]
    target = p.get("target")
    target_cloid = by_oid.get(target) if isinstance(target, int) else target
    if action == "cancel":
        cloid = event.cloid if event.cloid is not None else target_cloid
        order = state.orders.get(cloid) if isinstance(cloid, str) else None
        if order is not None and not order.final:
            order.pending = "cancel"
            order.last_seq = event.seq
        return
    if event.cloid is None:  # the journal refuses to write such a row
        raise ValueError(f"an intent to {action} without a cloid")
    spec = p.get("order") or {}
    order = state.orders.get(event.cloid)
    if action == "replace" and order is not None and target_cloid == event.cloid:
        if not order.modify_in_flight:
            order.replaced = (order.px, order.sz)
        order.modify_in_flight = True
        order.pending = "replace"
    else:
        if action == "replace" and isinstance(target_cloid, str):
            old = state.orders.get(target_cloid)
            if old is not None and not old.final:
                old.pending = "replace"
        order = RecoveredOrder(event.cloid, None, None, None, None, OrderState.UNKNOWN)
        state.orders[event.cloid] = order
    order.state = OrderState.UNKNOWN
    order.coin = spec.get("coin", order.coin)
    order.is_buy = spec.get("is_buy", order.is_buy)
    order.px = float(spec["px"]) if spec.get("px") is not None else order.px
    order.sz = float(spec["sz"]) if spec.get("sz") is not None else order.sz
    order.last_seq = event.seq


def _ack(order: RecoveredOrder, by_oid: dict[int, str], p: dict[str, Any]) -> None:
    if "ok" in p:  # a cancel's answer
        if p.get("unknown"):
            return
        if p["ok"] and not order.final:
            order.state = OrderState.CANCELED
        order.pending = None
        order.error = p.get("error")
        return
    ack_state = OrderState(p["state"])
    order.error = p.get("error")
    if ack_state is OrderState.REJECTED and order.modify_in_flight and order.replaced is not None:
        # the replace failed; what became of the replaced version only orderStatus tells
        order.px, order.sz = order.replaced
        order.state = OrderState.UNKNOWN
        order.pending, order.modify_in_flight, order.replaced = None, False, None
        return
    _set_state(order, by_oid, ack_state, _oid(p))
    if ack_state is not OrderState.UNKNOWN:
        order.pending = None
        order.modify_in_flight = False
        order.replaced = None


def _set_state(
    order: RecoveredOrder, by_oid: dict[int, str], new: OrderState, oid: int | None
) -> None:
    """Move ``order`` to ``new`` as reported for venue id ``oid``: news of a superseded id is
    ignored, a final state is not undone by older news of the same id, and the cancel of the
    old id of a modify in flight is the modify's own cancel half."""
    if oid is not None:
        by_oid.setdefault(oid, order.cloid)
        if oid in order.superseded:
            return
        if order.modify_in_flight and oid == order.oid and new is OrderState.CANCELED:
            order.superseded.add(oid)
            return
        if order.oid is not None and oid != order.oid and order.modify_in_flight:
            order.superseded.add(order.oid)
            order.modify_in_flight, order.replaced = False, None
        elif order.final and oid == order.oid and new not in FINAL_STATES:
            return
        order.oid = oid
    elif order.final and new not in FINAL_STATES:
        return
    order.state = new
    if new in FINAL_STATES:
        order.pending = None
        order.modify_in_flight = False
        order.replaced = None


def _fill(state: RecoveredState, order: RecoveredOrder | None, event: Event) -> None:
    p = event.payload
    if event.tid is None:  # the journal refuses to write such a row
        raise ValueError("a fill without a tid")
    if event.tid in state.fills:
        return
    state.fills[event.tid] = event
    coin = p["coin"]
    sz, px, fee = float(p["sz"]), float(p["px"]), float(p["fee"])
    signed = sz if p["is_buy"] else -sz
    state.positions[coin] += signed
    state.cash[coin] -= signed * px + fee
    state.fees[coin] += fee
    state.closed_pnl[coin] += float(p.get("closed_pnl", 0.0))
    if order is not None:
        order.filled_sz += sz
        oid = _oid(p)
        if oid is not None:
            order.filled_by_oid[oid] = order.filled_by_oid.get(oid, 0.0) + sz
        _filled_up(order)


def _filled_up(order: RecoveredOrder) -> None:
    """End ``order`` FILLED when the fills of its current version reach its size (no order
    update need say so), unless a replace of it is in flight (its ack decides)."""
    if order.final or order.modify_in_flight or order.oid is None or order.sz is None:
        return
    if order.filled_by_oid.get(order.oid, 0.0) >= order.sz * (1.0 - SIZE_TOLERANCE):
        order.state = OrderState.FILLED
        order.pending = None
