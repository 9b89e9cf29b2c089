"""The per-order checks of one account's decision, in order, each with its reason.

Every order is split into a *reducing* part, which moves |position| toward zero without
flipping it, resting orders counted as filled (a bid up to ``-position - resting bid``, an ask
up to ``position - resting ask``; nothing from flat), and an *adding* part, the rest. The
reducing part is never denied for minimum size or notional, nor by the position, gross, soft
or margin limits (a fill of it only lowers |position| and the maintenance margin; NautilusTrader
blocked such exits with its min-notional check). It still passes the validity, book, collar,
per-order size and net-exposure checks. Checks, in order:

1. validity: finite size (``NON_FINITE_ORDER``), size >= 0 and price > 0, bid below the own
   ask (``INVALID_ORDER``); HALTED cancels everything (``MODE_HALTED``);
2. known state: the perp's position and resting orders (``UNKNOWN_POSITION``), its book and
   mark (``UNKNOWN_MARKET``), fresh data (``STALE_MARKET_DATA``);
3. post-only: never at or through the opposite best price (``CROSSES_BOOK``); price collar
   around the mark (``PRICE_COLLAR``);
4. REDUCING keeps only the reducing part (``MODE_REDUCING``);
5. per order: ``ORDER_SIZE``, ``ORDER_NOTIONAL`` (clips);
6. the adding part needs a known account (``UNKNOWN_ACCOUNT``) and known positions and marks
   in every perp (the exposures are unknown otherwise), and is cut by the estimator warm-up,
   the tail override and the volatility cap (``ESTIMATOR_WARMUP``, ``TAIL_RISK_CAP``,
   ``VOLATILITY_CAP``);
7. hard position limit per perp (``POSITION_LIMIT``, a clip); past the soft limit of the
   side's worst-case position, the gross notional or the side's net notional, no adding part
   (``SOFT_*``);
8. account-wide: the net notional of every bid (every ask) filling stays within the hard limit,
   adding parts cut first, then reducing ones (``NET_EXPOSURE``; buying back a short raises
   the net long); while any perp's position or mark is unknown the net is unknown and no
   order passes, reducing ones included (``UNKNOWN_POSITION``, ``UNKNOWN_MARKET``); the
   flatten sequence's orders pass this step too; the adding parts of all
   orders scale down together until the worst-case gross notional is within its hard limit and
   the worst-case margin coverage above ``min_margin_coverage`` (``GROSS_EXPOSURE``,
   ``MARGIN_FLOOR``; a bisection of the scale, so the result does not depend on perp order);
9. orders that only add risk below ``min_order_size`` or ``min_order_notional``
   (``BELOW_MIN_*``);
10. throttles (:mod:`agents.deploy.risk.throttle`).

A denial sets the side's size to 0 (a cancel: it never adds risk). Prices are never changed.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from numpy.typing import NDArray

from agents.deploy.risk.estimators import annual_volatility
from agents.deploy.risk.exposure import fill_costs, market_known, position_known, worst_case
from agents.deploy.risk.jit import JIT, JIT_INLINE
from agents.deploy.risk.kill_switch import ACTIVE, HALTED, REDUCING
from agents.deploy.risk.reasons import Reason
from agents.deploy.risk.tally import tally
from agents.deploy.risk.throttle import admit_order, refill, take_cancel
from mmgym.core.records import Record

_NON_FINITE = int(Reason.NON_FINITE_ORDER)
_INVALID = int(Reason.INVALID_ORDER)
_UNKNOWN_ACCOUNT = int(Reason.UNKNOWN_ACCOUNT)
_UNKNOWN_POSITION = int(Reason.UNKNOWN_POSITION)
_UNKNOWN_MARKET = int(Reason.UNKNOWN_MARKET)
_STALE = int(Reason.STALE_MARKET_DATA)
_HALTED = int(Reason.MODE_HALTED)
_REDUCING = int(Reason.MODE_REDUCING)
_CROSSES = int(Reason.CROSSES_BOOK)
_COLLAR = int(Reason.PRICE_COLLAR)
_ORDER_SIZE = int(Reason.ORDER_SIZE)
_ORDER_NOTIONAL = int(Reason.ORDER_NOTIONAL)
_VOLATILITY = int(Reason.VOLATILITY_CAP)
_TAIL = int(Reason.TAIL_RISK_CAP)
_WARMUP = int(Reason.ESTIMATOR_WARMUP)
_POSITION = int(Reason.POSITION_LIMIT)
_SOFT_POSITION = int(Reason.SOFT_POSITION_LIMIT)
_GROSS = int(Reason.GROSS_EXPOSURE)
_SOFT_GROSS = int(Reason.SOFT_GROSS_EXPOSURE)
_NET = int(Reason.NET_EXPOSURE)
_SOFT_NET = int(Reason.SOFT_NET_EXPOSURE)
_MARGIN = int(Reason.MARGIN_FLOOR)
_MIN_SIZE = int(Reason.BELOW_MIN_SIZE)
_MIN_NOTIONAL = int(Reason.BELOW_MIN_NOTIONAL)

_BISECTIONS = 40


@nb.njit(**JIT, inline="always")
def _check_side(
    L: Record,
    a: Record,
    counts: NDArray[np.int64],
    is_bid: bool,
    size: float,
    px: int,
    own_cross: bool,
    mode: int,
    stale: bool,
    adding_ok: int,
    size_cap: float,
    cap_reason: int,
    soft_gross: bool,
    soft_net: bool,
) -> tuple[float, float]:
    """Steps 1-7 for one side of a perp: its (reducing part, adding part)."""
    if not math.isfinite(size):
        tally(counts, _NON_FINITE)
        return 0.0, 0.0
    if size < 0.0:
        tally(counts, _INVALID)
        return 0.0, 0.0
    if size == 0.0:
        return 0.0, 0.0
    if mode == HALTED:
        tally(counts, _HALTED)
        return 0.0, 0.0
    if not position_known(a):
        tally(counts, _UNKNOWN_POSITION)
        return 0.0, 0.0
    if not market_known(a):
        tally(counts, _UNKNOWN_MARKET)
        return 0.0, 0.0
    if stale:
        tally(counts, _STALE)
        return 0.0, 0.0
    if px <= 0 or own_cross:
        tally(counts, _INVALID)
        return 0.0, 0.0
    if (is_bid and px >= a.best_ask) or (not is_bid and px <= a.best_bid):
        tally(counts, _CROSSES)
        return 0.0, 0.0
    price = px * L.venue_tick_size
    if abs(price - a.mark) > L.price_collar_fraction * a.mark:
        tally(counts, _COLLAR)
        return 0.0, 0.0
    q = a.position
    reducing = max(0.0, -q - a.bid_resting) if is_bid else max(0.0, q - a.ask_resting)
    base = min(size, reducing)
    extra = size - base
    if extra > 0.0 and mode == REDUCING:
        tally(counts, _REDUCING)
        extra = 0.0
    cap = L.max_order_size
    if base + extra > cap:
        tally(counts, _ORDER_SIZE)
        base = min(base, cap)
        extra = min(extra, cap - base)
    cap = L.max_order_notional / price
    if base + extra > cap:
        tally(counts, _ORDER_NOTIONAL)
        base = min(base, cap)
        extra = min(extra, cap - base)
    if extra > 0.0 and adding_ok != 0:
        tally(counts, adding_ok)
        extra = 0.0
    if extra > 0.0 and base + extra > size_cap:
        tally(counts, cap_reason)
        extra = max(0.0, size_cap - base)
    if extra > 0.0:
        if is_bid:
            room = L.max_position - (q + a.bid_resting + base)
        else:
            room = L.max_position + (q - a.ask_resting - base)
        if extra > room:
            tally(counts, _POSITION)
            extra = max(0.0, room)
    if extra > 0.0:
        soft = L.soft_limit_fraction * L.max_position
        worst = q + a.bid_resting if is_bid else a.ask_resting - q
        if worst >= soft:
            tally(counts, _SOFT_POSITION)
            extra = 0.0
        elif soft_gross:
            tally(counts, _SOFT_GROSS)
            extra = 0.0
        elif soft_net:
            tally(counts, _SOFT_NET)
            extra = 0.0
    return base, extra


@nb.njit(**JIT_INLINE)
def _limit_net(
    L: Record,
    A: NDArray[np.void],
    base: NDArray[np.float64],
    extra: NDArray[np.float64],
    start: float,
    counts: NDArray[np.int64],
) -> None:
    """Step 8a for one side: ``start + sum(new x mark) <= max_net_notional``, where
    ``start`` is the side's worst-case net notional before the new orders (signed so that the
    side's orders increase it)."""
    limit = L.max_net_notional
    base_sum = 0.0
    extra_sum = 0.0
    for k in range(A.shape[0]):
        if base[k] > 0.0 or extra[k] > 0.0:
            base_sum += base[k] * A[k].mark
            extra_sum += extra[k] * A[k].mark
    if start + base_sum + extra_sum <= limit:
        return
    room = limit - start - base_sum
    extra_scale = min(1.0, max(0.0, room / extra_sum)) if extra_sum > 0.0 else 0.0
    base_scale = 1.0
    if room < 0.0:
        base_scale = min(1.0, max(0.0, (limit - start) / base_sum))
    for k in range(A.shape[0]):
        if extra[k] > 0.0 or (base_scale < 1.0 and base[k] > 0.0):
            tally(counts, _NET)
        extra[k] *= extra_scale
        base[k] *= base_scale


