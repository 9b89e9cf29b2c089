"""One test per order check of the RiskLimiter: each denies or clips with its reason, and a
control case shows the same order passing when the check's condition is absent."""

from __future__ import annotations

import math

import numpy as np
import pytest
from risk_support import ASK, BID, MARK, VENUE, decide, make_inputs, make_limiter, make_quotes

from agents.deploy.risk import Reason, RiskInputs, RiskLimiter, TradingMode


def test_a_plain_order_within_every_limit_passes_untouched() -> None:
    quotes = make_quotes()
    out, counts = decide(make_limiter(), quotes, make_inputs())
    assert counts == {}
    np.testing.assert_array_equal(out, quotes)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_size_is_denied(bad: float) -> None:
    out, counts = decide(make_limiter(), make_quotes(bid=bad), make_inputs())
    assert counts == {"NON_FINITE_ORDER": 1}
    assert out["bid_size"][0, 0] == 0.0 and out["ask_size"][0, 0] == 1.0


def test_non_finite_hedge_fraction_becomes_the_full_offset() -> None:
    out, counts = decide(make_limiter(), make_quotes(hedge=math.nan), make_inputs())
    assert counts == {"NON_FINITE_ORDER": 1}
    assert out["hedge_fraction"][0, 0] == 1.0


@pytest.mark.parametrize(
    ("quote", "expected_bid", "expected_ask"),
    [
        ({"bid": -1.0}, 0.0, 1.0),  # negative size
        ({"bid_px": 10_003, "ask_px": 10_002}, 0.0, 0.0),  # bid above the own ask
        ({"bid_px": 0}, 0.0, 1.0),  # price <= 0
    ],
)
def test_invalid_orders_are_denied(quote: dict, expected_bid: float, expected_ask: float) -> None:
    out, counts = decide(make_limiter(), make_quotes(**quote), make_inputs(bid=-5, ask=20_000))
    assert counts["INVALID_ORDER"] >= 1
    assert (out["bid_size"][0, 0], out["ask_size"][0, 0]) == (expected_bid, expected_ask)


def test_hedge_fraction_outside_zero_one_is_clipped() -> None:
    out, counts = decide(make_limiter(), make_quotes(hedge=1.5), make_inputs())
    assert counts == {"INVALID_ORDER": 1} and out["hedge_fraction"][0, 0] == 1.0


@pytest.mark.parametrize(
    "account", [{"equity": math.nan}, {"maintenance": math.nan}, {"account_stale": True}]
)
def test_unknown_account_admits_reducing_orders_only(account: dict) -> None:
    out, counts = decide(make_limiter(), make_quotes(), make_inputs(position=3.0, **account))
    assert counts == {"UNKNOWN_ACCOUNT": 1}
    assert out["bid_size"][0, 0] == 0.0  # adds to the long
    assert out["ask_size"][0, 0] == 1.0  # reduces it


def test_a_clock_going_backwards_admits_nothing() -> None:
    limiter = make_limiter()
    decide(limiter, make_quotes(), make_inputs(time_s=10.0))
    out, counts = decide(limiter, make_quotes(), make_inputs(time_s=9.0, position=3.0))
    assert counts == {"UNKNOWN_ACCOUNT": 2}
    assert out["bid_size"][0, 0] == out["ask_size"][0, 0] == 0.0


@pytest.mark.parametrize(
    "unknown",
    [
        {"position": [math.nan, 2.0]},
        {"position": [0.0, 2.0], "bid_resting": [math.nan, 0.0]},
        {"position": [0.0, 2.0], "ask_resting": [-1.0, 0.0]},
    ],
)
def test_unknown_position_denies_that_perp_and_every_order_elsewhere(unknown: dict) -> None:
    out, counts = decide(make_limiter(2), make_quotes(2), make_inputs(2, **unknown))
    assert out["bid_size"][0, 0] == out["ask_size"][0, 0] == 0.0  # the unknown perp
    assert out["bid_size"][0, 1] == 0.0  # adding to the known long
    assert out["ask_size"][0, 1] == 0.0  # reducing it raises the (unknown) net short
    assert counts == {"UNKNOWN_POSITION": 4}


