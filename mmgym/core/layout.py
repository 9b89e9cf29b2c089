"""Record layouts of the PerpMM kernel: packed parameters, per-env state and the event window.

Each env's state is one record of a NumPy structured array (named fields, contiguous per env),
so the compiled kernel takes a handful of arguments and touches one cache-friendly row per env.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from mmgym.core.params import (
    NUM_REGIMES,
    REGIMES,
    REWARDS,
    SECONDS_PER_YEAR,
    MarketParams,
    depth_profile,
    regime_stationary_law,
    regime_transition_matrix,
)

BOOK_SNAPSHOT_LEVELS = 5
"""Levels per side of the book snapshot in the event window."""

R = NUM_REGIMES


def param_dtype(levels: int) -> np.dtype:
    """Record of the packed, per-tick parameters the kernel reads."""
    return np.dtype(
        [
            ("dt", "f8"),
            ("ticks_per_decision", "i8"),
            ("episode_ticks", "i8"),
            ("tick_size", "f8"),
            ("initial_price_ticks", "f8"),
            ("sigma_sqrt_dt", "f8", (R,)),
            ("drift_correction", "f8", (R,)),
            ("jump_prob", "f8", (R,)),
            ("jump_mean", "f8", (R,)),
            ("jump_down_prob", "f8"),
            ("transition_cdf", "f8", (R, R)),
            ("stationary_cdf", "f8", (R,)),
            ("initial_regime", "i8"),
            ("signal_decay", "f8"),
            ("signal_noise", "f8"),
            ("signal_std", "f8", (R,)),
            ("informed_fraction", "f8", (R,)),
            ("mu_dt", "f8", (R,)),
            ("excitation_decay", "f8"),
            ("excitation_self", "f8"),
            ("excitation_cross", "f8"),
            ("size_min", "f8"),
            ("size_inv_tail", "f8"),
            ("size_cap", "f8"),
            ("profile", "f8", (R, levels)),
            ("refill_fraction", "f8", (R,)),
            ("new_level_fraction", "f8"),
            ("background_half_spread", "f8", (R,)),
            ("impact_per_unit", "f8", (R,)),
            ("impact_decay", "f8"),
            ("arb_threshold", "f8"),
            ("max_inventory", "f8"),
            ("max_quote_size", "f8"),
            ("min_quote_size", "f8"),
            ("max_half_spread", "f8"),
            ("max_skew", "f8"),
            ("maker_fee", "f8"),
            ("taker_fee", "f8"),
            ("latency_ticks", "f8"),
            ("jitter_ticks", "f8", (R,)),
            ("latency_cap_ticks", "f8"),
            ("excitation_mean", "f8", (R,)),
            ("reward_mode", "i8"),
            ("inventory_penalty", "f8"),
            ("terminal_inventory_penalty", "f8"),
            ("reward_scale", "f8"),
        ],
        align=True,
    )


def pack_params(p: MarketParams) -> NDArray[np.void]:
    """Validate ``p`` and pack it into a one-element record array for the kernel."""
    p.validate()
    dt = p.tick_seconds
    out = np.zeros(1, dtype=param_dtype(p.book_levels))
    r = out[0]
    r["dt"] = dt
    r["ticks_per_decision"] = p.ticks_per_decision
    r["episode_ticks"] = p.decisions_per_episode * p.ticks_per_decision
    r["tick_size"] = p.tick_size
    r["initial_price_ticks"] = p.initial_price / p.tick_size
    vol = np.array(p.volatility) * math.sqrt(dt / SECONDS_PER_YEAR)
    r["sigma_sqrt_dt"] = vol
    r["drift_correction"] = -0.5 * vol**2
    r["jump_prob"] = np.array(p.jump_rate_per_hour) * dt / 3600.0
    r["jump_mean"] = p.jump_mean_size
    r["jump_down_prob"] = p.jump_down_prob
    r["transition_cdf"] = np.cumsum(regime_transition_matrix(p), axis=1)
    r["transition_cdf"][:, -1] = 1.0
    r["stationary_cdf"] = np.cumsum(regime_stationary_law(p))
    r["stationary_cdf"][-1] = 1.0
    r["initial_regime"] = (
        -1 if p.initial_regime == "stationary" else REGIMES.index(p.initial_regime)
    )
    decay = math.exp(-dt / p.signal_timescale)
    r["signal_decay"] = decay
    r["signal_noise"] = math.sqrt(1.0 - decay * decay)
    r["signal_std"] = np.array(p.signal_move) / p.signal_timescale
    r["informed_fraction"] = p.informed_fraction
    r["mu_dt"] = np.array(p.taker_rate) * dt
    d = math.exp(-p.hawkes_decay * dt)
    r["excitation_decay"] = d
    # Jump sizes chosen so that each event's expected offspring equals the branching ratio
    # exactly in discrete time: sum_k J d^(k-1) dt = J dt / (1 - d) = n.
    r["excitation_self"] = p.hawkes_self * (1.0 - d) / dt
    r["excitation_cross"] = p.hawkes_cross * (1.0 - d) / dt
    r["size_min"] = p.order_size_min
    r["size_inv_tail"] = 1.0 / p.order_size_tail
    r["size_cap"] = p.order_size_cap
    r["profile"] = depth_profile(p)
    r["refill_fraction"] = 1.0 - np.exp(-dt / np.array(p.depth_refill_seconds))
    r["new_level_fraction"] = p.new_level_fraction
    r["background_half_spread"] = p.background_half_spread
    r["impact_per_unit"] = p.impact_coefficient / np.array(p.depth_top)
    r["impact_decay"] = math.exp(-dt / p.impact_decay_seconds)
    r["arb_threshold"] = p.arb_threshold_ticks
    r["max_inventory"] = p.max_inventory
    r["max_quote_size"] = p.max_quote_size
    r["min_quote_size"] = p.min_quote_size
    r["max_half_spread"] = p.max_half_spread_ticks
    r["max_skew"] = p.max_skew_ticks
    r["maker_fee"] = p.maker_fee
    r["taker_fee"] = p.taker_fee
    r["latency_ticks"] = p.latency_seconds / dt
    r["jitter_ticks"] = np.array(p.latency_jitter_seconds) / dt
    r["latency_cap_ticks"] = min(p.latency_cap_seconds / dt, p.ticks_per_decision - 1.0)
    branching = p.hawkes_self + p.hawkes_cross
    r["excitation_mean"] = np.array(p.taker_rate) * branching / (1.0 - branching)
    r["reward_mode"] = REWARDS.index(p.reward)
    r["inventory_penalty"] = p.inventory_penalty
    r["terminal_inventory_penalty"] = p.terminal_inventory_penalty
    r["reward_scale"] = p.reward_scale
    return out


def state_dtype(levels: int) -> np.dtype:
    """Record of one env's market, account, resting orders and last-step accumulators."""
    return np.dtype(
        [
            # market
            ("regime", "i8"),
            ("tick", "i8"),
            ("fair_ticks", "f8"),
            ("signal", "f8"),
            ("impact", "f8"),
            ("excitation_buy", "f8"),
            ("excitation_sell", "f8"),
            ("best_bid", "i8"),
            ("best_ask", "i8"),
            ("bid_depth", "f8", (levels,)),
            ("ask_depth", "f8", (levels,)),
            ("mid", "f8"),
            ("last_trade", "f8"),
            # account
            ("cash", "f8"),
            ("inventory", "f8"),
            ("entry_price", "f8"),
            ("realised_pnl", "f8"),
            # resting agent orders (price in ticks; qty 0 = none)
            ("bid_px", "i8"),
            ("bid_qty", "f8"),
            ("bid_ahead", "f8"),
            ("ask_px", "i8"),
            ("ask_qty", "f8"),
            ("ask_ahead", "f8"),
            # orders in flight (latency); pending_tick < 0: none
            ("pending_tick", "i8"),
            ("pending_bid_px", "i8"),
            ("pending_bid_qty", "f8"),
            ("pending_ask_px", "i8"),
            ("pending_ask_qty", "f8"),
            # accumulators of the last step
            ("pnl_spread", "f8"),
            ("pnl_inventory", "f8"),
            ("pnl_fees", "f8"),
            ("inventory_sq_time", "f8"),
            ("bid_filled", "f8"),
            ("ask_filled", "f8"),
            ("toxic_filled", "f8"),
            ("fills", "i8"),
            ("rejected_post_only", "i8"),
            ("taker_buy_volume", "f8"),
            ("taker_buy_orders", "i8"),
            ("taker_sell_orders", "i8"),
            ("fill_notional", "f8"),
            ("taker_sell_volume", "f8"),
            ("equity_before", "f8"),
            ("equity", "f8"),
            ("fair_price", "f8"),
        ],
        align=True,
    )


def window_dtype(ticks: int) -> np.dtype:
    """Record of the market events one decision interval produced, as an agent sees them.

    The simulator fills it from its state; a live runner fills it from venue messages. The
    observation builder reads nothing else, so sim and live compute identical features.
    """
    k = BOOK_SNAPSHOT_LEVELS
    return np.dtype(
        [
            ("mid", "f8", (ticks,)),
            ("buy_volume", "f8", (ticks,)),
            ("sell_volume", "f8", (ticks,)),
            ("best_bid", "f8"),
            ("best_ask", "f8"),
            ("bid_depth", "f8", (k,)),
            ("ask_depth", "f8", (k,)),
            ("bid_price", "f8"),
            ("bid_size", "f8"),
            ("bid_queue_ahead", "f8"),
            ("ask_price", "f8"),
            ("ask_size", "f8"),
            ("ask_queue_ahead", "f8"),
            ("inventory", "f8"),
            ("time_fraction", "f8"),
            ("episode_start", "?"),
        ],
        align=True,
    )
