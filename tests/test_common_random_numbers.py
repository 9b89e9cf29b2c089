"""Common random numbers: what the agent does never shifts the market's random path.

Two policies run on the same seed see the same exogenous randomness (regimes, fair-price
shocks and jumps, taker arrivals), however differently they act. Their paths may still differ
through genuine effects of their actions (their fills, the impact of their orders), never
because one of them consumed more random numbers than the other.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from mmgym.core.rng import AGENT_STREAM, MARKET_STREAM, STREAMS
from mmgym.envs.perp_mm import PerpMMEnv, PerpMMVectorEnv

DECISIONS = 300
SEED = 11


def _action(hedge: float, size: float) -> NDArray[np.float32]:
    """Quotes 2 ticks wide of ``size`` (action units) on both sides; hedge component ``hedge``."""
    return np.array([0.0, -0.9, size, size, hedge], dtype=np.float32)


def _exogenous_path(env: PerpMMEnv, action: NDArray[np.float32]) -> dict[str, Any]:
    """Step one episode with a fixed action; record what only the market stream drives."""
    env.reset(seed=SEED)
    path: dict[str, list[Any]] = {
        "regime": [],
        "fair_price": [],
        "shock_raw": [],
        "signal_shock": [],
        "taker_orders": [],
        "hedge_filled": [],
        "inventory": [],
    }
    for _ in range(DECISIONS):
        _, _, terminated, truncated, info = env.step(action)
        account = env.unwrapped.sim.accounts[0]
        path["regime"].append(int(info["regime"]))
        path["fair_price"].append(float(info["fair_price"]))
        path["shock_raw"].append(account["shock_raw"].copy())
        path["signal_shock"].append(account["signal_shock"].copy())
        path["taker_orders"].append((int(info["taker_buy_orders"]), int(info["taker_sell_orders"])))
        path["hedge_filled"].append(float(info["hedge_filled"]))
        path["inventory"].append(float(info["inventory"]))
        assert not (terminated or truncated)
    return path


@pytest.mark.parametrize(
    ("first", "second", "sizes_differ"),
    [
        pytest.param(_action(1.0, 0.0), _action(-1.0, 0.0), False, id="full_hedge_vs_no_hedge"),
        pytest.param(_action(1.0, 0.5), _action(-1.0, -0.6), True, id="hedge_and_size_differ"),
    ],
)
def test_policies_that_act_differently_share_the_market_path(
    first: NDArray[np.float32], second: NDArray[np.float32], sizes_differ: bool
) -> None:
    env = PerpMMEnv(scenario="calm", episode_seconds=2.0 * DECISIONS)
    a = _exogenous_path(env, first)
    b = _exogenous_path(env, second)
    # the two policies really act differently: one hedges its inventory, the other never does
    assert sum(a["hedge_filled"]) > 0.0
    assert sum(b["hedge_filled"]) == 0.0
    assert (a["inventory"] != b["inventory"]) == sizes_differ  # the hedge leaves the perp
    # ... yet every market-stream quantity is identical, decision by decision
    assert a["regime"] == b["regime"]
    assert a["fair_price"] == b["fair_price"]
    np.testing.assert_array_equal(np.array(a["shock_raw"]), np.array(b["shock_raw"]))
    np.testing.assert_array_equal(np.array(a["signal_shock"]), np.array(b["signal_shock"]))
    assert a["taker_orders"] == b["taker_orders"]


def test_both_streams_are_seeded_per_env_with_distinct_salts() -> None:
    env = PerpMMVectorEnv(num_envs=3, scenario="calm")
    single = PerpMMEnv(scenario="calm")
    env.reset(seed=40)
    rng = env.sim.rng
    assert rng.shape == (STREAMS, 3)
    assert len({int(x) for x in rng.ravel()}) == rng.size  # six unrelated starting points
    for i in range(3):
        single.reset(seed=40 + i)
        np.testing.assert_array_equal(single.unwrapped.sim.rng[:, 0], rng[:, i])
    before = rng.copy()
    env.reset(seed=40)  # a reset with the same seed restarts both streams
    np.testing.assert_array_equal(env.sim.rng, before)
    assert MARKET_STREAM != AGENT_STREAM


def test_crowd_renewals_draw_alike_whoever_was_liquidated() -> None:
    """A renewal that falls on an account waiting for its final close counts as an opening like
    any other (its draws are keyed by the count): which accounts are waiting depends on the
    marks, which the agent's fills move.

    Without that rule env 5 of this batch leaves the common fair-price path at decision 804
    (quoting the full size on both sides versus not quoting, in a crowded market). Order flow
    is kept off the fair price (impact memory and permanent shares 0; they draw nothing), so
    that the fair price is the market draws' path alone.
    """
    num_envs, decisions = 32, 900
    fair = []
    inventory = []
    for size in (1.0, -1.0):  # full size on both sides vs no quotes; never hedge
        env = PerpMMVectorEnv(
            num_envs=num_envs,
            scenario="liquidation_cascade",
            impact_memory_shares=(0.0, 0.0, 0.0),
            impact_permanent_share=0.0,
        )
        env.reset(seed=5)
        action = np.tile(np.array([0.0, -0.9, size, size, -1.0], np.float32), (num_envs, 1))
        alive = np.ones(num_envs, dtype=np.bool_)
        path = np.full((decisions, num_envs), np.nan)
        held = np.zeros(num_envs)
        for t in range(decisions):
            _, _, terminated, truncated, info = env.step(action)
            alive &= ~(terminated | truncated)  # the agent's liquidation ends its episode
            path[t, alive] = info["fair_price"][alive]
            held += np.abs(info["inventory"])
        fair.append(path)
        inventory.append(held)
        assert env.sim.accounts["crowd_liquidations"].sum() > 0
    assert np.all(inventory[0] > 0.0) and np.all(inventory[1] == 0.0)
    both = ~np.isnan(fair[0]) & ~np.isnan(fair[1])
    assert both.sum() > 0.9 * decisions * num_envs
    np.testing.assert_array_equal(fair[0][both], fair[1][both])
