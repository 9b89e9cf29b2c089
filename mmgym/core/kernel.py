"""The PerpMM kernel: one compiled call advances every env by one decision interval.

Per market tick of an env, in order:

1. the regime switches (its rates into stress scaled by the stress feedback,
   :mod:`mmgym.core.stress`); once a second the market-wide volatility multiplier is updated
   (:mod:`mmgym.core.stochastic_vol`); each perp draws its correlated fair-price shock and
   its latent drift's shock (correlated by ``signal_correlation``);
2. per perp: basis coupling switch; orders in flight that are due reach the book as the
   previous tick left it (a quote beyond the anchor is taken at once); Hawkes taker orders
   walk the book, and their net flow enters the impact; then the tick's price move: impact
   relaxation (the arbitrage pull on the fast part, weak while decoupled; the slow parts in
   the fair price, :mod:`mmgym.core.impact`), fair price and latent drift, recentring of the
   background book on the new anchor and replenishment; agent quotes the move left beyond the
   anchor are picked off; the hedge leg is marked and a due hedge child is sent. An order
   with no delay thus meets the takers of its tick at the prices it was set at, as the
   background makers' quotes do; any delay leaves it a tick's move behind them;
3. the leveraged crowd: renewals, staged and new forced closes in every perp at once;
4. marks are refreshed and positions marked to them; the makers' liquidity reacts to the tick's
   net flow and the oracle's move (:mod:`mmgym.core.liquidity`); when due, the leverage-demand
   premium steps (:mod:`mmgym.core.carry`, it moves the makers' anchor from the next tick on),
   the premium index is sampled and funding paid; the stress memories take in the tick's mid
   moves and liquidations;
5. the account is revalued; below maintenance margin the agent is liquidated and the episode
   ends (``terminated``).

Each env draws only from its own two streams (:mod:`mmgym.core.rng`), so its trajectory does
not depend on the batch it is in. The market stream makes the same draws in the same order
whatever the agent does: the regime, the volatility multiplier, the shocks, jumps, basis
switches, taker arrivals, sides and sizes, the crowd's renewals (and one key per episode for
the crowd's openings, which draw from keys of their own: :mod:`mmgym.core.crowd`; the
leverage-demand premium draws from keys derived from the stream's state at reset, without
advancing it: :mod:`mmgym.core.carry`), and one latency draw per perp per decision.
The agent stream holds the draws that happen only when the agent's actions make them happen:
the hedge children's fill limit and venue noise. Two policies on one seed thus share the
market's random path.
"""

from __future__ import annotations

import math
from typing import Any

import numba as nb
import numpy as np
from numpy.typing import NDArray

from mmgym.core.batch import compile_serial_and_parallel, first_non_finite
from mmgym.core.book import (
    anchor_ticks,
    book_mid,
    buy_from_asks,
    recentre,
    replenish,
    sell_into_bids,
)
from mmgym.core.carry import reset_carry, step_carry
from mmgym.core.codes import NO_TICK, STATIONARY_REGIME, Reason, Reward
from mmgym.core.crowd import reset_crowd, step_crowd
from mmgym.core.fair_price import draw_jump, step_fair_price
from mmgym.core.funding import funding_rate, pay_funding, sample_premium
from mmgym.core.hedge import plan_hedge, step_hedge
from mmgym.core.impact import add_flow_impact, relax_impact
from mmgym.core.liquidity import step_liquidity
from mmgym.core.margin import below_maintenance, liquidate_agent, update_account
from mmgym.core.mark import mark_price, remark, update_mark
from mmgym.core.orders import ACTION_NAMES, activate, pick_off_stale, submit
from mmgym.core.records import Record
from mmgym.core.regime import next_regime_scaled, sample_from_cdf
from mmgym.core.rng import (
    AGENT_STREAM,
    MARKET_STREAM,
    poisson,
    seed_streams,
    standard_normal_pair,
    uniform,
)
from mmgym.core.stochastic_vol import reset_vol, step_vol
from mmgym.core.stress import reset_stress, step_stress
from mmgym.core.taker_flow import order_side, order_size, update_excitation

ACTION_PER_ASSET = len(ACTION_NAMES)


