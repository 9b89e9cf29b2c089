"""Hyperliquid's wire format: rounding onto the price/size grid, order wires equal to the SDK's,
and every message and answer kind translated from fixtures in the SDK's formats."""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hyperliquid.utils.signing import float_to_wire, order_request_to_order_wire
from hyperliquid.utils.types import Cloid
from hypothesis import given
from hypothesis import strategies as st

from agents.live.venues import OrderRequest, OrderState, Tif
from agents.live.venues.base import BookLevel
from agents.live.venues.wire import (
    FLOAT_NOISE,
    AssetMeta,
    VenueMessageError,
    check_cloid,
    is_on_grid,
    order_state,
    order_wire,
    parse_asset_ctx,
    parse_book,
    parse_cancel_answer,
    parse_clearinghouse,
    parse_fill_list,
    parse_funding_history,
    parse_meta,
    parse_open_orders,
    parse_order_answer,
    parse_order_status,
    parse_order_updates,
    parse_trades,
    parse_user_fills,
    parse_user_fundings,
    price_quantum,
    round_price,
    round_size,
)

FIXTURES = Path(__file__).parent / "fixtures" / "hyperliquid"
MESSAGES = json.loads((FIXTURES / "messages.json").read_text())
WIRES = json.loads((FIXTURES / "order_wires.json").read_text())


# -- rounding ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("px", "sz_decimals", "is_buy", "expected"),
    [
        (67321.4, 5, True, "67321"),  # 5 significant figures
        (67321.4, 5, False, "67322"),
        (123456.7, 5, True, "123456"),  # integer prices are always valid
        (123456.2, 5, False, "123457"),
        (3456.78, 4, True, "3456.7"),
        (3456.71, 4, False, "3456.8"),
        (1.234567, 0, True, "1.2345"),
        (0.0123456, 0, True, "0.012345"),  # 6 - 0 decimals
        (0.0123456, 2, True, "0.0123"),  # 6 - 2 decimals beat 5 figures
        (0.0123456, 2, False, "0.0124"),
        (9.99995, 1, False, "10"),  # rounding up adds a digit
        (100.07, 2, True, "100.07"),  # 100.07 is not 100.0699999... to the grid
        (0.3 + 0.6, 4, True, "0.9"),
    ],
)
def test_prices_round_away_from_the_other_side(
    px: float, sz_decimals: int, is_buy: bool, expected: str
) -> None:
    rounded = round_price(px, sz_decimals, is_buy)
    assert str(rounded.normalize()) == expected or f"{rounded:f}" == expected
    assert is_on_grid(rounded, sz_decimals)


@given(
    px=st.floats(1e-4, 1e6, allow_nan=False),
    sz_decimals=st.integers(0, 5),
    is_buy=st.booleans(),
)
def test_rounded_prices_are_on_the_grid_on_the_right_side_and_nearest(
    px: float, sz_decimals: int, is_buy: bool
) -> None:
    try:
        rounded = round_price(px, sz_decimals, is_buy)
    except ValueError:  # a bid below the finest step rounds to 0
        assert is_buy and px < 10.0 ** -(6 - sz_decimals)
        return
    exact = Decimal(repr(px))
    noise = exact * FLOAT_NOISE  # within float noise of a grid point, that point is taken
    assert is_on_grid(rounded, sz_decimals)
    assert (rounded <= exact + noise) if is_buy else (rounded >= exact - noise)
    step = price_quantum(min(rounded, exact), sz_decimals)
    assert abs(rounded - exact) < step  # the nearest grid price on that side
    assert round_price(float(rounded), sz_decimals, is_buy) == rounded  # idempotent
    assert float_to_wire(float(rounded)) == f"{rounded.normalize():f}"  # the SDK accepts it


