"""Lockstep parity: the same bundle, scenario and seed through the live runner and the paper
exchange as in the env behind the RiskLimiter.

Avellaneda-Stoikov (a policy of inventory and time) trades 300 decisions both ways: every fill,
the position, cash and equity are equal bit for bit. The observations the runner builds from
the venue's messages equal the env's exactly in the features the messages carry in full
(inventory, order-flow imbalance from the per-tick trade prints, the book, own orders, time,
premium, funding, hedge, time to funding). The rest differ, and a policy that reads them would
trade differently, which is why parity of a general policy holds only to these tolerances:

- returns and volatilities: the paper exchange sends one book per decision interval, so the
  runner's mid path within an interval is flat with the step at its end (the kernel keeps each
  tick's mid, not each tick's book);
- queue positions: the venue does not say where an order stands in its level; the runner
  assumes it is last (the simulator knows);
- basis, margin ratio and equity return: prices travel rounded to five significant digits
  (Hyperliquid's rule), so the oracle and mark the runner sees are rounded.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from agents.baselines.registry import make_baseline
from agents.deploy.guard import GuardedPolicy
from agents.deploy.limited_env import RiskLimitedVectorEnv
from agents.deploy.risk import RiskLimits
from agents.live.journal import Journal
from agents.live.pacing import LockstepPacer
from agents.live.runner import LiveRunner, RunnerConfig
from agents.live.venues import Signer
from mmgym.envs.perp_mm import PerpMMVectorEnv
from mmgym.exchange import BackgroundServer, Clock, PaperExchange, PaperVenue
from mmgym.features.observation import observation_names
from mmgym.scenarios import make_params
from tests.venue_support import AGENT_KEY, USER, adapter, loopback_only  # noqa: F401

pytestmark = pytest.mark.usefixtures("loopback_only")

DECISIONS = 300
SEED = 3
MARKET = {"episode_seconds": 3600.0, "funding_interval_seconds": 60.0}
EXACT = (
    "inventory",
    "flow_imbalance_fast",
    "flow_imbalance_medium",
    "flow_imbalance_slow",
    "book_imbalance",
    "spread",
    "bid_distance",
    "ask_distance",
    "time",
    "premium",
    "funding_estimate",
    "last_funding",
    "hedge_position",
    "time_to_funding",
)
ROUNDED_PRICES = {"margin_ratio": 1e-6, "equity_return": 1e-3, "basis": 0.1}
"""Feature -> largest difference: prices on the wire have five significant digits (a relative
error up to 5e-5 of the oracle: basis is in bp/10, so 0.05; the mark's rounding moves equity by
a few cents of 10,000: equity_return is x100)."""


def _env_session(params_kw: dict[str, float]) -> tuple[list[np.ndarray], np.void, float]:
    env = RiskLimitedVectorEnv(PerpMMVectorEnv(1, "calm", **params_kw), RiskLimits())
    policy = make_baseline("avellaneda_stoikov", env.params)
    obs, _ = env.reset(seed=SEED)
    seen = [obs[0].copy()]
    for _ in range(DECISIONS):
        obs, *_ = env.step(policy.act(obs))
        seen.append(obs[0].copy())
    sim = env.env.sim
    return seen, sim.assets[0, 0].copy(), float(sim.accounts[0]["equity"])


def test_runner_and_env_trade_the_same(tmp_path: Path) -> None:
    params = make_params("calm", **MARKET)
    env_obs, env_asset, env_equity = _env_session(MARKET)
    venue = PaperVenue(params, SEED, ["BTC"], USER, 1_700_000_000_000)
    server = BackgroundServer(
        PaperExchange(venue, Signer(AGENT_KEY).address, Clock("lockstep")), timeout=30.0
    )
    run_obs: list[np.ndarray] = []
    try:
        with Journal.open(tmp_path / "live.db", synchronous="NORMAL") as journal:
            guarded = GuardedPolicy(make_baseline("avellaneda_stoikov", params), params)
            config = RunnerConfig(
                coins=("BTC",),
                collateral=params.collateral,
                max_decisions=DECISIONS,
                reconcile_every=1_000,
                cancel_on_exit=False,
            )
            runner = LiveRunner(
                adapter(server.url), guarded, journal, config, LockstepPacer(server.url)
            )
            build = runner.builder.update

            def recording(*args: object) -> np.ndarray:
                obs = build(*args)  # type: ignore[arg-type]
                run_obs.append(obs[0].copy())
                return obs

            runner.builder.update = recording  # type: ignore[method-assign]
            asyncio.run(runner.run())
        venue.advance(1)  # the interval after the last decision, as the env's last step
    finally:
        server.close()
    assert len(run_obs) == DECISIONS
    kernel = venue.assets[0]
    for name in ("inventory", "cash", "bid_px", "ask_px", "bid_qty", "ask_qty"):
        assert float(kernel[name]) == float(env_asset[name]), name
    assert float(venue.account["equity"]) == env_equity
    assert len(venue.fills) > 50, "the session should trade"
    names = observation_names(1)
    ours = np.array(run_obs)
    theirs = np.array(env_obs[:DECISIONS])
    for name in EXACT:
        k = names.index(name)
        np.testing.assert_array_equal(ours[:, k], theirs[:, k], err_msg=name)
    for name, bound in ROUNDED_PRICES.items():
        k = names.index(name)
        assert np.abs(ours[:, k] - theirs[:, k]).max() <= bound, name
