"""The order state machine (agents/live/order_state.py): one test per transition and per race,
fed with the venue's answers as plain data."""

from __future__ import annotations

import pytest
from order_events import (
    CANCEL_FAILED,
    CANCEL_UNKNOWN,
    CANCELED,
    CLOID,
    ack,
    fill,
    new_order,
    order_in,
    status,
    update,
)

from agents.live.order_state import FINAL, OrderPhase
from agents.live.venues import OrderAck, OrderState

P = OrderPhase

# --- transitions -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "phase"),
    [
        (ack(10), P.RESTING),
        (ack(10, OrderState.FILLED), P.FILLED),
        (ack(None, OrderState.REJECTED), P.REJECTED),
        (OrderAck(CLOID, OrderState.UNKNOWN, error="timed out"), P.UNKNOWN),
    ],
)
def test_pending_new_moves_on_its_ack(answer: OrderAck, phase: OrderPhase) -> None:
    order = new_order()
    assert order.phase == P.PENDING_NEW
    assert order.on_ack(answer)
    assert order.phase == phase


def test_an_update_before_the_ack_makes_it_resting_and_the_ack_changes_nothing() -> None:
    order = new_order()
    assert order.on_update(update(10))
    assert (order.phase, order.oid) == (P.RESTING, 10)
    assert not order.on_ack(ack(10))
    assert order.phase == P.RESTING


def test_resting_partially_fills_then_fills() -> None:
    order = order_in(P.RESTING)
    assert order.on_fill(fill(1, 10, 0.25))
    assert order.phase == P.PARTIALLY_FILLED
    assert not order.on_fill(fill(2, 10, 0.25))
    assert order.on_fill(fill(3, 10, 0.5))
    assert order.phase == P.FILLED and order.filled_sz == pytest.approx(1.0)


def test_a_partial_open_update_is_partially_filled() -> None:
    order = order_in(P.RESTING)
    assert order.on_update(update(10, "open", sz=0.4, orig_sz=1.0))
    assert order.phase == P.PARTIALLY_FILLED


@pytest.mark.parametrize(
    ("word", "phase"),
    [("filled", P.FILLED), ("canceled", P.CANCELED), ("badAloPxRejected", P.REJECTED)],
)
def test_resting_ends_on_a_final_update(word: str, phase: OrderPhase) -> None:
    order = order_in(P.RESTING)
    assert order.on_update(update(10, word))
    assert order.phase == phase


def test_an_update_of_an_unknown_status_word_changes_nothing() -> None:
    order = order_in(P.RESTING)
    assert not order.on_update(update(10, "mystery"))
    assert order.phase == P.RESTING


def test_cancel_request_then_success_is_canceled() -> None:
    order = order_in(P.RESTING)
    order.request_cancel()
    assert order.phase == P.PENDING_CANCEL
    assert order.on_cancel_ack(CANCELED)
    assert order.phase == P.CANCELED


@pytest.mark.parametrize("answer", [CANCEL_FAILED, CANCEL_UNKNOWN])
def test_a_failed_or_unknown_cancel_stays_pending_cancel_until_the_venue_says(
    answer: object,
) -> None:
    order = order_in(P.PENDING_CANCEL)
    assert not order.on_cancel_ack(answer)  # type: ignore[arg-type]
    assert order.phase == P.PENDING_CANCEL
    assert order.on_update(update(10, "canceled"))
    assert order.phase == P.CANCELED


def test_pending_cancel_ignores_an_open_update_and_a_partial_fill_keeps_it_pending() -> None:
    order = order_in(P.PENDING_CANCEL)
    assert not order.on_update(update(10, "open"))
    assert not order.on_fill(fill(1, 10, 0.5))
    assert order.phase == P.PENDING_CANCEL


@pytest.mark.parametrize("answer", [CANCEL_FAILED, CANCEL_UNKNOWN])
def test_a_look_up_after_a_failed_or_unknown_cancel_that_finds_it_resting_ends_the_cancel(
    answer: object,
) -> None:
    order = order_in(P.RESTING)
    order.request_cancel()
    assert order.cancel_in_flight
    assert not order.on_status(status(10))  # the cancel's answer has not come: still pending
    assert not order.on_cancel_ack(answer)  # type: ignore[arg-type]
    assert not order.cancel_in_flight
    assert not order.on_update(update(10, "open"))  # a stream update does not decide it
    assert order.on_status(status(10))  # the venue's record: the cancel did not take
    assert order.phase == P.RESTING


