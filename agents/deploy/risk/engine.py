"""The compiled gateway: one call checks a decision of every account (a loop over accounts in
numba, serial or on all cores, no Python loop and no allocation), and the compiled resets.

Accounts share nothing: each writes only its own state, counts and transition row, so the
parallel loop gives the same results as the serial one.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from numpy.typing import NDArray

from agents.deploy.risk.checks import limit_orders, safe_orders
from agents.deploy.risk.estimators import clear_estimates, mean_correlation, update_estimates
from agents.deploy.risk.jit import JIT, JIT_INLINE
from agents.deploy.risk.kill_switch import ACTIVE, evaluate, record_transition
from agents.deploy.risk.reasons import Reason
from agents.deploy.risk.tally import close_row, start_row, tally
from agents.deploy.risk.throttle import clear_throttle
from agents.deploy.risk.window import clear_window, window_push, window_stats
from mmgym.core.records import Record
from mmgym.core.rng import seed_streams

_UNKNOWN_ACCOUNT = int(Reason.UNKNOWN_ACCOUNT)
_OPENED = int(Reason.ACCOUNT_OPENED)


@nb.njit(**JIT)
def open_accounts(
    La: NDArray[np.void],
    state: NDArray[np.void],
    rng: NDArray[np.uint64],
    mask: NDArray[np.bool_],
    seeds: NDArray[np.uint64],
    reseed: bool,
    totals: NDArray[np.int64],
    trans: NDArray[np.void],
) -> None:
    """Start the accounts in ``mask`` afresh (ACTIVE, no history), recording it."""
    L = La[0]
    if reseed:
        seed_streams(rng, seeds, mask)
    for i in range(state.shape[0]):
        s = state[i]
        s.transitions = 0
        if not mask[i]:
            continue
        previous = s.mode
        s.mode = ACTIVE
        s.flattening = False
        s.reducing_until = -np.inf
        s.last_time = np.nan
        s.drawdown = np.nan
        s.window_loss = np.nan
        s.margin_coverage = np.nan
        s.correlation = np.nan
        s.market_move_bp = np.nan
        restart_references(s)
        clear_estimates(s)
        clear_throttle(s, L)
        record_transition(trans[i], s, totals[i], i, np.nan, previous, ACTIVE, _OPENED)
        totals[i, 0] = 0  # the mark of a counted row, meaningless in the totals


@nb.njit(**JIT)
def restart_references(s: Record) -> None:
    """Forget the kill switch's references: peak equity, rolling window, unknown clock."""
    s.peak_equity = np.nan
    s.unknown_since = np.nan
    clear_window(s)


@nb.njit(**JIT)
def restart_accounts(state: NDArray[np.void], mask: NDArray[np.bool_]) -> None:
    """:func:`restart_references` of the accounts in ``mask`` (an operator reset)."""
    for i in range(state.shape[0]):
        if mask[i]:
            restart_references(state[i])


@nb.njit(**JIT)
def _deny_everything(Q: NDArray[np.void], counts: NDArray[np.int64]) -> None:
    for k in range(Q.shape[0]):
        q = Q[k]
        if q.bid_size != 0.0:
            tally(counts, _UNKNOWN_ACCOUNT)
        if q.ask_size != 0.0:
            tally(counts, _UNKNOWN_ACCOUNT)
        q.bid_size = 0.0
        q.ask_size = 0.0
        q.hedge_fraction = 1.0


