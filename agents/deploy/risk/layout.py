"""Record layouts the compiled limiter reads and writes: packed limits and per-account state.

The limits and the venue's rules are packed into one record (like the market kernel's
parameters); each account's state (trading mode, kill-switch references, rolling window,
estimators, throttle) is one record of a structured array, so the compiled code touches one
contiguous row per account and allocates nothing.
"""

from __future__ import annotations

import dataclasses
from functools import cache

import numpy as np
from numpy.typing import NDArray

from agents.deploy.risk.limits import RiskLimits
from agents.deploy.risk.venue import VenueSpec

WINDOW_BUCKETS = 32
"""Buckets of the rolling window; each spans ``rolling_window_seconds / WINDOW_BUCKETS``."""
WINDOW_RING = WINDOW_BUCKETS + 1
"""Buckets kept: the current one and the ``WINDOW_BUCKETS`` before it, so the window covers at
least ``rolling_window_seconds`` (conservative: up to one bucket more)."""

MAX_TRANSITIONS = 4
"""Transitions one account can make in one call (a halt, a flatten's start and end)."""

TRANSITION_DTYPE = np.dtype(
    [("account", "i8"), ("time_s", "f8"), ("previous", "i8"), ("mode", "i8"), ("reason", "i8")]
)
"""A transition as the compiled kill switch records it."""


@cache
def limits_dtype(num_tiers: int) -> np.dtype:
    """Record of the packed limits (every :class:`RiskLimits` field) and the venue's rules (one
    shared dtype object per layout, as :mod:`mmgym.core.layout` explains)."""
    fields: list[tuple[str, str] | tuple[str, str, tuple[int, ...]]] = []
    for f in dataclasses.fields(RiskLimits):
        kind = {"bool": "?", "int": "i8"}.get(str(f.type), "f8")
        fields.append((f.name, kind))
    fields += [
        ("venue_tick_size", "f8"),
        ("venue_maker_fee", "f8"),
        ("venue_min_order_size", "f8"),
        ("venue_margin_tiers", "f8", (num_tiers, 3)),
        ("venue_max_margin_rate", "f8"),
    ]
    return np.dtype(fields, align=True)


def pack_limits(limits: RiskLimits, venue: VenueSpec) -> NDArray[np.void]:
    """A one-element record array of ``limits`` and ``venue`` for the compiled limiter."""
    tiers = venue.tiers_array()
    out = np.zeros(1, dtype=limits_dtype(tiers.shape[0]))
    for f in dataclasses.fields(RiskLimits):
        out[0][f.name] = getattr(limits, f.name)
    out[0]["venue_tick_size"] = venue.tick_size
    out[0]["venue_maker_fee"] = venue.maker_fee
    out[0]["venue_min_order_size"] = venue.min_order_size
    out[0]["venue_margin_tiers"] = tiers
    out[0]["venue_max_margin_rate"] = tiers[:, 1].max()
    return out


WINDOW_ID, WINDOW_EQUITY_HIGH, WINDOW_REJECTS, WINDOW_INDEX_HIGH, WINDOW_INDEX_LOW = range(5)
"""Columns of a rolling-window bucket (one row of ``window``; the bucket id as a float)."""


@cache
def state_dtype(num_assets: int) -> np.dtype:
    """Record of one account's limiter state: the fields every decision reads and writes come
    first and together, so that a decision touches few cache lines of it (one shared dtype
    object per number of perps)."""
    k, w = num_assets, WINDOW_RING
    return np.dtype(
        [
            # trading mode
            ("mode", "i8"),
            ("flattening", "?"),
            ("counted", "?"),  # the last decision counted something (its counts need zeroing)
            ("reducing_until", "f8"),
            ("last_time", "f8"),
            ("unknown_since", "f8"),
            ("peak_equity", "f8"),
            ("transitions", "i8"),  # recorded in the current call
            # EWMA estimates of per-second mark-return covariance (bias-corrected by weight)
            ("estimate_time", "f8"),
            ("estimate_count", "i8"),
            ("estimate_weight", "f8"),
            ("estimate_dt", "f8"),  # the last interval and its EWMA weight (reused)
            ("estimate_alpha", "f8"),
            # throttle
            ("order_tokens", "f8"),
            ("cancel_tokens", "f8"),
            ("throttle_time", "f8"),
            ("backoff_until", "f8"),
            ("backoff_attempts", "i8"),
            # the last decision's measures (diagnostics)
            ("drawdown", "f8"),
            ("window_loss", "f8"),
            ("margin_coverage", "f8"),
            ("correlation", "f8"),
            ("market_move_bp", "f8"),
            # the rolling window aggregated over the buckets before the current one (cached)
            ("window_cached_bucket", "i8"),
            ("window_cached", "f8", (4,)),
            # per perp
            ("log_mark", "f8", (k,)),
            ("log_return", "f8", (k,)),
            ("volatility", "f8", (k,)),
            # scratch: each side's reducing and adding parts
            ("bid_base", "f8", (k,)),
            ("bid_extra", "f8", (k,)),
            ("ask_base", "f8", (k,)),
            ("ask_extra", "f8", (k,)),
            ("covariance", "f8", (k, k)),
            # rolling window buckets: id, highest equity, rejects, index high and low
            ("window", "f8", (w, 5)),
        ],
        align=True,
    )
