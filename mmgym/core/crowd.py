"""The leveraged crowd: cross-margined accounts whose forced closes hit the book.

Half of ``crowd_accounts`` hold a long basket (one position in every perp), half a short one,
``crowd_open_interest`` per side and asset in all. Each account opens near the current marks
(entries dispersed by ``crowd_entry_dispersion``, as positions opened earlier) with
a leverage drawn around ``crowd_leverage`` (``1 + (L - 1) x Exp(1)``, capped at the venue's
maximum leverage, so no account opens below its maintenance margin), so liquidation prices
cluster below (longs) and above (shorts) recent prices. An account is liquidated when its
equity ``margin + sum_k size_k (mark_k - entry_k)`` falls below ``rate x sum_k |size_k| mark_k``;
this is linear in the marks, so it is stored as ``sum_k coef_k mark_k < threshold``. Its
positions are closed by market orders in every perp at once (a cross-margin event): above
``crowd_large_position`` 20 % go first and the rest after ``crowd_cooldown_seconds``. The forced
orders walk the book (and fill the agent's quotes) down to ``liquidation_max_slippage`` from the
mark; what the book cannot absorb within that band goes to the venue's backstop liquidator, off
the book (``backstop_volume``). The walk moves the impact and so the mark, which can liquidate
further accounts: a cascade. Accounts renew (close and reopen at the current marks,
a transfer that sends no orders) after ``crowd_holding_seconds`` on average; a liquidated
account reopens at its next renewal. With ``crowd_leverage = 0`` no account can be liquidated.

Paired draws: the renewals take one uniform of the market stream per tick. Every opening draws
from its own counter-based key (episode's crowd key, account ``j``, ``j``'s opening count), one
uniform per quantity (leverage, entry, one size per perp), whatever the parameters; the entry is
drawn by inversion, not by rejection. So two runs on one seed that differ in any one parameter
open account ``j`` for the ``n``-th time from the same uniforms, and the crowd never shifts the
market stream's other draws.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from numpy.typing import NDArray

from mmgym.core.book import buy_from_asks, liquidation_limit, sell_into_bids, volume_within
from mmgym.core.codes import NO_TICK
from mmgym.core.impact import add_flow_impact
from mmgym.core.records import Record
from mmgym.core.rng import (
    keyed_u64,
    keyed_uniform_open,
    next_u64,
    normal_cdf,
    normal_quantile,
    uniform,
)

NEVER = -np.inf
PARTIAL_FIRST = 0.2
MAX_WALKS = 100
DRAW_LEVERAGE = 0
"""Index of an opening's uniform for the account's leverage (drawn even at leverage 0)."""
DRAW_ENTRY = 1
"""Index of an opening's uniform for the entry prices' distance from the marks."""
DRAW_SIZES = 2
"""Index of an opening's uniform for the size in perp 0; perp ``k`` has ``DRAW_SIZES + k``."""
_ACCOUNT_BITS = np.uint64(16)  # an opening's counter is (opening, j): j < 2**16 accounts


@nb.njit(cache=True, error_model="numpy", inline="always")
def opening_key(crowd_key: np.uint64, j: int, opening: int) -> np.uint64:
    """Key of the draws of account ``j``'s opening number ``opening`` (0 at the episode's start,
    then one per renewal of ``j``) in the episode whose crowd key is ``crowd_key``."""
    return keyed_u64(crowd_key, (np.uint64(opening) << _ACCOUNT_BITS) | np.uint64(j))


@nb.njit(cache=True, error_model="numpy", inline="always")
def opening_uniform(key: np.uint64, draw: int) -> float:
    """Uniform number ``draw`` (``DRAW_LEVERAGE``, ``DRAW_ENTRY``, ``DRAW_SIZES + k``) of the
    opening keyed ``key`` (:func:`opening_key`)."""
    return keyed_uniform_open(key, np.uint64(draw))


