"""What the kill switch held outlives a restart of the runner: a REDUCING that was not an
operator's (here a lost stream's, as the runner moves it) is REDUCING again at once, the
drawdown is measured from the session's peak equity, not from the equity at the restart, and
the rolling window holds the equities, venue rejects and market index of the decisions before
it."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest

from agents.deploy.risk import Reason, TradingMode
from agents.deploy.risk.window import window_stats
from agents.live.journal import Kind
from tests.ops_support import Session


def test_a_kill_switch_reducing_and_the_peak_equity_outlive_a_restart(tmp_path: Path) -> None:
    async def main() -> None:
        async with Session(tmp_path, ops=False) as s:
            await s.step(3)
            s.runner.guarded.limiter.reduce_temporarily(
                0, "runner: venue stream lost", reason=Reason.STALE_MARKET_DATA
            )
            await s.step(2)
            assert s.runner.guarded.state.mode_of(0) == TradingMode.REDUCING
            decisions = [
                e.payload
                for e in s.journal.events()
                if e.kind is Kind.DECISION and e.payload.get("equity") is not None
            ]
            equities = [p["equity"] for p in decisions]
            epoch = s.runner._epoch_ms
            assert epoch is not None and len(decisions) == 5
            times = [(p["venue_time_ms"] - epoch) / 1000.0 for p in decisions]
        async with Session(tmp_path, ops=False) as s:  # the same journal, a new process' state
            limiter = s.runner.guarded.limiter
            assert limiter.state.mode_of(0) == TradingMode.REDUCING
            assert not limiter.operator_reducing[0]
            assert float(limiter.state.records["peak_equity"][0]) == max(equities)
            record = limiter.state.records[0]
            high, _, _, _ = window_stats(record, limiter.packed_limits[0], times[-1])
            assert high == max(equities)  # five decisions, all within the 300 s window
            await s.step()
            last = s.journal.last(Kind.RISK_TRANSITION)
            assert last is not None and last.payload["to"] == "REDUCING"
            assert last.payload["reason"] == "STALE_MARKET_DATA"
            assert "restart" in str(last.payload.get("operator"))
            decision = s.journal.last(Kind.DECISION)
            assert decision is not None and decision.payload["mode"] == "REDUCING"
            assert math.isfinite(float(limiter.state.records["peak_equity"][0]))

    asyncio.run(main())


def test_the_windows_rejects_and_market_index_outlive_a_restart(tmp_path: Path) -> None:
    async def main() -> None:
        async with Session(tmp_path, ops=False) as s:
            await s.step(2)
            s.runner._rejects = 7  # venue rejects counted since the last decision
            await s.step(2)
            decisions = [e.payload for e in s.journal.events() if e.kind is Kind.DECISION]
            assert [p["rejects"] for p in decisions] == [0, 0, 7, 0]
            indices = [
                math.fsum(math.log(m) for m in p["marks"].values()) / len(p["marks"])
                for p in decisions
            ]
            epoch = s.runner._epoch_ms
            assert epoch is not None
            last_time = (decisions[-1]["venue_time_ms"] - epoch) / 1000.0
        async with Session(tmp_path, ops=False) as s:  # the same journal, a new process' state
            limiter = s.runner.guarded.limiter
            _, rejects, high, low = window_stats(
                limiter.state.records[0], limiter.packed_limits[0], last_time
            )
            assert rejects == 7.0
            assert high == pytest.approx(max(indices), abs=1e-12)
            assert low == pytest.approx(min(indices), abs=1e-12)

    asyncio.run(main())
