"""The live runner against the paper exchange in lockstep (127.0.0.1 only): a baseline behind
the guard trades a session, and the journal, the order manager and the exchange agree."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agents.baselines.registry import make_baseline
from agents.deploy.guard import GuardedPolicy
from agents.live.journal import Journal, Kind
from agents.live.pacing import LockstepPacer
from agents.live.recovery import recover
from agents.live.runner import LiveRunner, RunnerConfig
from agents.live.venues import Signer
from mmgym.exchange import BackgroundServer, Clock, PaperExchange, PaperVenue
from mmgym.scenarios import make_params
from tests.venue_support import AGENT_KEY, USER, adapter, loopback_only  # noqa: F401

pytestmark = pytest.mark.usefixtures("loopback_only")

EPOCH_MS = 1_700_000_000_000


def _market(num_assets: int = 1):  # type: ignore[no-untyped-def]
    return make_params(
        "calm", episode_seconds=3600.0, funding_interval_seconds=60.0, num_assets=num_assets
    )


def _serve(seed: int, num_assets: int = 1) -> tuple[BackgroundServer, PaperVenue]:
    params = _market(num_assets)
    venue = PaperVenue(params, seed, ["BTC", "ETH"][:num_assets], USER, EPOCH_MS)
    exchange = PaperExchange(venue, Signer(AGENT_KEY).address, Clock("lockstep"))
    return BackgroundServer(exchange, timeout=30.0), venue


def _runner(url: str, journal: Journal, decisions: int, num_assets: int = 1) -> LiveRunner:
    params = _market(num_assets)
    policy = make_baseline("avellaneda_stoikov", params)
    guarded = GuardedPolicy(policy, params)
    config = RunnerConfig(
        coins=("BTC", "ETH")[:num_assets],
        collateral=params.collateral,
        max_decisions=decisions,
        reconcile_every=10,
    )
    return LiveRunner(adapter(url), guarded, journal, config, LockstepPacer(url))


def test_runner_trades_a_lockstep_session(tmp_path: Path) -> None:
    server, venue = _serve(seed=3)
    try:
        with Journal.open(tmp_path / "journal.db") as journal:
            runner = _runner(server.url, journal, decisions=120)
            stats = asyncio.run(runner.run())
            state = recover(journal)
            kinds = [e.kind for e in journal.events()]
    finally:
        server.close()
    assert stats.decisions == 120
    assert kinds.count(Kind.DECISION) == 120
    venue_fills = {f["tid"]: f for f in venue.fills}
    assert venue_fills, "the session should trade"
    assert set(state.fills) == set(venue_fills)
    position = float(venue.assets[0]["inventory"])
    assert state.positions.get("BTC", 0.0) == pytest.approx(position, abs=1e-9)
    assert runner.manager.positions.get("BTC", 0.0) == pytest.approx(position, abs=1e-9)
    assert not venue.book.open_orders(), "the runner cancels its orders when it stops"


def test_runner_hedges_on_the_hedge_coin(tmp_path: Path) -> None:
    """A policy that hedges all of its inventory: the runner's Gtc orders on BTC-HEDGE move
    the hedge position toward minus the perp position, and the journal books them as the
    exchange does."""
    params = make_params(
        "calm", episode_seconds=3600.0, funding_interval_seconds=60.0, hedge_horizon_decisions=2
    )
    venue = PaperVenue(params, 5, ["BTC"], USER, EPOCH_MS)
    server = BackgroundServer(
        PaperExchange(venue, Signer(AGENT_KEY).address, Clock("lockstep")), timeout=30.0
    )
    policy = make_baseline("avellaneda_stoikov", params)

    class Hedging:
        def act(self, obs):  # type: ignore[no-untyped-def]
            actions = policy.act(obs).copy()
            actions[:, 4] = 1.0  # hedge fraction 1: offset the whole perp position
            return actions

        def reset(self, mask=None):  # type: ignore[no-untyped-def]
            policy.reset(mask)

    try:
        with Journal.open(tmp_path / "journal.db") as journal:
            config = RunnerConfig(
                coins=("BTC",),
                hedge_coins=("BTC-HEDGE",),
                collateral=params.collateral,
                max_decisions=80,
            )
            guarded = GuardedPolicy(Hedging(), params)
            runner = LiveRunner(
                adapter(server.url), guarded, journal, config, LockstepPacer(server.url)
            )
            asyncio.run(runner.run())
            state = recover(journal)
    finally:
        server.close()
    hedge = float(venue.assets[0]["hedge_position"])
    assert abs(hedge) > 0.0, "the runner hedged"
    assert state.positions.get("BTC-HEDGE", 0.0) == pytest.approx(hedge, abs=1e-9)
    assert state.positions.get("BTC", 0.0) == pytest.approx(
        float(venue.assets[0]["inventory"]), abs=1e-9
    )
