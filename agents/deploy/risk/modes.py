"""The trading mode of an account: ACTIVE, REDUCING or HALTED."""

from __future__ import annotations

from enum import IntEnum


class TradingMode(IntEnum):
    """What an account may do.

    - ``ACTIVE``: every order that passes the limits.
    - ``REDUCING``: only orders that reduce |position|, resting orders counted as filled, never
      flipping it and nothing from flat; never denied for minimum size or notional. The kill
      switch's soft triggers move here and it returns to ACTIVE once they clear.
    - ``HALTED``: every order is cancelled and nothing is admitted, except the limiter's own
      reducing orders of a flatten-then-halt sequence. Only an operator reset leaves it.
    """

    ACTIVE = 0
    REDUCING = 1
    HALTED = 2