@pytest.mark.parametrize(
    "market", [{"mark": math.nan}, {"bid": math.nan}, {"stale": True}, {"bid": 10_002}]
)
def test_unknown_market_denies_the_perp(market: dict) -> None:
    out, counts = decide(make_limiter(), make_quotes(), make_inputs(**market))
    assert counts == {"UNKNOWN_MARKET": 2}
    assert out["bid_size"][0, 0] == out["ask_size"][0, 0] == 0.0


@pytest.mark.parametrize("age", [5.5, math.nan])
def test_stale_market_data_admits_no_order_even_reducing(age: float) -> None:
    out, counts = decide(make_limiter(), make_quotes(), make_inputs(data_age=age, position=3.0))
    assert counts == {"STALE_MARKET_DATA": 2}
    assert out["bid_size"][0, 0] == out["ask_size"][0, 0] == 0.0
    fresh, counts = decide(make_limiter(), make_quotes(), make_inputs(data_age=4.9))
    assert counts == {} and fresh["bid_size"][0, 0] == 1.0


def test_halted_cancels_everything_and_hedges_fully() -> None:
    limiter = make_limiter()
    limiter.halt(0, operator="risk desk")
    out, counts = decide(limiter, make_quotes(), make_inputs(position=3.0))
    assert counts == {"MODE_HALTED": 3}  # bid, ask, hedge
    assert out["bid_size"][0, 0] == out["ask_size"][0, 0] == 0.0
    assert out["hedge_fraction"][0, 0] == 1.0


def _reducing(limiter_changes: dict | None = None) -> RiskLimiter:
    limiter = make_limiter(reducing_drawdown_fraction=0.01, **(limiter_changes or {}))
    decide(limiter, make_quotes(bid=0, ask=0), make_inputs(equity=10_000.0))
    decide(limiter, make_quotes(bid=0, ask=0), make_inputs(time_s=1.0, equity=9_850.0))
    assert limiter.state.mode_of(0) == TradingMode.REDUCING
    return limiter


@pytest.mark.parametrize(
    ("position", "ask_resting", "ask", "expected_bid", "expected_ask"),
    [
        (3.0, 0.0, 2.0, 0.0, 2.0),  # the reducing ask passes, the adding bid does not
        (3.0, 2.5, 2.0, 0.0, 0.5),  # resting asks count: never flips the position
        (0.0, 0.0, 2.0, 0.0, 0.0),  # nothing from flat
        (1.0, 0.0, 2.0, 0.0, 1.0),  # never beyond the position
    ],
)
def test_reducing_admits_only_what_reduces_the_position(
    position: float, ask_resting: float, ask: float, expected_bid: float, expected_ask: float
) -> None:
    limiter = _reducing()
    inputs = make_inputs(time_s=2.0, equity=9_850.0, position=position, ask_resting=ask_resting)
    out, counts = decide(limiter, make_quotes(bid=1.0, ask=ask), inputs)
    assert (out["bid_size"][0, 0], out["ask_size"][0, 0]) == (expected_bid, expected_ask)
    assert out["hedge_fraction"][0, 0] == 1.0
    assert counts["MODE_REDUCING"] >= 2  # the bid (and the hedge)


def test_reducing_counts_resting_bids_of_a_short_position() -> None:
    limiter = _reducing()
    inputs = make_inputs(time_s=2.0, equity=9_850.0, position=-3.0, bid_resting=2.0)
    out, _ = decide(limiter, make_quotes(bid=2.0, ask=1.0), inputs)
    assert (out["bid_size"][0, 0], out["ask_size"][0, 0]) == (1.0, 0.0)  # -3 + 2 + 1 = 0


def test_reducing_never_blocks_a_reducing_order_for_minimum_size_or_notional() -> None:
    limiter = _reducing({"min_order_size": 1.0, "min_order_notional": 500.0})
    inputs = make_inputs(time_s=2.0, equity=9_850.0, position=0.3)
    out, counts = decide(limiter, make_quotes(bid=0.0, ask=0.3), inputs)
    assert out["ask_size"][0, 0] == 0.3
    assert "BELOW_MIN_SIZE" not in counts and "BELOW_MIN_NOTIONAL" not in counts


