"""Price impact of signed order flow: a propagator with a fast, slow and permanent part.

A signed volume ``q`` (buys +) moves the price by ``c_r q`` ticks at once, ``c_r =
impact_coefficient / depth_top_r``, and that move then follows the propagator

    G(t) = c_r (s_fast e^{-t / tau_fast} + sum_j s_j e^{-t / tau_j} + s_perm),

with ``tau_fast = impact_decay_seconds`` and ``s_fast = 1 - s_perm - sum_j s_j``:

- the fast part is the perp's deviation from spot (``impact``): the background makers' anchor
  is ``fair + impact`` and the arbitrage pull decays it (``decoupled_pull_seconds`` while the
  basis is decoupled);
- the slow parts (``impact_memory``, time scales ``impact_memory_seconds``) and the permanent
  part move the fair price itself, since spot follows the perp; the slow parts relax on their
  own scales whatever the basis does, the permanent part never.

The mid thus moves by ``sum_s G(t - s) q_s``. With shares ``s_j`` chosen so that ``G(t)`` falls
about as ``t^-1/2`` between ``tau_fast`` and the slowest scale, a metaorder at a constant
participation rate moves the price by about ``Q^(1 - 1/2)``: the square-root law; after it
ends, the transient parts revert and only ``s_perm`` of its total push stays. Memory shares
and permanent share at 0 give the transient-only model (one time scale). No random draws.
"""

from __future__ import annotations

import numba as nb

from mmgym.core.records import Record


@nb.njit(cache=True, error_model="numpy", inline="always")
def relax_impact(a: Record, P: Record) -> None:
    """One tick of relaxation: the fast part by the arbitrage pull, the slow parts on their own
    scales (the fair price gives back what they release)."""
    a.impact *= P.impact_decay_per_tick_coupled if a.coupled else P.impact_decay_per_tick_decoupled
    released = 0.0
    memory = a.impact_memory
    for j in range(memory.shape[0]):
        kept = memory[j] * P.impact_memory_decay_per_tick[j]
        released += memory[j] - kept
        memory[j] = kept
    a.fair_ticks -= released


@nb.njit(cache=True, error_model="numpy", inline="always")
def add_flow_impact(a: Record, P: Record, r: int, signed_volume: float) -> None:
    """Impact of ``signed_volume`` (buys +) traded now: the anchor moves by ``c_r`` ticks per
    unit, split into the fast, slow and permanent parts. The hedge leg is revalued at the moved
    oracle (``pnl_hedge``), so call it after the tick's :func:`mmgym.core.hedge.step_hedge`."""
    if signed_volume == 0.0:
        return
    x = P.impact_ticks_per_unit[r] * signed_volume
    a.impact += P.impact_fast_share * x
    moved = P.impact_permanent_share * x
    memory = a.impact_memory
    for j in range(memory.shape[0]):
        y = P.impact_memory_share[j] * x
        memory[j] += y
        moved += y
    a.fair_ticks += moved
    before = a.fair_price
    a.fair_price = a.fair_ticks * P.tick_size
    a.pnl_hedge += a.hedge_position * (a.fair_price - before)  # the hedge leg, marked at the oracle
