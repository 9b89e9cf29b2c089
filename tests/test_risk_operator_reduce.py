"""The operator's REDUCING (``RiskLimiter.reduce`` / ``resume``): held until the operator
resumes, through the kill switch's holds and recoveries, ended by a halt; no check weakened."""

from __future__ import annotations

import numpy as np
import pytest
from risk_support import decide, make_inputs, make_limiter, make_quotes, mode_moves, quiet_step

from agents.deploy.risk import Reason, TradingMode

A, R, H = TradingMode.ACTIVE, TradingMode.REDUCING, TradingMode.HALTED


def test_reduce_holds_reducing_until_resume_and_admits_only_reducing_orders() -> None:
    limiter = make_limiter(reducing_hold_seconds=5.0)
    limiter.drain_transitions()
    quiet_step(limiter, 0.0)
    limiter.reduce(0, "alice", time_s=0.5)
    [entry] = limiter.drain_transitions()
    assert (entry.previous, entry.mode, entry.reason, entry.operator) == (
        A,
        R,
        Reason.OPERATOR_REDUCE,
        "alice",
    )
    for t in (1.0, 10.0, 100.0, 1000.0):  # far past reducing_hold_seconds: still held
        out, counts = decide(limiter, make_quotes(), make_inputs(time_s=t, position=2.0))
        assert limiter.drain_transitions() == []
        assert limiter.state.mode_of(0) == R
        assert out["bid_size"][0, 0] == 0.0 and 0.0 < out["ask_size"][0, 0] <= 2.0
        assert counts["MODE_REDUCING"] >= 1
    out, _ = decide(limiter, make_quotes(), make_inputs(time_s=1001.0))  # flat: nothing at all
    assert out["bid_size"][0, 0] == 0.0 and out["ask_size"][0, 0] == 0.0
    limiter.reduce(0, "alice")  # already held: nothing
    assert limiter.drain_transitions() == []
    limiter.resume(0, "bob", time_s=1002.0)
    assert mode_moves(limiter.drain_transitions()) == [(R, A, Reason.OPERATOR_RESUME)]
    out, _ = decide(limiter, make_quotes(), make_inputs(time_s=1003.0))
    assert limiter.state.mode_of(0) == A and out["bid_size"][0, 0] > 0.0
    assert limiter.state.counts(0)[Reason.OPERATOR_REDUCE] == 1
    assert limiter.state.counts(0)[Reason.OPERATOR_RESUME] == 1


def test_a_kill_switch_hold_during_the_operators_outlasts_the_resume() -> None:
    limiter = make_limiter(reducing_hold_seconds=60.0)
    limiter.drain_transitions()
    quiet_step(limiter, 0.0)
    limiter.reduce(0, "alice")
    limiter.drain_transitions()
    quiet_step(limiter, 10.0)
    moves = quiet_step(limiter, 20.0, maintenance=5_500.0)  # a margin trigger while held
    assert moves == [] and limiter.state.mode_of(0) == R
    assert quiet_step(limiter, 30.0) == []  # the trigger cleared: the kill switch's hold runs on
    limiter.resume(0, "alice")
    assert mode_moves(limiter.drain_transitions()) == [(R, R, Reason.OPERATOR_RESUME)]
    assert quiet_step(limiter, 40.0) == []  # the kill switch's hold: until 80
    assert mode_moves(quiet_step(limiter, 90.0)) == [(R, A, Reason.RECOVERED)]


def test_a_halt_trigger_halts_an_operator_held_account_and_ends_the_hold() -> None:
    limiter = make_limiter()
    limiter.drain_transitions()
    quiet_step(limiter, 0.0)
    limiter.reduce(0, "alice")
    limiter.drain_transitions()
    moves = mode_moves(quiet_step(limiter, 1.0, maintenance=7_000.0))
    assert moves[0] == (R, H, Reason.MARGIN_COVERAGE)
    quiet_step(limiter, 2.0)
    assert not limiter.operator_reducing[0]
    with pytest.raises(ValueError, match="not held"):
        limiter.resume(0, "alice")
    with pytest.raises(ValueError, match="HALTED"):
        limiter.reduce(0, "alice")
    limiter.operator_reset(0, "alice")
    assert limiter.state.mode_of(0) == A


def test_operator_halt_and_reset_end_the_hold() -> None:
    limiter = make_limiter()
    limiter.drain_transitions()
    limiter.reduce(0, "alice")
    limiter.halt(0, "alice")
    assert limiter.state.mode_of(0) == H and not limiter.operator_reducing.any()
    limiter.operator_reset(0, "alice")
    quiet_step(limiter, 0.0)
    quiet_step(limiter, 100.0)
    assert limiter.state.mode_of(0) == A


def test_reduce_needs_an_operator_and_leaves_other_accounts_alone() -> None:
    limiter = make_limiter(num_accounts=2)
    with pytest.raises(ValueError, match="operator"):
        limiter.reduce(0, " ")
    limiter.reduce([1], "alice")
    assert limiter.state.mode.tolist() == [A, R]
    assert limiter.operator_reducing.tolist() == [False, True]
    limiter.open_accounts(np.array([False, True]))
    assert not limiter.operator_reducing.any() and limiter.state.mode.tolist() == [A, A]
