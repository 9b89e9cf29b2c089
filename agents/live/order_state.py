"""One managed order's state machine: its phase, its cancel-replace tree and what each venue
answer does to it (docs/live.md, "The order manager").

A managed order is one client order id (cloid). A replace (Hyperliquid's ``batchModify``) keeps
the cloid and gives the order a new oid, so one cloid holds a tree of versions: ``oids`` lists
every oid seen under it, ``version`` is the one that should be on the book, ``pending`` the
replacement asked for and not yet confirmed. Fills of any version count (a replaced version can
still fill on its way out); whether a fill completes the order is judged on the current version.

The rules that keep it from losing track:

- final phases (FILLED, CANCELED, REJECTED) are absorbing: a late, duplicated or reordered
  message never brings an order back;
- UNKNOWN (sent, outcome not known) leaves only on an answer of the venue about this cloid (an
  order update, a fill, an ``orderStatus`` answer that knows the order); "unknownOid" leaves it
  UNKNOWN, unless the placing action's expiry has passed (:meth:`ManagedOrder.on_expired_unseen`);
- during a replace the acknowledgement decides: the old version's cancel and fills do not end
  the order, a higher oid under the cloid is the new version even when its update arrives first,
  and updates of older oids change nothing.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Concatenate, ParamSpec

from agents.live.venues.base import CancelAck, Fill, OrderAck, OrderState, OrderStatus, OrderUpdate

SIZE_TOLERANCE = 1e-9
"""Relative tolerance under which a size counts as fully filled (venue sizes are decimals)."""


_P = ParamSpec("_P")


def _reports_change(
    apply: Callable[Concatenate[ManagedOrder, _P], object],
) -> Callable[Concatenate[ManagedOrder, _P], bool]:
    """Make a venue-answer handler return whether the order's phase changed."""

    @functools.wraps(apply)
    def wrapper(order: ManagedOrder, *args: _P.args, **kwargs: _P.kwargs) -> bool:
        before = order.phase
        apply(order, *args, **kwargs)
        return order.phase != before

    return wrapper


class OrderPhase(enum.StrEnum):
    """Where a managed order stands (the state machine in docs/live.md)."""

    PENDING_NEW = "pending_new"  # intent recorded, no answer yet
    RESTING = "resting"
    PARTIALLY_FILLED = "partially_filled"
    PENDING_CANCEL = "pending_cancel"  # cancel sent, the order may still fill
    PENDING_REPLACE = "pending_replace"  # batchModify sent, the acknowledgement decides
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    UNKNOWN = "unknown"  # sent, outcome not known: resolved by orderStatus by cloid


FINAL = frozenset({OrderPhase.FILLED, OrderPhase.CANCELED, OrderPhase.REJECTED})
"""Absorbing phases: the order is off the book for good."""
LIVE = frozenset(
    {
        OrderPhase.RESTING,
        OrderPhase.PARTIALLY_FILLED,
        OrderPhase.PENDING_CANCEL,
        OrderPhase.PENDING_REPLACE,
    }
)
"""Phases of an order the venue confirmed and that is on the book (or leaving it)."""


@dataclass(slots=True)
class Version:
    """One version of a cloid's order: the price and size asked for (the venue rounds them
    passively), its oid once known, and what filled of it."""

    px: float
    sz: float
    oid: int | None = None
    filled: float = 0.0

    @property
    def remaining(self) -> float:
        return max(0.0, self.sz - self.filled)

    @property
    def done(self) -> bool:
        return self.filled >= self.sz * (1.0 - SIZE_TOLERANCE)


