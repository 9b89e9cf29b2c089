"""Funding of PerpMM-v0 against an independent computation of the venue formulas.

Every premium-index sample is recomputed here in plain NumPy from the book the kernel sampled
(the impact bid and ask are walked through the background depth level by level), the rate of
every interval is recomputed from those samples with ``F = Pbar + clamp(I - Pbar, -c, c)``,
scaled by ``interval / 8 h`` and capped, and every payment is checked against
``inventory x oracle x rate`` (longs pay when the rate is positive). The sign of funding under
persistent one-sided flow is a statistical check across independent envs (SE stated inline).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

import mmgym  # noqa: F401  (registers the env ids)
from mmgym.core.layout import pack_params
from mmgym.core.params import SECONDS_PER_8H, MarketParams
from mmgym.envs.perp_mm import PerpMMVectorEnv

Z = 4.0  # tolerance in standard errors for the statistical checks
CARRY_OFF: dict[str, Any] = {
    "carry_mean": (0.0, 0.0, 0.0),
    "carry_volatility": (0.0, 0.0, 0.0),
    "carry_return_beta": 0.0,
    "carry_squeeze_per_hour": (0.0, 0.0, 0.0),
}
"""The leverage-demand premium switched off (mmgym/core/carry.py)."""
PREMIUM_TOL = 1e-14  # absolute round-off bound on a premium sample (and on rates built from it)


def _random_actions(seed: int, steps: int, num_envs: int) -> NDArray[np.float32]:
    """Uniform quotes (so the agent carries inventory into funding times), no hedge."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(-1.0, 1.0, size=(steps, num_envs, 5))
    a[:, :, 1] = rng.uniform(-1.0, -0.6, size=(steps, num_envs))  # tight: fills happen
    a[:, :, 4] = -1.0
    return a.astype(np.float32)


def _no_quotes(num_envs: int) -> NDArray[np.float32]:
    a = np.zeros((num_envs, 5), dtype=np.float32)
    a[:, 2:] = -1.0
    return a


def _impact_price(depth: NDArray[np.float64], best: int, side: int, notional: float, tick: float):
    """Average fill price of a market order of ``notional`` walked through ``depth`` (side -1:
    the bids, downward from ``best``; +1: the asks, upward). Beyond the last level the rest fills
    at the last level's price."""
    prices = (best + side * np.arange(depth.size)) * tick
    level_notional = depth * prices
    cum = np.cumsum(level_notional)
    full = int(np.searchsorted(cum, notional, side="left"))  # levels taken in full
    if full >= depth.size:
        volume = depth.sum() + (notional - cum[-1]) / prices[-1]
    else:
        before = cum[full - 1] if full > 0 else 0.0
        volume = depth[:full].sum() + (notional - before) / prices[full]
    return notional / volume


def _premium(row: dict[str, Any], i: int, p: MarketParams) -> float:
    oracle = row["fair"][i]
    bid = _impact_price(row["bid_depth"][i], row["best_bid"][i], -1, p.impact_notional, p.tick_size)
    ask = _impact_price(row["ask_depth"][i], row["best_ask"][i], 1, p.impact_notional, p.tick_size)
    return (max(0.0, bid - oracle) - max(0.0, oracle - ask)) / oracle


def _rate(samples: list[float], p: MarketParams) -> float:
    """F = Pbar + clamp(I - Pbar, -c, c) per 8 h, times interval / 8 h, capped."""
    mean = float(np.mean(samples)) if samples else 0.0
    f8h = mean + min(max(p.funding_interest_8h - mean, -p.funding_clamp_8h), p.funding_clamp_8h)
    rate = f8h * p.funding_interval_seconds / (8.0 * 3600.0)
    return min(max(rate, -p.funding_cap), p.funding_cap)


