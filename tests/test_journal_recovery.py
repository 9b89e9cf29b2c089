"""Recovery from the journal: orders by cloid (an intent without an ack stays UNKNOWN, final
states are not undone by stale news, a modify under the same cloid moves to its new oid),
fills by tid, positions and cash as the paper exchange books them (checked against the paper
venue's kernel after a journaled session), the last risk state, nonce and operator commands."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from agents.live.journal import Journal, JournalCorruptError, Kind
from agents.live.recovery import RecoveredState, recover
from agents.live.venues import wire
from agents.live.venues.base import OrderState
from mmgym.exchange import PaperVenue
from mmgym.scenarios import make_params

A = "0x" + "a1" * 16
B = "0x" + "b2" * 16
Row = tuple[Kind, dict[str, Any], str | None]


def _order(cloid: str, is_buy: bool = True, px: float = 99.0, sz: float = 0.5) -> dict[str, Any]:
    return {"coin": "BTC", "is_buy": is_buy, "px": px, "sz": sz, "cloid": cloid, "tif": "Alo"}


def _update(oid: int, status: str, sz: float = 0.5) -> dict[str, Any]:
    return {"coin": "BTC", "oid": oid, "is_buy": True, "px": 99.0, "sz": sz, "orig_sz": 0.5,
            "status": status, "state": wire.order_state(status).value, "time_ms": 1}  # fmt: skip


def _replay(tmp_path: Path, rows: Sequence[Row]) -> RecoveredState:
    with Journal.open(tmp_path / "j.sqlite") as journal:
        for kind, payload, cloid in rows:
            journal.append(kind, payload, cloid)
        return recover(journal)


def test_an_intent_without_an_ack_is_unknown_never_final(tmp_path: Path) -> None:
    state = _replay(
        tmp_path,
        [
            (Kind.INTENT, {"action": "place", "order": _order(A)}, None),
            (Kind.INTENT, {"action": "place", "order": _order(B, is_buy=False)}, None),
            (Kind.SENT, {"nonce": 17}, B),
            (Kind.ACK, {"state": "unknown", "oid": None, "error": "timed out"}, B),
        ],
    )
    assert {o.cloid for o in state.unknown_orders()} == {A, B}
    assert (state.orders[A].sent, state.orders[B].sent) == (False, True)
    assert (state.orders[A].coin, state.orders[A].px, state.orders[A].sz) == ("BTC", 99.0, 0.5)
    assert state.last_nonce == 17


def test_acks_and_updates_in_any_order_end_in_the_final_state(tmp_path: Path) -> None:
    state = _replay(
        tmp_path,
        [
            (Kind.INTENT, {"action": "place", "order": _order(A)}, None),
            (Kind.ORDER_UPDATE, _update(7, "filled", 0.0), A),  # the stream beat the POST
            (Kind.ACK, {"state": "resting", "oid": 7}, A),  # stale: the order already filled
            (Kind.INTENT, {"action": "place", "order": _order(B)}, None),
            (Kind.ACK, {"state": "resting", "oid": 8}, B),
            (Kind.ORDER_UPDATE, _update(8, "badAloPxRejected"), B),
            (Kind.ORDER_UPDATE, _update(8, "open"), B),  # out of order: stays rejected
        ],
    )
    assert (state.orders[A].state, state.orders[A].oid) == (OrderState.FILLED, 7)
    assert state.orders[B].state is OrderState.REJECTED
    assert state.open_orders() == []


@pytest.mark.parametrize("cancel_first", [True, False])
def test_a_modify_under_the_same_cloid_moves_to_its_new_oid(
    tmp_path: Path, cancel_first: bool
) -> None:
    old_cancel: Row = (Kind.ORDER_UPDATE, _update(7, "canceled"), A)
    new_open: Row = (Kind.ORDER_UPDATE, _update(9, "open"), A)
    rows: list[Row] = [
        (Kind.INTENT, {"action": "place", "order": _order(A)}, None),
        (Kind.ACK, {"state": "resting", "oid": 7}, A),
        (Kind.INTENT, {"action": "replace", "target": 7, "order": _order(A, px=98.0)}, None),
    ]
    middle = _replay(tmp_path / "m", [*rows, old_cancel]) if cancel_first else None
    rows += [old_cancel, new_open] if cancel_first else [new_open, old_cancel]
    rows.append((Kind.ACK, {"state": "resting", "oid": 9}, A))
    state = _replay(tmp_path, rows)
    order = state.orders[A]
    assert (order.state, order.oid, order.superseded, order.px) == (
        OrderState.RESTING, 9, {7}, 98.0,
    )  # fmt: skip
    assert order.pending is None
    if middle is not None:  # the cancel half alone is not the order's end
        assert (middle.orders[A].state, middle.orders[A].pending) == (OrderState.UNKNOWN, "replace")


def test_a_replace_by_a_new_cloid_ends_the_old_one(tmp_path: Path) -> None:
    state = _replay(
        tmp_path,
        [
            (Kind.INTENT, {"action": "place", "order": _order(A)}, None),
            (Kind.ACK, {"state": "resting", "oid": 7}, A),
            (Kind.INTENT, {"action": "replace", "target": A, "order": _order(B)}, None),
            (Kind.ORDER_UPDATE, {**_update(7, "canceled"), "cloid": A}, None),
        ],
    )
    assert state.orders[A].state is OrderState.CANCELED
    assert (state.orders[B].state, state.orders[B].pending) == (OrderState.UNKNOWN, None)


def test_cancels_pending_confirmed_and_racing_a_fill(tmp_path: Path) -> None:
    c = "0x" + "c3" * 16
    rows: list[Row] = [
        (Kind.INTENT, {"action": "place", "order": _order(cloid)}, None) for cloid in (A, B, c)
    ]
    rows += [(Kind.ACK, {"state": "resting", "oid": oid}, cloid) for oid, cloid in
             ((1, A), (2, B), (3, c))]  # fmt: skip
    rows += [
        (Kind.INTENT, {"action": "cancel", "target": 1}, A),
        (Kind.ACK, {"ok": False, "unknown": True, "error": None}, A),
        (Kind.INTENT, {"action": "cancel", "target": 2}, B),
        (Kind.ACK, {"ok": True, "unknown": False, "error": None}, B),
        (Kind.INTENT, {"action": "cancel", "target": 3}, c),
        (Kind.ORDER_UPDATE, _update(3, "filled", 0.0), c),
        (Kind.ACK, {"ok": False, "unknown": False, "error": "already filled"}, c),
    ]
    state = _replay(tmp_path, rows)
    assert (state.orders[A].state, state.orders[A].pending) == (OrderState.RESTING, "cancel")
    assert (state.orders[B].state, state.orders[B].pending) == (OrderState.CANCELED, None)
    assert (state.orders[c].state, state.orders[c].pending) == (OrderState.FILLED, None)


def _fill_row(tid: int, oid: int, sz: float, cloid: str = A) -> Row:
    payload = {"coin": "BTC", "is_buy": True, "px": 99.0, "sz": sz, "fee": 0.0, "oid": oid}
    return (Kind.FILL, {**payload, "tid": tid}, cloid)


def test_fills_that_reach_the_current_versions_size_end_the_order(tmp_path: Path) -> None:
    """No order update need say "filled" (the paper exchange's stream does not)."""
    placed: list[Row] = [
        (Kind.INTENT, {"action": "place", "order": _order(A, sz=0.5)}, None),
        (Kind.ACK, {"state": "resting", "oid": 7}, A),
    ]
    part = _replay(tmp_path / "part", [*placed, _fill_row(1, 7, 0.2)])
    assert (part.orders[A].state, part.orders[A].filled_sz) == (OrderState.RESTING, 0.2)
    full = _replay(tmp_path / "full", [*placed, _fill_row(1, 7, 0.2), _fill_row(2, 7, 0.3)])
    assert full.orders[A].state is OrderState.FILLED
    # a replaced version's fills do not count towards the new version's size
    modified: list[Row] = [
        *placed,
        _fill_row(1, 7, 0.3),
        (Kind.INTENT, {"action": "replace", "target": 7, "order": _order(A, sz=0.4)}, None),
        (Kind.ACK, {"state": "resting", "oid": 9}, A),
        _fill_row(2, 9, 0.2),
    ]
    state = _replay(tmp_path / "modified", modified)
    assert (state.orders[A].state, state.orders[A].oid) == (OrderState.RESTING, 9)
    state = _replay(tmp_path / "done", [*modified, _fill_row(3, 9, 0.2)])
    assert state.orders[A].state is OrderState.FILLED


def test_a_rejected_replace_leaves_the_order_unknown_at_its_old_price(tmp_path: Path) -> None:
    """The old version may still rest, or have filled: only orderStatus tells."""
    rows: list[Row] = [
        (Kind.INTENT, {"action": "place", "order": _order(A, px=99.0, sz=0.5)}, None),
        (Kind.ACK, {"state": "resting", "oid": 7}, A),
        (Kind.INTENT, {"action": "replace", "target": 7, "order": _order(A, px=98.0)}, None),
        (Kind.ACK, {"state": "rejected", "error": "Cannot modify canceled or filled order"}, A),
    ]
    state = _replay(tmp_path / "a", rows)
    order = state.orders[A]
    assert (order.state, order.oid, order.px, order.pending) == (OrderState.UNKNOWN, 7, 99.0, None)
    resting = _replay(tmp_path / "b", [*rows, (Kind.ORDER_UPDATE, _update(7, "open"), A)])
    assert (resting.orders[A].state, resting.orders[A].px) == (OrderState.RESTING, 99.0)


def test_positions_and_cash_from_fills_and_funding_closed_form(tmp_path: Path) -> None:
    fills = [  # (tid, is_buy, px, sz, fee)
        (1, True, 100.0, 2.0, 0.02),
        (2, False, 101.0, 0.5, 0.005),
        (3, True, 99.0, 1.0, 0.01),
    ]
    with Journal.open(tmp_path / "j.sqlite") as journal:
        for tid, is_buy, px, sz, fee in fills:
            payload = {"coin": "BTC", "is_buy": is_buy, "px": px, "sz": sz, "fee": fee,
                       "oid": 5, "closed_pnl": 0.5 if not is_buy else 0.0}  # fmt: skip
            assert journal.append(Kind.FILL, payload, tid=tid) == tid
        assert journal.append(Kind.FILL, {**payload, "sz": 50.0}, tid=3) is None
        journal.append(Kind.FUNDING, {"coin": "BTC", "usdc": -0.25, "time_ms": 60_000})
        journal.append(Kind.FUNDING, {"coin": "ETH", "usdc": 0.1, "time_ms": 60_000})
        state = recover(journal)
    assert sorted(state.fills) == [1, 2, 3]
    assert state.positions == {"BTC": 2.5}
    cash = -(2.0 * 100.0 + 0.02) + (0.5 * 101.0 - 0.005) - (1.0 * 99.0 + 0.01) - 0.25
    assert state.cash == pytest.approx({"BTC": cash, "ETH": 0.1}, rel=1e-15)
    assert state.fees == pytest.approx({"BTC": 0.035}, rel=1e-15)
    assert (state.funding, state.closed_pnl) == ({"BTC": -0.25, "ETH": 0.1}, {"BTC": 0.5})
    assert state.pnl({"BTC": 100.0}) == pytest.approx(cash + 0.1 + 2.5 * 100.0, rel=1e-15)


def test_risk_state_nonce_commands_and_decisions(tmp_path: Path) -> None:
    state = _replay(
        tmp_path,
        [
            (Kind.RISK_TRANSITION, {"from": "NORMAL", "to": "REDUCING"}, None),
            (Kind.OPERATOR_COMMAND, {"command": "halt"}, None),
            (Kind.SENT, {"nonce": 1_000}, A),
            (Kind.RISK_TRANSITION, {"from": "REDUCING", "to": "HALTED"}, None),
            (Kind.DECISION, {"step": 1, "nonce": 999}, None),
            (Kind.OPERATOR_COMMAND, {"command": "resume"}, None),
            (Kind.RECONCILE, {"drift": False}, None),
            (Kind.NOTE, {"text": "end"}, None),
        ],
    )
    assert state.risk_state == "HALTED"
    assert state.risk_transition is not None and state.risk_transition.seq == 4
    assert [e.payload["command"] for e in state.operator_commands] == ["halt", "resume"]
    assert state.last_nonce == 1_000
    assert state.last_decision is not None and state.last_decision.payload["step"] == 1
    assert state.last_reconcile is not None and state.last_seq == 8


def test_an_unreplayable_row_is_named_by_its_seq(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "j.sqlite") as journal:
        journal.append(Kind.INTENT, {"action": "place", "order": _order(A)})
        journal.append(Kind.ACK, {"state": "half-resting", "oid": 7}, A)
        with pytest.raises(JournalCorruptError, match=r"seq 2 \(ack\).*half-resting"):
            recover(journal)
        assert journal.last_seq() == 2
    with sqlite3.connect(tmp_path / "j.sqlite") as db:  # rows the journal would not write
        db.execute('UPDATE events SET payload = \'{"state": "resting"}\' WHERE seq = 2')
        db.execute(
            "INSERT INTO events (time_ms, kind, payload) VALUES (1, 'fill', "
            '\'{"coin": "BTC", "is_buy": true, "px": 1, "sz": 1, "fee": 0}\')'
        )
    with (
        Journal.open(tmp_path / "j.sqlite") as journal,
        pytest.raises(JournalCorruptError, match=r"seq 3 \(fill\).*without a tid"),
    ):
        recover(journal)


def _wire_order(cloid: str, is_buy: bool, ticks: int, size: float, tick: float) -> dict[str, Any]:
    decimals = max(0, -math.floor(math.log10(tick) + 1e-9))
    return {"a": 0, "b": is_buy, "p": f"{ticks * tick:.{decimals}f}", "s": f"{size:.2f}",
            "r": False, "t": {"limit": {"tif": "Alo"}}, "c": cloid}  # fmt: skip


def _ok(statuses: list[Any]) -> dict[str, Any]:
    return {"status": "ok", "response": {"type": "order", "data": {"statuses": statuses}}}


def _journal_outbox(venue: PaperVenue, journal: Journal, seen: dict[str, int]) -> None:
    """Journal the venue's stream messages as the adapter parses them, then drop them."""
    for message in venue.outbox:
        if message.channel == "orderUpdates":
            for update in wire.parse_order_updates(message.data):
                journal.append(Kind.ORDER_UPDATE, update)
        elif message.channel == "userFills":
            for fill in wire.parse_user_fills(message.data):
                seen["fills"] += journal.append(Kind.FILL, fill) is not None
        elif message.channel == "userFundings":
            for payment in wire.parse_user_fundings(message.data):
                seen["funding"] += journal.append(Kind.FUNDING, payment) is not None
    venue.outbox.clear()


def test_a_journaled_paper_session_recovers_the_venues_books(tmp_path: Path) -> None:
    """Orders placed, modified (same cloid) and canceled on the paper venue, every intent, ack,
    order update, fill and funding payment journaled: the recovered position and cash equal the
    kernel's (to 1e-9 relative: the wire prints floats exactly, the prices are decimal ticks),
    and the recovered resting orders are the venue's."""
    params = make_params("calm", episode_seconds=3600.0, funding_interval_seconds=60.0)
    venue = PaperVenue(params, 3, ["BTC"], "0x" + "ab" * 20, epoch_ms=0)
    tick = params.tick_size
    seen = {"fills": 0, "funding": 0, "modified": 0}
    counter = iter(range(1, 10**6))
    with Journal.open(tmp_path / "j.sqlite", synchronous="NORMAL") as journal:
        for t in range(240):
            best_bid, best_ask = venue.best_ticks(0)
            for is_buy, ticks in ((True, best_bid - t % 2), (False, best_ask + t % 3 // 2)):
                size = 0.3 + 0.1 * ((t + is_buy) % 4)
                resting = venue.book.resting_order(0, is_buy)
                if resting is not None and t % 3 == 0:  # modify, same cloid
                    assert resting.cloid is not None
                    order = _wire_order(resting.cloid, is_buy, ticks, size, tick)
                    intent = {"action": "replace", "target": resting.oid,
                              "order": {"cloid": resting.cloid, "coin": "BTC", "is_buy": is_buy,
                                        "px": float(order["p"]), "sz": size}}  # fmt: skip
                    journal.append(Kind.INTENT, intent)
                    status = venue.modify(resting.oid, order)
                    seen["modified"] += "resting" in status
                    (ack,) = wire.parse_order_answer(_ok([status]), [resting.cloid])
                    journal.append(Kind.ACK, ack)
                    _journal_outbox(venue, journal, seen)
                    continue
                if resting is not None:
                    assert resting.cloid is not None
                    journal.append(Kind.INTENT, {"action": "cancel", "target": resting.oid},
                                   resting.cloid)  # fmt: skip
                    answer = venue.cancel(0, resting.oid)
                    journal.append(Kind.ACK, wire.parse_cancel_answer(_ok([answer])),
                                   resting.cloid)  # fmt: skip
                cloid = f"0x{next(counter):032x}"
                order = _wire_order(cloid, is_buy, ticks, size, tick)
                journal.append(Kind.INTENT, {"action": "place", "order": {
                    "cloid": cloid, "coin": "BTC", "is_buy": is_buy, "px": float(order["p"]),
                    "sz": size}})  # fmt: skip
                (ack,) = wire.parse_order_answer(_ok([venue.place(order)]), [cloid])
                journal.append(Kind.ACK, ack)
                _journal_outbox(venue, journal, seen)
            venue.advance(1)
            _journal_outbox(venue, journal, seen)
        state = recover(journal)
    assert seen["fills"] >= 20 and seen["funding"] >= 2 and seen["modified"] >= 20, seen
    a = venue.assets[0]
    assert state.positions["BTC"] == pytest.approx(float(a["inventory"]), rel=1e-9, abs=1e-9)
    assert state.cash["BTC"] == pytest.approx(float(a["cash"]), rel=1e-9, abs=1e-9)
    assert len(state.fills) == len(venue.fills)
    recovered = {o.cloid for o in state.orders.values() if o.state is OrderState.RESTING}
    assert recovered == {o.cloid for o in venue.book.open_orders()}
    assert state.unknown_orders() == []
    for o in venue.book.open_orders():
        assert o.cloid is not None and state.orders[o.cloid].oid == o.oid


def test_the_peak_equity_is_the_highest_since_the_last_operator_reset(tmp_path: Path) -> None:
    """The kill switch's peak restarts at an operator's reset, and recovery's with it."""
    with Journal.open(tmp_path / "j.db") as journal:
        for equity in (100.0, 120.0, None, 110.0):
            journal.append(Kind.DECISION, {"equity": equity})
        assert recover(journal).peak_equity == 120.0
        journal.append(
            Kind.RISK_TRANSITION, {"from": "HALTED", "to": "ACTIVE", "reason": "OPERATOR_RESET"}
        )
        assert recover(journal).peak_equity is None
        for equity in (90.0, 95.0, 93.0):
            journal.append(Kind.DECISION, {"equity": equity})
        assert recover(journal).peak_equity == 95.0