@pytest.mark.parametrize(("side", "px"), [("bid", ASK), ("bid", ASK + 3), ("ask", BID)])
def test_post_only_orders_never_cross_the_book(side: str, px: int) -> None:
    quotes = make_quotes(**{f"{side}_px": px}, **({"ask_px": 10_010} if side == "bid" else {}))
    out, counts = decide(make_limiter(), quotes, make_inputs())
    assert counts == {"CROSSES_BOOK": 1} and out[f"{side}_size"][0, 0] == 0.0
    inside, counts = decide(make_limiter(), make_quotes(bid_px=ASK - 1), make_inputs())
    assert counts == {} and inside["bid_size"][0, 0] == 1.0


def test_price_collar_around_the_mark() -> None:
    limiter = make_limiter(price_collar_fraction=0.01)  # 1 % of 100: 100 ticks
    out, counts = decide(limiter, make_quotes(bid_px=9_899), make_inputs())
    assert counts == {"PRICE_COLLAR": 1} and out["bid_size"][0, 0] == 0.0
    limiter = make_limiter(price_collar_fraction=0.01)
    out, counts = decide(limiter, make_quotes(bid_px=9_901), make_inputs())
    assert counts == {} and out["bid_size"][0, 0] == 1.0


def test_order_size_is_clipped() -> None:
    out, counts = decide(make_limiter(max_order_size=2.0), make_quotes(bid=5.0), make_inputs())
    assert counts == {"ORDER_SIZE": 1} and out["bid_size"][0, 0] == 2.0


def test_order_notional_is_clipped() -> None:
    out, counts = decide(
        make_limiter(max_order_notional=150.0), make_quotes(bid=2.0), make_inputs()
    )
    assert counts == {"ORDER_NOTIONAL": 1}
    assert out["bid_size"][0, 0] == pytest.approx(150.0 / 99.98, rel=1e-12)


def _feed(limiter: RiskLimiter, marks: np.ndarray, k: int = 1) -> None:
    """One decision per second at these marks (rows: decisions), with no orders."""
    for t, row in enumerate(marks):
        decide(limiter, make_quotes(k, bid=0, ask=0), make_inputs(k, time_s=float(t), mark=row))


def test_volatility_cap_scales_the_adding_size_by_the_realised_volatility() -> None:
    # alternating +-r log returns each second: the EWMA variance per second is exactly r^2
    r = 0.002
    marks = MARK * np.exp(r * (np.arange(40) % 2))
    limiter = make_limiter(volatility_cap_annual=1.5, tail_move_bp=1e6)
    _feed(limiter, marks)
    expected_vol = r * math.sqrt(365 * 24 * 3600)  # 11.2 (1120 %)
    inputs = make_inputs(time_s=40.0, mark=MARK, position=1.0)  # the 40th return, -r
    out, counts = decide(
        limiter, make_quotes(bid=2.0, ask=2.0, bid_px=9_998, ask_px=10_030), inputs
    )
    assert limiter.state.records["volatility"][0, 0] == pytest.approx(expected_vol, rel=1e-9)
    cap = 2.0 * 1.5 / expected_vol
    assert out["bid_size"][0, 0] == pytest.approx(cap, rel=1e-9)  # adding: capped
    assert out["ask_size"][0, 0] == pytest.approx(max(cap, 1.0), rel=1e-9)  # reducing part kept
    assert counts == {"VOLATILITY_CAP": 2}


