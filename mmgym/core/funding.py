"""Funding: premium-index samples from the simulated book, the clamped rate, hourly payments.

Every ``premium_sample_seconds`` the premium ``P = (max(0, impact_bid - oracle) - max(0, oracle -
impact_ask)) / oracle`` is sampled, where the impact bid and ask are the average prices of a
taker order of ``impact_notional`` walked through the background book. At each funding time the
rate per 8 h is ``F = Pbar + clamp(I - Pbar, -c, c)`` with ``Pbar`` the interval's average; the
interval pays ``F x interval / 8 h``, capped at ``funding_cap``. Longs pay shorts
``position x oracle x rate`` when it is positive.
"""

from __future__ import annotations

import numba as nb

from mmgym.core.book import impact_price
from mmgym.core.layout import FUNDING_HISTORY
from mmgym.core.records import Record


@nb.njit(cache=True, error_model="numpy")
def sample_premium(a: Record, P: Record) -> float:
    """Take one premium-index sample of this asset's book and add it to the running average."""
    tick = P.tick_size
    oracle = a.fair_price
    impact_bid = impact_price(a.bid_depth, a.best_bid, -1, P.impact_notional, tick)
    impact_ask = impact_price(a.ask_depth, a.best_ask, 1, P.impact_notional, tick)
    premium = (max(0.0, impact_bid - oracle) - max(0.0, oracle - impact_ask)) / oracle
    a.premium = premium
    a.premium_sum += premium
    a.premium_count += 1
    return premium


@nb.njit(cache=True, error_model="numpy", inline="always")
def funding_rate(premium_sum: float, premium_count: int, P: Record) -> float:
    """Rate paid per interval from the premium samples so far (0 samples: the interest alone)."""
    mean_premium = premium_sum / premium_count if premium_count > 0 else 0.0
    gap = min(max(P.funding_interest_8h - mean_premium, -P.funding_clamp_8h), P.funding_clamp_8h)
    rate = (mean_premium + gap) * P.funding_interval_over_8h
    return min(max(rate, -P.funding_cap_per_interval), P.funding_cap_per_interval)


@nb.njit(cache=True, error_model="numpy")
def pay_funding(a: Record, P: Record) -> float:
    """Settle this interval's funding on the agent's position and start a new interval."""
    rate = funding_rate(a.premium_sum, a.premium_count, P)
    payment = a.inventory * a.fair_price * rate
    a.cash -= payment
    a.pnl_funding -= payment
    a.funding_paid += payment
    for h in range(FUNDING_HISTORY - 1, 0, -1):
        a.funding_history[h] = a.funding_history[h - 1]
    a.funding_history[0] = rate
    a.premium_sum = 0.0
    a.premium_count = 0
    return rate
