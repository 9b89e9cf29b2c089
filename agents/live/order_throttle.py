"""The order manager's side of the RiskLimiter's rate throttle: the same token buckets, backoff
and jitter stream (``agents.deploy.risk.throttle``) of one account, so that the orders and
cancels the manager sends on its own (retries, orphan cancels) and the quotes the limiter
admitted draw on one budget.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from numpy.typing import NDArray

from agents.deploy.risk import Reason, RiskLimiter
from agents.deploy.risk.throttle import admit_order, refill, take_cancel


@nb.njit(cache=True, error_model="numpy")
def _admit(
    state: NDArray[np.void],
    packed: NDArray[np.void],
    rng: NDArray[np.uint64],
    i: int,
    t: float,
    replace: bool,
) -> int:
    s = state[i]
    L = packed[0]
    if math.isfinite(s.throttle_time) and t < s.throttle_time:
        t = s.throttle_time  # never move the buckets' clock back
    refill(s, L, t)
    return admit_order(s, L, t, replace, rng, i)


@nb.njit(cache=True, error_model="numpy")
def _cancel(state: NDArray[np.void], packed: NDArray[np.void], i: int, t: float) -> None:
    s = state[i]
    L = packed[0]
    if math.isfinite(s.throttle_time) and t < s.throttle_time:
        t = s.throttle_time
    refill(s, L, t)
    take_cancel(s)


class SharedThrottle:
    """The order and cancel buckets of ``account`` in ``limiter``'s state.

    ``now_s`` is the limiter's clock (the decision time in seconds it is called with). An order
    is admitted or denied (a denial starts the limiter's full-jitter backoff, from the account's
    seeded stream); a cancel is never denied and takes a token when one is left.
    """

    def __init__(self, limiter: RiskLimiter, account: int = 0) -> None:
        if not 0 <= account < limiter.num_accounts:
            count = limiter.num_accounts
            raise ValueError(f"account {account} is not one of the limiter's {count}")
        self.limiter = limiter
        self.account = account

    def admit(self, now_s: float, replace: bool = False) -> Reason | None:
        """Take an order token (``replace``: and a cancel token); None if admitted, else the
        denial's reason."""
        state = self.limiter.state
        reason = _admit(
            state.records, self.limiter.packed_limits, state.rng, self.account, now_s, replace
        )
        if reason == 0:
            return None
        state.denials[self.account, reason] += 1
        return Reason(reason)

    def cancel(self, now_s: float) -> None:
        """Count a cancel against the cancel bucket."""
        state = self.limiter.state
        _cancel(state.records, self.limiter.packed_limits, self.account, now_s)

    @property
    def tokens(self) -> tuple[float, float]:
        """The order and cancel tokens left."""
        record = self.limiter.state.records[self.account]
        return float(record["order_tokens"]), float(record["cancel_tokens"])