def test_tail_override_on_a_correlation_spike() -> None:
    rng = np.random.default_rng(0)
    common = rng.normal(0, 1e-4, size=(40, 1))
    together = MARK * np.exp(np.cumsum(np.hstack([common, common]), axis=0))
    apart = MARK * np.exp(np.cumsum(rng.normal(0, 1e-4, size=(40, 2)), axis=0))
    for marks, spiked in ((together, True), (apart, False)):
        limiter = make_limiter(2, tail_correlation=0.8, tail_size_fraction=0.25)
        _feed(limiter, marks, 2)
        inputs = make_inputs(2, time_s=40.0, mark=marks[-1])
        out, counts = decide(
            limiter, make_quotes(2, bid=2.0, ask=2.0, bid_px=9_950, ask_px=10_050), inputs
        )
        if spiked:
            assert limiter.state.records["correlation"][0] == pytest.approx(1.0)
            assert counts == {"TAIL_RISK_CAP": 4}
            np.testing.assert_allclose(out["bid_size"][0], 0.5)
        else:
            assert abs(limiter.state.records["correlation"][0]) < 0.5
            assert counts == {}


def test_tail_override_on_a_market_wide_move() -> None:
    limiter = make_limiter(tail_move_bp=200.0, tail_size_fraction=0.25, volatility_cap_annual=1e6)
    _feed(limiter, np.full(5, MARK))
    moved = MARK * 0.97  # 300 bp down within the window
    inputs = make_inputs(time_s=5.0, mark=moved, bid=9_699, ask=9_701)
    out, counts = decide(limiter, make_quotes(bid=2.0, ask=0.0, bid_px=9_698), inputs)
    assert limiter.state.records["market_move_bp"][0] == pytest.approx(-1e4 * math.log(0.97))
    assert counts == {"TAIL_RISK_CAP": 1} and out["bid_size"][0, 0] == 0.5


def test_estimator_warmup_cuts_adding_size_until_enough_returns() -> None:
    limiter = make_limiter(estimator_warmup=3, tail_size_fraction=0.25)
    sizes = []
    for t in range(5):
        out, _ = decide(limiter, make_quotes(bid=2.0, ask=0.0), make_inputs(time_s=float(t)))
        sizes.append(out["bid_size"][0, 0])
    assert sizes == [0.5, 0.5, 0.5, 2.0, 2.0]  # returns counted from the second decision
    assert limiter.state.counts()[Reason.ESTIMATOR_WARMUP] == 3


def test_hard_position_limit_counts_resting_orders_as_filled() -> None:
    limiter = make_limiter(
        max_position=10.0, soft_limit_fraction=1.0, max_order_size=5.0, max_order_notional=1e4
    )
    out, counts = decide(
        limiter, make_quotes(bid=5.0, ask=0.0), make_inputs(position=6.0, bid_resting=2.0)
    )
    assert counts == {"POSITION_LIMIT": 1}
    assert out["bid_size"][0, 0] == 2.0  # 6 + 2 resting + 2 = 10


def test_past_the_soft_position_limit_only_reducing_orders() -> None:
    limiter = make_limiter(max_position=10.0, soft_limit_fraction=0.8)
    out, counts = decide(limiter, make_quotes(), make_inputs(position=5.0, bid_resting=3.0))
    assert counts == {"SOFT_POSITION_LIMIT": 1}
    assert out["bid_size"][0, 0] == 0.0 and out["ask_size"][0, 0] == 1.0
    out, counts = decide(make_limiter(), make_quotes(), make_inputs(position=5.0, bid_resting=2.9))
    assert counts == {} and out["bid_size"][0, 0] == 1.0


@pytest.mark.parametrize(("position", "scale"), [(6.0, 1.0), (8.0, 0.5)])
def test_gross_exposure_scales_adding_orders_to_the_hard_limit(
    position: float, scale: float
) -> None:
    # gross (position + 2 s) 100 in perp 0 plus max(2 s, 2 s) 100 in perp 1 <= 1000
    limiter = make_limiter(2, max_gross_notional=1_000.0, soft_limit_fraction=1.0, max_position=20)
    inputs = make_inputs(2, position=[position, 0.0])
    out, counts = decide(limiter, make_quotes(2, bid=2.0, ask=[0.0, 2.0]), inputs)
    assert counts == ({} if scale == 1.0 else {"GROSS_EXPOSURE": 3})
    worst_1 = max(out["bid_size"][0, 1], out["ask_size"][0, 1])
    gross = (position + out["bid_size"][0, 0]) * MARK + worst_1 * MARK
    assert gross == pytest.approx(1_000.0, rel=1e-9) and gross <= 1_000.0 * (1 + 1e-12)
    np.testing.assert_allclose(out["bid_size"][0], 2.0 * scale, rtol=1e-9)  # scaled together


