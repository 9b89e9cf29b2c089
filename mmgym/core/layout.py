"""Record layouts of the PerpMM kernel: packed parameters, state and event windows.

State is two NumPy structured arrays: one **account** record per env (regime, clock, the
cross-margined account, the leveraged crowd) and one **asset** record per env and perp
(book, prices, resting orders, inventory, funding, hedge), shape ``(num_envs, num_assets)``.
The compiled kernel takes a handful of arguments and touches contiguous rows.

Every dtype builder returns one shared dtype object per layout (``functools.cache``): numba's
dispatcher recognises a structured array's type by its dtype object, at once when it has seen
that very object, but through a field-by-field comparison (microseconds per argument and call)
when it is a new object equal to one it has seen. So every env of a layout dispatches as fast as
the first.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from numpy.typing import NDArray

from mmgym.core.param_spec import pack, packed_dtype
from mmgym.core.params import IMPACT_MEMORY, NUM_REGIMES, MarketParams
from mmgym.core.stochastic_vol import VOL_COMPONENTS

BOOK_SNAPSHOT_LEVELS = 5
"""Levels per side of the book snapshot in the event window."""
FUNDING_HISTORY = 3
"""Realised funding rates kept per asset (most recent first)."""


def _packed_sizes(p: MarketParams) -> dict[str, int]:
    """Sizes of the packed entries' named dimensions for this market."""
    return {
        "regimes": NUM_REGIMES,
        "levels": p.book_levels,
        "assets": p.num_assets,
        "tiers": len(p.margin_tiers),
        "memory": IMPACT_MEMORY,
    }


def param_dtype(p: MarketParams) -> np.dtype:
    """Record of the packed, per-tick parameters the kernel reads (declared with each field of
    :class:`MarketParams`)."""
    return packed_dtype(MarketParams, _packed_sizes(p))


def pack_params(p: MarketParams) -> NDArray[np.void]:
    """Validate ``p`` and pack it into a one-element record array for the kernel."""
    return pack(p.validate(), _packed_sizes(p))


@cache
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
            ("pnl", "f8"),  # equity - equity_before: the last step's equity change
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
            # the openings' draws: the episode's key, each account's openings so far (renewals
            # included), and the leverage and entry/mark ratio of its latest opening
            ("crowd_key", "u8"),
            ("crowd_openings", "i8", (crowd,)),
            ("crowd_account_leverage", "f8", (crowd,)),
            ("crowd_entry_shift", "f8", (crowd,)),
            # exact skip of the scan: no account can cross while min_slack > max_coef x the
            # marks' total distance from crowd_ref_mark (the check is linear in the marks)
            ("crowd_min_slack", "f8"),
            ("crowd_max_coef", "f8"),
            ("crowd_ref_mark", "f8", (assets,)),
            ("crowd_pending", "i8"),
            # the leverage-demand premium's key for this episode (mmgym.core.carry)
            ("carry_key", "u8"),
            # market-wide stochastic volatility: log components and the multiplier v
            ("vol_log", "f8", (VOL_COMPONENTS,)),
            ("vol", "f8"),
            # stress feedback on the regime chain (mmgym.core.stress)
            ("stress_variance", "f8"),
            ("stress_liquidations", "f8"),
            ("stress_liquidations_seen", "i8"),
            ("stress_multiplier", "f8"),
            # scratch: correlated shocks of this tick
            ("shock", "f8", (assets,)),
            ("shock_raw", "f8", (assets,)),
            ("signal_shock", "f8", (assets,)),
        ],
        align=True,
    )


@cache
def asset_dtype(levels: int) -> np.dtype:
    """Record of one perp of one env: market, resting orders, account share, funding, hedge."""
    return np.dtype(
        [
            # market
            ("fair_ticks", "f8"),
            ("signal", "f8"),
            ("impact", "f8"),
            ("impact_memory", "f8", (IMPACT_MEMORY,)),  # slow parts, inside fair_ticks
            ("coupled", "?"),
            ("excitation_buy", "f8"),
            ("excitation_sell", "f8"),
            ("best_bid", "i8"),
            ("best_ask", "i8"),
            # maker liquidity per side (mmgym.core.liquidity): level, herding intensity; and the
            # memory of the net traded volume
            ("liquidity_bid", "f8"),
            ("liquidity_ask", "f8"),
            ("withdrawal_bid", "f8"),
            ("withdrawal_ask", "f8"),
            ("toxic_flow", "f8"),
            ("fair_log_move", "f8"),  # scratch: the oracle's log move in this tick
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
            # orders in flight (latency); pending_tick NO_TICK: none
            ("pending_tick", "i8"),
            ("pending_bid_px", "i8"),
            ("pending_bid_qty", "f8"),
            ("pending_ask_px", "i8"),
            ("pending_ask_qty", "f8"),
            # funding
            ("premium", "f8"),
            ("premium_sum", "f8"),
            ("premium_count", "i8"),
            # leverage demand: the premium (fraction of price) and the fair price at its update
            ("carry", "f8"),
            ("carry_ref_price", "f8"),
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
            ("taker_buy_cost", "f8"),
            ("taker_sell_cost", "f8"),
            ("taker_mid", "f8"),
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


@cache
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
