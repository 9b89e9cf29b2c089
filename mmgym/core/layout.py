"""Record layouts of the PerpMM kernel: packed parameters, state and event windows.

State is two NumPy structured arrays: one **account** record per env (regime, clock, the
cross-margined account, the leveraged crowd) and one **asset** record per env and perp
(book, prices, resting orders, inventory, funding, hedge), shape ``(num_envs, num_assets)``.
The compiled kernel takes a handful of arguments and touches contiguous rows.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from mmgym.core.params import (
    HEDGE_SCHEDULES,
    NUM_REGIMES,
    REGIMES,
    REWARDS,
    SECONDS_PER_YEAR,
    MarketParams,
    correlation_cholesky,
    depth_profile,
    maintenance_tiers,
    regime_stationary_law,
    regime_transition_matrix,
)

BOOK_SNAPSHOT_LEVELS = 5
"""Levels per side of the book snapshot in the event window."""
FUNDING_HISTORY = 3
"""Realised funding rates kept per asset (most recent first)."""
SECONDS_PER_8H = 8.0 * 3600.0
SECONDS_PER_DAY = 24.0 * 3600.0

R = NUM_REGIMES

REASON_NONE = 0
REASON_LIQUIDATED = 1
TERMINATION_REASONS = ("", "liquidated")


def param_dtype(levels: int, assets: int, tiers: int) -> np.dtype:
    """Record of the packed, per-tick parameters the kernel reads."""
    return np.dtype(
        [
            ("dt", "f8"),
            ("ticks_per_decision", "i8"),
            ("episode_ticks", "i8"),
            ("tick_size", "f8"),
            ("initial_price_ticks", "f8"),
            ("num_assets", "i8"),
            ("sigma_sqrt_dt", "f8", (R,)),
            ("drift_correction", "f8", (R,)),
            ("shock_cholesky", "f8", (R, assets, assets)),
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
            ("mu_buy_dt", "f8", (R,)),
            ("mu_sell_dt", "f8", (R,)),
            ("excitation_decay", "f8"),
            ("excitation_self", "f8"),
            ("excitation_cross", "f8"),
            ("excitation_mean_buy", "f8", (R,)),
            ("excitation_mean_sell", "f8", (R,)),
            ("size_min", "f8"),
            ("size_inv_tail", "f8"),
            ("size_cap", "f8"),
            ("profile", "f8", (R, levels)),
            ("refill_fraction", "f8", (R,)),
            ("new_level_fraction", "f8"),
            ("background_half_spread", "f8", (R,)),
            ("impact_per_unit", "f8", (R,)),
            ("impact_decay_coupled", "f8"),
            ("impact_decay_decoupled", "f8"),
            ("decouple_prob", "f8"),
            ("recouple_prob", "f8"),
            ("mark_ema_weight", "f8"),
            ("arb_threshold", "f8"),
            ("premium_sample_ticks", "i8"),
            ("funding_interval_ticks", "i8"),
            ("funding_interest", "f8"),
            ("funding_clamp", "f8"),
            ("funding_cap", "f8"),
            ("funding_scale", "f8"),
            ("impact_notional", "f8"),
            ("random_funding_phase", "?"),
            ("collateral", "f8"),
            ("margin_tiers", "f8", (tiers, 3)),
            ("liquidation_penalty", "f8"),
            ("liquidation_max_slippage", "f8"),
            ("crowd_open_interest", "f8"),
            ("crowd_maintenance_rate", "f8"),
            ("crowd_leverage", "f8"),
            ("crowd_entry_dispersion", "f8"),
            ("crowd_renewal_prob", "f8"),
            ("crowd_large_position", "f8"),
            ("crowd_cooldown_ticks", "i8"),
            ("hedge_fee", "f8"),
            ("hedge_noise", "f8"),
            ("hedge_impact", "f8", (R,)),
            ("hedge_liquidity", "f8"),
            ("hedge_latency_ticks", "i8"),
            ("hedge_schedule", "i8"),
            ("hedge_horizon", "i8"),
            ("hedge_urgency", "f8"),
            ("max_leverage", "f8"),
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
            ("reward_mode", "i8"),
            ("inventory_penalty", "f8"),
            ("terminal_inventory_penalty", "f8"),
            ("reward_scale", "f8"),
        ],
        align=True,
    )


def _stationary_excitation(p: MarketParams, r: int) -> tuple[float, float]:
    """Stationary excitation per side: lambda - mu with lambda = (I - B)^-1 mu."""
    mu = p.taker_rate[r] * np.array([1.0 + p.taker_imbalance[r], 1.0 - p.taker_imbalance[r]])
    b = np.array([[p.hawkes_self, p.hawkes_cross], [p.hawkes_cross, p.hawkes_self]])
    lam = np.linalg.solve(np.eye(2) - b, mu)
    return float(lam[0] - mu[0]), float(lam[1] - mu[1])


def pack_params(p: MarketParams) -> NDArray[np.void]:
    """Validate ``p`` and pack it into a one-element record array for the kernel."""
    p.validate()
    dt = p.tick_seconds
    out = np.zeros(1, dtype=param_dtype(p.book_levels, p.num_assets, len(p.margin_tiers)))
    r = out[0]
    r["dt"] = dt
    r["ticks_per_decision"] = p.ticks_per_decision
    r["episode_ticks"] = p.decisions_per_episode * p.ticks_per_decision
    r["tick_size"] = p.tick_size
    r["initial_price_ticks"] = p.initial_price / p.tick_size
    r["num_assets"] = p.num_assets
    vol = np.array(p.volatility) * math.sqrt(dt / SECONDS_PER_YEAR)
    r["sigma_sqrt_dt"] = vol
    r["drift_correction"] = -0.5 * vol**2
    r["shock_cholesky"] = correlation_cholesky(p)
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
    tilt = np.array(p.taker_imbalance)
    r["mu_buy_dt"] = np.array(p.taker_rate) * (1.0 + tilt) * dt
    r["mu_sell_dt"] = np.array(p.taker_rate) * (1.0 - tilt) * dt
    d = math.exp(-p.hawkes_decay * dt)
    r["excitation_decay"] = d
    # Jump sizes chosen so that each event's expected offspring equals the branching ratio
    # exactly in discrete time: sum_k J d^(k-1) dt = J dt / (1 - d) = n.
    r["excitation_self"] = p.hawkes_self * (1.0 - d) / dt
    r["excitation_cross"] = p.hawkes_cross * (1.0 - d) / dt
    for regime in range(R):
        r["excitation_mean_buy"][regime], r["excitation_mean_sell"][regime] = (
            _stationary_excitation(p, regime)
        )
    r["size_min"] = p.order_size_min
    r["size_inv_tail"] = 1.0 / p.order_size_tail
    r["size_cap"] = p.order_size_cap
    r["profile"] = depth_profile(p)
    r["refill_fraction"] = 1.0 - np.exp(-dt / np.array(p.depth_refill_seconds))
    r["new_level_fraction"] = p.new_level_fraction
    r["background_half_spread"] = p.background_half_spread
    r["impact_per_unit"] = p.impact_coefficient / np.array(p.depth_top)
    r["impact_decay_coupled"] = math.exp(-dt / p.impact_decay_seconds)
    r["impact_decay_decoupled"] = math.exp(-dt / p.decoupled_pull_seconds)
    r["decouple_prob"] = -math.expm1(-p.decoupling_per_hour[0] * dt / 3600.0)
    r["recouple_prob"] = -math.expm1(-p.decoupling_per_hour[1] * dt / 3600.0)
    r["mark_ema_weight"] = -math.expm1(-dt / p.mark_ema_seconds)
    r["arb_threshold"] = p.arb_threshold_ticks
    r["premium_sample_ticks"] = round(p.premium_sample_seconds / dt)
    r["funding_interval_ticks"] = round(p.funding_interval_seconds / dt)
    scale = p.funding_interval_seconds / SECONDS_PER_8H
    r["funding_interest"] = p.funding_interest_8h
    r["funding_clamp"] = p.funding_clamp_8h
    r["funding_cap"] = p.funding_cap
    r["funding_scale"] = scale
    r["impact_notional"] = p.impact_notional
    r["random_funding_phase"] = p.random_funding_phase
    r["collateral"] = p.collateral
    r["margin_tiers"] = maintenance_tiers(p)
    r["liquidation_penalty"] = p.liquidation_penalty
    r["liquidation_max_slippage"] = p.liquidation_max_slippage
    r["crowd_open_interest"] = p.crowd_open_interest
    r["crowd_maintenance_rate"] = 0.5 / p.margin_tiers[0][1]
    r["crowd_leverage"] = p.crowd_leverage
    r["crowd_entry_dispersion"] = p.crowd_entry_dispersion
    r["crowd_renewal_prob"] = -math.expm1(-dt / p.crowd_holding_seconds)
    r["crowd_large_position"] = p.crowd_large_position
    r["crowd_cooldown_ticks"] = round(p.crowd_cooldown_seconds / dt)
    r["hedge_fee"] = p.hedge_fee
    r["hedge_noise"] = p.hedge_noise_bp * 1e-4
    sigma_day = np.array(p.volatility) * math.sqrt(SECONDS_PER_DAY / SECONDS_PER_YEAR)
    volume_day = p.hedge_volume_per_second * SECONDS_PER_DAY
    r["hedge_impact"] = p.hedge_impact_y * sigma_day / math.sqrt(volume_day)
    r["hedge_liquidity"] = p.hedge_liquidity
    r["hedge_latency_ticks"] = math.ceil(p.hedge_latency_seconds / dt - 1e-9)
    r["hedge_schedule"] = HEDGE_SCHEDULES.index(p.hedge_schedule)
    r["hedge_horizon"] = p.hedge_horizon_decisions
    r["hedge_urgency"] = p.hedge_urgency
    r["max_leverage"] = p.margin_tiers[0][1]
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
    r["reward_mode"] = REWARDS.index(p.reward)
    r["inventory_penalty"] = p.inventory_penalty
    r["terminal_inventory_penalty"] = p.terminal_inventory_penalty
    r["reward_scale"] = p.reward_scale
    return out


def account_dtype(assets: int, crowd: int) -> np.dtype:
    """Record of one env: regime and clock, the agent's cross-margined account, the crowd."""
    return np.dtype(
        [
            ("regime", "i8"),
            ("tick", "i8"),
            ("next_premium_tick", "i8"),
            ("next_funding_tick", "i8"),
            # the agent's account (cross margin over its assets)
            ("collateral", "f8"),
            ("equity", "f8"),
            ("equity_before", "f8"),
            ("margin_equity", "f8"),
            ("maintenance_margin", "f8"),
            ("margin_ratio", "f8"),
            ("reason", "i8"),
            ("inventory_sq_time", "f8"),
            # the leveraged crowd: cross-margined accounts, long (+1) or short (-1) a basket
            ("crowd_side", "f8", (crowd,)),
            ("crowd_size", "f8", (crowd, assets)),
            ("crowd_coef", "f8", (crowd, assets)),
            ("crowd_threshold", "f8", (crowd,)),
            ("crowd_release_tick", "i8", (crowd,)),
            ("crowd_liquidations", "i8"),
            # exact skip of the scan: no account can cross while min_slack > max_coef x the
            # marks' total distance from crowd_ref_mark (the check is linear in the marks)
            ("crowd_min_slack", "f8"),
            ("crowd_max_coef", "f8"),
            ("crowd_ref_mark", "f8", (assets,)),
            ("crowd_pending", "i8"),
            # scratch: correlated shocks of this tick
            ("shock", "f8", (assets,)),
            ("shock_raw", "f8", (assets,)),
            ("signal_shock", "f8", (assets,)),
        ],
        align=True,
    )