def test_past_the_soft_gross_limit_only_reducing_orders() -> None:
    limiter = make_limiter(
        2, max_gross_notional=1_000.0, soft_limit_fraction=0.8, max_position=20.0
    )
    out, counts = decide(limiter, make_quotes(2), make_inputs(2, position=[8.0, 0.0]))
    assert counts == {"SOFT_GROSS_EXPOSURE": 3}
    assert out["ask_size"][0, 0] == 1.0  # reducing perp 0 passes
    assert out["bid_size"][0, 0] == out["bid_size"][0, 1] == out["ask_size"][0, 1] == 0.0


def test_net_exposure_cuts_adding_parts_before_reducing_ones() -> None:
    # long 5 in perp 0, short 5 in perp 1: net 0; the worst case of both bids filling
    limiter = make_limiter(2, max_net_notional=300.0, soft_limit_fraction=1.0)
    inputs = make_inputs(2, position=[5.0, -5.0])
    out, counts = decide(limiter, make_quotes(2, bid=2.0, ask=0.0), inputs)
    assert counts == {"NET_EXPOSURE": 1}
    assert out["bid_size"][0, 1] == 2.0  # reducing the short: kept
    assert out["bid_size"][0, 0] == pytest.approx(1.0)  # 0 + 200 + 100 = 300


def test_net_exposure_cuts_reducing_parts_when_they_alone_breach() -> None:
    limiter = make_limiter(2, max_net_notional=100.0, soft_limit_fraction=1.0)
    out, counts = decide(
        limiter, make_quotes(2, bid=[0.0, 2.0], ask=0.0), make_inputs(2, position=[5.0, -5.0])
    )
    assert counts == {"NET_EXPOSURE": 1}
    assert out["bid_size"][0, 1] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("unknown", "reason"),
    [({"mark": [math.nan, 100.0, 100.0]}, "UNKNOWN_MARKET"),
     ({"position": [math.nan, 2.0, -2.0]}, "UNKNOWN_POSITION")],
)  # fmt: skip
def test_an_unknown_perp_leaves_the_net_unknown_and_denies_reducing_orders(
    unknown: dict, reason: str
) -> None:
    """Long 5 and 2, short 2 (net long 500 at marks of 100, the limit 600): buying back the
    short would make it 700, and with perp 0 unknown the limiter cannot see that, so no order
    passes, reducing ones included (each raises one side's net notional)."""
    limiter = make_limiter(3, max_net_notional=600.0, soft_limit_fraction=1.0)
    inputs = make_inputs(3, **{"position": [5.0, 2.0, -2.0], **unknown})
    out, counts = decide(limiter, make_quotes(3, bid=2.0, ask=2.0), inputs)
    np.testing.assert_array_equal(out["bid_size"][0], 0.0)
    np.testing.assert_array_equal(out["ask_size"][0], 0.0)
    assert counts == {reason: 6}


def test_past_the_soft_net_limit_only_reducing_orders() -> None:
    limiter = make_limiter(
        2, max_net_notional=1_000.0, soft_limit_fraction=0.5, max_gross_notional=1e6
    )
    out, counts = decide(limiter, make_quotes(2), make_inputs(2, position=[3.0, 3.0]))
    assert counts == {"SOFT_NET_EXPOSURE": 2}  # both adding bids
    np.testing.assert_array_equal(out["bid_size"][0], 0.0)
    np.testing.assert_array_equal(out["ask_size"][0], 1.0)


def test_margin_floor_scales_adding_orders() -> None:
    # margin equity 100, maintenance 2.5 %: a bid of s at 99.98 (no edge, fee 1.5 bp) keeps
    # coverage (100 - fee 99.98 s) / (0.025 x 100 s) >= 50 for s <= 100 / (125 + fee 99.98)
    limiter = make_limiter(
        min_margin_coverage=50.0, reducing_margin_coverage=1.2, halt_margin_coverage=1.0
    )
    out, counts = decide(limiter, make_quotes(bid=2.0, ask=0.0), make_inputs(equity=100.0))
    expected = 100.0 / (125.0 + VENUE.maker_fee * 99.98)
    assert counts == {"MARGIN_FLOOR": 1}
    assert out["bid_size"][0, 0] == pytest.approx(expected, rel=1e-9)
    assert out["bid_size"][0, 0] <= expected


