"""The paper exchange's market log: crowd events from the venue, cascades grouped from them, and
the exchange's clock held until the first subscription."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
import pytest

from agents.ops.market_log import MarketWindow, cascades, interventions_by_window, read_market_log
from mmgym.exchange import BackgroundServer, Clock, PaperExchange, PaperVenue
from mmgym.scenarios import make_params

ADDRESS = "0x" + "ab" * 20


def _event(t_s: float, liquidations: int, forced: float = 1.0, mid: float = 100.0) -> dict:
    coin = {"forced_buy": 0.0, "forced_sell": forced, "backstop": 0.0, "mid": mid}
    return {"time_ms": int(t_s * 1000), "liquidations": liquidations, "coins": {"BTC": coin}}


def test_cascades_group_events_by_gap_and_rank_by_liquidations() -> None:
    events = [
        _event(10, 1),  # alone: one liquidation is no cascade
        _event(100, 2, mid=99.0), _event(120, 0, forced=5.0, mid=97.0), _event(140, 1, mid=98.0),
        _event(300, 4), _event(310, 1),
    ]  # fmt: skip
    windows = cascades(events, gap_s=30.0, after_s=60.0)
    assert [(w.start_ms, w.end_ms) for w in windows] == [(300_000, 370_000), (100_000, 200_000)]
    assert windows[1].detail.startswith("3 crowd liquidations and 7.0 base units")
    assert "a low of 97.00" in windows[1].detail


def test_interventions_are_counted_by_the_decisions_venue_time() -> None:
    class Row:
        def __init__(self, t: int, reasons: dict[str, int]) -> None:
            self.payload = {"venue_time_ms": t, "reasons": reasons}

    rows = [Row(0, {"ESTIMATOR_WARMUP": 2}), Row(5, {"TAIL_RISK_CAP": 1}), Row(9, {"A": 1})]
    inside, outside = interventions_by_window(rows, MarketWindow("w", 5, 8, ""))
    assert inside == {"TAIL_RISK_CAP": 1} and outside == {"ESTIMATOR_WARMUP": 2, "A": 1}


def test_a_bad_line_is_named(tmp_path: Path) -> None:
    log = tmp_path / "market.jsonl"
    log.write_text(json.dumps(_event(1, 1)) + "\n{}\n")
    with pytest.raises(ValueError, match=r"market.jsonl:2: not a market-log event"):
        read_market_log(log)


def test_the_venue_reports_the_crowds_liquidations() -> None:
    params = make_params("liquidation_cascade", episode_seconds=3600.0)
    venue = PaperVenue(params, 190, ["BTC"], ADDRESS, epoch_ms=0)  # liquidations at 78-138 s
    events: list[dict] = []
    venue.on_crowd_event = events.append
    venue.advance(200)
    assert sum(e["liquidations"] for e in events) == int(venue.account["crowd_liquidations"]) > 0
    forced = ("forced_buy", "forced_sell", "backstop")
    assert all(e["liquidations"] > 0 or sum(e["coins"]["BTC"][k] for k in forced) > 0
               for e in events)  # fmt: skip
    assert all(venue.epoch_ms < e["time_ms"] <= venue.time_ms() for e in events)


def test_an_accelerated_market_can_wait_for_its_first_subscriber() -> None:
    params = make_params("calm", episode_seconds=3600.0)
    venue = PaperVenue(params, 0, ["BTC"], ADDRESS, epoch_ms=0)
    exchange = PaperExchange(venue, ADDRESS, Clock("accelerated", 50.0), start_on_subscribe=True)
    with BackgroundServer(exchange, port=0, timeout=60.0) as server:
        time.sleep(0.5)  # 25 intervals at x50, had the clock started
        assert venue.steps == 0

        async def subscribe() -> None:
            async with aiohttp.ClientSession() as s, s.ws_connect(server.url + "/ws") as ws:
                await ws.send_json(
                    {"method": "subscribe", "subscription": {"type": "l2Book", "coin": "BTC"}}
                )
                deadline = time.monotonic() + 30.0
                while venue.steps < 5 and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)

        asyncio.run(subscribe())
        assert venue.steps >= 5
