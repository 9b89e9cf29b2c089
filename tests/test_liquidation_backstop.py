"""Forced closes trade only within the slippage band; the backstop takes the rest off the book."""

from __future__ import annotations

import numpy as np

from mmgym.envs.perp_mm import PNL_COMPONENTS, PerpMMVectorEnv


def _env(**overrides: object) -> PerpMMVectorEnv:
    return PerpMMVectorEnv(num_envs=64, scenario="liquidation_cascade", **overrides)


def test_crowd_forced_flow_never_trades_beyond_the_band_and_the_rest_is_backstopped() -> None:
    band = 0.01
    # One market tick per step, so the marks the crowd's limits came from are the step's first
    # ones (a book the makers have left is wide, and the mark moves inside it from tick to
    # tick); no ordinary takers, so the step's last trade is a forced one.
    env = _env(
        liquidation_max_slippage=band,
        episode_seconds=900.0,
        decision_interval=0.1,
        latency_seconds=0.02,
        latency_cap_seconds=0.05,
        hedge_latency_seconds=0.05,
        taker_rate=(0.0, 0.0, 0.0),
    )
    env.reset(seed=5)
    sim = env.sim
    idle = np.tile(np.array([0, -1, -1, -1, -1], np.float32), (64, 1))
    backstop = forced = 0.0
    worst = 0.0
    for _ in range(9000):
        mark_before = sim.assets["mark"][:, 0].copy()
        *_, info = env.step(idle)
        forced_now = info["forced_buy_volume"] + info["forced_sell_volume"]
        backstop += float(info["backstop_volume"].sum())
        forced += float(forced_now.sum())
        hit = forced_now > 0
        if hit.any():
            # forced trades stay within the band around the marks the crowd saw (1 tick of
            # rounding)
            low = mark_before * (1 - band) - 0.01
            high = mark_before * (1 + band) + 0.01
            last = sim.assets["last_trade"][:, 0]
            worst = max(worst, float(np.max(np.maximum(low - last, last - high)[hit])))
    assert forced > 1000.0 and backstop > 0.0, (forced, backstop)  # both paths exercised
    assert worst <= 0.0, worst


def test_agent_liquidation_beyond_the_book_ends_flat_through_the_backstop() -> None:
    # A huge position on a thin book with a tight band: most of it goes to the backstop.
    env = PerpMMVectorEnv(
        num_envs=1,
        scenario="calm",
        liquidation_max_slippage=0.0001,  # one tick from the mark
        collateral=1.0,
        margin_tiers=((0.0, 200.0),),
        max_inventory=10.0,
    )
    env.reset(seed=1)
    sim = env.sim
    a = sim.assets[0, 0]
    sim.assets["inventory"][0, 0] = 10.0  # long 10 units bought at the mark with 1 of collateral
    sim.assets["cash"][0, 0] = -10.0 * a["mark"]
    sim.assets["entry_price"][0, 0] = a["mark"]
    _, _, terminated, _, info = env.step(np.array([[0, -1, -1, -1, -1]], np.float32))
    assert terminated[0] and info["liquidated"][0]
    assert info["inventory"][0] == 0.0
    assert info["backstop_volume"][0] > 0.0
    assert abs(info["forced_sell_volume"][0] + info["backstop_volume"][0] - 10.0) < 1e-9
    parts = sum(float(info[c][0]) for c in PNL_COMPONENTS)
    assert abs(parts - info["pnl"][0]) < 1e-9, (parts, info["pnl"][0])