def test_margin_floor_never_blocks_a_reducing_order() -> None:
    limiter = make_limiter(
        min_margin_coverage=50.0, reducing_margin_coverage=1.2, halt_margin_coverage=1.0
    )
    # coverage 200 / 5 = 40 < 50 already: no adding order, the reducing ask passes in full
    out, counts = decide(
        limiter, make_quotes(bid=2.0, ask=2.0), make_inputs(equity=200.0, position=2.0)
    )
    assert out["ask_size"][0, 0] == 2.0 and out["bid_size"][0, 0] == 0.0
    assert counts == {"MARGIN_FLOOR": 1}


@pytest.mark.parametrize(
    ("limit", "reason"),
    [("min_order_size", "BELOW_MIN_SIZE"), ("min_order_notional", "BELOW_MIN_NOTIONAL")],
)
def test_minimum_size_and_notional_deny_only_adding_orders(limit: str, reason: str) -> None:
    value = 0.5 if limit == "min_order_size" else 50.0
    limiter = make_limiter(**{limit: value})
    out, counts = decide(limiter, make_quotes(bid=0.3, ask=0.3), make_inputs(position=0.3))
    assert counts == {reason: 1}
    assert out["bid_size"][0, 0] == 0.0  # adds: denied
    assert out["ask_size"][0, 0] == 0.3  # reduces: never denied for its size


def test_order_throttle_denies_and_backs_off_with_full_jitter() -> None:
    limiter = make_limiter(max_orders_per_second=1.0, order_burst=2.0, backoff_base_seconds=4.0)
    out, counts = decide(limiter, make_quotes(), make_inputs(time_s=0.0))
    assert counts == {}  # two orders, two tokens
    out, counts = decide(limiter, make_quotes(bid_px=9_997, ask_px=10_003), make_inputs(time_s=0.5))
    assert counts == {"ORDER_THROTTLE": 1, "THROTTLE_BACKOFF": 1}  # half a token left
    assert out["bid_size"][0, 0] == out["ask_size"][0, 0] == 0.0
    until = limiter.state.records["backoff_until"][0]
    assert 0.5 <= until <= 0.5 + 4.0
    assert limiter.state.records["backoff_attempts"][0] == 1


def test_throttle_backoff_denies_until_it_ends_and_doubles() -> None:
    limiter = make_limiter(
        max_orders_per_second=1.0,
        order_burst=1.0,
        backoff_base_seconds=100.0,
        backoff_max_seconds=100.0,
    )
    decide(limiter, make_quotes(ask=0.0), make_inputs(time_s=0.0))
    _, counts = decide(limiter, make_quotes(ask=0.0, bid_px=9_997), make_inputs(time_s=0.1))
    assert counts == {"ORDER_THROTTLE": 1}
    until = limiter.state.records["backoff_until"][0]
    assert until > 0.2  # a draw of 0.1 % odds, fixed by the seed
    _, counts = decide(limiter, make_quotes(ask=0.0, bid_px=9_996), make_inputs(time_s=0.2))
    assert counts == {"THROTTLE_BACKOFF": 1}
    out, counts = decide(
        limiter, make_quotes(ask=0.0, bid_px=9_995), make_inputs(time_s=until + 1.0)
    )
    assert counts == {} and out["bid_size"][0, 0] == 1.0  # backoff over, a token earned
    assert limiter.state.records["backoff_attempts"][0] == 0  # reset by a clean decision


