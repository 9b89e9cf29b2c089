"""Property tests of the RiskLimiter over sequences of policy outputs, market states and fills.

A small venue model keeps each account's true state: positions, resting orders, marks, equity.
At every decision the limiter sees it (sometimes with parts unknown: NaN, stale flags), cuts
the policy's quotes, and then fills race the replacement: the resting orders fill first, by any
fraction (their cancel has not arrived), then the new ones, by any fraction. Whatever the
policy sends (NaN, infinity, 1e300, negative, tiny orders in their thousands), no exception
escapes, no hard limit is breached, and in REDUCING or HALTED |position| never grows once the
orders admitted before have gone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from risk_support import VENUE

from agents.deploy.risk import Reason, RiskInputs, RiskLimiter, RiskLimits, TradingMode, new_quotes

TICK = VENUE.tick_size
LIMITS = RiskLimits(
    max_order_size=2.0,
    max_order_notional=250.0,
    min_order_size=0.05,
    max_position=5.0,
    max_gross_notional=800.0,
    max_net_notional=600.0,
    soft_limit_fraction=0.8,
    min_margin_coverage=3.0,
    estimator_warmup=3,
    volatility_cap_annual=20.0,
    tail_move_bp=300.0,
    max_orders_per_second=3.0,
    order_burst=4.0,
    max_cancels_per_second=3.0,
    cancel_burst=4.0,
    rolling_window_seconds=30.0,
    reducing_window_loss_fraction=0.01,
    halt_window_loss_fraction=0.03,
    reducing_drawdown_fraction=0.02,
    halt_drawdown_fraction=0.06,
    halt_rejects_per_window=30,
    reducing_hold_seconds=10.0,
)
TOL = 1e-9

SIZES = st.one_of(
    st.floats(0.0, 6.0),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e300, -1.0, 1e-9, 0.011, 2.0]),
)
HEDGES = st.one_of(st.floats(0.0, 1.0), st.sampled_from([math.nan, -3.0, 7.0, math.inf]))


@dataclass
class Venue:
    """The true state of one account with ``k`` perps."""

    k: int
    position: NDArray[np.float64] = field(init=False)
    bid: NDArray[np.float64] = field(init=False)  # resting sizes
    ask: NDArray[np.float64] = field(init=False)
    bid_px: NDArray[np.float64] = field(init=False)
    ask_px: NDArray[np.float64] = field(init=False)
    mark: NDArray[np.float64] = field(init=False)
    equity: float = 10_000.0
    time_s: float = 0.0

    def __post_init__(self) -> None:
        self.position = np.zeros(self.k)
        self.bid = np.zeros(self.k)
        self.ask = np.zeros(self.k)
        self.bid_px = np.full(self.k, 9_990.0)
        self.ask_px = np.full(self.k, 10_010.0)
        self.mark = np.full(self.k, 100.0)

    def book(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        centre = np.round(self.mark / TICK)
        return centre - 1, centre + 1

    def inputs(self, hide: dict[str, object]) -> RiskInputs:
        """What the limiter sees; ``hide`` blanks parts (unknown or stale)."""
        inputs = RiskInputs.unknown(1, self.k)
        a = inputs.assets[0]
        a["best_bid"], a["best_ask"] = self.book()
        a["mark"] = self.mark
        a["position"] = self.position
        a["bid_resting"], a["ask_resting"] = self.bid, self.ask
        a["bid_resting_px"], a["ask_resting_px"] = self.bid_px, self.ask_px
        v = inputs.accounts[0]
        v["time_s"] = self.time_s
        v["equity"] = v["margin_equity"] = self.equity
        v["maintenance_margin"] = float(np.sum(np.abs(self.position) * self.mark) * 0.025)
        v["data_age_s"] = 0.0
        v["rejects"] = 0.0
        perp = int(hide.get("perp", 0)) % self.k  # type: ignore[call-overload]
        for name in ("mark", "position", "bid_resting", "best_bid"):
            if hide.get(name):
                a[name][perp] = math.nan
        if hide.get("stale"):
            a["stale"][perp] = True
        if hide.get("equity"):
            v["equity"] = math.nan
        if hide.get("age"):
            v["data_age_s"] = float(hide["age"])  # type: ignore[arg-type]
        return inputs


def _worst(v: Venue, bid: NDArray[np.float64], ask: NDArray[np.float64]) -> tuple[float, ...]:
    """(gross, net long, net short) notionals with every order filling on the worst side."""
    long = v.position + v.bid + bid
    short = v.position - v.ask - ask
    gross = float(np.sum(np.maximum(np.maximum(long, -short), 0.0) * v.mark))
    return gross, float(np.sum(long * v.mark)), float(np.sum(short * v.mark))


def _check_decision(
    v: Venue, quotes: NDArray[np.void], before: NDArray[np.void], mode: TradingMode, flat: bool
) -> None:
    """Invariants of the limited quotes of one decision."""
    q = quotes[0]
    bid, ask = q["bid_size"], q["ask_size"]
    assert np.isfinite(bid).all() and np.isfinite(ask).all()
    assert (bid >= 0).all() and (ask >= 0).all()
    assert np.isfinite(q["hedge_fraction"]).all()
    assert ((q["hedge_fraction"] >= 0) & (q["hedge_fraction"] <= 1)).all()
    if not flat:  # prices never change; a flatten sequence places its own orders
        assert (q["bid_px"] == before[0]["bid_px"]).all()
        assert (q["ask_px"] == before[0]["ask_px"]).all()
        orig_bid = np.nan_to_num(before[0]["bid_size"], nan=0.0, posinf=np.inf)
        assert (bid <= np.maximum(orig_bid, 0.0) + TOL).all()  # never larger than asked
    p = LIMITS.max_position
    assert (v.position + v.bid + bid <= p + TOL).all()  # hard position limit, worst case
    assert (v.position - v.ask - ask >= -p - TOL).all()
    gross0, long0, short0 = _worst(v, np.zeros(v.k), np.zeros(v.k))
    gross, long, short = _worst(v, bid, ask)
    assert gross <= max(LIMITS.max_gross_notional, gross0) * (1 + TOL)
    assert long <= max(LIMITS.max_net_notional, long0) * (1 + TOL) + TOL
    assert -short <= max(LIMITS.max_net_notional, -short0) * (1 + TOL) + TOL
    if mode != TradingMode.ACTIVE:  # only reducing orders
        assert (bid <= np.maximum(0.0, -v.position - v.bid) + TOL).all()
        assert (ask <= np.maximum(0.0, v.position - v.ask) + TOL).all()
        assert (q["hedge_fraction"] == 1.0).all()


def _run(data: st.DataObject, k: int, decisions: int, limits: RiskLimits = LIMITS) -> None:
    limiter = RiskLimiter(limits, VENUE, 1, k, seed=data.draw(st.integers(0, 2**31)))
    v = Venue(k)
    v.equity = capital = data.draw(st.sampled_from([10_000.0, 60.0]))  # 60: margin binds
    previous_mode = TradingMode.ACTIVE
    for _ in range(decisions):
        quotes = new_quotes(1, k)
        touch_bid, touch_ask = v.book()
        for j in range(k):
            quotes[0, j] = (
                int(touch_bid[j]) + data.draw(st.integers(-30, 3)),
                data.draw(SIZES),
                int(touch_ask[j]) + data.draw(st.integers(-3, 30)),
                data.draw(SIZES),
                data.draw(HEDGES),
            )
        hide = data.draw(
            st.just({})
            | st.just({})
            | st.just({})
            | st.just({})
            | st.fixed_dictionaries(
                {},
                optional={
                    "perp": st.integers(0, 2),
                    "mark": st.booleans(),
                    "position": st.booleans(),
                    "bid_resting": st.booleans(),
                    "best_bid": st.booleans(),
                    "stale": st.booleans(),
                    "equity": st.booleans(),
                    "age": st.sampled_from([1.0, 6.0, 40.0, math.nan]),
                },
            )
        )
        before = quotes.copy()
        counts = limiter.limit(quotes, v.inputs(hide))
        mode = limiter.state.mode_of(0)
        event(f"mode {mode.name}")
        for r in np.flatnonzero(counts[0]):
            event(f"reason {Reason(int(r)).name}")
        _check_decision(v, quotes, before, mode, bool(limiter.state.flattening[0]) or mode == 2)
        # fills race the replacement: resting orders first, then the new ones
        old_bid, old_ask = (data.draw(st.sampled_from([0.0, 0.3, 1.0])) for _ in range(2))
        new_fill = data.draw(st.sampled_from([0.0, 0.5, 1.0]))
        start = v.position.copy()
        bid, ask = quotes[0]["bid_size"], quotes[0]["ask_size"]
        v.position = v.position + old_bid * v.bid - old_ask * v.ask
        v.position = v.position + new_fill * bid - new_fill * ask
        assert (np.abs(v.position) <= LIMITS.max_position + TOL).all()
        if previous_mode != TradingMode.ACTIVE and mode != TradingMode.ACTIVE:
            assert (np.abs(v.position) <= np.abs(start) + TOL).all()  # never grows
            assert (v.position * start >= -TOL).all()  # never flips
        v.bid, v.ask = bid * (1 - new_fill), ask * (1 - new_fill)
        v.bid_px = quotes[0]["bid_px"].astype(np.float64)
        v.ask_px = quotes[0]["ask_px"].astype(np.float64)
        moves = np.array([data.draw(st.floats(-0.003, 0.003)) for _ in range(k)])
        v.mark = v.mark * np.exp(moves)
        v.equity += capital * data.draw(st.floats(-0.004, 0.004))
        v.time_s += data.draw(st.sampled_from([0.2, 1.0, 5.0]))
        previous_mode = mode
        if mode == TradingMode.HALTED and data.draw(st.integers(0, 9)) == 0:
            limiter.operator_reset(0, operator="property test")
            previous_mode = TradingMode.ACTIVE


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), k=st.integers(1, 3), decisions=st.integers(1, 40))
def test_no_hard_limit_is_breached_and_reducing_never_grows_a_position(
    data: st.DataObject, k: int, decisions: int
) -> None:
    _run(data, k, decisions)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_invariants_hold_with_flatten_on_halt_off(data: st.DataObject) -> None:
    _run(data, 2, 30, LIMITS.replace(flatten_on_halt=False))


def test_creep_by_many_small_orders_stops_at_the_soft_limit() -> None:
    """Thousands of tiny bids, every one filled at once (and the resting ones too): the
    position stops where the worst case reaches the soft limit, never at the hard one."""
    limits = LIMITS.replace(min_order_size=0.0, max_orders_per_second=1e6, order_burst=1e6)
    limiter = RiskLimiter(limits, VENUE, 1, 1)
    v = Venue(1)
    for t in range(5_000):
        v.time_s = float(t)
        quotes = new_quotes(1, 1)
        quotes[0, 0] = (9_999, 0.011, 10_001, 0.0, 0.0)
        limiter.limit(quotes, v.inputs({}))
        v.position += v.bid + quotes[0, 0]["bid_size"]  # resting and new both fill
        v.bid = np.array([quotes[0, 0]["bid_size"]])
        assert v.position[0] + v.bid[0] <= limits.max_position + TOL
    soft = limits.soft_limit_fraction * limits.max_position
    assert soft - 2 * 0.011 <= v.position[0] + v.bid[0] <= soft + 0.011 + TOL