@nb.njit(cache=True, error_model="numpy")
def tick_asset(
    rng: NDArray[np.uint64],
    agent_rng: NDArray[np.uint64],
    i: int,
    e: Record,
    a: Record,
    P: Record,
    r: int,
    z_price: float,
    z_signal: float,
    jump: float,
    vol: float,
) -> tuple[float, float]:
    """Advance one perp of one env by one tick; return (taker buy volume, taker sell volume).

    ``rng`` is the market stream, ``agent_rng`` the agent stream (the hedge child's draws)."""
    u = uniform(rng, i)
    if a.coupled:
        if u < P.decouple_prob_per_tick:
            a.coupled = False
    elif u < P.recouple_prob_per_tick:
        a.coupled = True
    # Orders in flight that are due land on the book as the previous tick left it; one that
    # sits beyond the anchor is taken at once.
    if a.pending_tick == e.tick:
        activate(a, P)
        pick_off_stale(a, P, anchor_ticks(a, P))

    # Taker arrivals. Poisson thinning: the total count is Poisson(lam_buy + lam_sell) and each
    # arrival is a buy with probability lam_buy / total, which gives independent Poisson counts
    # per side, in a random interleaving.
    dt = P.tick_seconds
    lam_buy = P.taker_buy_rate_per_tick[r] + a.excitation_buy * dt
    lam_total = lam_buy + P.taker_sell_rate_per_tick[r] + a.excitation_sell * dt
    arrivals = poisson(rng, i, lam_total)
    buy_volume = 0.0
    sell_volume = 0.0
    buys = 0
    sells = 0
    mid = 0.5 * (a.best_bid + a.best_ask)
    a.taker_mid = mid
    for _ in range(arrivals):
        hawkes_side = 1 if uniform(rng, i) * lam_total < lam_buy else -1
        side = order_side(rng, i, hawkes_side, a.signal, P.informed_fraction[r])
        size = order_size(rng, i, P)
        if side > 0:
            executed, notional = buy_from_asks(a, P, r, size)
            buy_volume += executed
            a.taker_buy_cost += notional - executed * mid
            buys += 1
        else:
            executed, notional = sell_into_bids(a, P, r, size)
            sell_volume += executed
            a.taker_sell_cost += executed * mid - notional
            sells += 1
    update_excitation(a, P, buys, sells)
    a.taker_buy_orders += buys
    a.taker_sell_orders += sells
    add_flow_impact(a, P, r, buy_volume - sell_volume)

    # The fair price moves; the background makers requote around the new anchor at once, and
    # arbitrageurs take the agent's quotes it left beyond fair value.
    oracle_before = a.fair_price
    relax_impact(a, P)
    step_fair_price(a, P, r, z_price, z_signal, jump, vol)
    a.fair_log_move = math.log(a.fair_price / oracle_before)
    anchor = anchor_ticks(a, P)
    recentre(a, P, r, anchor)
    replenish(a, P, r)
    pick_off_stale(a, P, anchor)
    step_hedge(agent_rng, i, a, P, r, e.tick, oracle_before)
    return buy_volume, sell_volume


@nb.njit(cache=True, error_model="numpy", inline="always")
def correlate(
    chol: NDArray[np.float64], raw: NDArray[np.float64], out: NDArray[np.float64]
) -> None:
    """``out = chol @ raw`` for a lower-triangular Cholesky factor: independent standard normals
    made correlated. Rows go last first, each reading only ``raw`` at or before it, so ``out``
    may be ``raw`` itself."""
    for k in range(raw.shape[0] - 1, -1, -1):
        z = 0.0
        for j in range(k + 1):
            z += chol[k, j] * raw[j]
        out[k] = z