def _first_backoffs(num_accounts: int, seed: int) -> np.ndarray:
    """The first backoff of every account (base 1 s), as a fraction of its cap."""
    limiter = make_limiter(
        num_accounts=num_accounts,
        max_orders_per_second=1e-9,
        order_burst=1.0,
        backoff_base_seconds=1.0,
    )
    limiter.open_accounts(seeds=np.arange(num_accounts, dtype=np.uint64) + np.uint64(seed))
    one = make_inputs()
    inputs = RiskInputs(
        np.repeat(one.accounts, num_accounts), np.repeat(one.assets, num_accounts, 0)
    )
    quotes = np.repeat(make_quotes(ask=0.0), num_accounts, axis=0)
    limiter.limit(quotes.copy(), inputs)  # takes the only token
    inputs.accounts["time_s"] = 1.0
    quotes["bid_px"] = 9_997
    counts = limiter.limit(quotes.copy(), inputs)
    assert (counts[:, Reason.ORDER_THROTTLE] == 1).all()
    return limiter.state.records["backoff_until"] - 1.0


def test_backoff_jitter_is_uniform_on_its_cap_and_seeded() -> None:
    n = 4_000
    waits = _first_backoffs(n, seed=0)
    assert ((waits >= 0.0) & (waits <= 1.0)).all()
    # uniform on [0, 1]: mean 1/2 (standard error 1/sqrt(12 n) = 0.0046), P(< 1/4) = 1/4
    # (standard error sqrt(3/16 / n) = 0.0068); both within 4 standard errors
    assert abs(waits.mean() - 0.5) < 4 * 0.0046
    assert abs((waits < 0.25).mean() - 0.25) < 4 * 0.0068
    np.testing.assert_array_equal(waits, _first_backoffs(n, seed=0))  # deterministic
    assert not np.array_equal(waits, _first_backoffs(n, seed=1))


def test_backoff_cap_doubles_with_consecutive_denials() -> None:
    limiter = make_limiter(max_orders_per_second=1e-9, order_burst=1.0, backoff_base_seconds=1.0)
    decide(limiter, make_quotes(ask=0.0), make_inputs(time_s=0.0))
    t = 1.0
    for n in range(1, 10):
        decide(limiter, make_quotes(ask=0.0, bid_px=9_990 + n % 3), make_inputs(time_s=t))
        until = float(limiter.state.records["backoff_until"][0])
        assert limiter.state.records["backoff_attempts"][0] == n
        assert 0.0 <= until - t <= min(30.0, 2.0 ** (n - 1))
        t = max(t, until) + 1e-6


def test_cancel_throttle_denies_replaces_but_never_cancels() -> None:
    limiter = make_limiter(max_cancels_per_second=0.1, cancel_burst=1.0)
    inputs = make_inputs(
        time_s=0.0, bid_resting=1.0, bid_resting_px=9_998, ask_resting=1.0, ask_resting_px=10_002
    )
    out, counts = decide(limiter, make_quotes(bid_px=9_997, ask_px=10_003), inputs)
    assert counts == {"CANCEL_THROTTLE": 1}  # one replace fits the bucket
    assert out["bid_size"][0, 0] == 1.0 and out["ask_size"][0, 0] == 0.0
    inputs = make_inputs(
        time_s=50.0, bid_resting=1.0, bid_resting_px=9_997, ask_resting=1.0, ask_resting_px=10_003
    )
    out, counts = decide(limiter, make_quotes(bid=0.0, ask=0.0), inputs)
    assert counts == {}  # plain cancels always pass


def test_counts_are_per_decision_and_add_up_to_the_totals() -> None:
    limiter = make_limiter(max_order_size=2.0)
    opened = limiter.state.denials.copy()
    seen = np.zeros_like(opened)
    rng = np.random.default_rng(0)
    for t in range(200):
        size = float(rng.choice([0.5, 5.0, math.nan]))  # clean, clipped or denied
        _, counts = decide(limiter, make_quotes(bid=size, ask=0.0), make_inputs(time_s=t))
        last = limiter.state.last_denials
        assert last[0, Reason.NONE] == 0
        if size == 0.5:
            assert counts == {} and not last.any()  # nothing left from the decision before
        seen += last
    np.testing.assert_array_equal(limiter.state.denials - opened, seen)
    assert seen[0, Reason.ORDER_SIZE] > 0 and seen[0, Reason.NON_FINITE_ORDER] > 0