@nb.njit(cache=True, error_model="numpy")
def entry_shift(side: float, rate: float, leverage: float, dispersion: float, u: float) -> float:
    """Ratio of an account's entry prices to the marks: ``exp(dispersion x Z)``, Z a standard
    normal conditioned on the account opening above maintenance, by inversion of uniform ``u``.

    The marks cancel from the maintenance test (the basket is one-sided and every entry sits the
    same ratio from its mark), which reads ``side - rate >= shift (side - 1 / leverage)``, that
    is ``side x Z <= b``; so ``side x Z = Phi^-1(u Phi(b))``. With leverage at most the venue's
    cap (half the maintenance leverage) ``Phi(b) > 0.5``. The same ``u`` at another leverage or
    dispersion gives the same quantile of the new conditional law (a comonotone pairing)."""
    if dispersion <= 0.0:
        return 1.0
    gap = side - 1.0 / leverage  # 0 for a long at leverage 1: any entry is above maintenance
    p_max = 1.0 if gap == 0.0 else normal_cdf(side * math.log((side - rate) / gap) / dispersion)
    return math.exp(dispersion * side * normal_quantile(u * p_max))


@nb.njit(cache=True, error_model="numpy")
def open_account(e: Record, A: NDArray[np.void], P: Record, j: int, keep: bool = True) -> None:
    """(Re)open crowd account ``j`` near the current marks with a fresh leverage.

    Draws the account's opening from its own key (:func:`opening_key`): the leverage, the entry
    and one size per perp each have a fixed uniform, whatever the parameters, so two runs that
    differ in any parameter open account ``j`` for the ``n``-th time from the same uniforms. The
    basket's entry prices sit :func:`entry_shift` from the marks. With ``keep`` False the
    opening is counted and the account is left as it is (it waits for its final close).
    """
    opening = e.crowd_openings[j]
    e.crowd_openings[j] = opening + 1
    if not keep:
        return
    key = opening_key(e.crowd_key, j, opening)
    side = e.crowd_side[j]
    per_account = P.crowd_open_interest / (0.5 * e.crowd_side.shape[0])
    rate = P.crowd_maintenance_rate
    for k in range(A.shape[0]):
        size = side * per_account * (0.5 + opening_uniform(key, DRAW_SIZES + k))
        e.crowd_size[j, k] = size
        e.crowd_coef[j, k] = size - rate * abs(size)
    e.crowd_release_tick[j] = NO_TICK
    leverage = 0.0
    if P.crowd_leverage > 0.0:
        spread = max(P.crowd_leverage - 1.0, 0.0)
        leverage = 1.0 - spread * math.log(opening_uniform(key, DRAW_LEVERAGE))  # 1 + spread Exp
        leverage = min(leverage, P.max_leverage)  # the venue's cap
    e.crowd_account_leverage[j] = leverage
    if leverage <= 0.0:
        e.crowd_entry_shift[j] = 1.0
        e.crowd_threshold[j] = NEVER
        return
    u = opening_uniform(key, DRAW_ENTRY)
    shift = entry_shift(side, rate, leverage, P.crowd_entry_dispersion, u)
    e.crowd_entry_shift[j] = shift
    notional = 0.0
    entry_value = 0.0
    for k in range(A.shape[0]):
        entry = A[k].mark * shift
        notional += abs(e.crowd_size[j, k]) * entry
        entry_value += e.crowd_size[j, k] * entry
    e.crowd_threshold[j] = entry_value - notional / leverage


@nb.njit(cache=True, error_model="numpy")
def reset_crowd(rng: NDArray[np.uint64], i: int, e: Record, A: NDArray[np.void], P: Record) -> None:
    """Draw the episode's crowd key (one draw of stream ``i``) and open every crowd account at
    the initial marks: the first half long, the rest short."""
    e.crowd_key = next_u64(rng, i)
    n = e.crowd_side.shape[0]
    for j in range(n):
        e.crowd_side[j] = 1.0 if j < n // 2 else -1.0
        e.crowd_openings[j] = 0
        open_account(e, A, P, j)
    e.crowd_liquidations = 0
    e.crowd_pending = 0
    e.crowd_min_slack = -np.inf  # forces a full scan on the first tick


