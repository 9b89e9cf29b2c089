"""Book conflation on the live path: a burst of books queued before a decision reaches the
feed as one update, the newest; order updates and fills are never conflated or reordered."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from agents.baselines.registry import make_baseline
from agents.deploy.guard import GuardedPolicy
from agents.live.journal import Journal
from agents.live.pacing import WallPacer
from agents.live.runner import LiveRunner, RunnerConfig
from agents.live.venues import HyperliquidVenue, Signer
from agents.live.venues.base import BookSnapshot, Fill, OrderUpdate, Trade
from mmgym.scenarios import make_params
from tests.venue_support import AGENT_KEY, USER

BURST = 25
T0 = 1_700_000_000_000


def _book(coin: str, i: int) -> dict[str, Any]:
    mid = 100.0 + i
    return {
        "channel": "l2Book",
        "data": {
            "coin": coin,
            "time": T0 + 10 * i,
            "levels": [
                [{"px": str(mid - 0.5), "sz": "1.0", "n": 1}],
                [{"px": str(mid + 0.5), "sz": "1.0", "n": 1}],
            ],
        },
    }


def _update(i: int) -> dict[str, Any]:
    order = {"coin": "BTC", "oid": 1000 + i, "cloid": f"0x{i:032x}", "side": "B",
             "limitPx": "99.0", "sz": "0.0", "origSz": "0.1"}  # fmt: skip
    return {
        "channel": "orderUpdates",
        "data": [{"order": order, "status": "canceled", "statusTimestamp": T0 + 10 * i}],
    }


def _fill(i: int) -> dict[str, Any]:
    fill = {"coin": "BTC", "oid": 2000 + i, "cloid": None, "tid": 3000 + i, "side": "A",
            "px": "101.0", "sz": "0.1", "fee": "0.0", "closedPnl": "0.0",
            "startPosition": "0.0", "crossed": False, "time": T0 + 10 * i}  # fmt: skip
    return {"channel": "userFills", "data": {"user": USER, "isSnapshot": False, "fills": [fill]}}


def _trade(i: int) -> dict[str, Any]:
    trade = {"coin": "BTC", "side": "B", "px": "100.0", "sz": "0.5", "time": T0 + 10 * i,
             "tid": 4000 + i, "hash": "0x0"}  # fmt: skip
    return {"channel": "trades", "data": [trade]}


def _burst() -> list[dict[str, Any]]:
    """BURST books of BTC and two of ETH, with order updates, fills and trades between."""
    messages = []
    for i in range(BURST):
        messages.append(_book("BTC", i))
        if i % 3 == 0:
            messages.append(_update(i))
        if i % 4 == 1:
            messages.append(_fill(i))
        if i % 5 == 2:
            messages.append(_trade(i))
        if i in (3, 20):
            messages.append(_book("ETH", i))
    return messages


def _account_events(events: list[Any]) -> list[tuple[str, int]]:
    return [
        ("update", e.oid) if isinstance(e, OrderUpdate) else ("fill", e.tid)
        for e in events
        if isinstance(e, OrderUpdate | Fill)
    ]


def _expected_account_events() -> list[tuple[str, int]]:
    expected = []
    for i in range(BURST):
        if i % 3 == 0:
            expected.append(("update", 1000 + i))
        if i % 4 == 1:
            expected.append(("fill", 3000 + i))
    return expected


def _venue(conflate: bool) -> HyperliquidVenue:
    venue = HyperliquidVenue("http://127.0.0.1:1", Signer(AGENT_KEY), account_address=USER)
    venue.conflate_books = conflate
    for message in _burst():
        venue._on_message(message)
    return venue


def test_a_burst_of_books_is_one_event_with_the_newest_book() -> None:
    venue = _venue(conflate=True)
    events = list(venue.ready_events())
    books = [e for e in events if isinstance(e, BookSnapshot)]
    assert [(b.coin, b.time_ms) for b in books] == [
        ("BTC", T0 + 10 * (BURST - 1)),
        ("ETH", T0 + 200),
    ]
    assert venue.conflated_books == (BURST - 1) + 1  # BTC's and ETH's superseded books
    assert _account_events(events) == _expected_account_events()
    assert len([e for e in events if isinstance(e, Trade)]) == len(range(2, BURST, 5))
    assert not list(venue.ready_events())


def test_events_conflate_as_ready_events_do() -> None:
    async def take(venue: HyperliquidVenue, n: int) -> list[Any]:
        stream = venue.events()
        return [await anext(stream) for _ in range(n)]

    drained = list(_venue(conflate=True).ready_events())
    assert asyncio.run(take(_venue(conflate=True), len(drained))) == drained


def test_without_conflation_every_book_arrives_in_order() -> None:
    events = list(_venue(conflate=False).ready_events())
    btc = [e.time_ms for e in events if isinstance(e, BookSnapshot) and e.coin == "BTC"]
    assert btc == [T0 + 10 * i for i in range(BURST)]
    assert _account_events(events) == _expected_account_events()


def test_the_runner_takes_a_burst_as_one_feed_update(tmp_path: Path) -> None:
    params = make_params("calm", episode_seconds=3600.0, num_assets=2)
    guarded = GuardedPolicy(make_baseline("avellaneda_stoikov", params), params)
    venue = HyperliquidVenue("http://127.0.0.1:1", Signer(AGENT_KEY), account_address=USER)
    with Journal.open(tmp_path / "journal.db") as journal:
        config = RunnerConfig(coins=("BTC", "ETH"), epoch_ms=T0, collateral=params.collateral)
        runner = LiveRunner(venue, guarded, journal, config, WallPacer(1.0))
        assert venue.conflate_books, "the runner asks its venue to conflate books"
        runner._collateral = params.collateral  # as run() sets it before the first decision
        feed = runner._feed()
        for message in _burst():
            venue._on_message(message)
        handled: list[Any] = []
        handle = runner.handle
        runner.handle = lambda event: (handled.append(event), handle(event))  # type: ignore[method-assign]
        runner._drain()  # what the runner does before each decision
    assert feed.messages == 2 + len(range(2, BURST, 5))  # a book per coin, and the trades
    assert feed.conflated == 0
    book = feed.book("BTC")
    assert book is not None and book.time_ms == T0 + 10 * (BURST - 1)
    assert _account_events(handled) == _expected_account_events()
    assert [f.tid for f in runner.manager.fills.values()] == [3000 + i for i in range(1, BURST, 4)]