def test_requests_are_refused_outside_resting_phases() -> None:
    for phase in (P.PENDING_NEW, P.UNKNOWN, P.PENDING_CANCEL, P.PENDING_REPLACE):
        order = order_in(phase)
        with pytest.raises(ValueError, match="cannot cancel"):
            order.request_cancel()
        with pytest.raises(ValueError, match="cannot replace"):
            order.request_replace(1.0, 1.0)


def test_replace_ack_gives_a_new_oid_under_the_same_cloid() -> None:
    order = order_in(P.PENDING_REPLACE)
    assert order.on_ack(ack(11))
    assert (order.phase, order.oid, order.oids) == (P.RESTING, 11, [10, 11])
    assert (order.version.px, order.version.sz, order.pending) == (101.0, 2.0, None)
    assert not order.on_update(update(10, "canceled"))  # the old version's cancel, late
    assert order.phase == P.RESTING


def test_rejected_replace_is_unknown_and_the_venue_record_settles_it() -> None:
    order = order_in(P.PENDING_REPLACE)
    assert order.on_ack(ack(None, OrderState.REJECTED))
    assert order.phase == P.UNKNOWN
    assert order.on_status(status(10, "filled"))  # the old version had filled
    assert order.phase == P.FILLED


def test_rejected_replace_whose_old_version_still_rests_goes_back_to_resting() -> None:
    order = order_in(P.PENDING_REPLACE)
    order.on_ack(ack(None, OrderState.REJECTED))
    assert order.on_status(status(10, "open"))
    assert (order.phase, order.oid, order.pending) == (P.RESTING, 10, None)
    assert order.version.px == 100.0


def test_unknown_replace_settled_by_the_new_version_on_the_venue() -> None:
    order = order_in(P.PENDING_REPLACE)
    order.on_ack(OrderAck(CLOID, OrderState.UNKNOWN, error="timed out"))
    assert order.phase == P.UNKNOWN
    assert not order.on_update(update(10, "canceled"))  # the modify's cancel half
    assert order.phase == P.UNKNOWN
    assert order.on_status(status(11, "open", sz=2.0))
    assert (order.phase, order.oid, order.version.px) == (P.RESTING, 11, 101.0)


# --- UNKNOWN -------------------------------------------------------------------------------------


def test_unknown_stays_unknown_on_unknown_oid_and_on_other_orders_answers() -> None:
    order = order_in(P.UNKNOWN)
    assert not order.on_status(status(None))
    assert not order.on_ack(OrderAck(CLOID, OrderState.UNKNOWN))
    assert not order.on_cancel_ack(CANCEL_FAILED)
    assert order.phase == P.UNKNOWN


@pytest.mark.parametrize(
    ("answer", "phase"),
    [
        (lambda o: o.on_status(status(10, "open")), P.RESTING),
        (lambda o: o.on_status(status(10, "canceled")), P.CANCELED),
        (lambda o: o.on_update(update(10, "filled")), P.FILLED),
        (lambda o: o.on_fill(fill(1, 10, 0.5)), P.PARTIALLY_FILLED),
        (lambda o: o.on_fill(fill(1, 10, 1.0)), P.FILLED),
    ],
)
def test_unknown_is_settled_by_a_venue_answer_about_its_cloid(
    answer: object, phase: OrderPhase
) -> None:
    order = order_in(P.UNKNOWN)
    assert answer(order)  # type: ignore[operator]
    assert order.phase == phase and order.oid == 10


# --- races ---------------------------------------------------------------------------------------


def test_the_new_versions_acceptance_before_the_old_ones_cancel() -> None:
    order = order_in(P.PENDING_REPLACE)
    assert order.on_update(update(11, "open", sz=2.0, orig_sz=2.0, px=101.0))
    assert (order.phase, order.oid) == (P.RESTING, 11)
    assert not order.on_update(update(10, "canceled"))
    assert not order.on_ack(ack(11))  # the ack, last
    assert (order.phase, order.oid, order.oids) == (P.RESTING, 11, [10, 11])


def test_the_old_versions_cancel_before_the_replace_ack_does_not_end_the_order() -> None:
    order = order_in(P.PENDING_REPLACE)
    assert not order.on_update(update(10, "canceled"))
    assert order.phase == P.PENDING_REPLACE
    assert order.on_ack(ack(11))
    assert order.phase == P.RESTING


