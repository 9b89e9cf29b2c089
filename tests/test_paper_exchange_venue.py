"""The paper venue's own rules (no HTTP): orders that end on their own, a liquidation, the
market's end, and the wire checks of prices, sizes and nonces."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from mmgym.exchange import MarketClosedError, PaperVenue
from mmgym.exchange.auth import NONCE_WINDOW, NonceBook
from mmgym.exchange.wire import number, price, valid_price, valid_size
from mmgym.scenarios import make_params

USER = "0x" + "cd" * 20


def _venue(scenario: str = "calm", seed: int = 1, **overrides: Any) -> PaperVenue:
    params = make_params(scenario, **{"episode_seconds": 3600.0, **overrides})
    return PaperVenue(params, seed, ["BTC"], USER, epoch_ms=0)


def _order(venue: PaperVenue, is_buy: bool, ticks: int, size: str, **extra: Any) -> Any:
    wire_order = {
        "a": 0,
        "b": is_buy,
        "p": venue.price_text(ticks, venue.coins[0]),
        "s": size,
        "r": False,
        "t": {"limit": {"tif": "Alo"}},
        **extra,
    }
    return venue.place(wire_order)


def _statuses(venue: PaperVenue) -> list[str]:
    return [o.status for o in venue.book.orders.values()]


def test_the_mid_drifting_out_of_the_action_range_cancels_the_order() -> None:
    venue = _venue(max_skew_ticks=1.0, max_half_spread_ticks=1.0)
    best_bid, _ = venue.best_ticks(0)
    assert "resting" in _order(venue, True, best_bid, "0.01")
    for _ in range(600):
        venue.advance(1)
        if venue.book.resting_order(0, True) is None:
            break
    order = next(iter(venue.book.orders.values()))
    assert order.status == "outOfRangeCanceled" and order.filled == 0.0, order
    best_bid, best_ask = venue.best_ticks(0)
    # with a one-tick skew and half-spread, no action puts a bid this far from the mid
    assert 0.5 * (best_bid + best_ask) - order.ticks > 2.0
    updates = [e.data[0]["status"] for e in venue.outbox if e.channel == "orderUpdates"]
    assert updates == ["open", order.status]


def test_a_reduce_only_order_ends_when_its_position_closes() -> None:
    venue = _venue(seed=2)
    while venue.assets[0]["inventory"] < 0.3:  # buy a position at the touch
        if venue.book.resting_order(0, True) is None:
            _order(venue, True, venue.best_ticks(0)[0], "0.3")
        venue.advance(1)
    if venue.book.resting_order(0, True) is not None:
        assert venue.cancel(0, venue.book.resting_order(0, True).oid) == "success"  # type: ignore[union-attr]
    position = float(venue.assets[0]["inventory"])
    refused = _order(venue, True, venue.best_ticks(0)[0] - 3, "0.1", r=True)
    assert refused == {"error": "Reduce only order would increase position. asset=0"}
    closing = _order(venue, False, venue.best_ticks(0)[1], "2", r=True)["resting"]["oid"]
    for _ in range(500):
        venue.advance(1)
        if not venue.book.orders[closing].is_open:
            break
    order = venue.book.orders[closing]
    # it offered the position's size at each decision: the position closed, or went past zero
    # by fills in the latency window before a decision (the kernel re-quotes), and it ended
    assert order.status == "reduceOnlyCanceled", order
    end = float(venue.assets[0]["inventory"])
    assert abs(end) < position and not (end >= venue.params.min_quote_size)
    assert order.filled == pytest.approx(position - end)


def test_a_liquidation_cancels_every_order_books_the_forced_close_and_ends_the_market() -> None:
    # seed 4: the account's bid rests when it is liquidated (on some paths it has just filled)
    venue = _venue(
        "liquidation_cascade", seed=4, collateral=60.0, max_inventory=50.0, max_quote_size=2.0
    )
    cash = float(venue.assets[0]["cash"])
    for _ in range(1000):
        if venue.ended:
            break
        if venue.book.resting_order(0, True) is None:
            _order(venue, True, venue.best_ticks(0)[0], "2")
        venue.advance(1)
    assert venue.ended == "liquidated"
    assert venue.assets[0]["inventory"] == 0.0
    forced = venue.fills[-1]
    assert forced["crossed"] is True and forced["liquidation"]["liquidatedUser"] == USER
    assert forced["side"] == "A" and forced["dir"] == "Close Long"
    assert "liquidatedCanceled" in _statuses(venue) and venue.book.open_orders() == []
    # every unit of cash the account spent is a fill's price and fee or a funding payment
    spent = sum(
        float(f["sz"]) * float(f["px"]) * (1 if f["side"] == "B" else -1) + float(f["fee"])
        for f in venue.fills
    ) - sum(float(f["usdc"]) for f in venue.fundings)
    assert spent == pytest.approx(cash - float(venue.assets[0]["cash"]), abs=1e-8)
    with pytest.raises(MarketClosedError, match="liquidated"):
        venue.advance(1)
    refused = _order(venue, True, venue.best_ticks(0)[0] - 1, "1")
    assert refused == {"error": "Paper exchange: the market has ended (liquidated). asset=0"}


def test_the_market_ends_after_its_episode() -> None:
    venue = _venue(episode_seconds=5.0)
    assert venue.advance(10) == 5 and venue.ended == "truncated"
    assert venue.time_ms() == venue.epoch_ms + 5000
    with pytest.raises(MarketClosedError, match="truncated"):
        venue.advance(1)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_funding_falls_on_multiples_of_the_interval(seed: int) -> None:
    """The epoch moves back (by less than one interval) so that funding times are multiples
    of the funding interval on the venue's clock, whatever the kernel's random first phase."""
    given = 1_700_000_000_123
    params = make_params("calm", episode_seconds=600.0, funding_interval_seconds=60.0)
    venue = PaperVenue(params, seed, ["BTC"], USER, epoch_ms=given)
    assert 0 <= given - venue.epoch_ms < 60_000
    venue.advance(200)
    assert venue.funding_rates, "funding was settled"
    assert all(rate["time"] % 60_000 == 0 for rate in venue.funding_rates)


@pytest.mark.parametrize(
    ("text", "sz_decimals", "valid"),
    [
        ("100.01", 4, True),
        ("100.015", 4, False),  # 6 significant figures
        ("12345", 4, True),
        ("123456", 4, True),  # an integer is always valid
        ("1234.5", 4, True),
        ("0.000123", 0, True),
        ("0.0001234", 0, False),  # 7 decimals
        ("0", 4, False),
        ("-1", 4, False),
    ],
)
def test_hyperliquids_price_rule(text: str, sz_decimals: int, valid: bool) -> None:
    assert valid_price(Decimal(text), sz_decimals) is valid


def test_sizes_and_numbers_on_the_wire() -> None:
    assert valid_size(Decimal("0.1234"), 4) and not valid_size(Decimal("0.12345"), 4)
    assert not valid_size(Decimal("0"), 4)
    assert number(0.1) == "0.1" and number(1e-5) == "0.00001" and number(100.0) == "100"
    assert float(number(0.1 + 0.2)) == 0.1 + 0.2  # reads back as the same float
    assert price(99.97000000000001, 4) == "99.97" and price(123456.7, 4) == "123457"


def test_nonces_follow_hyperliquids_rule() -> None:
    book = NonceBook()
    now = 1_700_000_000_000
    assert book.check("a", now, now) is None
    book.use("a", now)
    assert "already used" in str(book.check("a", now, now))
    assert book.check("b", now, now) is None  # nonces are per signer
    assert "outside" in str(book.check("a", now - 3 * 86_400_000, now))
    assert "outside" in str(book.check("a", now + 2 * 86_400_000, now))
    for i in range(1, NONCE_WINDOW + 1):
        book.use("a", now + i)
    # the smallest of the 100 highest is now + 1: anything not above it is refused
    assert "not above the smallest" in str(book.check("a", now - 5, now))
    assert book.check("a", now + NONCE_WINDOW + 1, now) is None
