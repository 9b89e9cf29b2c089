"""Order and cancel rate throttles: token buckets with exponential backoff and full jitter.

Each account has an order bucket (``max_orders_per_second``, holding at most ``order_burst``)
and a cancel bucket. A new or replacing order takes an order token, and a replace also a cancel
token. When a bucket is empty the order is denied, never queued, and a backoff starts: new
orders are denied for a time drawn uniformly from ``[0, min(backoff_max_seconds,
backoff_base_seconds x 2^(n - 1))]`` after the n-th consecutive denial ("full jitter"), from the
account's own seeded random stream (deterministic). A decision whose orders all pass resets n.
Cancels are never denied: they take a cancel token when one is left.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from numpy.typing import NDArray

from agents.deploy.risk.jit import JIT, JIT_INLINE
from agents.deploy.risk.reasons import Reason
from mmgym.core.records import Record
from mmgym.core.rng import uniform

_ORDER_THROTTLE = int(Reason.ORDER_THROTTLE)
_CANCEL_THROTTLE = int(Reason.CANCEL_THROTTLE)
_BACKOFF = int(Reason.THROTTLE_BACKOFF)


@nb.njit(**JIT)
def clear_throttle(s: Record, L: Record) -> None:
    """Full buckets, no backoff."""
    s.order_tokens = L.order_burst
    s.cancel_tokens = L.cancel_burst
    s.throttle_time = np.nan
    s.backoff_until = -np.inf
    s.backoff_attempts = 0


@nb.njit(**JIT)
def refill(s: Record, L: Record, t: float) -> None:
    """Add the tokens earned since the last decision."""
    if math.isfinite(s.throttle_time) and t > s.throttle_time:
        dt = t - s.throttle_time
        s.order_tokens = min(L.order_burst, s.order_tokens + L.max_orders_per_second * dt)
        s.cancel_tokens = min(L.cancel_burst, s.cancel_tokens + L.max_cancels_per_second * dt)
    s.throttle_time = t


@nb.njit(**JIT)
def take_cancel(s: Record) -> None:
    """A cancel: never denied; takes a token if one is left."""
    if s.cancel_tokens >= 1.0:
        s.cancel_tokens -= 1.0


@nb.njit(**JIT_INLINE)
def admit_order(
    s: Record, L: Record, t: float, replace: bool, rng: NDArray[np.uint64], i: int
) -> int:
    """Admit one new (``replace``: replacing) order, or return the reason for its denial."""
    if t < s.backoff_until:
        return _BACKOFF
    reason = 0
    if s.order_tokens < 1.0:
        reason = _ORDER_THROTTLE
    elif replace and s.cancel_tokens < 1.0:
        reason = _CANCEL_THROTTLE
    if reason != 0:
        s.backoff_attempts = min(s.backoff_attempts + 1, 64)
        cap = min(L.backoff_max_seconds, L.backoff_base_seconds * 2.0 ** (s.backoff_attempts - 1))
        s.backoff_until = t + uniform(rng, i) * cap
        return reason
    s.order_tokens -= 1.0
    if replace:
        s.cancel_tokens -= 1.0
    return 0