@given(sz=st.floats(1e-5, 1e6), sz_decimals=st.integers(0, 5))
def test_sizes_round_down_to_sz_decimals(sz: float, sz_decimals: int) -> None:
    step = Decimal(1).scaleb(-sz_decimals)
    if Decimal(repr(sz)) * (1 + FLOAT_NOISE) < step:
        with pytest.raises(ValueError, match="rounds to 0"):
            round_size(sz, sz_decimals)
        return
    rounded = round_size(sz, sz_decimals)
    exact = Decimal(repr(sz))
    assert rounded % step == 0 and rounded - exact * FLOAT_NOISE <= exact < rounded + step


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_non_positive_or_non_finite_prices_and_sizes_are_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="positive finite"):
        round_price(bad, 2, True)
    with pytest.raises(ValueError, match="positive finite"):
        round_size(bad, 2)


# -- order wires -------------------------------------------------------------------------------


@pytest.mark.parametrize("case", WIRES["orders"], ids=lambda c: c["wire"]["c"])
def test_order_wires_equal_the_sdks(case: dict[str, Any]) -> None:
    request = case["request"]
    order = OrderRequest(
        coin=request["coin"],
        is_buy=request["is_buy"],
        sz=request["sz"],
        px=request["limit_px"],
        cloid=request["cloid"],
        tif=Tif(request["order_type"]["limit"]["tif"]),
        reduce_only=request["reduce_only"],
    )
    asset = AssetMeta(request["coin"], case["asset"], case["szDecimals"])
    assert order_wire(order, asset) == case["wire"]
    sdk = order_request_to_order_wire({**request, "cloid": Cloid(request["cloid"])}, case["asset"])
    assert order_wire(order, asset) == sdk


def test_an_unrounded_order_is_rounded_before_the_sdk_sees_it() -> None:
    asset = AssetMeta("BTC", 0, 5)
    bid = OrderRequest("BTC", True, 0.0123456789, 67321.987654, "0x" + "0" * 31 + "1")
    with pytest.raises(ValueError, match="rounding"):  # the SDK alone refuses it
        float_to_wire(bid.px + 1e-9)
    wire = order_wire(bid, asset)
    assert (wire["p"], wire["s"]) == ("67321", "0.01234")
    ask = OrderRequest("BTC", False, 0.0123456789, 67321.0001, "0x" + "0" * 31 + "2")
    assert order_wire(ask, asset)["p"] == "67322"


@pytest.mark.parametrize("cloid", ["0x123", "12345678901234567890123456789012", "0x" + "g" * 32])
def test_malformed_cloids_are_refused(cloid: str) -> None:
    with pytest.raises(ValueError, match="32 hex digits"):
        check_cloid(cloid)


# -- messages and answers ----------------------------------------------------------------------


def test_meta() -> None:
    assets = parse_meta(MESSAGES["meta"])
    assert assets["ETH"] == AssetMeta("ETH", 1, 4)
    assert [a.asset for a in assets.values()] == [0, 1, 2]
    with pytest.raises(VenueMessageError, match="szDecimals"):
        parse_meta({"universe": [{"name": "X", "szDecimals": 9}]})


def test_book() -> None:
    book = parse_book(MESSAGES["ws"]["l2Book"]["data"])
    assert book.coin == "BTC" and book.time_ms == 1764867600268
    assert [(lv.px, lv.sz, lv.n) for lv in book.bids] == [(67320.0, 1.2, 3), (67319.0, 0.5, 1)]
    assert [(lv.px, lv.sz, lv.n) for lv in book.asks] == [(67321.0, 0.8, 2)]


def test_trades() -> None:
    trades = parse_trades(MESSAGES["ws"]["trades"]["data"])
    assert [(t.is_buy, t.px, t.sz, t.tid) for t in trades] == [
        (False, 67320.0, 0.01, 118906512037719),
        (True, 67321.0, 0.02, 118906512037720),
    ]


def test_asset_context() -> None:
    ctx = parse_asset_ctx(MESSAGES["ws"]["activeAssetCtx"]["data"])
    assert (ctx.funding_rate, ctx.mark_px, ctx.oracle_px, ctx.mid_px, ctx.open_interest) == (
        0.0000125,
        67318.0,
        67310.0,
        67320.5,
        1234.5,
    )


