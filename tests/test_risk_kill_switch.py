"""One test per transition of the trading mode: what moves it, what does not, the record."""

from __future__ import annotations

import math

import numpy as np
import pytest
from risk_support import (
    ASK,
    decide,
    make_inputs,
    make_limiter,
    make_quotes,
    mode_moves,
    quiet_step,
)

from agents.deploy.risk import Reason, TradingMode
from agents.deploy.risk.window import window_stats

A, R, H = TradingMode.ACTIVE, TradingMode.REDUCING, TradingMode.HALTED


def test_every_account_opens_active_and_the_opening_is_recorded() -> None:
    limiter = make_limiter(num_accounts=3)
    opened = limiter.drain_transitions()
    assert [(x.account, x.mode, x.reason) for x in opened] == [
        (i, A, Reason.ACCOUNT_OPENED) for i in range(3)
    ]
    assert (limiter.state.mode == A).all()


def test_window_loss_moves_to_reducing() -> None:
    limiter = make_limiter(reducing_window_loss_fraction=0.02)
    limiter.drain_transitions()
    assert quiet_step(limiter, 0.0, equity=10_000.0) == []
    assert quiet_step(limiter, 10.0, equity=9_810.0) == []  # 1.9 %
    moves = mode_moves(quiet_step(limiter, 20.0, equity=9_790.0))  # 2.1 % from the window's high
    assert moves == [(A, R, Reason.WINDOW_LOSS)]


def test_a_loss_older_than_the_window_does_not_count() -> None:
    limiter = make_limiter(
        rolling_window_seconds=60.0, reducing_drawdown_fraction=0.5, halt_drawdown_fraction=0.6
    )
    limiter.drain_transitions()
    quiet_step(limiter, 0.0, equity=10_000.0)
    assert quiet_step(limiter, 30.0, equity=9_850.0) == []
    assert limiter.state.records["window_loss"][0] == pytest.approx(0.015)  # within
    assert quiet_step(limiter, 100.0, equity=9_800.0) == []
    assert limiter.state.records["window_loss"][0] == 0.0  # both highs are older than 60 s