def asset_dtype(levels: int) -> np.dtype:
    """Record of one perp of one env: market, resting orders, account share, funding, hedge."""
    return np.dtype(
        [
            # market
            ("fair_ticks", "f8"),
            ("signal", "f8"),
            ("impact", "f8"),
            ("coupled", "?"),
            ("excitation_buy", "f8"),
            ("excitation_sell", "f8"),
            ("best_bid", "i8"),
            ("best_ask", "i8"),
            ("bid_depth", "f8", (levels,)),
            ("ask_depth", "f8", (levels,)),
            ("mid", "f8"),
            ("basis_ema", "f8"),
            ("mark", "f8"),
            ("last_trade", "f8"),
            ("fair_price", "f8"),
            # the agent's position in this perp
            ("cash", "f8"),
            ("inventory", "f8"),
            ("entry_price", "f8"),
            ("realised_pnl", "f8"),
            ("position_limit", "f8"),
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
            # funding
            ("premium", "f8"),
            ("premium_sum", "f8"),
            ("premium_count", "i8"),
            ("funding_history", "f8", (FUNDING_HISTORY,)),
            # hedge venue
            ("hedge_position", "f8"),
            ("hedge_cash", "f8"),
            ("hedge_target", "f8"),
            ("hedge_children_left", "i8"),
            ("hedge_next_tick", "i8"),
            ("hedge_price", "f8"),
            # accumulators of the last step
            ("pnl_spread", "f8"),
            ("pnl_inventory", "f8"),
            ("pnl_fees", "f8"),
            ("pnl_funding", "f8"),
            ("pnl_hedge", "f8"),
            ("pnl_liquidation", "f8"),
            ("bid_filled", "f8"),
            ("ask_filled", "f8"),
            ("toxic_filled", "f8"),
            ("fills", "i8"),
            ("fill_notional", "f8"),
            ("bid_notional", "f8"),
            ("ask_notional", "f8"),
            ("rejected_post_only", "i8"),
            ("taker_buy_volume", "f8"),
            ("taker_sell_volume", "f8"),
            ("taker_buy_orders", "i8"),
            ("taker_sell_orders", "i8"),
            ("forced_buy_volume", "f8"),
            ("forced_sell_volume", "f8"),
            ("backstop_volume", "f8"),
            ("hedge_filled", "f8"),
            ("hedge_cost", "f8"),
            ("funding_paid", "f8"),
        ],
        align=True,
    )


def window_dtype(ticks: int) -> np.dtype:
    """Record of the market events one decision interval produced in one perp, as an agent sees
    them. The simulator fills it from its state; a live runner fills it from venue messages. The
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
            ("oracle", "f8"),
            ("premium", "f8"),
            ("funding_estimate", "f8"),
            ("last_funding", "f8"),
            ("hedge_position", "f8"),
            ("time_fraction", "f8"),
            ("episode_start", "?"),
        ],
        align=True,
    )


ACCOUNT_WINDOW_DTYPE = np.dtype(
    [
        ("equity", "f8"),
        ("maintenance_margin", "f8"),
        ("collateral", "f8"),
        ("time_to_funding", "f8"),
    ],
    align=True,
)
"""Account-wide part of the event window: what the venue's account endpoint reports."""
