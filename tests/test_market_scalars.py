"""Streaming ``mm/*`` scalars: adverse selection against an offline recomputation, exactly."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from agents import metrics
from agents.baselines.registry import make_baseline
from agents.market_scalars import ADVERSE_SELECTION_TAG, MARKET_TAGS, MarketScalars
from agents.sb3.vec_env import NativeVecEnv
from mmgym.envs.perp_mm import PerpMMVectorEnv
from mmgym.scenarios import make_params


def _offline_cost(ref: float, mids: list[float], fills: list[tuple[float, float]], h: int) -> float:
    """Adverse selection of one episode: fills of step t (bid, ask) against the mid h steps
    later (clamped at the episode's last step), from the mid before step t."""
    total = 0.0
    before = [ref, *mids[:-1]]
    for t, (bid, ask) in enumerate(fills):
        later = mids[min(t + h, len(mids) - 1)]
        total += bid * (before[t] - later) + ask * (later - before[t])
    return total


def _synthetic(
    rng: np.random.Generator, num_envs: int, steps: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    mid = 100.0 + np.cumsum(rng.normal(0.0, 0.5, (steps, num_envs)), axis=0)
    bid = np.where(
        rng.random((steps, num_envs)) < 0.4, rng.exponential(1.0, (steps, num_envs)), 0.0
    )
    ask = np.where(
        rng.random((steps, num_envs)) < 0.4, rng.exponential(1.0, (steps, num_envs)), 0.0
    )
    done = rng.random((steps, num_envs)) < 0.08
    return mid, bid, ask, done


def _info(mid: np.ndarray, bid: np.ndarray, ask: np.ndarray) -> dict[str, Any]:
    zeros = np.zeros_like(mid)
    return {
        "mid": mid, "bid_filled": bid, "ask_filled": ask, "pnl": zeros, "inventory": zeros,
        "pnl_funding": zeros, "pnl_spread": zeros, "pnl_inventory": zeros, "pnl_fees": zeros,
    }  # fmt: skip


@pytest.mark.parametrize("next_step_reset", [False, True])
@pytest.mark.parametrize("horizon", [1, 3, 7])
def test_adverse_selection_matches_the_offline_episode_sum(
    horizon: int, next_step_reset: bool
) -> None:
    """Random fills, mids and episode ends; every env ends at the last step. With same-step
    resets (SB3: the next episode's first mid arrives with the done) and with NEXT_STEP resets
    (RLlib: the env's next step only resets it, trading nothing), the streamed total equals the
    offline sum over episodes exactly."""
    rng = np.random.default_rng(horizon)
    n, steps = 5, 400
    mid, bid, ask, done = _synthetic(rng, n, steps)
    done[-1] = True
    reset_mid = 100.0 + rng.normal(0.0, 1.0, (steps, n))
    start = 100.0 + rng.normal(0.0, 1.0, n)

    scalars = MarketScalars(n, 1, horizon)
    scalars.start(None, start[:, None])
    restarting = np.zeros(n, dtype=np.bool_)
    traded = np.ones((steps, n), dtype=np.bool_)
    streamed = 0.0
    for t in range(steps):
        if next_step_reset:
            traded[t] = ~restarting
            done[t] &= traded[t]
            info = _info(
                np.where(restarting, reset_mid[t], mid[t]),
                np.where(restarting, 0.0, bid[t]),
                np.where(restarting, 0.0, ask[t]),
            )
            scalars.update(info, traded[t], done[t])
            scalars.start(restarting, reset_mid[t][:, None])
            restarting = done[t].copy()
        else:
            scalars.update(_info(mid[t], bid[t], ask[t]), done=done[t])
            scalars.start(done[t], reset_mid[t][:, None])
        sums, _ = scalars.pop_sums()  # the step's sum over trading envs / their number
        streamed += sums[ADVERSE_SELECTION_TAG] * traded[t].sum()

    expected = 0.0
    for i in range(n):
        ref, mids, fills = start[i], [], []
        for t in range(steps):
            if not traded[t, i]:  # a NEXT_STEP reset: the episode starts at this mid
                ref = reset_mid[t, i]
                continue
            mids.append(mid[t, i])
            fills.append((bid[t, i], ask[t, i]))
            if done[t, i]:
                expected += _offline_cost(ref, mids, fills, horizon)
                ref, mids, fills = reset_mid[t, i], [], []
    assert not next_step_reset or not traded.all()
    assert streamed == pytest.approx(expected, rel=1e-12, abs=1e-9)


def test_on_the_env_the_scalar_is_spread_captured_minus_the_markout() -> None:
    """On real fills of ``linear_skew`` (SB3 same-step resets through NativeVecEnv), the streamed
    adverse selection of complete episodes equals the spread captured against the decision mid
    minus the evaluation's markout (``agents.metrics.markouts``), to rounding."""
    n, horizon = 4, 10
    params = make_params("volatile", episode_seconds=30.0)
    native = NativeVecEnv(PerpMMVectorEnv(num_envs=n, scenario="volatile", episode_seconds=30.0))
    native.seed(3)
    obs = native.reset()
    policy = make_baseline("linear_skew", params)
    scalars = MarketScalars(n, 1, horizon)
    scalars.start(None, native.last_reset_info["mid"])
    ref = np.asarray(native.last_reset_info["mid"], dtype=np.float64).copy()
    tape: dict[str, list[np.ndarray]] = {k: [] for k in ("ref", "mid", "qb", "pb", "qa", "pa")}
    streamed = 0.0
    steps = round(30.0 / params.decision_interval)
    for _ in range(steps):
        obs, _, dones, _ = native.step(policy.act(obs))
        info = native.last_info
        qb, qa = np.asarray(info["bid_filled"]), np.asarray(info["ask_filled"])
        tape["ref"].append(ref.copy())
        tape["mid"].append(np.asarray(info["mid"], dtype=np.float64).copy())
        tape["qb"].append(qb.copy())
        tape["qa"].append(qa.copy())
        tape["pb"].append(np.divide(info["bid_notional"], qb, out=np.zeros(n), where=qb > 0))
        tape["pa"].append(np.divide(info["ask_notional"], qa, out=np.zeros(n), where=qa > 0))
        scalars.update(info, done=dones)
        ref = np.asarray(info["mid"], dtype=np.float64).copy()
        sums, _ = scalars.pop_sums()
        streamed += sums[ADVERSE_SELECTION_TAG] * n
    assert dones.all()  # one whole episode per env
    series = {k: np.array(v) for k, v in tape.items()}
    assert series["qb"].sum() + series["qa"].sum() > 10  # fills happened
    expected = 0.0
    for i in range(n):
        qb, pb, qa, pa = (series[k][:, i] for k in ("qb", "pb", "qa", "pa"))
        mid, ref_i = series["mid"][:, i], series["ref"][:, i]
        captured = float(np.sum(qb * (ref_i - pb) + qa * (pa - ref_i), where=(qb > 0) | (qa > 0)))
        markout = metrics.markouts(mid, qb, pb, qa, pa, (horizon,))[horizon]
        expected += captured - markout
    assert streamed == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_means_are_per_env_step_and_pop_clears() -> None:
    scalars = MarketScalars(2, 1, 2)
    scalars.start(None, np.array([[100.0], [100.0]]))
    info = _info(np.array([100.0, 100.0]), np.zeros(2), np.zeros(2))
    info["pnl"] = np.array([1.0, 3.0])
    info["inventory"] = np.array([-2.0, 2.0])
    scalars.update(info)
    scalars.update(info)
    means = scalars.pop()
    assert set(means) == set(MARKET_TAGS)
    assert means["mm/pnl"] == 2.0 and means["mm/inventory_abs"] == 2.0
    assert scalars.pop() == {}


def test_bad_horizon_is_refused() -> None:
    with pytest.raises(ValueError, match="markout_steps must be at least 1"):
        MarketScalars(1, 1, 0)
