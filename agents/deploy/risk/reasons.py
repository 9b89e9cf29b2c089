"""Why the RiskLimiter denied or clipped an order, or moved an account's trading mode, or why
the guarded policy did not use the model's action.

Every denial, clip and transition carries one :class:`Reason`; the limiter counts them per
account and reason (``TradingState.denials``). Order reasons are counted once per order (bid,
ask or hedge of one perp) and check that changed it; transition reasons once per transition;
guard reasons (:class:`~agents.deploy.guard.GuardedPolicy`'s checks of the observation and the
model) once per account and decision they happen in, and once more for each transition they
cause.
"""

from __future__ import annotations

from enum import IntEnum


class Reason(IntEnum):
    """A named reason; ``reason.description`` says what it means."""

    NONE = 0
    # --- order denials and clips ------------------------------------------------------------
    NON_FINITE_ORDER = 1
    INVALID_ORDER = 2
    UNKNOWN_ACCOUNT = 3
    UNKNOWN_POSITION = 4
    UNKNOWN_MARKET = 5
    STALE_MARKET_DATA = 6
    MODE_HALTED = 7
    MODE_REDUCING = 8
    CROSSES_BOOK = 9
    PRICE_COLLAR = 10
    ORDER_SIZE = 11
    ORDER_NOTIONAL = 12
    VOLATILITY_CAP = 13
    TAIL_RISK_CAP = 14
    ESTIMATOR_WARMUP = 15
    POSITION_LIMIT = 16
    SOFT_POSITION_LIMIT = 17
    GROSS_EXPOSURE = 18
    SOFT_GROSS_EXPOSURE = 19
    NET_EXPOSURE = 20
    SOFT_NET_EXPOSURE = 21
    MARGIN_FLOOR = 22
    BELOW_MIN_SIZE = 23
    BELOW_MIN_NOTIONAL = 24
    ORDER_THROTTLE = 25
    CANCEL_THROTTLE = 26
    THROTTLE_BACKOFF = 27
    UNREPRESENTABLE_QUOTE = 28
    # --- transitions of the trading mode -----------------------------------------------------
    ACCOUNT_OPENED = 29
    WINDOW_LOSS = 30
    DRAWDOWN = 31
    MARGIN_COVERAGE = 32
    REJECT_STORM = 33
    RECOVERED = 34
    OPERATOR_HALT = 35
    FLATTEN_REQUESTED = 36
    FLATTENED = 37
    OPERATOR_RESET = 38
    # --- the guarded policy's checks of the observation and the model (and their transitions)
    INVALID_OBSERVATION = 39
    NON_FINITE_OBSERVATION = 40
    STALE_OBSERVATION = 41
    MODEL_ERROR = 42
    NON_FINITE_ACTION = 43
    # --- the operator's REDUCING ----------------------------------------------------------------
    OPERATOR_REDUCE = 44
    OPERATOR_RESUME = 45
    # --- the live runner's alert rules ----------------------------------------------------------
    ALERT = 46

    @property
    def description(self) -> str:
        """What the reason means, in one sentence."""
        return DESCRIPTIONS[self]

    @property
    def is_transition(self) -> bool:
        """Whether the reason can name a transition of the trading mode."""
        return self in TRANSITION_REASONS

    @property
    def kind(self) -> str:
        """``order``, ``transition``, ``guard`` or two of them (``order, transition``): what
        the reason is counted for."""
        if self in GUARD_REASONS:
            return "guard, transition"
        if self < Reason.ACCOUNT_OPENED:
            return "order, transition" if self.is_transition else "order"
        return "transition"