@nb.njit(cache=True, error_model="numpy")
def _force_close(
    e: Record, A: NDArray[np.void], P: Record, r: int, j: int, fraction: float
) -> None:
    """Send market orders closing ``fraction`` of account ``j``'s positions in every perp."""
    for k in range(A.shape[0]):
        size = e.crowd_size[j, k] * fraction
        if size == 0.0:
            continue
        a = A[k]
        side = -1 if size > 0.0 else 1  # a long closes by selling
        limit = liquidation_limit(a, P, side)
        remaining = abs(size)
        for _ in range(MAX_WALKS):  # each walk covers the simulated levels; deeper depth refills
            take = min(remaining, volume_within(a, side, limit))
            if take <= 1e-12:
                break
            if side < 0:
                executed, _ = sell_into_bids(a, P, r, take)
                a.forced_sell_volume += executed
                add_flow_impact(a, P, r, -executed)
            else:
                executed, _ = buy_from_asks(a, P, r, take)
                a.forced_buy_volume += executed
                add_flow_impact(a, P, r, executed)
            if executed <= 0.0:
                break
            remaining -= executed
        if remaining > 1e-12:
            a.backstop_volume += remaining  # beyond the band: the backstop takes it off the book
        if fraction == 1.0:
            e.crowd_size[j, k] = 0.0
            e.crowd_coef[j, k] = 0.0
        else:
            e.crowd_size[j, k] -= size
            e.crowd_coef[j, k] -= e.crowd_coef[j, k] * fraction


@nb.njit(cache=True, error_model="numpy", inline="always")
def step_crowd(
    rng: NDArray[np.uint64], i: int, e: Record, A: NDArray[np.void], P: Record, r: int
) -> None:
    """One tick of the crowd: a renewal, staged closes that are due, new liquidations."""
    n = e.crowd_side.shape[0]
    # At most one renewal per tick: P(any) = n p; which one, from the same uniform.
    u = uniform(rng, i)
    if u < n * P.crowd_renewal_prob_per_tick:
        j = int(u / P.crowd_renewal_prob_per_tick) % n
        # An account waiting for its final close stays; its renewal still counts, so its next
        # opening has the same key whichever accounts the marks have liquidated.
        keep = e.crowd_release_tick[j] == NO_TICK
        open_account(e, A, P, j, keep)
        if keep:
            e.crowd_min_slack = -np.inf
    if e.crowd_pending == 0:
        moved = 0.0
        for k in range(A.shape[0]):
            moved += abs(A[k].mark - e.crowd_ref_mark[k])
        if e.crowd_min_slack > e.crowd_max_coef * moved:
            return  # no account can have crossed its threshold
    _scan(e, A, P, r)


@nb.njit(cache=True, error_model="numpy")
def _scan(e: Record, A: NDArray[np.void], P: Record, r: int) -> None:
    """Check every account: send due staged closes and new liquidations; refresh the skip bound."""
    n = e.crowd_side.shape[0]
    min_slack = np.inf
    max_coef = 0.0
    for j in range(n):
        release = e.crowd_release_tick[j]
        if release != NO_TICK:
            if e.tick >= release:
                _force_close(e, A, P, r, j, 1.0)
                e.crowd_release_tick[j] = NO_TICK
                e.crowd_threshold[j] = NEVER
                e.crowd_pending -= 1
            continue
        threshold = e.crowd_threshold[j]
        if threshold == NEVER:
            continue
        value = 0.0
        gross = 0.0
        coef = 0.0
        for k in range(A.shape[0]):
            value += e.crowd_coef[j, k] * A[k].mark
            gross += abs(e.crowd_size[j, k])
            coef += abs(e.crowd_coef[j, k])
        if value >= threshold:
            min_slack = min(min_slack, value - threshold)
            max_coef = max(max_coef, coef)
            continue
        e.crowd_liquidations += 1
        if gross > P.crowd_large_position:
            _force_close(e, A, P, r, j, PARTIAL_FIRST)
            e.crowd_release_tick[j] = e.tick + P.crowd_cooldown_ticks
            e.crowd_pending += 1
        else:
            _force_close(e, A, P, r, j, 1.0)
            e.crowd_threshold[j] = NEVER
    for k in range(A.shape[0]):
        e.crowd_ref_mark[k] = A[k].mark
    e.crowd_min_slack = min_slack
    e.crowd_max_coef = max_coef