def _run(
    num_envs: int,
    steps: int,
    seed: int,
    actions: NDArray[np.float32] | None,
    first_funding_tick: int | None = None,
    **overrides: Any,
) -> tuple[MarketParams, list[dict[str, Any]]]:
    """Step one episode; keep, after every step, the book and funding state of each env."""
    env = PerpMMVectorEnv(num_envs=num_envs, episode_seconds=float(steps), **overrides)
    env.reset(seed=seed)
    sim = env.sim
    if first_funding_tick is not None:
        sim.accounts["next_funding_tick"] = first_funding_tick
    rows = []
    for t in range(steps):
        a = _no_quotes(num_envs) if actions is None else actions[t]
        _, _, terminated, _, info = env.step(a)
        assert not terminated.any()
        s = sim.assets[:, 0]
        rows.append(
            {
                "tick": sim.accounts["tick"].copy(),
                "premium": s["premium"].copy(),
                "fair": s["fair_price"].copy(),
                "inventory": s["inventory"].copy(),
                "bid_depth": s["bid_depth"].copy(),
                "ask_depth": s["ask_depth"].copy(),
                "best_bid": s["best_bid"].copy(),
                "best_ask": s["best_ask"].copy(),
                "history": s["funding_history"].copy(),
                "pnl_funding": info["pnl_funding"].copy(),
                "funding_paid": info["funding_paid"].copy(),
                "estimate": sim.windows["funding_estimate"][:, 0].copy(),
                "time_to_funding": sim.account_windows["time_to_funding"].copy(),
                "next_funding_tick": sim.accounts["next_funding_tick"].copy(),
            }
        )
    return env.params, rows


def _check_funding(
    p: MarketParams, rows: list[dict[str, Any]], first_funding_tick: int | None = None
) -> dict[str, Any]:
    """Recompute every premium sample and every funding payment; return counts for the caller.

    The premium is sampled and funding paid at the end of the last tick of a decision (both
    clocks are multiples of the decision interval here), after which nothing moves the book, so
    the end-of-step state is exactly what the kernel sampled.
    """
    ticks_per_step = p.ticks_per_decision
    sample_ticks = round(p.premium_sample_seconds / p.tick_seconds)
    stats = {"samples": 0, "nonzero_samples": 0, "fundings": 0, "with_position": 0, "paid": 0}
    stats["rates"] = []
    num_envs = rows[0]["fair"].shape[0]
    interval = round(p.funding_interval_seconds / p.tick_seconds)
    for i in range(num_envs):
        next_funding = interval if first_funding_tick is None else first_funding_tick
        samples: list[float] = []
        previous_history = np.zeros(3)
        previous_premium = 0.0
        for row in rows:
            tick = int(row["tick"][i])
            assert tick % ticks_per_step == 0
            if tick % sample_ticks == 0:
                expected = _premium(row, i, p)
                # (impact_bid - oracle) cancels: the price round-off (1e-16 x 100) leaves an
                # absolute error ~1e-16 in the premium; 1e-14 bounds it with room.
                assert row["premium"][i] == pytest.approx(expected, rel=0, abs=PREMIUM_TOL)
                samples.append(expected)
                stats["samples"] += 1
                stats["nonzero_samples"] += expected != 0.0
            else:  # the field holds the last sample between samples
                assert row["premium"][i] == previous_premium
            previous_premium = row["premium"][i]
            paid = tick == next_funding
            if paid:
                rate = _rate(samples, p)
                assert row["history"][i][0] == pytest.approx(rate, rel=1e-12, abs=PREMIUM_TOL)
                np.testing.assert_array_equal(row["history"][i][1:], previous_history[:2])
                payment = row["inventory"][i] * row["fair"][i] * rate
                notional = abs(row["inventory"][i] * row["fair"][i]) + 1.0
                assert row["funding_paid"][i] == pytest.approx(payment, abs=PREMIUM_TOL * notional)
                assert row["pnl_funding"][i] == -row["funding_paid"][i]
                # Sign convention: longs pay (negative PnL) when the rate is positive.
                stats["with_position"] += row["inventory"][i] != 0.0
                if row["inventory"][i] != 0.0 and rate != 0.0:
                    assert np.sign(row["pnl_funding"][i]) == -np.sign(row["inventory"][i] * rate)
                    stats["paid"] += 1
                stats["fundings"] += 1
                stats["rates"].append(rate)
                samples = []
                previous_history = row["history"][i].copy()
                next_funding += interval
            else:
                assert row["pnl_funding"][i] == 0.0
                assert row["funding_paid"][i] == 0.0
            # The observation's running estimate is the rate of the samples so far.
            assert row["estimate"][i] == pytest.approx(
                _rate(samples, p), rel=1e-12, abs=PREMIUM_TOL
            )
            assert int(row["next_funding_tick"][i]) == next_funding
            ttf = (next_funding - tick) * p.tick_seconds
            assert row["time_to_funding"][i] == pytest.approx(ttf, rel=1e-12)
    return stats