@nb.njit(cache=True, error_model="numpy")
def tick_env(
    streams: NDArray[np.uint64],
    i: int,
    e: Record,
    A: NDArray[np.void],
    W: NDArray[np.void],
    P: Record,
    t: int,
) -> None:
    """Advance all perps of env ``i`` by one market tick, writing tick ``t`` of its windows.

    ``streams`` holds both streams of every env (``(STREAMS, num_envs)``)."""
    rng = streams[MARKET_STREAM]
    agent_rng = streams[AGENT_STREAM]
    r = next_regime_scaled(
        rng, i, e.regime, P.transition_cdf_per_tick, P.regime_rate_per_tick, e.stress_multiplier
    )
    e.regime = r
    if e.tick % P.vol_update_ticks == 0:
        step_vol(rng, i, e, P)
    n = A.shape[0]
    for k in range(n):
        e.shock_raw[k], e.signal_shock[k] = standard_normal_pair(rng, i)
    jump = draw_jump(rng, i, P, r)
    correlate(P.shock_cholesky[r], e.shock_raw, e.shock)
    correlate(P.signal_cholesky[r], e.signal_shock, e.signal_shock)
    for k in range(n):
        a = A[k]
        bv, sv = tick_asset(
            rng, agent_rng, i, e, a, P, r, e.shock[k], e.signal_shock[k], jump, e.vol
        )
        a.taker_buy_volume += bv
        a.taker_sell_volume += sv
        W[k].buy_volume[t] = bv - a.forced_buy_volume
        W[k].sell_volume[t] = sv - a.forced_sell_volume
    step_crowd(rng, i, e, A, P, r)
    # Clocks are compared with the time at the end of this tick, (tick + 1) x dt.
    premium_due = e.tick + 1 == e.next_premium_tick
    sample = e.next_premium_tick // P.premium_sample_ticks
    funding_due = e.tick + 1 == e.next_funding_tick
    dt = P.tick_seconds
    sum_z2 = 0.0
    for k in range(n):
        a = A[k]
        w = W[k]
        # forced volume counts in the window's trade tape (added back after the crowd's step)
        w.buy_volume[t] += a.forced_buy_volume
        w.sell_volume[t] += a.forced_sell_volume
        mid_before = a.mid
        update_mark(a, P)
        move = math.log(a.mid / mid_before)
        step_liquidity(a, P, r, w.buy_volume[t] - w.sell_volume[t], a.fair_log_move)
        z = move / P.sigma_per_tick[r]
        sum_z2 += z * z
        w.mid[t] = a.mid
        if premium_due:
            step_carry(a, P, r, e.carry_key, sample, k)
            sample_premium(a, P)
        if funding_due:
            pay_funding(a, P)
        e.inventory_sq_time += a.inventory * a.inventory * dt
    if premium_due:
        e.next_premium_tick += P.premium_sample_ticks
    if funding_due:
        e.next_funding_tick += P.funding_interval_ticks
    step_stress(e, P, sum_z2, n)
    update_account(e, A, P)
    if below_maintenance(e):
        liquidate_agent(e, A, P, r)
        for k in range(n):
            remark(A[k], P)
        update_account(e, A, P)
    e.tick += 1


@nb.njit(cache=True, error_model="numpy")
def _snapshot(e: Record, a: Record, P: Record, w: Record) -> None:
    """Write the end-of-interval book, own orders and account into one perp's event window."""
    tick = P.tick_size
    k = w.bid_depth.shape[0]
    w.best_bid = a.best_bid * tick
    w.best_ask = a.best_ask * tick
    for j in range(k):
        w.bid_depth[j] = a.bid_depth[j]
        w.ask_depth[j] = a.ask_depth[j]
    w.bid_price = a.bid_px * tick
    w.bid_size = a.bid_qty
    w.bid_queue_ahead = a.bid_ahead if a.bid_qty > 0.0 else 0.0
    w.ask_price = a.ask_px * tick
    w.ask_size = a.ask_qty
    w.ask_queue_ahead = a.ask_ahead if a.ask_qty > 0.0 else 0.0
    w.inventory = a.inventory
    w.oracle = a.fair_price
    w.premium = a.premium
    w.funding_estimate = funding_rate(a.premium_sum, a.premium_count, P)
    w.last_funding = a.funding_history[0]
    w.hedge_position = a.hedge_position
    w.time_fraction = e.tick / P.episode_ticks


@nb.njit(cache=True, error_model="numpy")
def _account_snapshot(e: Record, P: Record, v: Record) -> None:
    v.equity = e.margin_equity
    v.maintenance_margin = e.maintenance_margin
    v.collateral = e.collateral
    v.time_to_funding = (e.next_funding_tick - e.tick) * P.tick_seconds


@nb.njit(cache=True, error_model="numpy")
def _clear_asset_step(a: Record) -> None:
    a.pnl_spread = 0.0
    a.pnl_inventory = 0.0
    a.pnl_fees = 0.0
    a.pnl_funding = 0.0
    a.pnl_hedge = 0.0
    a.pnl_liquidation = 0.0
    a.bid_filled = 0.0
    a.ask_filled = 0.0
    a.toxic_filled = 0.0
    a.fills = 0
    a.fill_notional = 0.0
    a.bid_notional = 0.0
    a.ask_notional = 0.0
    a.rejected_post_only = 0
    a.taker_buy_volume = 0.0
    a.taker_sell_volume = 0.0
    a.taker_buy_cost = 0.0
    a.taker_sell_cost = 0.0
    a.taker_buy_orders = 0
    a.taker_sell_orders = 0
    a.forced_buy_volume = 0.0
    a.forced_sell_volume = 0.0
    a.backstop_volume = 0.0
    a.hedge_filled = 0.0
    a.hedge_cost = 0.0
    a.funding_paid = 0.0