def test_a_restored_window_counts_the_loss_before_a_restart() -> None:
    # The same path as test_window_loss_moves_to_reducing, its first two decisions made by the
    # runner before a restart (journaled), the third by a new limiter after it.
    limiter = make_limiter(reducing_window_loss_fraction=0.02, rolling_window_seconds=60.0)
    limiter.drain_transitions()
    used = limiter.restore_window(0, [-500.0, 0.0, 10.0], [20_000.0, 10_000.0, 9_810.0])
    assert used == 2  # the sample 510 s before the last is older than any window holds
    moves = mode_moves(quiet_step(limiter, 20.0, equity=9_790.0))  # 2.1 % from 10,000
    assert moves == [(A, R, Reason.WINDOW_LOSS)]
    assert limiter.state.records["window_loss"][0] == pytest.approx(210 / 10_000)
    fresh = make_limiter(reducing_window_loss_fraction=0.02, rolling_window_seconds=60.0)
    fresh.drain_transitions()
    assert quiet_step(fresh, 20.0, equity=9_790.0) == []  # without it: no loss seen
    with pytest.raises(ValueError, match="one length"):
        limiter.restore_window(0, [1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="one length"):
        limiter.restore_window(0, [1.0, 2.0], [1.0, 1.0], rejects=[1.0])
    with pytest.raises(ValueError, match="account 3"):
        limiter.restore_window(3, [1.0], [1.0])


def test_a_restored_window_counts_the_rejects_and_the_index_before_a_restart() -> None:
    # A reject storm half over and a market-wide fall, journaled by the runner before a
    # restart (equities unknown there), then one decision of a new limiter after it.
    limiter = make_limiter(flatten_on_halt=False)  # HALTED at 200 rejects in 300 s
    limiter.drain_transitions()
    nan = math.nan
    log_100 = math.log(100.0)
    used = limiter.restore_window(
        0, [0.0, 10.0], [nan, nan], rejects=[120.0, 60.0], indices=[log_100, nan]
    )
    assert used == 2
    _, rejects, index_high, index_low = window_stats(
        limiter.state.records[0], limiter.packed_limits[0], 10.0
    )
    assert rejects == 180.0 and index_high == index_low == log_100
    assert mode_moves(quiet_step(limiter, 20.0, rejects=20.0)) == [(A, H, Reason.REJECT_STORM)]
    fresh = make_limiter(flatten_on_halt=False)
    fresh.drain_transitions()
    assert quiet_step(fresh, 20.0, rejects=20.0) == []  # without it: 20 rejects, no storm


def test_drawdown_is_measured_from_the_peak_not_the_start() -> None:
    limiter = make_limiter(rolling_window_seconds=60.0)  # reducing at 5 % drawdown
    limiter.drain_transitions()
    quiet_step(limiter, 0.0, equity=10_000.0)
    quiet_step(limiter, 100.0, equity=12_000.0)
    moves = mode_moves(
        quiet_step(limiter, 200.0, equity=11_300.0)
    )  # +13 % on the start, -5.8 % peak
    assert moves == [(A, R, Reason.DRAWDOWN)]
    assert limiter.state.records["drawdown"][0] == pytest.approx(700 / 12_000)
    assert limiter.state.records["window_loss"][0] == 0.0  # the fall is older than the window


def test_margin_coverage_moves_to_reducing() -> None:
    limiter = make_limiter()  # reducing under 2, halted under 1.5
    limiter.drain_transitions()
    assert quiet_step(limiter, 0.0, maintenance=4_000.0) == []  # coverage 2.5
    moves = mode_moves(quiet_step(limiter, 1.0, maintenance=5_500.0))  # 1.82
    assert moves == [(A, R, Reason.MARGIN_COVERAGE)]


@pytest.mark.parametrize(
    ("reason", "path"),
    [
        (Reason.WINDOW_LOSS, [{"equity": 10_000.0}, {"equity": 9_590.0}]),
        (Reason.MARGIN_COVERAGE, [{}, {"maintenance": 7_000.0}]),
        (Reason.REJECT_STORM, [{"rejects": 100.0}, {"rejects": 100.0}]),
        (Reason.STALE_MARKET_DATA, [{}, {"data_age": 30.5}]),
        (Reason.UNKNOWN_ACCOUNT, [{"equity": math.nan}, {"equity": math.nan}]),
    ],
)
@pytest.mark.parametrize("flatten", [True, False])
def test_kill_switch_halts(reason: Reason, path: list[dict], flatten: bool) -> None:
    limiter = make_limiter(flatten_on_halt=flatten)
    limiter.drain_transitions()
    assert quiet_step(limiter, 0.0, **path[0]) == []
    moves = mode_moves(quiet_step(limiter, 31.0, **path[1]))
    expected = [(A, H, reason)] + ([(H, H, Reason.FLATTEN_REQUESTED)] if flatten else [])
    if flatten:  # a flat account is flat at once
        expected.append((H, H, Reason.FLATTENED))
    assert moves == expected
    assert limiter.state.counts(0)[reason] == 1


def test_drawdown_halts_from_the_peak() -> None:
    limiter = make_limiter(rolling_window_seconds=60.0, flatten_on_halt=False)
    limiter.drain_transitions()
    quiet_step(limiter, 0.0, equity=10_000.0)
    quiet_step(limiter, 100.0, equity=12_000.0)
    assert mode_moves(quiet_step(limiter, 200.0, equity=10_790.0)) == [(A, H, Reason.DRAWDOWN)]


def test_a_short_unknown_account_does_not_halt() -> None:
    limiter = make_limiter()
    limiter.drain_transitions()
    assert quiet_step(limiter, 0.0, equity=math.nan) == []
    assert quiet_step(limiter, 29.0, equity=math.nan) == []  # under halt_stale_data_seconds
    assert quiet_step(limiter, 30.0) == []  # known again: the clock restarts
    assert quiet_step(limiter, 59.0, equity=math.nan) == []


def test_reducing_escalates_to_halted() -> None:
    limiter = make_limiter(flatten_on_halt=False)
    limiter.drain_transitions()
    quiet_step(limiter, 0.0, equity=10_000.0)
    assert mode_moves(quiet_step(limiter, 1.0, equity=9_750.0)) == [(A, R, Reason.WINDOW_LOSS)]
    assert mode_moves(quiet_step(limiter, 2.0, equity=9_550.0)) == [(R, H, Reason.WINDOW_LOSS)]


def test_reducing_recovers_only_after_its_hold() -> None:
    limiter = make_limiter(reducing_hold_seconds=60.0)
    limiter.drain_transitions()
    quiet_step(limiter, 0.0)
    assert mode_moves(quiet_step(limiter, 1.0, maintenance=5_500.0)) == [
        (A, R, Reason.MARGIN_COVERAGE)
    ]
    assert quiet_step(limiter, 30.0, maintenance=5_500.0) == []  # still triggered: hold to 90
    assert quiet_step(limiter, 89.0) == []  # cleared, but within the hold
    assert mode_moves(quiet_step(limiter, 90.0)) == [(R, A, Reason.RECOVERED)]


def test_halted_is_never_left_automatically() -> None:
    limiter = make_limiter(flatten_on_halt=False)
    limiter.drain_transitions()
    quiet_step(limiter, 0.0)
    quiet_step(limiter, 1.0, maintenance=7_000.0)
    assert limiter.state.mode_of(0) == H
    for t in range(2, 20_000, 500):  # everything healthy for hours
        assert quiet_step(limiter, float(t)) == []
    assert limiter.state.mode_of(0) == H


def test_flatten_then_halt_places_reducing_orders_until_flat_then_nothing() -> None:
    limiter = make_limiter(max_order_size=2.0)
    limiter.drain_transitions()
    limiter.flatten_then_halt(0, operator="alice", time_s=0.0)
    assert mode_moves(limiter.drain_transitions()) == [
        (A, H, Reason.OPERATOR_HALT),
        (H, H, Reason.FLATTEN_REQUESTED),
    ]
    policy = make_quotes(bid=1.0, ask=1.0, hedge=0.2)
    # long 3: an ask at the best ask of at most max_order_size, no bid, the full hedge
    out, counts = decide(limiter, policy, make_inputs(time_s=1.0, position=3.0))
    assert (out["bid_size"][0, 0], out["ask_px"][0, 0], out["ask_size"][0, 0]) == (0.0, ASK, 2.0)
    assert out["hedge_fraction"][0, 0] == 1.0
    assert counts["MODE_HALTED"] == 3  # the policy's bid, ask and hedge
    # resting asks count: long 1.5 with 1.0 resting asks 0.5 at most (never flips)
    out, _ = decide(limiter, policy, make_inputs(time_s=2.0, position=1.5, ask_resting=1.0))
    assert out["ask_size"][0, 0] == 0.5
    # short: a bid at the best bid
    out, _ = decide(limiter, policy, make_inputs(time_s=3.0, position=-0.4))
    assert (out["bid_px"][0, 0], out["bid_size"][0, 0], out["ask_size"][0, 0]) == (9_999, 0.4, 0.0)
    # flat (under the venue's smallest order): the sequence ends, the account stays HALTED
    out, _ = decide(limiter, policy, make_inputs(time_s=4.0, position=0.004))
    assert mode_moves(limiter.drain_transitions()) == [(H, H, Reason.FLATTENED)]
    assert out["bid_size"][0, 0] == out["ask_size"][0, 0] == 0.0
    out, _ = decide(limiter, policy, make_inputs(time_s=5.0, position=0.5))
    assert out["bid_size"][0, 0] == out["ask_size"][0, 0] == 0.0  # nothing after the sequence
    assert limiter.state.mode_of(0) == H


def test_flatten_orders_stay_within_the_net_notional_limit() -> None:
    """Buying back a short raises the worst-case net long: with longs of 200 + 500 in the
    other perps (net 500 with the short of 200), a bid of 2 would make it 700 > 600."""
    limiter = make_limiter(3, max_net_notional=600.0, max_order_size=2.0)
    limiter.flatten_then_halt(0, operator="alice", time_s=0.0)
    inputs = make_inputs(3, time_s=1.0, position=[-2.0, 2.0, 5.0])
    out, counts = decide(limiter, make_quotes(3, bid=0.0, ask=0.0), inputs)
    assert out["bid_size"][0, 0] == pytest.approx(1.0, rel=1e-12)  # 500 - 200 + 200 + 100
    net_long = float(np.sum(([-2.0, 2.0, 5.0] + out["bid_size"][0]) * 100.0))
    assert net_long <= 600.0 * (1 + 1e-12)
    np.testing.assert_array_equal(out["ask_size"][0], [0.0, 2.0, 2.0])  # lower the net long
    assert counts["NET_EXPOSURE"] == 1


def test_operator_halt_is_recorded_with_the_operator() -> None:
    limiter = make_limiter(num_accounts=2)
    limiter.drain_transitions()
    limiter.halt([1], operator="bob", time_s=12.5)
    (entry,) = limiter.drain_transitions()
    assert (entry.account, entry.time_s, entry.operator) == (1, 12.5, "bob")
    assert (entry.previous, entry.mode, entry.reason) == (A, H, Reason.OPERATOR_HALT)
    np.testing.assert_array_equal(limiter.state.mode, [A, H])


def test_operator_reset_is_the_only_way_out_of_halted() -> None:
    limiter = make_limiter(flatten_on_halt=False, rolling_window_seconds=60.0)
    limiter.drain_transitions()
    quiet_step(limiter, 0.0, equity=10_000.0)
    assert mode_moves(quiet_step(limiter, 100.0, equity=8_900.0)) == [(A, H, Reason.DRAWDOWN)]
    with pytest.raises(ValueError, match="operator"):
        limiter.operator_reset(0, operator=" ")
    limiter.operator_reset(0, operator="carol", time_s=101.0)
    (entry,) = limiter.drain_transitions()
    assert (entry.previous, entry.mode, entry.reason, entry.operator) == (
        H,
        A,
        Reason.OPERATOR_RESET,
        "carol",
    )
    # the references restart: the same equity does not trip again
    assert quiet_step(limiter, 102.0, equity=8_900.0) == []
    assert limiter.state.records["peak_equity"][0] == 8_900.0
    with pytest.raises(ValueError, match="not HALTED"):
        limiter.operator_reset(0, operator="carol")


def test_operator_commands_check_their_accounts() -> None:
    limiter = make_limiter(num_accounts=2)
    with pytest.raises(ValueError, match="unknown account"):
        limiter.halt(5, operator="dave")
    with pytest.raises(ValueError, match="mask"):
        limiter.halt(np.array([True]), operator="dave")


def test_every_transition_is_counted_and_timed() -> None:
    limiter = make_limiter(flatten_on_halt=False)
    limiter.drain_transitions()
    quiet_step(limiter, 0.0, equity=10_000.0)
    quiet_step(limiter, 7.0, equity=9_750.0)
    quiet_step(limiter, 9.0, equity=9_550.0)
    limiter.operator_reset(0, operator="erin")
    log = [*limiter.state.transitions]
    counts = limiter.state.counts(0)
    assert counts[Reason.WINDOW_LOSS] == 2 and counts[Reason.OPERATOR_RESET] == 1
    assert counts[Reason.ACCOUNT_OPENED] == 1
    assert [x.time_s for x in log] == [9.0]  # the reset took the last decision's time


def test_the_reduce_command_holds_reducing_then_the_limiter_recovers() -> None:
    limiter = make_limiter(flatten_on_halt=False, reducing_hold_seconds=60.0)
    limiter.drain_transitions()
    quiet_step(limiter, 0.0, equity=10_000.0)
    limiter.reduce_temporarily(0, operator="runner")  # at the last decision's time (0 s)
    (entry,) = limiter.drain_transitions()
    assert (entry.previous, entry.mode, entry.reason) == (A, R, Reason.STALE_MARKET_DATA)
    assert (entry.time_s, entry.operator) == (0.0, "runner")
    limiter.reduce_temporarily(0, operator="runner", time_s=30.0)  # REDUCING: the hold moves on
    assert limiter.drain_transitions() == []
    assert quiet_step(limiter, 60.0, equity=10_000.0) == []  # held until 90 s
    assert limiter.state.mode[0] == R
    assert mode_moves(quiet_step(limiter, 90.0, equity=10_000.0)) == [(R, A, Reason.RECOVERED)]


def test_the_reduce_command_leaves_halted_alone_and_checks_its_reason() -> None:
    limiter = make_limiter(flatten_on_halt=False)
    limiter.drain_transitions()
    limiter.halt(0, operator="erin")
    limiter.drain_transitions()
    limiter.reduce_temporarily(0, operator="runner")
    assert limiter.drain_transitions() == [] and limiter.state.mode[0] == H
    with pytest.raises(ValueError, match="not a transition reason"):
        limiter.reduce_temporarily(0, operator="runner", reason=Reason.ORDER_SIZE)
    with pytest.raises(ValueError, match="operator"):
        limiter.reduce_temporarily(0, operator="")