@dataclass(slots=True)
class ManagedOrder:
    """A cloid's order as the order manager tracks it."""

    cloid: str
    coin: str
    is_buy: bool
    version: Version
    phase: OrderPhase = OrderPhase.PENDING_NEW
    pending: Version | None = None
    """The replacement asked for (PENDING_REPLACE, or UNKNOWN after a replace)."""
    oids: list[int] = field(default_factory=list)
    """Every oid seen under the cloid, oldest first: the cancel-replace tree."""
    filled_sz: float = 0.0
    """Size filled over every version."""
    error: str | None = None
    """The venue's last error text about this order."""
    answered_ms: int | None = None
    """When the place's send returned (the host's clock, ms): its expiry counts from then."""
    cancel_in_flight: bool = False
    """A cancel was sent and its answer has not come back."""

    @property
    def final(self) -> bool:
        return self.phase in FINAL

    @property
    def live(self) -> bool:
        return self.phase in LIVE

    @property
    def oid(self) -> int | None:
        return self.version.oid

    def _set(self, phase: OrderPhase) -> bool:
        if self.final or phase == self.phase:
            return False
        self.phase = phase
        return True

    def _resting(self) -> OrderPhase:
        filled = self.version.filled > 0.0
        return OrderPhase.PARTIALLY_FILLED if filled else OrderPhase.RESTING

    def _see_oid(self, oid: int | None) -> None:
        if oid is not None and oid not in self.oids:
            self.oids.append(oid)

    def _adopt(self, oid: int | None, px: float, sz: float) -> None:
        """``oid`` is the order's newest version (a replace's result)."""
        self._see_oid(oid)
        spec = self.pending
        self.version = Version(spec.px, spec.sz, oid) if spec is not None else Version(px, sz, oid)
        self.pending = None

    def _is_newer(self, oid: int | None) -> bool:
        return oid is not None and oid not in self.oids and (self.oid is None or oid > self.oid)

    # --- requests ------------------------------------------------------------------------------

    def request_cancel(self) -> None:
        """A cancel is about to be sent (RESTING or PARTIALLY_FILLED only)."""
        if self.phase not in (OrderPhase.RESTING, OrderPhase.PARTIALLY_FILLED):
            raise ValueError(f"cannot cancel order {self.cloid} in phase {self.phase}")
        self.phase = OrderPhase.PENDING_CANCEL
        self.cancel_in_flight = True

    def request_replace(self, px: float, sz: float) -> None:
        """A replace by (``px``, ``sz``) is about to be sent (RESTING or PARTIALLY_FILLED)."""
        if self.phase not in (OrderPhase.RESTING, OrderPhase.PARTIALLY_FILLED):
            raise ValueError(f"cannot replace order {self.cloid} in phase {self.phase}")
        self.phase = OrderPhase.PENDING_REPLACE
        self.pending = Version(px, sz)

    # --- venue answers -------------------------------------------------------------------------

    @property
    def replacing(self) -> bool:
        """A replace was sent and its outcome is not known yet."""
        return self.pending is not None and self.phase in (
            OrderPhase.PENDING_REPLACE,
            OrderPhase.UNKNOWN,
        )

    @_reports_change
    def on_ack(self, ack: OrderAck) -> bool:
        """The answer to this cloid's place (or, while replacing, replace); whether the phase
        changed. An UNKNOWN ack only moves an order that awaited an answer."""
        if self.final:
            return False
        if ack.state == OrderState.UNKNOWN:
            self.error = ack.error
            if self.phase in (OrderPhase.PENDING_NEW, OrderPhase.PENDING_REPLACE):
                return self._set(OrderPhase.UNKNOWN)
            return False
        if ack.state == OrderState.REJECTED:
            self.error = ack.error
            if self.replacing:  # what became of the old version only the venue's record says
                return self._set(OrderPhase.UNKNOWN)
            if self.phase in (OrderPhase.PENDING_NEW, OrderPhase.UNKNOWN):
                return self._set(OrderPhase.REJECTED)
            return False
        if self.replacing:
            if ack.oid is not None and ack.oid in self.oids and ack.oid != self.oid:
                return False  # an older version's ack, out of order
            if ack.oid is None or ack.oid != self.oid:
                self._adopt(ack.oid, self.version.px, self.version.sz)
            self.phase = OrderPhase.RESTING
            if ack.state != OrderState.FILLED:
                return True
        else:
            self._see_oid(ack.oid)
            if self.version.oid is None:
                self.version.oid = ack.oid
        if ack.state == OrderState.FILLED:
            return self._set(OrderPhase.FILLED)
        if self.phase in (OrderPhase.PENDING_NEW, OrderPhase.UNKNOWN, OrderPhase.RESTING):
            return self._set(self._resting())
        return False

    @_reports_change
    def on_cancel_ack(self, ack: CancelAck) -> bool:
        """The answer to this order's cancel. A success ends it; an error (already filled or
        canceled) or an unknown outcome leaves PENDING_CANCEL until an update or a look-up
        (one that finds the order still resting returns it to RESTING: the cancel did not
        take)."""
        self.cancel_in_flight = False
        if self.phase == OrderPhase.PENDING_CANCEL and ack.ok:
            return self._set(OrderPhase.CANCELED)
        if not ack.ok:
            self.error = ack.error
        return False

    @_reports_change
    def on_update(self, update: OrderUpdate, authoritative: bool = False) -> bool:
        """An order update of this cloid; ``authoritative``: an ``orderStatus`` answer (the
        venue's current record of the cloid), which also settles a replace of unknown
        outcome."""
        if self.final or update.state == OrderState.UNKNOWN:
            return False
        oid = update.oid
        if self._is_newer(oid) and self.oid is not None:
            # a higher oid under the cloid: a replace's new version (maybe before its ack)
            self._adopt(oid, update.px, update.orig_sz)
            if self.phase in (OrderPhase.PENDING_REPLACE, OrderPhase.UNKNOWN):
                self.phase = OrderPhase.RESTING
        elif oid is not None and oid in self.oids and oid != self.oid:
            return False  # an older version of the tree: its cancel changes nothing
        else:
            self._see_oid(oid)
            if self.version.oid is None:
                self.version.oid = oid
            if self.replacing:
                if not authoritative:
                    return False  # the old version's cancel: the replace's outcome decides
                self.pending = None  # the venue's record: the replace did not take effect
        if update.state == OrderState.RESTING:
            if self.phase == OrderPhase.PENDING_CANCEL and (
                self.cancel_in_flight or not authoritative
            ):
                return False  # (a look-up after the cancel's answer: it did not take)
            partial = update.sz < update.orig_sz * (1.0 - SIZE_TOLERANCE)
            return self._set(OrderPhase.PARTIALLY_FILLED if partial else self._resting())
        if update.state == OrderState.FILLED:
            return self._set(OrderPhase.FILLED)
        if update.state == OrderState.CANCELED:
            return self._set(OrderPhase.CANCELED)
        self.error = update.status
        return self._set(OrderPhase.REJECTED)

    def on_status(self, status: OrderStatus) -> bool:
        """An ``orderStatus`` answer by this cloid: applied as an authoritative update when the
        venue knows the order; "unknownOid" changes nothing (never forced final)."""
        update = status.as_update()
        if update is None or status.state == OrderState.UNKNOWN:
            return False
        return self.on_update(update, authoritative=True)

    def on_expired_unseen(self, status: OrderStatus) -> bool:
        """The venue answered "unknownOid" after the placing action's expiry (its
        ``expiresAfter``, which the venue enforces) had passed: the order never executes, so
        an UNKNOWN place ends REJECTED. Anything else is left as it is."""
        if (
            self.phase != OrderPhase.UNKNOWN
            or self.pending is not None
            or status.order is not None
            or status.status != "unknownOid"
        ):
            return False
        self.error = "unknown to the venue after the order's expiry: it never executes"
        self.phase = OrderPhase.REJECTED
        return True

    @_reports_change
    def on_fill(self, fill: Fill) -> bool:
        """A fill of this cloid (the caller drops duplicates by tid): counted on the tree, on
        the current version when it is that version's, and the phase follows."""
        self.filled_sz += fill.sz
        oid = fill.oid
        if self.final:
            self._see_oid(oid)
            return False  # a fill after the end (a cancel-after-fill race): booked, no revival
        if self._is_newer(oid) and self.oid is not None:
            pending = self.pending
            self._adopt(oid, fill.px, pending.sz if pending is not None else fill.sz)
            if self.phase in (OrderPhase.PENDING_REPLACE, OrderPhase.UNKNOWN):
                self.phase = OrderPhase.RESTING
        elif oid in self.oids and oid != self.oid:
            return False  # a replaced version filled on its way out
        else:
            self._see_oid(oid)
            if self.version.oid is None:
                self.version.oid = oid
            if self.replacing:
                self.version.filled += fill.sz
                return False  # the old version filled: the replace's outcome decides
        self.version.filled += fill.sz
        if self.version.done:
            return self._set(OrderPhase.FILLED)
        if self.phase == OrderPhase.PENDING_CANCEL:
            return False
        return self._set(OrderPhase.PARTIALLY_FILLED)