@nb.njit(cache=True, error_model="numpy")
def _reset_asset(rng: NDArray[np.uint64], i: int, a: Record, P: Record, r: int) -> None:
    z_signal, _ = standard_normal_pair(rng, i)
    a.fair_ticks = P.initial_price_ticks
    a.fair_price = a.fair_ticks * P.tick_size
    a.signal = P.signal_std_per_second[r] * z_signal
    a.impact = 0.0
    for j in range(a.impact_memory.shape[0]):
        a.impact_memory[j] = 0.0
    a.coupled = True
    a.liquidity_bid = 1.0
    a.liquidity_ask = 1.0
    a.withdrawal_bid = 0.0
    a.withdrawal_ask = 0.0
    a.toxic_flow = 0.0
    a.excitation_buy = P.excitation_mean_buy_per_second[r]
    a.excitation_sell = P.excitation_mean_sell_per_second[r]
    profile = P.depth_profile[r]
    for j in range(profile.shape[0]):
        a.bid_depth[j] = profile[j]
        a.ask_depth[j] = profile[j]
    anchor = anchor_ticks(a, P)
    h = P.background_half_spread_ticks[r]
    a.best_bid = math.floor(anchor - h)
    a.best_ask = max(math.ceil(anchor + h), a.best_bid + 1)
    a.mid = book_mid(a, P)
    a.last_trade = a.mid
    a.basis_ema = a.mid - a.fair_price
    a.mark = mark_price(a, P)
    a.cash = 0.0
    a.inventory = 0.0
    a.entry_price = 0.0
    a.realised_pnl = 0.0
    a.position_limit = P.max_inventory
    a.bid_px = 0
    a.bid_qty = 0.0
    a.bid_ahead = 0.0
    a.ask_px = 0
    a.ask_qty = 0.0
    a.ask_ahead = 0.0
    a.pending_tick = NO_TICK
    a.premium = 0.0
    a.premium_sum = 0.0
    a.premium_count = 0
    for h in range(a.funding_history.shape[0]):
        a.funding_history[h] = 0.0
    a.hedge_position = 0.0
    a.hedge_cash = 0.0
    a.hedge_target = 0.0
    a.hedge_children_left = 0
    a.hedge_next_tick = NO_TICK
    a.hedge_price = a.fair_price
    _clear_asset_step(a)


@nb.njit(cache=True, error_model="numpy")
def _reset_one(
    rng: NDArray[np.uint64],
    i: int,
    e: Record,
    A: NDArray[np.void],
    W: NDArray[np.void],
    v: Record,
    P: Record,
) -> None:
    """Start a new episode for env ``i``, drawing its initial state from its market stream."""
    r = P.initial_regime
    if r == STATIONARY_REGIME:
        r = sample_from_cdf(rng, i, P.stationary_cdf)
    e.regime = r
    e.tick = 0
    e.reason = Reason.NONE
    e.collateral = P.collateral
    e.inventory_sq_time = 0.0
    e.next_premium_tick = P.premium_sample_ticks
    phase = P.funding_interval_ticks
    if P.random_funding_phase:
        phase = 1 + math.floor(uniform(rng, i) * P.funding_interval_ticks)
    e.next_funding_tick = phase
    reset_carry(rng, i, e, A, P, r)
    for k in range(A.shape[0]):
        _reset_asset(rng, i, A[k], P, r)
    reset_crowd(rng, i, e, A, P)
    reset_vol(rng, i, e, P)
    reset_stress(e)
    update_account(e, A, P)
    e.equity_before = e.equity
    e.pnl = e.equity - e.equity_before
    for k in range(A.shape[0]):
        a = A[k]
        w = W[k]
        for t in range(w.mid.shape[0]):
            w.mid[t] = a.mid
            w.buy_volume[t] = 0.0
            w.sell_volume[t] = 0.0
        _snapshot(e, a, P, w)
        w.episode_start = True
    _account_snapshot(e, P, v)


TERMINATED, TRUNCATED, LIQUIDATED = range(3)
"""Rows of the per-env end flags the kernel writes with the reward (``flags``, shape (3, n))."""

Markets = tuple[
    NDArray[np.void], NDArray[np.void], NDArray[np.void], NDArray[np.void], NDArray[np.void],
    NDArray[np.uint64],
]  # fmt: skip
"""The state the kernel advances, one argument: ``(Pa, accounts, assets, windows,
account_windows, rng)`` (packed parameters, account and asset records, event windows, and the
random streams: ``(STREAMS, num_envs)``, row ``MARKET_STREAM`` and row ``AGENT_STREAM``)."""