def _expected_funding_count(p: MarketParams, steps: int, first: int | None) -> int:
    interval = round(p.funding_interval_seconds / p.tick_seconds)
    first = interval if first is None else first
    last = steps * p.ticks_per_decision
    return 0 if first > last else 1 + (last - first) // interval


@pytest.mark.parametrize("clamp", [0.0005, 0.0])
def test_funding_payments_follow_the_premium_samples(clamp: float) -> None:
    # Persistent buying pushes the perp to a premium; the agent quotes, so it carries
    # inventory into the funding times. Hourly clock shortened to 60 s: 20 payments per env.
    # clamp 0.0005 is the venue's (the rate is the interest unless the mean premium leaves
    # I +- c, which happens here in about half of the intervals); clamp 0 passes the mean
    # premium straight through, so every payment depends on the samples.
    num_envs, steps = 8, 1200
    p, rows = _run(
        num_envs,
        steps,
        seed=11,
        actions=_random_actions(11, steps, num_envs),
        scenario="funding_squeeze",
        funding_interval_seconds=60.0,
        random_funding_phase=False,
        funding_clamp_8h=clamp,
    )
    stats = _check_funding(p, rows)
    assert stats["fundings"] == num_envs * _expected_funding_count(p, steps, None)
    assert stats["samples"] == num_envs * steps // 5
    assert stats["nonzero_samples"] > 0.1 * stats["samples"]  # the premium really moves
    assert stats["with_position"] > 0.8 * stats["fundings"]  # payments are not all zero
    rates = np.array(stats["rates"])
    interest = p.funding_interest_8h * p.funding_interval_seconds / SECONDS_PER_8H
    if clamp > 0.0:
        # both branches of the clamp occur: F = I (|I - Pbar| <= c) and F = Pbar -+ c
        assert 0.0 < np.mean(rates != interest) < 1.0
    else:
        # the premium, not the interest, sets the rate, and such payments are made
        assert np.mean(rates != interest) > 0.5
        assert stats["paid"] > 0.2 * stats["fundings"]


def test_without_premium_the_rate_is_the_interest() -> None:
    # Calm with the leverage-demand premium off: the background book straddles the oracle, so
    # the impact bid is below it and the impact ask above it at every sample: P = 0 and F = I
    # exactly (I x 60 s / 8 h per payment).
    num_envs, steps = 8, 600
    p, rows = _run(
        num_envs,
        steps,
        seed=21,
        actions=_random_actions(21, steps, num_envs),
        scenario="calm",
        funding_interval_seconds=60.0,
        random_funding_phase=False,
        **CARRY_OFF,
    )
    stats = _check_funding(p, rows)
    assert stats["nonzero_samples"] == 0
    assert stats["fundings"] == num_envs * 10
    assert stats["with_position"] > 0.8 * stats["fundings"]
    interest = p.funding_interest_8h * (p.funding_interval_seconds / SECONDS_PER_8H)
    np.testing.assert_array_equal(stats["rates"], interest)