@nb.njit(**JIT_INLINE)
def _limit_net_sides(
    L: Record,
    A: NDArray[np.void],
    s: Record,
    net_long: float,
    net_short: float,
    unknown: int,
    counts: NDArray[np.int64],
) -> None:
    """Step 8a for both sides of the orders in ``s``. ``unknown`` is 0 when every perp's
    position and mark are known, else the reason they are not: the net notional is then
    unknown and every order is denied, reducing ones too (any bid raises the net long, any ask
    the net short)."""
    if unknown == 0:
        _limit_net(L, A, s.bid_base, s.bid_extra, net_long, counts)
        _limit_net(L, A, s.ask_base, s.ask_extra, -net_short, counts)
        return
    for k in range(A.shape[0]):
        for side in (s.bid_base, s.bid_extra, s.ask_base, s.ask_extra):
            if side[k] > 0.0:
                tally(counts, unknown)
            side[k] = 0.0


@nb.njit(**JIT_INLINE)
def _surely_within(
    L: Record, A: NDArray[np.void], Q: NDArray[np.void], s: Record, gross: float, equity: float
) -> bool:
    """A cheap sufficient test for step 8b: the worst-case gross notional is at most the one
    before plus every new order's notional, and the maintenance margin at most the largest
    tier rate times that."""
    fee = max(L.venue_maker_fee, 0.0)
    cost = 0.0
    for k in range(A.shape[0]):
        a = A[k]
        new_bid = s.bid_base[k] + s.bid_extra[k]
        new_ask = s.ask_base[k] + s.ask_extra[k]
        gross += (new_bid + new_ask) * a.mark
        cost += fill_costs(L, a, Q[k], new_bid, new_ask, fee)
    rate = L.venue_max_margin_rate
    return gross <= L.max_gross_notional and equity - cost >= L.min_margin_coverage * rate * gross


