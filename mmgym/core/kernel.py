"""The PerpMM kernel: one compiled call advances every env by one decision interval.

Per market tick, in order: regime switch; fair price and latent drift; impact decay and
recentring of the background book; depth replenishment; orders in flight reach the book; stale
agent quotes are picked off; taker orders arrive (Hawkes) and walk the book; the excitation and
impact update; the agent is marked to the new mid. Each env draws only from its own stream.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from numpy.typing import NDArray

from mmgym.core.accounting import equity, mark_to
from mmgym.core.book import (
    anchor_ticks,
    book_mid,
    buy_from_asks,
    recentre,
    replenish,
    sell_into_bids,
)
from mmgym.core.fair_price import step_fair_price
from mmgym.core.orders import activate, pick_off_stale, submit
from mmgym.core.records import Record
from mmgym.core.regime import next_regime, sample_from_cdf
from mmgym.core.rng import poisson, seed_streams, standard_normal, uniform
from mmgym.core.taker_flow import order_side, order_size, update_excitation


@nb.njit(cache=True, error_model="numpy")
def tick_market(rng: NDArray[np.uint64], i: int, s: Record, P: Record) -> tuple[float, float]:
    """Advance one env by one market tick; return (taker buy volume, taker sell volume)."""
    r = next_regime(rng, i, s.regime, P.transition_cdf)
    s.regime = r
    step_fair_price(rng, i, s, P, r)
    s.impact *= P.impact_decay
    anchor = anchor_ticks(s, P)
    recentre(s, P, r, anchor)
    replenish(s, P, r)
    mark_to(s, book_mid(s, P))
    if s.pending_tick == s.tick:
        activate(s, P)
    pick_off_stale(s, P, anchor)

    # Taker arrivals. Poisson thinning: the total count is Poisson(lam_buy + lam_sell) and each
    # arrival is a buy with probability lam_buy / total, which gives independent Poisson counts
    # per side, in a random interleaving.
    dt = P.dt
    lam_buy = P.mu_dt[r] + s.excitation_buy * dt
    lam_total = lam_buy + P.mu_dt[r] + s.excitation_sell * dt
    arrivals = poisson(rng, i, lam_total)
    buy_volume = 0.0
    sell_volume = 0.0
    buys = 0
    sells = 0
    for _ in range(arrivals):
        hawkes_side = 1 if uniform(rng, i) * lam_total < lam_buy else -1
        side = order_side(rng, i, hawkes_side, s.signal, P.informed_fraction[r])
        size = order_size(rng, i, P)
        if side > 0:
            buy_volume += buy_from_asks(s, P, r, size)
            buys += 1
        else:
            sell_volume += sell_into_bids(s, P, r, size)
            sells += 1
    update_excitation(s, P, buys, sells)
    s.taker_buy_orders += buys
    s.taker_sell_orders += sells
    s.impact += P.impact_per_unit[r] * (buy_volume - sell_volume)
    mark_to(s, book_mid(s, P))
    s.inventory_sq_time += s.inventory * s.inventory * dt
    s.tick += 1
    return buy_volume, sell_volume


@nb.njit(cache=True, error_model="numpy")
def _snapshot(s: Record, P: Record, w: Record) -> None:
    """Write the end-of-interval book, own orders and account into the event window."""
    tick = P.tick_size
    k = w.bid_depth.shape[0]
    w.best_bid = s.best_bid * tick
    w.best_ask = s.best_ask * tick
    for j in range(k):
        w.bid_depth[j] = s.bid_depth[j]
        w.ask_depth[j] = s.ask_depth[j]
    w.bid_price = s.bid_px * tick
    w.bid_size = s.bid_qty
    w.bid_queue_ahead = s.bid_ahead if s.bid_qty > 0.0 else 0.0
    w.ask_price = s.ask_px * tick
    w.ask_size = s.ask_qty
    w.ask_queue_ahead = s.ask_ahead if s.ask_qty > 0.0 else 0.0
    w.inventory = s.inventory
    w.time_fraction = s.tick / P.episode_ticks


@nb.njit(cache=True, error_model="numpy")
def _reset_one(rng: NDArray[np.uint64], i: int, s: Record, P: Record, w: Record) -> None:
    """Start a new episode for env ``i``, drawing its initial regime and drift from its stream."""
    r = P.initial_regime if P.initial_regime >= 0 else sample_from_cdf(rng, i, P.stationary_cdf)
    s.regime = r
    s.tick = 0
    s.fair_ticks = P.initial_price_ticks
    s.signal = P.signal_std[r] * standard_normal(rng, i)
    s.impact = 0.0
    s.excitation_buy = P.excitation_mean[r]
    s.excitation_sell = P.excitation_mean[r]
    profile = P.profile[r]
    for j in range(profile.shape[0]):
        s.bid_depth[j] = profile[j]
        s.ask_depth[j] = profile[j]
    anchor = anchor_ticks(s, P)
    h = P.background_half_spread[r]
    s.best_bid = math.floor(anchor - h)
    s.best_ask = max(math.ceil(anchor + h), s.best_bid + 1)
    s.mid = book_mid(s, P)
    s.last_trade = s.mid
    s.cash = 0.0
    s.inventory = 0.0
    s.entry_price = 0.0
    s.realised_pnl = 0.0
    s.bid_px = 0
    s.bid_qty = 0.0
    s.bid_ahead = 0.0
    s.ask_px = 0
    s.ask_qty = 0.0
    s.ask_ahead = 0.0
    s.pending_tick = -1
    _clear_step(s)
    s.equity_before = 0.0
    s.equity = 0.0
    s.fair_price = s.fair_ticks * P.tick_size
    for t in range(w.mid.shape[0]):
        w.mid[t] = s.mid
        w.buy_volume[t] = 0.0
        w.sell_volume[t] = 0.0
    _snapshot(s, P, w)
    w.episode_start = True


@nb.njit(cache=True, error_model="numpy", inline="always")
def _clear_step(s: Record) -> None:
    s.pnl_spread = 0.0
    s.pnl_inventory = 0.0
    s.pnl_fees = 0.0
    s.inventory_sq_time = 0.0
    s.bid_filled = 0.0
    s.ask_filled = 0.0
    s.toxic_filled = 0.0
    s.fills = 0
    s.rejected_post_only = 0
    s.taker_buy_volume = 0.0
    s.taker_sell_volume = 0.0
    s.taker_buy_orders = 0
    s.taker_sell_orders = 0
    s.fill_notional = 0.0


@nb.njit(cache=True, error_model="numpy")
def reset_markets(
    Pa: NDArray[np.void],
    state: NDArray[np.void],
    window: NDArray[np.void],
    rng: NDArray[np.uint64],
    mask: NDArray[np.bool_],
    seeds: NDArray[np.uint64],
    reseed: bool,
) -> None:
    """Start new episodes for envs in ``mask`` (reseeding their streams first if ``reseed``)."""
    P = Pa[0]
    if reseed:
        seed_streams(rng, seeds, mask)
    for i in range(state.shape[0]):
        if mask[i]:
            _reset_one(rng, i, state[i], P, window[i])


@nb.njit(cache=True, error_model="numpy")
def _step_one(
    Pa: NDArray[np.void],
    state: NDArray[np.void],
    window: NDArray[np.void],
    rng: NDArray[np.uint64],
    i: int,
    actions: NDArray[np.floating],
    autoreset: NDArray[np.bool_],
    reward: NDArray[np.float64],
    terminated: NDArray[np.bool_],
    truncated: NDArray[np.bool_],
) -> None:
    """Advance env ``i`` by one decision interval, or reset it if ``autoreset[i]``."""
    P = Pa[0]
    s = state[i]
    w = window[i]
    action = actions[i]
    if autoreset[i]:
        _reset_one(rng, i, s, P, w)
        reward[i] = 0.0
        terminated[i] = False
        truncated[i] = False
        return
    _clear_step(s)
    s.equity_before = equity(s)
    submit(rng, i, s, P, action)
    for t in range(P.ticks_per_decision):
        bv, sv = tick_market(rng, i, s, P)
        w.mid[t] = s.mid
        w.buy_volume[t] = bv
        w.sell_volume[t] = sv
        s.taker_buy_volume += bv
        s.taker_sell_volume += sv
    _snapshot(s, P, w)
    w.episode_start = False
    s.equity = equity(s)
    s.fair_price = s.fair_ticks * P.tick_size
    done = s.tick >= P.episode_ticks
    value = s.equity - s.equity_before
    if P.reward_mode == 1:
        value -= P.inventory_penalty * s.inventory_sq_time
        if done:
            value -= P.terminal_inventory_penalty * s.inventory * s.inventory
    reward[i] = value * P.reward_scale
    terminated[i] = False
    truncated[i] = done


@nb.njit(cache=True, error_model="numpy")
def first_non_finite(actions: NDArray[np.floating]) -> int:
    """Flat index of the first non-finite action, or -1."""
    flat = actions.reshape(-1)
    for k in range(flat.shape[0]):
        if not math.isfinite(flat[k]):
            return k
    return -1


@nb.njit(cache=True, error_model="numpy")
def step_markets(
    Pa: NDArray[np.void],
    state: NDArray[np.void],
    window: NDArray[np.void],
    rng: NDArray[np.uint64],
    actions: NDArray[np.floating],
    autoreset: NDArray[np.bool_],
    reward: NDArray[np.float64],
    terminated: NDArray[np.bool_],
    truncated: NDArray[np.bool_],
) -> int:
    """Advance every env by one decision interval (envs in ``autoreset`` start a new episode).

    Returns -1, or the flat index of the first non-finite action, in which case nothing moved.
    """
    bad = first_non_finite(actions)
    if bad >= 0:
        return bad
    for i in range(state.shape[0]):
        _step_one(Pa, state, window, rng, i, actions, autoreset, reward, terminated, truncated)
    return -1


@nb.njit(cache=True, error_model="numpy", parallel=True)
def step_markets_parallel(
    Pa: NDArray[np.void],
    state: NDArray[np.void],
    window: NDArray[np.void],
    rng: NDArray[np.uint64],
    actions: NDArray[np.floating],
    autoreset: NDArray[np.bool_],
    reward: NDArray[np.float64],
    terminated: NDArray[np.bool_],
    truncated: NDArray[np.bool_],
) -> int:
    """:func:`step_markets` over all cores. Envs share nothing, so results are identical."""
    bad = first_non_finite(actions)
    if bad >= 0:
        return bad
    for i in nb.prange(state.shape[0]):
        _step_one(Pa, state, window, rng, i, actions, autoreset, reward, terminated, truncated)
    return -1