def test_binance_like_eight_hour_interval_is_one_config_away() -> None:
    # Binance / BitMEX: funding every 8 h at the full 8 h rate (scale 1), a large cap.
    overrides = dict(funding_interval_seconds=28800.0, funding_cap=0.02, funding_clamp_8h=0.0)
    packed = pack_params(MarketParams().replace(**overrides))[0]
    assert packed["funding_interval_over_8h"] == 1.0
    assert packed["funding_interval_ticks"] == 288_000
    assert packed["premium_sample_ticks"] == 50
    # Run the first interval's payment early (the clock is moved to 60 s after reset) so that
    # a short episode checks it: the rate of those 12 samples is paid at the full 8 h scale.
    num_envs, steps = 8, 300
    p, rows = _run(
        num_envs,
        steps,
        seed=31,
        actions=_random_actions(31, steps, num_envs),
        first_funding_tick=600,
        scenario="funding_squeeze",
        random_funding_phase=False,
        **overrides,
    )
    stats = _check_funding(p, rows, first_funding_tick=600)
    assert stats["fundings"] == num_envs  # one payment, then the next is 8 h away
    assert np.all(rows[-1]["time_to_funding"] == pytest.approx(28800.0 - 240.0))
    env = PerpMMVectorEnv(num_envs=2, random_funding_phase=False, **overrides)
    env.reset(seed=0)
    assert np.all(env.sim.account_windows["time_to_funding"] == 28800.0)


@pytest.mark.parametrize("case", ["interest", "negative_premium"])
def test_the_cap_binds(case: str) -> None:
    num_envs, steps = 16, 600
    if case == "interest":
        # Uncapped: 0.5 x 60 / 28800 = 0.00104 per interval > cap 0.001 on every payment.
        overrides = dict(
            scenario="calm", funding_interest_8h=0.5, funding_clamp_8h=1.0, funding_cap=0.001
        )
    else:
        # Selling pressure: a discount; with c = 0 the rate is Pbar x scale, capped at 1e-8
        # (binding once the interval's mean premium is below -0.05 bp). The discount builds only
        # while the perp is decoupled (weak arbitrage pull), so it decouples within ~1 min here
        # instead of ~10: the cap binds on 78 of the 160 payments (4 of 80 with 8 envs at the
        # scenario's 6 per hour, where only the envs that happen to decouple early pay any).
        overrides = dict(
            scenario="funding_squeeze",
            decoupling_per_hour=(60.0, 0.25),
            taker_imbalance=(-0.5, -0.5, -0.5),
            funding_clamp_8h=0.0,
            funding_cap=1e-8,
        )
    p, rows = _run(
        num_envs,
        steps,
        seed=41,
        actions=_random_actions(41, steps, num_envs),
        funding_interval_seconds=60.0,
        random_funding_phase=False,
        **overrides,
    )
    stats = _check_funding(p, rows)
    rates = np.array(stats["rates"])
    assert np.all(np.abs(rates) <= p.funding_cap)
    if case == "interest":
        np.testing.assert_array_equal(rates, p.funding_cap)
    else:
        assert np.sum(rates == -p.funding_cap) > 0.1 * rates.size


@pytest.mark.parametrize("tilt", [0.5, -0.5])
def test_funding_sign_follows_one_sided_flow(tilt: float) -> None:
    # funding_squeeze: persistent buying (tilt > 0) with a weak arbitrage pull: the perp trades
    # at a premium and funding is positive; the mirror image (selling) gives negative funding.
    # The leverage-demand premium is off: this checks the flow's own basis.
    # Six 10-minute payments per env over an hour; each env's mean realised rate is one
    # independent observation.
    num_envs, steps = 128, 3600
    env = PerpMMVectorEnv(
        num_envs=num_envs,
        scenario="funding_squeeze",
        episode_seconds=float(steps),
        taker_imbalance=(tilt, tilt, tilt),
        funding_interval_seconds=600.0,
        random_funding_phase=False,
        **CARRY_OFF,
    )
    env.reset(seed=51 if tilt > 0 else 52_000)
    a = _no_quotes(num_envs)
    total = np.zeros(num_envs)
    count = 0
    for _ in range(steps):
        env.step(a)
        if env.sim.accounts["tick"][0] % 6000 == 0:
            total += env.sim.assets["funding_history"][:, 0, 0]
            count += 1
    assert count == 6
    mean_rate = total / count
    # SE across the 128 independent envs: measured 0.07-0.08 bp against means of +0.71 and
    # -0.70 bp per payment (z ~ 9).
    se = mean_rate.std(ddof=1) / math.sqrt(num_envs)
    assert np.sign(tilt) * mean_rate.mean() > Z * se, (mean_rate.mean(), se)