@nb.njit(**JIT)
def _adding_scale(
    L: Record, A: NDArray[np.void], Q: NDArray[np.void], s: Record, margin_equity: float
) -> tuple[float, bool, bool]:
    """Step 8b: the largest scale of every adding part that keeps the worst-case gross notional
    and margin coverage within their limits, and whether each limit bound."""
    gross, coverage = worst_case(L, A, Q, s, 1.0, margin_equity)
    gross_bound = gross > L.max_gross_notional
    margin_bound = coverage < L.min_margin_coverage
    if not (gross_bound or margin_bound):
        return 1.0, False, False
    lo = 0.0
    hi = 1.0
    for _ in range(_BISECTIONS):
        mid = 0.5 * (lo + hi)
        gross, coverage = worst_case(L, A, Q, s, mid, margin_equity)
        if gross <= L.max_gross_notional and coverage >= L.min_margin_coverage:
            lo = mid
        else:
            hi = mid
    return lo, gross_bound, margin_bound


@nb.njit(**JIT)
def _below_minimum(L: Record, size: float, px: int, counts: NDArray[np.int64]) -> bool:
    """Step 9 for an order that only adds risk."""
    if size < L.min_order_size:
        tally(counts, _MIN_SIZE)
        return True
    if size * px * L.venue_tick_size < L.min_order_notional:
        tally(counts, _MIN_NOTIONAL)
        return True
    return False