@nb.njit(cache=True, error_model="numpy", inline="always")
def _end_step(
    e: Record,
    i: int,
    value: float,
    ended: bool,
    done: bool,
    reward: NDArray[np.float64],
    flags: NDArray[np.bool_],
) -> None:
    """Write env ``i``'s reward and end flags."""
    reward[i] = value
    flags[TERMINATED, i] = ended
    flags[TRUNCATED, i] = done
    flags[LIQUIDATED, i] = e.reason == Reason.LIQUIDATED


@nb.njit(cache=True, error_model="numpy")
def reset_markets(
    markets: Markets,
    mask: NDArray[np.bool_],
    seeds: NDArray[np.uint64],
    reseed: bool,
    reward: NDArray[np.float64],
    flags: NDArray[np.bool_],
) -> None:
    """Start new episodes for envs in ``mask`` (reseeding both their streams first if
    ``reseed``); their reward is 0 and their end flags are clear."""
    Pa, accounts, assets, windows, account_windows, rng = markets
    P = Pa[0]
    if reseed:
        seed_streams(rng, seeds, mask)
    for i in range(accounts.shape[0]):
        if mask[i]:
            e = accounts[i]
            _reset_one(rng[MARKET_STREAM], i, e, assets[i], windows[i], account_windows[i], P)
            _end_step(e, i, 0.0, False, False, reward, flags)


@nb.njit(cache=True, error_model="numpy")
def _step_one(
    markets: Markets,
    i: int,
    actions: NDArray[np.floating],
    autoreset: NDArray[np.bool_],
    reward: NDArray[np.float64],
    flags: NDArray[np.bool_],
) -> None:
    """Advance env ``i`` by one decision interval, or reset it if ``autoreset[i]``."""
    Pa, accounts, assets, windows, account_windows, rng = markets
    P = Pa[0]
    e = accounts[i]
    A = assets[i]
    W = windows[i]
    market_rng = rng[MARKET_STREAM]
    if autoreset[i]:
        _reset_one(market_rng, i, e, A, W, account_windows[i], P)
        _end_step(e, i, 0.0, False, False, reward, flags)
        return
    n = A.shape[0]
    action = actions[i]
    e.inventory_sq_time = 0.0
    e.equity_before = e.equity
    leverage_room = max(e.margin_equity, 0.0) * P.max_leverage
    for k in range(n):
        a = A[k]
        _clear_asset_step(a)
        a.position_limit = min(P.max_inventory, leverage_room / (a.mark * n))
        base = k * ACTION_PER_ASSET
        submit(market_rng, i, a, P, action[base : base + ACTION_PER_ASSET], e.regime, e.tick)
        plan_hedge(a, P, action[base + ACTION_PER_ASSET - 1], e.tick)
    ticks = P.ticks_per_decision
    for t in range(ticks):
        tick_env(rng, i, e, A, W, P, t)
        if e.reason != Reason.NONE:
            for rest in range(t + 1, ticks):  # the tape stops: repeat the last mid, no volume
                for k in range(n):
                    W[k].mid[rest] = W[k].mid[t]
                    W[k].buy_volume[rest] = 0.0
                    W[k].sell_volume[rest] = 0.0
            break
    for k in range(n):
        _snapshot(e, A[k], P, W[k])
        W[k].episode_start = False
    _account_snapshot(e, P, account_windows[i])
    ended = e.reason != Reason.NONE
    done = e.tick >= P.episode_ticks and not ended
    value = e.equity - e.equity_before
    e.pnl = value
    if P.reward_mode == Reward.INVENTORY_PENALTY:
        value -= P.inventory_penalty_per_second * e.inventory_sq_time
        if done or ended:
            for k in range(n):
                value -= P.terminal_inventory_penalty * A[k].inventory * A[k].inventory
    _end_step(e, i, value * P.reward_scale, ended, done, reward, flags)


def _step_markets(loop: Any) -> Any:
    def step_markets(
        markets: Markets,
        actions: NDArray[np.floating],
        autoreset: NDArray[np.bool_],
        reward: NDArray[np.float64],
        flags: NDArray[np.bool_],
    ) -> int:
        """Advance every env by one decision interval (envs in ``autoreset`` start a new
        episode). Returns -1, or the flat index of the first non-finite action, in which case
        nothing moved."""
        bad = first_non_finite(actions)
        if bad >= 0:
            return bad
        for i in loop(actions.shape[0]):
            _step_one(markets, i, actions, autoreset, reward, flags)
        return -1

    return step_markets


step_markets, step_markets_parallel = compile_serial_and_parallel(_step_markets)
"""Every env by one decision interval: serially, or over all cores (identical results)."""