@nb.njit(**JIT_INLINE)
def _decide(
    L: Record,
    Q: NDArray[np.void],
    a: Record,
    A: NDArray[np.void],
    s: Record,
    counts: NDArray[np.int64],
    rng: NDArray[np.uint64],
    i: int,
    trans: NDArray[np.void],
    untrusted: int,
) -> None:
    if untrusted != 0:  # the guard's reason: the account's own orders are not to be used
        tally(counts, untrusted)
        safe_orders(L, Q, A, counts)
    t = a.time_s
    if not math.isfinite(t) or t < s.last_time:
        _deny_everything(Q, counts)  # no trustworthy clock: nothing at all
        return
    account_known = (
        math.isfinite(a.equity)
        and math.isfinite(a.margin_equity)
        and math.isfinite(a.maintenance_margin)
        and a.maintenance_margin >= 0.0
        and not a.stale
    )
    index = update_estimates(s, A, t, L.volatility_halflife_seconds)
    window_push(s, L, t, a.equity if account_known else np.nan, a.rejects, index)
    high, rejects, index_high, index_low = window_stats(s, L, t)
    s.market_move_bp = (
        1e4 * max(index_high - index, index - index_low) if math.isfinite(index) else np.nan
    )
    s.correlation = mean_correlation(s)
    evaluate(L, s, a, A, t, account_known, a.data_age_s, high, rejects, counts, trans, i, untrusted)
    s.last_time = t
    stale = not a.data_age_s <= L.stale_data_seconds
    limit_orders(L, Q, a, A, s, counts, rng, i, t, account_known, stale)


@nb.njit(**JIT_INLINE)
def limit_account(
    La: NDArray[np.void],
    quotes: NDArray[np.void],
    accounts: NDArray[np.void],
    assets: NDArray[np.void],
    state: NDArray[np.void],
    rng: NDArray[np.uint64],
    totals: NDArray[np.int64],
    counts: NDArray[np.int64],
    trans: NDArray[np.void],
    active: bool,
    untrusted: int,
    i: int,
) -> None:
    """Account ``i``'s decision (none unless ``active``; ``untrusted``: 0 or the guard's reason
    to replace its quotes by the safe action): its counts start at zero and add to its totals.
    Every batched caller (:func:`limit_batch`, the simulator's fused step) runs this per
    account."""
    L = La[0]  # read here: a record cannot be passed into a parallel loop's body
    c = counts[i]
    s = state[i]
    start_row(c, s)
    s.transitions = 0
    if not active:
        return
    _decide(L, quotes[i], accounts[i], assets[i], s, c, rng, i, trans[i], untrusted)
    close_row(c, totals[i], s)


@nb.njit(**JIT)
def limit_batch(
    La: NDArray[np.void],
    quotes: NDArray[np.void],
    accounts: NDArray[np.void],
    assets: NDArray[np.void],
    state: NDArray[np.void],
    rng: NDArray[np.uint64],
    totals: NDArray[np.int64],
    counts: NDArray[np.int64],
    trans: NDArray[np.void],
    mask: NDArray[np.bool_],
    untrusted: NDArray[np.int64],
) -> None:
    """Limit the quotes ``(n, K)`` of the accounts in ``mask`` in place: each account's counts
    per reason of this decision go to ``counts`` and add to ``totals``, its transitions to its
    row of ``trans`` (``state.transitions`` of them). Where ``untrusted[i]`` is a guard reason,
    account ``i``'s quotes are replaced by the safe action first."""
    for i in range(quotes.shape[0]):
        limit_account(
            La, quotes, accounts, assets, state, rng, totals, counts, trans, mask[i],
            untrusted[i], i,
        )  # fmt: skip


@nb.njit(cache=True, error_model="numpy", parallel=True)
def limit_batch_parallel(
    La: NDArray[np.void],
    quotes: NDArray[np.void],
    accounts: NDArray[np.void],
    assets: NDArray[np.void],
    state: NDArray[np.void],
    rng: NDArray[np.uint64],
    totals: NDArray[np.int64],
    counts: NDArray[np.int64],
    trans: NDArray[np.void],
    mask: NDArray[np.bool_],
    untrusted: NDArray[np.int64],
) -> None:
    """:func:`limit_batch` over all cores (identical results: accounts share nothing)."""
    for i in nb.prange(quotes.shape[0]):
        limit_account(
            La, quotes, accounts, assets, state, rng, totals, counts, trans, mask[i],
            untrusted[i], i,
        )  # fmt: skip