def test_a_fill_of_the_replaced_version_counts_but_does_not_end_the_new_one() -> None:
    order = order_in(P.PENDING_REPLACE)
    order.on_ack(ack(11))
    assert not order.on_fill(fill(1, 10, 1.0))  # the old oid filled on its way out
    assert order.phase == P.RESTING and order.filled_sz == 1.0
    assert order.version.filled == 0.0


def test_the_old_version_filling_during_a_replace_leaves_the_ack_to_decide() -> None:
    order = order_in(P.PENDING_REPLACE)
    assert not order.on_fill(fill(1, 10, 1.0))
    assert order.phase == P.PENDING_REPLACE
    order.on_ack(ack(None, OrderState.REJECTED))  # "Cannot modify canceled or filled order"
    assert order.on_status(status(10, "filled"))
    assert order.phase == P.FILLED


def test_a_fill_of_the_new_version_before_anything_else_adopts_it() -> None:
    order = order_in(P.PENDING_REPLACE)
    assert order.on_fill(fill(1, 11, 0.5, px=101.0))
    assert (order.phase, order.oid, order.version.sz) == (P.PARTIALLY_FILLED, 11, 2.0)


def test_cancel_after_fill_the_fill_wins_and_the_cancel_error_changes_nothing() -> None:
    order = order_in(P.PENDING_CANCEL)
    assert order.on_fill(fill(1, 10, 1.0))
    assert order.phase == P.FILLED
    assert not order.on_cancel_ack(CANCEL_FAILED)
    assert not order.on_update(update(10, "canceled"))
    assert order.phase == P.FILLED


def test_a_fill_after_the_cancel_is_booked_and_the_order_stays_canceled() -> None:
    order = order_in(P.PENDING_CANCEL)
    order.on_cancel_ack(CANCELED)
    assert not order.on_fill(fill(1, 10, 0.5))
    assert order.phase == P.CANCELED and order.filled_sz == 0.5


@pytest.mark.parametrize("phase", sorted(FINAL))
def test_final_phases_are_absorbing(phase: OrderPhase) -> None:
    order = order_in(P.RESTING)
    {
        P.FILLED: lambda: order.on_update(update(10, "filled")),
        P.CANCELED: lambda: order.on_update(update(10, "canceled")),
        P.REJECTED: lambda: order.on_update(update(10, "badAloPxRejected")),
    }[phase]()
    for answer in (
        lambda: order.on_update(update(10, "open")),
        lambda: order.on_ack(ack(10)),
        lambda: order.on_ack(ack(12)),
        lambda: order.on_status(status(10, "open")),
        lambda: order.on_fill(fill(9, 10, 0.1)),
        lambda: order.on_update(update(13, "open")),
    ):
        assert not answer()
        assert order.phase == phase


def test_a_late_open_update_after_filled_does_not_revive() -> None:
    order = order_in(P.RESTING)
    order.on_update(update(10, "filled"))
    assert not order.on_update(update(10, "open"))
    assert order.phase == P.FILLED


def test_duplicate_acks_are_idempotent() -> None:
    order = new_order()
    assert order.on_ack(ack(10))
    for _ in range(3):
        assert not order.on_ack(ack(10))
    assert (order.phase, order.oids) == (P.RESTING, [10])


def test_an_unknown_place_the_venue_does_not_know_after_its_expiry_is_rejected() -> None:
    order = order_in(P.UNKNOWN)
    assert not order.on_expired_unseen(status(10, "open"))  # known: not expired
    assert order.on_expired_unseen(status(None))
    assert order.phase == P.REJECTED and "expiry" in (order.error or "")


@pytest.mark.parametrize("phase", [P.PENDING_NEW, P.RESTING, P.PENDING_CANCEL])
def test_expiry_ends_only_unknown_orders(phase: OrderPhase) -> None:
    order = order_in(phase)
    assert not order.on_expired_unseen(status(None)) and order.phase == phase


def test_expiry_does_not_end_an_unknown_replace() -> None:
    order = order_in(P.PENDING_REPLACE)
    order.on_ack(OrderAck(CLOID, OrderState.UNKNOWN))
    assert not order.on_expired_unseen(status(None)) and order.phase == P.UNKNOWN
