"""The RiskLimiter: the one pre-trade risk gateway of the simulator, vetting and live trading.

Usage (one decision of every account)::

    limiter = RiskLimiter(RiskLimits(), VenueSpec.from_market(params), num_accounts, num_assets)
    inputs = RiskInputs.unknown(num_accounts, num_assets)   # fill from the venue or simulator
    quotes = new_quotes(num_accounts, num_assets)            # or decode_actions(...)
    counts = limiter.limit(quotes, inputs)                   # cuts ``quotes`` in place

Deterministic (the throttle's jitter comes from each account's seeded stream), independent of
the policy (it reads only the quotes, the inputs and its own state) and vectorised over accounts
(one compiled call, no allocation). How it avoids the known failures of other risk layers:

- it fails closed: an unknown (NaN, absent or stale-flagged) account, position, book, mark or
  margin state admits nothing that adds risk, and there is no account type or routing for which
  a check is skipped (NautilusTrader's notional checks returned early for margin accounts and
  broker-routed instruments, letting a $153M order through a $10 limit);
- every position and exposure limit counts resting orders as if filled, on the worst side;
- REDUCING compares the order's size with the position, resting orders counted: it never
  flips a position and admits nothing from flat (NautilusTrader compared only the sides);
- reducing orders are never denied for minimum size or notional (NautilusTrader's
  min-notional check blocked reduce-only exits);
- the kill switch measures drawdown from the peak, and loss over a rolling window, at every
  decision (Hummingbot's measured from the start, polled every 10 s); once HALTED every order
  is cancelled at every decision, so nothing keeps quoting after it fires (Hummingbot kept
  placing orders in one release); a halt can flatten first, in one explicit sequence, and only
  an operator leaves HALTED;
- an operator can hold an account in REDUCING (:meth:`RiskLimiter.reduce`) until they resume
  it: the kill switch's checks and halts run as before, only its return to ACTIVE waits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from agents.deploy.risk.engine import (
    limit_batch,
    limit_batch_parallel,
    open_accounts,
    restart_accounts,
)
from agents.deploy.risk.inputs import RiskInputs
from agents.deploy.risk.layout import MAX_TRANSITIONS, TRANSITION_DTYPE, pack_limits
from agents.deploy.risk.limits import RiskLimits
from agents.deploy.risk.modes import TradingMode
from agents.deploy.risk.reasons import GUARD_REASONS, Reason
from agents.deploy.risk.state import TradingState, Transition
from agents.deploy.risk.venue import VenueSpec
from agents.deploy.risk.window import window_restore
from mmgym.core.orders import QUOTE_DTYPE
from mmgym.core.rng import seeds_from

_STREAM_SALT = np.uint64(0x7269736B6C696D74)  # "risklimt"

Accounts = int | Sequence[int] | NDArray[np.bool_] | NDArray[np.integer]
"""One account, several by index, or a boolean mask over all."""


def new_quotes(num_accounts: int, num_assets: int) -> NDArray[np.void]:
    """Quotes ``(num_accounts, num_assets)`` of :data:`~mmgym.core.orders.QUOTE_DTYPE` with no
    orders (sizes 0) and a hedge fraction of 1."""
    quotes = np.zeros((num_accounts, num_assets), dtype=QUOTE_DTYPE)
    quotes["hedge_fraction"] = 1.0
    return quotes


class RiskLimiter:
    """Pre-trade limits, kill switch and trading modes of ``num_accounts`` accounts with
    ``num_assets`` perps each.

    Args:
        limits: the limits (:class:`RiskLimits`).
        venue: the venue's tick size, fees and margin tiers (:class:`VenueSpec`).
        num_accounts: accounts checked together (one per simulated env, or one live account).
        num_assets: perps per account.
        seed: seeds account ``i``'s throttle-jitter stream with ``seed + i``.
        parallel: check the accounts on all cores. Results are identical either way. Off by
            default: a decision costs a fraction of a microsecond per account, too little to
            pay for starting threads, and a parallel loop waits for its slowest thread when
            other processes share the cores.

    Every account starts ACTIVE (:meth:`open_accounts`).
    """

    def __init__(
        self,
        limits: RiskLimits,
        venue: VenueSpec,
        num_accounts: int = 1,
        num_assets: int = 1,
        seed: int | None = 0,
        parallel: bool = False,
    ) -> None:
        if not isinstance(limits, RiskLimits):
            raise TypeError(f"limits must be RiskLimits, got {type(limits).__name__}")
        if not isinstance(venue, VenueSpec):
            raise TypeError(f"venue must be a VenueSpec, got {type(venue).__name__}")
        for name, value in (("num_accounts", num_accounts), ("num_assets", num_assets)):
            if not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.limits = limits
        self.venue = venue
        self.num_accounts = int(num_accounts)
        self.num_assets = int(num_assets)
        self.state = TradingState(self.num_accounts, self.num_assets)
        self.packed_limits = pack_limits(limits, venue)
        """``limits`` and ``venue`` packed for the compiled code."""
        self.transition_rows = np.zeros(
            (self.num_accounts, MAX_TRANSITIONS), dtype=TRANSITION_DTYPE
        )
        """Where the compiled code records each account's transitions of one call
        (:meth:`log_transitions` moves them into ``state.transitions``)."""
        self._batch = limit_batch_parallel if parallel else limit_batch
        self._all = np.ones(self.num_accounts, dtype=np.bool_)
        self._trusted = np.zeros(self.num_accounts, dtype=np.int64)
        self.operator_reducing = np.zeros(self.num_accounts, dtype=np.bool_)
        """Accounts an operator holds in REDUCING (:meth:`reduce`), until :meth:`resume`."""
        self._held_until = np.full(self.num_accounts, -np.inf)
        """The kill switch's own REDUCING hold of each operator-held account (decision time,
        s; -inf: none), restored when the operator resumes."""
        self._holding = False
        self.open_accounts(seeds=seeds_from(seed, self.num_accounts))

    # --- the hot path ---------------------------------------------------------------------

    def limit(
        self,
        quotes: NDArray[np.void],
        inputs: RiskInputs,
        mask: NDArray[np.bool_] | None = None,
        untrusted: NDArray[np.int64] | None = None,
    ) -> NDArray[np.int64]:
        """Check one decision of every account (or those in ``mask``): cut ``quotes`` in place.

        ``quotes`` ``(num_accounts, num_assets)`` of :data:`~mmgym.core.orders.QUOTE_DTYPE` (the
        output of :func:`~mmgym.core.orders.decode_actions`); a denied side gets size 0, a
        clipped one a smaller size; prices never change, except that a flatten sequence places
        its own orders. ``inputs`` is the decision-time state (:class:`RiskInputs`).

        ``untrusted`` ``(num_accounts,)`` int64 holds, per account, 0 or a guard reason
        (:data:`~agents.deploy.risk.reasons.GUARD_REASONS`: the guarded policy found its
        observation or model output bad): such an account's quotes are replaced by the safe
        action (no order, a full hedge, and the flatten sequence's reducing order at the touch
        where a position is held), the reason is counted, and the account goes REDUCING (HALTED
        once untrusted for ``halt_stale_data_seconds``); the checks then run as usual.

        Returns the counts per account and :class:`Reason` of this decision, ``(num_accounts,
        len(Reason))`` (a view that the next call overwrites). Never raises on bad values in
        ``quotes`` or ``inputs``; raises ValueError only for wrong shapes or dtypes.
        """
        n, k = self.num_accounts, self.num_assets
        if quotes.shape != (n, k) or (
            quotes.dtype is not QUOTE_DTYPE and quotes.dtype != QUOTE_DTYPE
        ):
            raise ValueError(
                f"quotes must be ({n}, {k}) of QUOTE_DTYPE, got {quotes.shape} {quotes.dtype}"
            )
        inputs.check(n, k)
        if mask is None:
            mask = self._all
        elif mask.shape != (n,) or mask.dtype != np.bool_:
            raise ValueError(f"mask must be a bool array of shape ({n},), got {mask.shape}")
        if untrusted is None:
            untrusted = self._trusted
        else:
            _check_untrusted(untrusted, n)
        state = self.state
        if self._holding:
            self._hold_operator_reducing()
        self._batch(
            self.packed_limits,
            quotes,
            inputs.accounts,
            inputs.assets,
            state.records,
            state.rng,
            state.denials,
            state.last_denials,
            self.transition_rows,
            mask,
            untrusted,
        )
        self.log_transitions()
        return state.last_denials

    # --- accounts and operators -------------------------------------------------------------

    def open_accounts(
        self, mask: NDArray[np.bool_] | None = None, seeds: NDArray[np.uint64] | None = None
    ) -> None:
        """Start the accounts in ``mask`` (default: all) afresh: ACTIVE, no peak, window,
        estimates or backoff (a new account, or a new simulated episode). ``seeds`` reseeds
        their jitter streams. Recorded as an ``ACCOUNT_OPENED`` transition."""
        if mask is None:
            mask = self._all
        reseed = seeds is not None
        if seeds is None:
            seeds = np.zeros(self.num_accounts, dtype=np.uint64)
        else:  # a stream of its own, not the market's of the same seed
            seeds = np.asarray(seeds, dtype=np.uint64) ^ _STREAM_SALT
        self.operator_reducing[mask] = False
        self._held_until[mask] = -np.inf
        self._holding = bool(self.operator_reducing.any())
        open_accounts(
            self.packed_limits,
            self.state.records,
            self.state.rng,
            mask,
            seeds,
            reseed,
            self.state.denials,
            self.transition_rows,
        )
        self.log_transitions()

    def halt(
        self,
        accounts: Accounts,
        operator: str,
        *,
        flatten: bool = False,
        time_s: float | None = None,
        reason: Reason = Reason.OPERATOR_HALT,
    ) -> None:
        """HALT ``accounts`` now (a manual kill switch): every order is cancelled from the next
        decision on. With ``flatten``, a flatten-then-halt sequence starts (see
        :meth:`flatten_then_halt`). ``operator`` names who commands it; ``time_s`` is recorded
        (default: the account's last decision time); ``reason`` (a transition reason) is
        recorded with the transition (an alert rule's halt: ``ALERT``)."""
        if not reason.is_transition:
            raise ValueError(f"halt: {reason.name} is not a transition reason")
        for i in self._indices(accounts, operator):
            records = self.state.records
            self._release(i)
            if records["mode"][i] != TradingMode.HALTED:
                self._command(i, TradingMode.HALTED, reason, operator, time_s)
            if flatten and not records["flattening"][i]:
                records["flattening"][i] = True
                self._command(i, TradingMode.HALTED, Reason.FLATTEN_REQUESTED, operator, time_s)

    def flatten_then_halt(
        self, accounts: Accounts, operator: str, time_s: float | None = None
    ) -> None:
        """HALT ``accounts`` and flatten them: at each decision the limiter replaces every
        order with its own reducing orders (post-only, at the touch, never flipping a position)
        until every position is under the venue's smallest order, then the account stays HALTED
        with nothing working (recorded as ``FLATTENED``)."""
        self.halt(accounts, operator, flatten=True, time_s=time_s)

    def reduce_temporarily(
        self,
        accounts: Accounts,
        operator: str,
        *,
        reason: Reason = Reason.STALE_MARKET_DATA,
        time_s: float | None = None,
    ) -> None:
        """Move ACTIVE ``accounts`` to REDUCING now, as the kill switch would (e.g. the live
        runner lost the venue's stream): from the next decision only orders that reduce a
        position are admitted, until no trigger has held for ``reducing_hold_seconds`` after
        ``time_s`` (default: the
        account's last decision time; before the first decision, the first one ends the hold
        unless a trigger holds). An account already REDUCING has its hold extended to that
        time; a HALTED one stays HALTED (only :meth:`operator_reset` leaves it). ``reason`` (a
        transition reason) is recorded with the transition. Not a way around the limiter: the
        checks run as always, REDUCING only admits less."""
        if not reason.is_transition:
            raise ValueError(f"reduce_temporarily: {reason.name} is not a transition reason")
        records = self.state.records
        hold = float(self.limits.reducing_hold_seconds)
        for i in self._indices(accounts, operator):
            mode = records["mode"][i]
            if mode == TradingMode.HALTED:
                continue
            when = float(records["last_time"][i]) if time_s is None else float(time_s)
            if math.isfinite(when):  # (before any decision: the first one ends the hold)
                until = max(float(records["reducing_until"][i]), when + hold)
                records["reducing_until"][i] = until
            if mode == TradingMode.ACTIVE:
                self._command(i, TradingMode.REDUCING, reason, operator, time_s)

    def operator_reset(
        self, accounts: Accounts, operator: str, time_s: float | None = None
    ) -> None:
        """Return HALTED ``accounts`` to ACTIVE: the only way out of HALTED. The kill switch's
        references restart (peak equity and the rolling window), since the operator has taken
        the loss into account; the estimates and throttles carry on. Raises ValueError for an
        account that is not HALTED."""
        indices = self._indices(accounts, operator)
        records = self.state.records
        not_halted = [i for i in indices if records["mode"][i] != TradingMode.HALTED]
        if not_halted:
            raise ValueError(f"operator_reset: accounts {not_halted} are not HALTED")
        mask = np.zeros(self.num_accounts, dtype=np.bool_)
        mask[indices] = True
        restart_accounts(records, mask)
        for i in indices:
            self._release(i)
            records["flattening"][i] = False
            self._command(i, TradingMode.ACTIVE, Reason.OPERATOR_RESET, operator, time_s)

    def reduce(self, accounts: Accounts, operator: str, time_s: float | None = None) -> None:
        """Hold ``accounts`` in REDUCING until :meth:`resume` (an operator's command, recorded as
        ``OPERATOR_REDUCE``): from the next decision only orders that reduce abs(position) are
        admitted, exactly as in the kill switch's REDUCING. Every check and trigger runs as
        before (a halt trigger still halts, which ends the hold); only the return to ACTIVE
        (``RECOVERED``) waits for the operator. Held by :meth:`limit` (the simulator's fused
        step does not take operator commands). Already held: nothing changes. Raises ValueError
        for a HALTED account (only :meth:`operator_reset` leaves HALTED)."""
        indices = self._indices(accounts, operator)
        records = self.state.records
        halted = [i for i in indices if records["mode"][i] == TradingMode.HALTED]
        if halted:
            raise ValueError(
                f"reduce: accounts {halted} are HALTED (only operator_reset leaves HALTED)"
            )
        for i in indices:
            if self.operator_reducing[i]:
                continue
            reducing = records["mode"][i] == TradingMode.REDUCING
            self._held_until[i] = records["reducing_until"][i] if reducing else -np.inf
            self.operator_reducing[i] = True
            records["reducing_until"][i] = np.inf
            self._command(i, TradingMode.REDUCING, Reason.OPERATOR_REDUCE, operator, time_s)
        self._holding = True

    def resume(self, accounts: Accounts, operator: str, time_s: float | None = None) -> None:
        """End the operator's REDUCING of ``accounts`` (recorded as ``OPERATOR_RESUME``). The
        kill switch takes over where it was: an account none of whose REDUCING triggers held
        during the hold, or whose hold has passed, returns to ACTIVE (its triggers are checked
        again at the next decision, and move it back to REDUCING at once if they hold); one
        whose trigger held stays REDUCING until the kill switch's hold ends (``RECOVERED``).
        Raises ValueError for an account the operator does not hold in REDUCING."""
        indices = self._indices(accounts, operator)
        not_held = [i for i in indices if not self.operator_reducing[i]]
        if not_held:
            raise ValueError(f"resume: accounts {not_held} are not held in REDUCING by an operator")
        records = self.state.records
        for i in indices:
            held = float(self._held_until[i])
            last = float(records["last_time"][i])
            self._release(i)
            if held > last:  # the kill switch's own hold has not passed: it ends it
                records["reducing_until"][i] = held
                self._command(i, TradingMode.REDUCING, Reason.OPERATOR_RESUME, operator, time_s)
            else:
                records["reducing_until"][i] = -np.inf
                self._command(i, TradingMode.ACTIVE, Reason.OPERATOR_RESUME, operator, time_s)

    def add_counts(self, reason: Reason, counts: NDArray[np.int64]) -> None:
        """Count ``reason`` for each account (``counts`` per account) in the last decision and
        the totals: for checks made outside the limiter, such as the simulator's encoder."""
        state = self.state
        state.last_denials[:, reason] += counts
        state.denials[:, reason] += counts
        state.records["counted"] |= counts > 0

    def restore_window(
        self,
        account: int,
        times_s: Sequence[float],
        equities: Sequence[float],
        rejects: Sequence[float] | None = None,
        indices: Sequence[float] | None = None,
    ) -> int:
        """Put the samples of decisions made before a restart (``times_s`` on this limiter's
        clock, in order) back into ``account``'s rolling window: their equities (NaN: not
        known), the venue rejects each counted (default none) and the market index (the mean
        log mark; NaN or default: not known). So the loss, the reject count and the index's
        range within ``rolling_window_seconds`` carry on across the restart instead of starting
        afresh. Only the samples the window can still hold are used; those with a non-finite
        time are skipped. Returns how many were used."""
        times = np.asarray(times_s, dtype=np.float64)
        columns = [
            np.asarray(equities, dtype=np.float64),
            np.zeros(times.shape) if rejects is None else np.asarray(rejects, dtype=np.float64),
            np.full(times.shape, np.nan)
            if indices is None
            else np.asarray(indices, dtype=np.float64),
        ]
        if times.ndim != 1 or any(c.shape != times.shape for c in columns):
            raise ValueError(
                "times_s, equities, rejects and indices must be sequences of one length"
            )
        if not 0 <= account < self.num_accounts:
            raise ValueError(f"account {account} is not one of the {self.num_accounts} accounts")
        if times.size == 0:
            return 0
        keep = np.isfinite(times)
        if not keep.any():
            return 0
        keep &= times >= times[keep][-1] - 2.0 * self.limits.rolling_window_seconds
        times = np.ascontiguousarray(times[keep])
        equity, reject, index = (np.ascontiguousarray(c[keep]) for c in columns)
        window_restore(
            self.state.records[account], self.packed_limits[0], times, equity, reject, index
        )
        return int(times.size)

    def drain_transitions(self) -> list[Transition]:
        """The transitions recorded since the last call, oldest first (for a journal)."""
        out = self.state.transitions
        self.state.transitions = []
        return out

    # --- internals --------------------------------------------------------------------------

    def _indices(self, accounts: Accounts, operator: str) -> list[int]:
        if not isinstance(operator, str) or not operator.strip():
            raise ValueError("an operator command must name the operator (a non-empty string)")
        arr = np.asarray(accounts)
        if arr.dtype == np.bool_:
            if arr.shape != (self.num_accounts,):
                raise ValueError(f"an account mask must have shape ({self.num_accounts},)")
            return [int(i) for i in np.flatnonzero(arr)]
        indices = [int(i) for i in np.atleast_1d(arr).astype(np.int64)]
        bad = [i for i in indices if not 0 <= i < self.num_accounts]
        if bad:
            raise ValueError(f"unknown account(s) {bad}; accounts are 0..{self.num_accounts - 1}")
        return indices

    def _release(self, i: int) -> None:
        """Drop the operator's REDUCING hold of account ``i`` (a halt, reset or resume)."""
        self.operator_reducing[i] = False
        self._held_until[i] = -np.inf
        self._holding = bool(self.operator_reducing.any())

    def _hold_operator_reducing(self) -> None:
        """Before a decision: keep every operator-held REDUCING account from recovering (its
        ``reducing_until`` at +inf), remembering a hold the kill switch set since; an account
        the kill switch has halted since is no longer held."""
        records = self.state.records
        for i in np.flatnonzero(self.operator_reducing):
            if records["mode"][i] != TradingMode.REDUCING:
                self._release(int(i))
                continue
            until = float(records["reducing_until"][i])
            if until != np.inf:
                self._held_until[i] = max(float(self._held_until[i]), until)
                records["reducing_until"][i] = np.inf

    def _command(
        self, i: int, mode: TradingMode, reason: Reason, operator: str, time_s: float | None
    ) -> None:
        records = self.state.records
        previous = TradingMode(int(records["mode"][i]))
        records["mode"][i] = mode
        when = float(records["last_time"][i]) if time_s is None else float(time_s)
        self.state.denials[i, reason] += 1
        self.state.transitions.append(Transition(i, when, previous, mode, reason, operator))

    def log_transitions(self) -> None:
        """Move the transitions the compiled code recorded into ``state.transitions`` (after a
        call that decides outside :meth:`limit`, such as the simulator's fused step)."""
        made = self.state.records["transitions"]
        if not np.count_nonzero(made):  # cheaper than .any() on a few accounts
            return
        for i in np.flatnonzero(made):
            for r in self.transition_rows[i, : min(int(made[i]), MAX_TRANSITIONS)]:
                self.state.transitions.append(
                    Transition(
                        int(r["account"]),
                        float(r["time_s"]),
                        TradingMode(int(r["previous"])),
                        TradingMode(int(r["mode"])),
                        Reason(int(r["reason"])),
                    )
                )


_GUARD_CODES = np.array(sorted([0, *map(int, GUARD_REASONS)]), dtype=np.int64)


def _check_untrusted(untrusted: NDArray[np.int64], n: int) -> None:
    """Raise ValueError unless ``untrusted`` is (n,) int64 of 0 or guard reasons."""
    if untrusted.shape != (n,) or untrusted.dtype != np.int64:
        raise ValueError(
            f"untrusted must be an int64 array of shape ({n},), got {untrusted.shape} "
            f"{untrusted.dtype}"
        )
    if np.count_nonzero(untrusted) and not np.isin(untrusted, _GUARD_CODES).all():
        bad = sorted(set(untrusted.tolist()) - set(_GUARD_CODES.tolist()))
        raise ValueError(f"untrusted holds {bad}: only 0 or a guard reason {sorted(GUARD_REASONS)}")