def test_order_updates() -> None:
    opened, rejected = parse_order_updates(MESSAGES["ws"]["orderUpdates"]["data"])
    assert (opened.oid, opened.cloid, opened.is_buy, opened.state) == (
        42,
        "0x00000000000000000000000000000001",
        True,
        OrderState.RESTING,
    )
    assert (rejected.cloid, rejected.status, rejected.state) == (
        None,
        "badAloPxRejected",
        OrderState.REJECTED,
    )


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("open", OrderState.RESTING),
        ("filled", OrderState.FILLED),
        ("canceled", OrderState.CANCELED),
        ("reduceOnlyCanceled", OrderState.CANCELED),
        ("selfTradeCanceled", OrderState.CANCELED),
        ("liquidatedCanceled", OrderState.CANCELED),
        ("scheduledCancel", OrderState.CANCELED),
        ("rejected", OrderState.REJECTED),
        ("badAloPxRejected", OrderState.REJECTED),
        ("minTradeNtlRejected", OrderState.REJECTED),
        ("perpMarginRejected", OrderState.REJECTED),
        ("reduceOnlyRejected", OrderState.REJECTED),
        ("somethingNew", OrderState.UNKNOWN),
    ],
)
def test_order_status_words(status: str, state: OrderState) -> None:
    assert order_state(status) is state


def test_user_fills_stream_and_answer() -> None:
    fill, liquidation = parse_user_fills(MESSAGES["ws"]["userFills"]["data"])
    assert (fill.tid, fill.oid, fill.is_buy, fill.px, fill.sz, fill.fee) == (
        7,
        42,
        True,
        67300.0,
        0.01,
        -0.01346,
    )
    assert fill.cloid == "0x00000000000000000000000000000001" and not fill.liquidation
    assert liquidation.liquidation and liquidation.crossed and liquidation.closed_pnl == -3.0
    assert liquidation.start_position == 0.01
    assert not fill.snapshot
    assert parse_fill_list(MESSAGES["info"]["userFillsByTime"]) == (fill,)


def test_fundings_stream_and_answer() -> None:
    (payment,) = parse_user_fundings(MESSAGES["ws"]["userFundings"]["data"])
    assert (payment.coin, payment.usdc, payment.szi, payment.rate, payment.time_ms) == (
        "BTC",
        -0.0841,
        0.01,
        0.0000125,
        1764867600000,
    )
    assert payment.snapshot  # the fixture's message is the subscription's snapshot
    (answered,) = parse_funding_history(MESSAGES["info"]["userFunding"])
    assert answered == dataclasses.replace(payment, snapshot=False)


def test_clearinghouse_state() -> None:
    state = parse_clearinghouse(MESSAGES["info"]["clearinghouseState"])
    (position,) = state.positions
    assert (position.coin, position.szi, position.entry_px, position.liquidation_px) == (
        "BTC",
        -0.01,
        67300.0,
        None,
    )
    assert (state.account_value, state.total_margin_used, state.withdrawable) == (
        10000.2,
        33.65,
        9966.55,
    )


def test_open_orders_and_order_status() -> None:
    (order,) = parse_open_orders(MESSAGES["info"]["frontendOpenOrders"])
    assert (order.oid, order.sz, order.orig_sz, order.tif, order.cloid) == (
        42,
        0.01,
        0.02,
        "Alo",
        "0x00000000000000000000000000000001",
    )
    status = parse_order_status(MESSAGES["info"]["orderStatus"])
    assert status.state is OrderState.FILLED and status.time_ms == 1764867600700
    assert status.order is not None and status.order.reduce_only and status.order.oid == 99
    unknown = parse_order_status(MESSAGES["info"]["orderStatusUnknown"])
    assert (unknown.state, unknown.status, unknown.order) == (
        OrderState.UNKNOWN,
        "unknownOid",
        None,
    )


