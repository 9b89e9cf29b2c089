"""The hedge venue: a second market priced at the oracle plus noise, and a child-order scheduler.

At each decision the action's hedge component sets a target hedge position, ``-fraction x
inventory`` of the perp. When the target changes, a plan of ``hedge_horizon_decisions``
children starts. Each decision, ``hedge_latency_seconds`` later, the next child goes out:
TWAP sends ``outstanding / children left``; Almgren-Chriss sends the share of the outstanding
that the holdings curve ``x(t) = X sinh(kappa (T - t)) / sinh(kappa T)`` clears over the next
child (front-loaded). A child is a taker order. It fills at most an exponential draw of
``hedge_liquidity`` (partial fills); the rest stays outstanding for later children. Its price
is the venue price ``oracle x (1 + noise)`` moved by the square-root impact
``Y sigma_day sqrt(Q / V_day)``, plus ``hedge_fee``. The hedge leg is marked at the oracle. Its
revaluation and costs form ``pnl_hedge``, and every child fill is booked exactly once.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from numpy.typing import NDArray

from mmgym.core.codes import NO_TICK, HedgeSchedule
from mmgym.core.records import Record
from mmgym.core.rng import exponential, standard_normal

RETARGET_TOLERANCE = 1e-9


@nb.njit(cache=True, error_model="numpy", inline="always")
def child_fraction(children_left: int, P: Record) -> float:
    """Share of the outstanding hedge the next child sends."""
    if children_left <= 1:
        return 1.0
    if P.hedge_schedule == HedgeSchedule.TWAP or P.hedge_urgency <= 1e-9:
        return 1.0 / children_left
    kappa = P.hedge_urgency / P.hedge_horizon_decisions
    return 1.0 - math.sinh(kappa * (children_left - 1)) / math.sinh(kappa * children_left)


@nb.njit(cache=True, error_model="numpy")
def plan_hedge(a: Record, P: Record, hedge_action: float, tick: int) -> None:
    """Set the target from the action (in [-1, 1] -> fraction in [0, 1]) and time the next child."""
    fraction = 0.5 * (min(1.0, max(-1.0, hedge_action)) + 1.0)
    target = -fraction * a.inventory
    if abs(target - a.hedge_target) > RETARGET_TOLERANCE or a.hedge_children_left <= 0:
        a.hedge_children_left = P.hedge_horizon_decisions
    a.hedge_target = target
    a.hedge_next_tick = tick + P.hedge_latency_ticks


@nb.njit(cache=True, error_model="numpy")
def step_hedge(
    rng: NDArray[np.uint64], i: int, a: Record, P: Record, r: int, tick: int, oracle_before: float
) -> None:
    """Mark the hedge leg to the oracle's move; send the child that is due.

    ``rng`` is the env's agent stream: a child is sent only as the agent's hedge actions make
    it due, so its draws (fill limit, venue noise) stay off the market stream."""
    a.pnl_hedge += a.hedge_position * (a.fair_price - oracle_before)
    if tick != a.hedge_next_tick or a.hedge_children_left <= 0:
        return
    outstanding = a.hedge_target - a.hedge_position
    child = outstanding * child_fraction(a.hedge_children_left, P)
    a.hedge_children_left -= 1
    a.hedge_next_tick = NO_TICK
    if abs(child) <= RETARGET_TOLERANCE:
        return
    size = min(abs(child), exponential(rng, i) * P.hedge_liquidity)
    side = 1.0 if child > 0.0 else -1.0
    venue = a.fair_price * (1.0 + P.hedge_noise_fraction * standard_normal(rng, i))
    a.hedge_price = venue
    price = venue * (1.0 + side * P.hedge_impact_per_sqrt_unit[r] * math.sqrt(size))
    fee = P.hedge_fee * price * size
    signed = side * size
    a.hedge_cash -= signed * price + fee
    a.hedge_position += signed
    cost = signed * (price - a.fair_price) + fee
    a.pnl_hedge -= cost
    a.hedge_cost += cost
    a.hedge_filled += size