@nb.njit(**JIT, inline="always")
def _size_cap(L: Record, s: Record, k: int, num_assets: int) -> tuple[float, int]:
    """The largest order that adds risk in perp ``k`` under the warm-up, the tail override and
    the volatility cap, and the reason of the binding one."""
    if s.estimate_count < L.estimator_warmup:
        return L.tail_size_fraction * L.max_order_size, _WARMUP
    factor = 1.0
    reason = 0
    tail = not s.market_move_bp < L.tail_move_bp
    if num_assets >= 2 and s.correlation >= L.tail_correlation:
        tail = True
    if tail:
        factor = L.tail_size_fraction
        reason = _TAIL
    volatility = annual_volatility(s, k)
    s.volatility[k] = volatility
    if volatility > L.volatility_cap_annual and L.volatility_cap_annual / volatility < factor:
        factor = L.volatility_cap_annual / volatility
        reason = _VOLATILITY
    return factor * L.max_order_size, reason


@nb.njit(**JIT_INLINE)
def limit_orders(
    L: Record,
    Q: NDArray[np.void],
    a: Record,
    A: NDArray[np.void],
    s: Record,
    counts: NDArray[np.int64],
    rng: NDArray[np.uint64],
    i: int,
    t: float,
    account_known: bool,
    stale: bool,
) -> None:
    """Check and cut the quotes ``Q`` (one row per perp) of account ``i`` in place."""
    n = A.shape[0]
    mode = s.mode
    # the account's exposure before the new orders, where it is known
    positions_known = True
    markets_known = True
    gross = 0.0
    net_long = 0.0
    net_short = 0.0
    for k in range(n):
        x = A[k]
        known = position_known(x)
        positions_known = positions_known and known
        if not market_known(x):
            markets_known = False
        elif known:
            gross += max(x.position + x.bid_resting, x.ask_resting - x.position, 0.0) * x.mark
            net_long += (x.position + x.bid_resting) * x.mark
            net_short += (x.position - x.ask_resting) * x.mark
    net_unknown = 0
    if not positions_known:
        net_unknown = _UNKNOWN_POSITION
    elif not markets_known:
        net_unknown = _UNKNOWN_MARKET
    adding_ok = _UNKNOWN_ACCOUNT if not account_known else net_unknown
    soft_gross = gross >= L.soft_limit_fraction * L.max_gross_notional
    soft_net = L.soft_limit_fraction * L.max_net_notional

    for k in range(n):
        q = Q[k]
        x = A[k]
        size_cap, cap_reason = _size_cap(L, s, k, n)
        own_cross = q.bid_size > 0.0 and q.ask_size > 0.0 and q.bid_px >= q.ask_px
        s.bid_base[k], s.bid_extra[k] = _check_side(
            L, x, counts, True, q.bid_size, q.bid_px, own_cross, mode, stale,
            adding_ok, size_cap, cap_reason, soft_gross, net_long >= soft_net,
        )  # fmt: skip
        s.ask_base[k], s.ask_extra[k] = _check_side(
            L, x, counts, False, q.ask_size, q.ask_px, own_cross, mode, stale,
            adding_ok, size_cap, cap_reason, soft_gross, -net_short >= soft_net,
        )  # fmt: skip

    _limit_net_sides(L, A, s, net_long, net_short, net_unknown, counts)
    if net_unknown == 0:
        any_extra = False
        for k in range(n):
            any_extra = any_extra or s.bid_extra[k] > 0.0 or s.ask_extra[k] > 0.0
        if any_extra and account_known and not _surely_within(L, A, Q, s, gross, a.margin_equity):
            scale, gross_bound, margin_bound = _adding_scale(L, A, Q, s, a.margin_equity)
            for k in range(n):
                for extra in (s.bid_extra[k], s.ask_extra[k]):
                    if extra > 0.0 and gross_bound:
                        tally(counts, _GROSS)
                    if extra > 0.0 and margin_bound:
                        tally(counts, _MARGIN)
                s.bid_extra[k] *= scale
                s.ask_extra[k] *= scale

    refill(s, L, t)
    denied = False
    submitted = False
    for k in range(n):
        q = Q[k]
        x = A[k]
        for is_bid in (True, False):
            if is_bid:
                base, extra, px = s.bid_base[k], s.bid_extra[k], q.bid_px
                resting, resting_px = x.bid_resting, x.bid_resting_px
            else:
                base, extra, px = s.ask_base[k], s.ask_extra[k], q.ask_px
                resting, resting_px = x.ask_resting, x.ask_resting_px
            if base == 0.0 and extra > 0.0 and _below_minimum(L, extra, px, counts):
                extra = 0.0
            size = base + extra
            live = resting > 0.0
            if size > 0.0 and not (live and px == resting_px and size == resting):
                reason = admit_order(s, L, t, live, rng, i)
                if reason != 0:
                    tally(counts, reason)
                    denied = True
                    size = 0.0
                else:
                    submitted = True
            if size == 0.0 and live:
                take_cancel(s)
            if is_bid:
                q.bid_size = size
            else:
                q.ask_size = size
    if submitted and not denied:
        s.backoff_attempts = 0
    if mode == HALTED and s.flattening and not stale:
        flatten_orders(L, Q, A, counts)
        for k in range(n):  # buying back a short raises the net long: step 8a for them too
            s.bid_base[k], s.bid_extra[k] = Q[k].bid_size, 0.0
            s.ask_base[k], s.ask_extra[k] = Q[k].ask_size, 0.0
        _limit_net_sides(L, A, s, net_long, net_short, net_unknown, counts)
        for k in range(n):
            Q[k].bid_size, Q[k].ask_size = s.bid_base[k], s.ask_base[k]
    for k in range(n):
        Q[k].hedge_fraction = _hedge(Q[k].hedge_fraction, mode, counts)