def test_order_answers() -> None:
    answers = MESSAGES["exchange"]
    c1, c2 = "0x" + "0" * 31 + "1", "0x" + "0" * 31 + "2"
    (resting,) = parse_order_answer(answers["orderResting"], [c1])
    assert (resting.state, resting.oid, resting.cloid) == (OrderState.RESTING, 42, c1)
    (filled,) = parse_order_answer(answers["orderFilled"], [c1])
    assert (filled.state, filled.filled_sz, filled.avg_px) == (OrderState.FILLED, 0.02, 1891.4)
    ok, refused = parse_order_answer(answers["orderMixed"], [c1, c2])
    assert ok.state is OrderState.RESTING and refused.state is OrderState.REJECTED
    assert refused.error is not None and refused.error.startswith("Post only order would have")
    failed = parse_order_answer(answers["orderErr"], [c1, c2])
    assert all(
        a.state is OrderState.REJECTED and "does not exist" in (a.error or "") for a in failed
    )
    with pytest.raises(VenueMessageError, match="for 2 request"):
        parse_order_answer(answers["orderResting"], [c1, c2])


def test_cancel_answers() -> None:
    assert parse_cancel_answer(MESSAGES["exchange"]["cancelSuccess"]).ok
    refused = parse_cancel_answer(MESSAGES["exchange"]["cancelError"])
    assert not refused.ok and "never placed" in (refused.error or "")


@pytest.mark.parametrize(
    ("parse", "message", "named"),
    [
        (parse_book, {"coin": "BTC", "time": 1}, "l2Book lacks 'levels'"),
        (
            parse_book,
            {"coin": "BTC", "time": 1, "levels": [[{"px": "x", "sz": "1", "n": 1}], []]},
            "'px' is not a number",
        ),
        (
            parse_trades,
            [{"coin": "BTC", "side": "S", "px": "1", "sz": "1", "time": 1, "tid": 1}],
            "'side' is 'S'",
        ),
        (parse_user_fills, {"fills": [{"coin": "BTC"}]}, "fill lacks 'oid'"),
        (parse_order_status, {"status": "weird"}, "status 'weird'"),
        (parse_clearinghouse, [], "clearinghouseState is not an object"),
    ],
)
def test_malformed_messages_name_what_is_wrong(parse: Any, message: Any, named: str) -> None:
    with pytest.raises(VenueMessageError, match=named.replace("(", r"\(")):
        parse(message)


@pytest.mark.parametrize(
    ("level", "named"),
    [
        ({"sz": "1", "n": 1}, "l2Book level lacks 'px'"),
        ({"px": "1", "sz": "nan", "n": 1}, "'sz' is not finite"),
        ({"px": "inf", "sz": "1", "n": 1}, "'px' is not finite"),
        ({"px": None, "sz": "1", "n": 1}, "'px' is not a number"),
        ({"px": "1", "sz": "1", "n": True}, "'n' is not an integer"),
        ({"px": "1", "sz": "1", "n": 1.5}, "'n' is not an integer"),
        ({"px": "1", "sz": "1"}, "l2Book level lacks 'n'"),
        (["1", "1", 1], "l2Book level is not an object"),
    ],
)
def test_every_bad_book_level_is_named(level: Any, named: str) -> None:
    good = {"px": "99.5", "sz": "2", "n": 3}
    message = {"coin": "BTC", "time": 1, "levels": [[good, level], [good]]}
    with pytest.raises(VenueMessageError, match=named):
        parse_book(message)


def test_book_levels_read_strings_and_numbers_alike() -> None:
    levels = [[{"px": "99.5", "sz": "2", "n": 3}], [{"px": 100.5, "sz": 1, "n": 2}]]
    book = parse_book({"coin": "BTC", "time": 1, "levels": levels})
    assert book.bids[0] == BookLevel(99.5, 2.0, 3) and book.asks[0] == BookLevel(100.5, 1.0, 2)
    assert type(book.asks[0].sz) is float
