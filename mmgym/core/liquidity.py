"""Endogenous liquidity: background makers withdraw after toxic flow and fast moves, and herd.

Each side of each perp's book carries a maker-liquidity state ``L`` in ``[liquidity_floor, 1]``
(1: the configured book). That side's depth relaxes toward ``L x`` the regime's profile, and
the best quotes sit ``background_half_spread_r / L^liquidity_spread_elasticity`` ticks from the
anchor, ``L`` the thinner side's (the remaining makers quote around the anchor, so the spread's
changes do not move the mid by themselves): a book the makers leave is thin and wide, and
forced orders walk through its thin levels, so the price gaps (:mod:`mmgym.core.book`).

Per tick, after the taker flow and the crowd's forced orders, each side takes a withdrawal
impulse ``s >= 0`` (dimensionless): ``L <- max(L exp(-s), floor)``, and its makers cancel at
once, so every level of that side shrinks by the same ratio (the volume ahead of the agent with
it). Then ``L`` recovers: ``1 - L <- (1 - L) exp(-dt / liquidity_recovery_seconds)``. The
impulse of a side is the sum of

- toxic flow against it (net sells for the bids, net buys for the asks):
  ``rate x max(tox - threshold, 0) x dt``, where ``tox`` is the one-sided volume (taker and
  forced, buys minus sells) of the last ``liquidity_flow_seconds`` (an exponentially decayed
  sum) over the regime's near-mid depth profile (its best ``mmgym.core.params.NEAR_LEVELS``
  levels);
- a fast move of the oracle (the index) against it (down for the bids, up for the asks):
  ``sensitivity x max(z - threshold, 0)``, ``z`` the tick's ``|log oracle move|`` over the
  regime's diffusive sigma per tick (the index, not the perp's own mid: a mid that gaps inside
  a thin book does not feed back on itself);
- herding: ``h``, the side's self-exciting withdrawal intensity, ``h <- d h + n (1 - d) s``
  with ``d = exp(-dt / liquidity_herding_seconds)``: every unit of impulse triggers ``n``
  (``liquidity_herding``) further units through makers cancelling because others cancel, so an
  impulse ``s0`` withdraws ``s0 / (1 - n)`` in all.

With no toxic flow and no fast move both impulses are 0 and ``L`` stays 1 exactly: the book is
the configured one, bit for bit (the rates at 0 switch the mechanism off). No random draws.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from numpy.typing import NDArray

from mmgym.core.records import Record


@nb.njit(cache=True, error_model="numpy", inline="always")
def withdraw(level: float, impulse: float, floor: float, recovery: float) -> float:
    """Liquidity after one tick's withdrawal ``impulse`` and recovery (``recovery``: the
    per-tick factor ``exp(-dt / liquidity_recovery_seconds)``)."""
    after = max(level * math.exp(-impulse), floor)
    return 1.0 - (1.0 - after) * recovery


@nb.njit(cache=True, error_model="numpy", inline="always")
def _cancel(depth: NDArray[np.float64], ratio: float) -> None:
    for j in range(depth.shape[0]):
        depth[j] *= ratio


@nb.njit(cache=True, error_model="numpy", inline="always")
def _side(
    depth: NDArray[np.float64], level: float, impulse: float, P: Record
) -> tuple[float, float]:
    """One side's liquidity after the tick, and the ratio by which its makers cancelled (1 when
    the liquidity rose): its depth is cancelled at once."""
    after = withdraw(level, impulse, P.liquidity_floor, P.liquidity_recovery_per_tick)
    if after >= level:
        return after, 1.0
    ratio = after / level
    _cancel(depth, ratio)
    return after, ratio


@nb.njit(cache=True, error_model="numpy", inline="always")
def herd(withdrawal: float, impulse: float, P: Record) -> float:
    """Herding intensity after a tick with total impulse ``impulse``."""
    return withdrawal * P.liquidity_herding_decay_per_tick + P.liquidity_herding_jump * impulse


@nb.njit(cache=True, error_model="numpy")
def step_liquidity(a: Record, P: Record, r: int, net_volume: float, log_move: float) -> None:
    """One tick of the maker-liquidity states of perp ``a`` in regime ``r``, given the tick's
    net traded volume (buys minus sells, forced orders included) and the oracle's log move."""
    a.toxic_flow = a.toxic_flow * P.liquidity_flow_decay_per_tick + net_volume
    tox = abs(a.toxic_flow) / P.near_depth[r]
    flow = P.liquidity_toxicity_rate_per_tick * max(tox - P.liquidity_toxicity_threshold, 0.0)
    z = abs(log_move) / P.sigma_per_tick[r]
    move = P.liquidity_move_sensitivity * max(z - P.liquidity_move_threshold, 0.0)
    bid = a.withdrawal_bid
    ask = a.withdrawal_ask
    if a.toxic_flow < 0.0:
        bid += flow
    else:
        ask += flow
    if log_move < 0.0:
        bid += move
    else:
        ask += move
    a.withdrawal_bid = herd(a.withdrawal_bid, bid, P)
    a.withdrawal_ask = herd(a.withdrawal_ask, ask, P)
    a.liquidity_bid, ratio = _side(a.bid_depth, a.liquidity_bid, bid, P)
    a.bid_ahead *= ratio
    a.liquidity_ask, ratio = _side(a.ask_depth, a.liquidity_ask, ask, P)
    a.ask_ahead *= ratio


@nb.njit(cache=True, error_model="numpy", inline="always")
def half_spread(P: Record, r: int, liquidity: float) -> float:
    """Distance (ticks) of the best background quotes from the anchor in regime ``r`` at maker
    liquidity ``liquidity`` (the thinner side's)."""
    h = P.background_half_spread_ticks[r]
    if liquidity == 1.0:
        return h
    return h * liquidity ** (-P.liquidity_spread_elasticity)