@nb.njit(**JIT, inline="always")
def _hedge(fraction: float, mode: int, counts: NDArray[np.int64]) -> float:
    """The hedge fraction: the policy's in ACTIVE (within [0, 1]); the full offset (1) in
    REDUCING and HALTED, or when it is not finite. The hedge target is ``-fraction x
    position``, so any fraction in [0, 1] offsets part of the position; 1 leaves the least net
    exposure."""
    if not math.isfinite(fraction):
        tally(counts, _NON_FINITE)
        return 1.0
    if mode != ACTIVE:
        if fraction != 1.0:
            tally(counts, _HALTED if mode == HALTED else _REDUCING)
        return 1.0
    if fraction < 0.0 or fraction > 1.0:
        tally(counts, _INVALID)
        return min(1.0, max(0.0, fraction))
    return fraction


@nb.njit(**JIT)
def safe_orders(
    L: Record, Q: NDArray[np.void], A: NDArray[np.void], counts: NDArray[np.int64]
) -> None:
    """The safe action of an account whose own orders are not to be used (the guarded
    policy's bad observation or model output): no order but, where a position is held, the
    flatten sequence's reducing order at the touch (:func:`flatten_orders`); a full hedge."""
    for k in range(Q.shape[0]):
        q = Q[k]
        q.bid_size = 0.0
        q.ask_size = 0.0
        q.hedge_fraction = 1.0
    flatten_orders(L, Q, A, counts)


@nb.njit(**JIT)
def flatten_orders(
    L: Record, Q: NDArray[np.void], A: NDArray[np.void], counts: NDArray[np.int64]
) -> None:
    """The flatten sequence's own orders: per perp with a position, one post-only order at
    the touch on the reducing side (an ask at the best ask when long), of at most the position
    less the resting orders on that side (never flipping) and at most ``max_order_size``; never
    denied for minimum size. The other side has no order."""
    tolerance = max(L.venue_min_order_size, 1e-12)
    for k in range(A.shape[0]):
        x = A[k]
        q = Q[k]
        if not (position_known(x) and market_known(x)):
            continue
        p = x.position
        if p >= tolerance:
            px = int(x.best_ask)
            size = min(max(0.0, p - x.ask_resting), L.max_order_size)
        elif p <= -tolerance:
            px = int(x.best_bid)
            size = min(max(0.0, -p - x.bid_resting), L.max_order_size)
        else:
            continue
        if abs(px * L.venue_tick_size - x.mark) > L.price_collar_fraction * x.mark:
            tally(counts, _COLLAR)
            size = 0.0
        if p > 0.0:
            q.ask_px = px
            q.ask_size = size
            q.bid_size = 0.0
        else:
            q.bid_px = px
            q.bid_size = size
            q.ask_size = 0.0