DESCRIPTIONS: dict[Reason, str] = {
    Reason.NONE: "nothing happened",
    Reason.NON_FINITE_ORDER: "a price, size or hedge fraction was NaN or infinite (or its "
    "action was): the order is denied, a hedge fraction becomes 1 (the full offset)",
    Reason.INVALID_ORDER: "a negative size, a price <= 0 or a bid at or above the own ask",
    Reason.UNKNOWN_ACCOUNT: "the account's equity or margin is unknown (NaN, flagged stale, or "
    "the clock went backwards): nothing that adds risk (with a bad clock: nothing at all); "
    "unknown for halt_stale_data_seconds, the account halts",
    Reason.UNKNOWN_POSITION: "a position or resting order is unknown: nothing in that perp, and "
    "nothing that adds risk in any perp (the exposures are unknown)",
    Reason.UNKNOWN_MARKET: "a book or mark is unknown or flagged stale: nothing in that perp, "
    "and nothing that adds risk in any perp",
    Reason.STALE_MARKET_DATA: "the market data is older than stale_data_seconds: no new orders "
    "(cancels only); past halt_stale_data_seconds the account halts",
    Reason.MODE_HALTED: "the account is HALTED: every order is cancelled (a flatten sequence "
    "places only its own reducing orders)",
    Reason.MODE_REDUCING: "the account is REDUCING: the part of an order that would not reduce "
    "abs(position) (resting orders counted) is denied; the hedge goes to the full offset",
    Reason.CROSSES_BOOK: "a bid at or above the best ask (an ask at or below the best bid): "
    "post-only orders never take liquidity",
    Reason.PRICE_COLLAR: "the price is further from the mark than price_collar_fraction",
    Reason.ORDER_SIZE: "clipped to max_order_size",
    Reason.ORDER_NOTIONAL: "clipped to max_order_notional",
    Reason.VOLATILITY_CAP: "the size that adds risk is cut by volatility_cap_annual / realised "
    "volatility",
    Reason.TAIL_RISK_CAP: "the size that adds risk is cut to tail_size_fraction: the rolling "
    "cross-perp correlation or the market-wide move spiked",
    Reason.ESTIMATOR_WARMUP: "too few observations to estimate volatility and correlation: the "
    "size that adds risk is cut to tail_size_fraction (unknown is treated as a spike)",
    Reason.POSITION_LIMIT: "clipped so that position + resting + new orders stay within "
    "max_position on the worst side",
    Reason.SOFT_POSITION_LIMIT: "the side's worst-case position is past the soft limit: only "
    "reducing orders",
    Reason.GROSS_EXPOSURE: "clipped so that the worst-case gross notional stays within "
    "max_gross_notional",
    Reason.SOFT_GROSS_EXPOSURE: "the worst-case gross notional is past the soft limit: only "
    "reducing orders",
    Reason.NET_EXPOSURE: "clipped so that the worst-case net notional stays within "
    "max_net_notional",
    Reason.SOFT_NET_EXPOSURE: "the side's worst-case net notional is past the soft limit: only "
    "reducing orders",
    Reason.MARGIN_FLOOR: "clipped so that the worst-case margin coverage stays above "
    "min_margin_coverage",
    Reason.BELOW_MIN_SIZE: "an order that adds risk is below min_order_size (reducing orders "
    "are never denied for their size)",
    Reason.BELOW_MIN_NOTIONAL: "an order that adds risk is below min_order_notional (reducing "
    "orders are never denied for their notional)",
    Reason.ORDER_THROTTLE: "the order rate limit is reached: the side is left without an order "
    "and a backoff starts",
    Reason.CANCEL_THROTTLE: "the cancel rate limit is reached: a replace is denied (the side is "
    "left without an order) and a backoff starts",
    Reason.THROTTLE_BACKOFF: "within a throttle backoff: new orders are denied",
    Reason.UNREPRESENTABLE_QUOTE: "the simulator's action cannot express the quote exactly: the "
    "side is cancelled, never re-priced",
    Reason.ACCOUNT_OPENED: "a new account starts ACTIVE (a new simulated episode, or a start)",
    Reason.WINDOW_LOSS: "the loss from the highest equity within rolling_window_seconds passed "
    "a threshold",
    Reason.DRAWDOWN: "the drawdown from the peak equity passed a threshold",
    Reason.MARGIN_COVERAGE: "margin equity / maintenance margin fell under a threshold",
    Reason.REJECT_STORM: "venue rejects within rolling_window_seconds reached "
    "halt_rejects_per_window",
    Reason.RECOVERED: "every REDUCING trigger cleared for reducing_hold_seconds: back to ACTIVE",
    Reason.OPERATOR_HALT: "an operator halted the account",
    Reason.FLATTEN_REQUESTED: "a flatten-then-halt sequence started (by an operator, or by the "
    "kill switch when flatten_on_halt)",
    Reason.FLATTENED: "every position is flat: the flatten sequence ended, the account stays "
    "HALTED",
    Reason.OPERATOR_RESET: "an operator reset the account from HALTED to ACTIVE",
    Reason.INVALID_OBSERVATION: "the observation is not one the observation builder makes "
    "(not an array, wrong shape or dtype, or a feature beyond obs_clip): the model is not run, "
    "the safe action is sent and the account goes REDUCING",
    Reason.NON_FINITE_OBSERVATION: "the observation holds a NaN or infinite feature: the model is "
    "not run, the safe action is sent and the account goes REDUCING",
    Reason.STALE_OBSERVATION: "the market data the observation was built from is older than "
    "stale_data_seconds, or its age is unknown: the model is not run, the safe action is sent "
    "and the account goes REDUCING",
    Reason.MODEL_ERROR: "the model raised, or returned something other than a float array of "
    "the action's shape: the safe action is sent and the account goes REDUCING",
    Reason.NON_FINITE_ACTION: "the model returned a NaN or infinite action component: the safe "
    "action is sent and the account goes REDUCING",
    Reason.OPERATOR_REDUCE: "an operator moved the account to REDUCING: it stays there (the kill "
    "switch's holds do not end it) until the operator resumes, or a halt trigger halts it",
    Reason.OPERATOR_RESUME: "an operator ended their REDUCING: back to ACTIVE, or REDUCING until "
    "the kill switch's own hold ends if one of its triggers held",
    Reason.ALERT: "an alert rule's corrective action (conf/live/alerts) moved the account to "
    "REDUCING (held while the rule fires, then reducing_hold_seconds) or HALTED; the transition "
    "names the rule",
}

GUARD_REASONS: frozenset[Reason] = frozenset(
    {
        Reason.INVALID_OBSERVATION,
        Reason.NON_FINITE_OBSERVATION,
        Reason.STALE_OBSERVATION,
        Reason.MODEL_ERROR,
        Reason.NON_FINITE_ACTION,
    }
)
"""The guarded policy's reasons: a bad observation or model output. Each moves the account to
REDUCING (HALTED once they persist for halt_stale_data_seconds)."""

TRANSITION_REASONS: frozenset[Reason] = frozenset(
    {
        Reason.ACCOUNT_OPENED,
        Reason.WINDOW_LOSS,
        Reason.DRAWDOWN,
        Reason.MARGIN_COVERAGE,
        Reason.REJECT_STORM,
        Reason.RECOVERED,
        Reason.OPERATOR_HALT,
        Reason.FLATTEN_REQUESTED,
        Reason.FLATTENED,
        Reason.OPERATOR_RESET,
        Reason.OPERATOR_REDUCE,
        Reason.OPERATOR_RESUME,
        Reason.ALERT,
        Reason.STALE_MARKET_DATA,
        Reason.UNKNOWN_ACCOUNT,
        *GUARD_REASONS,
    }
)
"""Reasons that can name a transition (STALE_MARKET_DATA and UNKNOWN_ACCOUNT also name order
denials, the guard's reasons also the decisions they happen in)."""

NUM_REASONS = len(Reason)
