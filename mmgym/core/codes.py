"""Named integer codes that the kernel stores in its records and packed parameters.

Numba compiles ``IntEnum`` members as integer constants, so the kernel compares against names,
never bare numbers. A code's lower-case name is its spelling in :class:`MarketParams` (for
example ``hedge_schedule="almgren_chriss"`` packs as ``HedgeSchedule.ALMGREN_CHRISS``).
"""

from __future__ import annotations

from enum import IntEnum


class Regime(IntEnum):
    """Volatility regime of the market (the index of a per-regime triple)."""

    CALM = 0
    VOLATILE = 1
    STRESSED = 2


STATIONARY_REGIME = -1
"""Packed ``initial_regime`` that draws the first regime from the chain's stationary law."""


NO_TICK = -1
"""A tick field with nothing scheduled (no orders in flight, no hedge child, no staged close)."""


class Reward(IntEnum):
    """Reward of an env step (packed ``reward_mode``)."""

    PNL = 0
    INVENTORY_PENALTY = 1


class ASReward(IntEnum):
    """Reward of an Avellaneda-Stoikov env step (packed ``reward_mode``)."""

    WEALTH = 0
    INVENTORY_PENALTY = 1


class HedgeSchedule(IntEnum):
    """Child-order schedule of the hedge venue (packed ``hedge_schedule``)."""

    TWAP = 0
    ALMGREN_CHRISS = 1


class Reason(IntEnum):
    """Why an episode ended before its time limit (account field ``reason``)."""

    NONE = 0
    LIQUIDATED = 1


class QuoteOutcome(IntEnum):
    """What became of one side's quote when orders in flight reached the book."""

    NO_ORDER = 0
    """The size, cut to the position limit, is under ``min_quote_size``: no order."""
    KEPT_PLACE = 1
    """Same price and not larger: the quote keeps its place in the queue."""
    QUEUED = 2
    """A new price or a larger size: the quote joins the back of the queue at its price."""
    REJECTED_POST_ONLY = 3
    """The quote would cross the book: post-only rejects it (that side is left empty)."""


def names(codes: type[IntEnum]) -> tuple[str, ...]:
    """Lower-case names of a code's members (codes 0, 1, ...): ``names(Reward)[Reward.PNL]``."""
    return tuple(m.name.lower() for m in sorted(codes, key=int))
