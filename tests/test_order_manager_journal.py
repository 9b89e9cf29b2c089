"""The order manager writing the real SQLite journal while it trades the paper exchange
(lockstep, 127.0.0.1): what ``recover`` rebuilds from the journal is the venue's own state
(open orders by cloid and oid, position, cash), and a manager restored from it holds the
original manager's open orders, position and cash."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import pytest
from venue_support import (
    adapter,
    advance,
    best_bid_ask,
    loopback_only,  # noqa: F401  (a fixture)
    paper_exchange,
    pumping,
)

from agents.live.journal import Journal, Kind
from agents.live.order_manager import ManagerConfig, OrderManager, Quote, from_recovered
from agents.live.order_state import ManagedOrder, OrderPhase, Version
from agents.live.recovery import recover
from agents.live.venues import FundingPayment, HyperliquidVenue, Venue, VenueEvent

pytestmark = pytest.mark.usefixtures("loopback_only")

BOUND = 90.0  # s, the most the session may take on a loaded machine
DECISIONS = 30
STEPS = 4  # lockstep market steps per decision: the market moves through the quotes
SETTLED = (OrderPhase.RESTING, OrderPhase.PARTIALLY_FILLED)
"""Phases of an order no answer is awaited for."""


async def until(check: Callable[[], Awaitable[bool]], timeout_s: float = 15.0) -> None:
    """Wait for ``check()`` (TimeoutError after ``timeout_s``)."""
    async with asyncio.timeout(timeout_s):
        while not await check():
            await asyncio.sleep(0.02)


def view(order: ManagedOrder) -> tuple[Any, ...]:
    """What an open order is to the manager (its cancel-replace tree included)."""
    v = order.version
    return (order.coin, order.is_buy, order.phase, order.oids, v.oid, v.px, v.sz, v.filled)


def test_a_journaled_session_recovers_the_venues_state_and_restores_the_manager(
    tmp_path: Path,
) -> None:
    # funding once every 6 h of market time: none in this session, so the kernel's cash is the
    # fills' (a funding payment would be journaled by the pump, but could arrive after it stops)
    with (
        paper_exchange(seed=2, funding_seconds=6 * 3600.0) as server,
        Journal.open(tmp_path / "live.journal.sqlite", synchronous="NORMAL") as journal,
    ):

        async def main() -> None:
            async with adapter(server.url, request_timeout_s=10.0) as venue:
                m = OrderManager(venue, journal.append, seed=0, config=ManagerConfig(jitter_s=0.0))

                def handle(event: VenueEvent) -> None:
                    if isinstance(event, FundingPayment):  # journaled, as the live runner does
                        journal.append(Kind.FUNDING, event)
                    m.handle(event)

                async with pumping(handle, venue):
                    await asyncio.wait_for(session(venue, m), BOUND)
                await check(venue, m)

        async def session(venue: HyperliquidVenue, m: OrderManager) -> None:
            for t in range(DECISIONS):
                bid, ask = await best_bid_ask(server.url)
                ask_sz = 0.0 if t % 5 == 4 else 0.5  # every fifth decision: no ask (a cancel)
                await m.sync({"BTC": Quote(bid, 0.5, ask, ask_sz)}, now_s=float(t))
                await advance(server.url, STEPS)
                await asyncio.sleep(0.05)  # let the stream's updates and fills arrive
                if any(o.phase == OrderPhase.UNKNOWN for o in m.active()):
                    await m.reconcile(float(t))  # as the runner does: settled by cloid

            async def settled() -> bool:
                if any(o.phase == OrderPhase.UNKNOWN for o in m.active()):
                    await m.reconcile()  # a rejected replace: orderStatus settles it
                return all(o.phase in SETTLED for o in m.active())

            await until(settled)  # no order in flight
            report = await m.reconcile()  # imports a fill the stream has not delivered yet
            assert not report.position_drift and report.unresolved == ()

        async def check(venue: HyperliquidVenue, m: OrderManager) -> None:
            actions = [e.payload["action"] for e in journal.events() if e.kind is Kind.INTENT]
            assert {"place", "replace", "cancel"} <= set(actions), actions
            assert len(m.fills) >= 1, "no fill in the session"
            state = recover(journal)
            listed = {o.cloid: o for o in await venue.open_orders()}
            assert {o.cloid for o in state.open_orders()} == set(listed)
            assert all(state.orders[c].oid == o.oid for c, o in listed.items())
            assert state.unknown_orders() == []
            (position,) = [p.szi for p in (await venue.account()).positions if p.coin == "BTC"]
            kernel = server.exchange.venue.assets[0]
            assert state.positions["BTC"] == pytest.approx(position, rel=1e-9, abs=1e-9)
            assert state.positions["BTC"] == pytest.approx(float(kernel["inventory"]), abs=1e-9)
            assert state.cash["BTC"] == pytest.approx(float(kernel["cash"]), rel=1e-9, abs=1e-9)
            assert state.funding == {}  # (none in this session: the cash is the fills')

            recorded: list[str] = []
            restored = OrderManager(venue, lambda kind, *_, **__: recorded.append(kind))
            restored.restore(*from_recovered(state))
            assert recorded == []  # recovered fills are booked, not recorded again
            assert {o.cloid: view(o) for o in restored.active()} == {
                o.cloid: view(o) for o in m.active()
            }
            assert restored.positions == pytest.approx(m.positions, abs=1e-12)
            assert restored.cash == pytest.approx(m.cash, rel=1e-12, abs=1e-9)
            assert set(restored.fills) == set(m.fills)

        asyncio.run(main())


CLOID = "0x" + "c4" * 16


def test_a_replace_in_flight_is_restored_in_doubt_with_its_replacement_pending(
    tmp_path: Path,
) -> None:
    """The journal ends after a replace's intent (the process died before the answer): the
    restored order is UNKNOWN, its version the replaced one, the replacement pending, so the
    venue's ``orderStatus`` answer settles it as the manager settles its own replaces."""
    order = {"coin": "BTC", "is_buy": True, "px": 99.0, "sz": 0.5, "cloid": CLOID}
    fill = {"coin": "BTC", "oid": 7, "cloid": CLOID, "tid": 1, "is_buy": True, "px": 99.0,
            "sz": 0.2, "fee": 0.01, "closed_pnl": 0.0, "start_position": 0.0, "crossed": False,
            "liquidation": False, "time_ms": 1}  # fmt: skip
    with Journal.open(tmp_path / "j.sqlite") as journal:
        journal.append(Kind.INTENT, {"action": "place", "order": order})
        journal.append(Kind.ACK, {"state": "resting", "oid": 7}, CLOID)
        journal.append(Kind.FILL, fill)
        replace = {"action": "replace", "target": 7, "order": {**order, "px": 98.0, "sz": 0.3}}
        journal.append(Kind.INTENT, replace)
        state = recover(journal)
    (restored,), fills = from_recovered(state)
    assert (restored.phase, restored.oids, restored.version) == (
        OrderPhase.UNKNOWN, [7], Version(99.0, 0.5, 7),
    )  # fmt: skip
    assert restored.pending == Version(98.0, 0.3) and restored.replacing
    m = OrderManager(cast(Venue, None), lambda *_, **__: None)
    m.restore([restored], fills)
    assert (restored.version.filled, restored.filled_sz, m.positions) == (0.2, 0.2, {"BTC": 0.2})


def test_a_journal_without_an_orders_spec_is_refused_by_name(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "j.sqlite") as journal:
        journal.append(Kind.INTENT, {"action": "place", "order": {"coin": "BTC"}}, CLOID)
        state = recover(journal)
    with pytest.raises(ValueError, match=f"recovered order {CLOID} lacks"):
        from_recovered(state)
