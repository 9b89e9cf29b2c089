"""The user's orders on the paper exchange: their life cycle, look-ups and wire views.

An order is created ``open`` and ends ``filled``, ``canceled`` or with one of Hyperliquid's
other terminal statuses (``badAloPxRejected``, ``reduceOnlyCanceled``, ``scheduledCancel``,
``liquidatedCanceled``, ...). At most one bid and one ask rest per coin: the kernel's agent
quotes one price per side.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mmgym.exchange import wire

ORDER_STATUSES: tuple[str, ...] = (
    "open",
    "filled",
    "canceled",
    "badAloPxRejected",
    "rejected",
    "outOfRangeCanceled",
    "belowMinSizeCanceled",
    "reduceOnlyCanceled",
    "scheduledCancel",
    "liquidatedCanceled",
)
"""Every status an order of the paper exchange can have (docs/live.md says when)."""
FILLED_TOLERANCE = 1e-9
"""An order whose remaining size is at most this (base units) is filled."""


@dataclass
class Order:
    """One order of the user."""

    oid: int
    coin: str
    asset: int
    is_buy: bool
    limit_px: str
    """The price as the client sent it (a valid wire price)."""
    ticks: int
    """The price in ticks of the market's grid."""
    orig_sz: float
    tif: str
    reduce_only: bool
    cloid: str | None
    timestamp: int
    status: str = "open"
    status_timestamp: int = 0
    filled: float = 0.0
    """Size filled so far (base units)."""
    target: float | None = None
    """A hedge order's target hedge position (base units); None for a perp order."""
    remaining: float = field(init=False)
    """Size the order still offers (base units): its size less its fills, set to the size the
    kernel holds when they agree to within FILLED_TOLERANCE."""

    def __post_init__(self) -> None:
        self.remaining = self.orig_sz

    @property
    def side(self) -> str:
        """``B`` (bid) or ``A`` (ask)."""
        return "B" if self.is_buy else "A"

    @property
    def is_open(self) -> bool:
        """Whether the order rests."""
        return self.status == "open"

    def basic_view(self) -> dict[str, Any]:
        """The ``openOrders`` entry (and the ``order`` of an ``orderUpdates`` message)."""
        out: dict[str, Any] = {
            "coin": self.coin,
            "side": self.side,
            "limitPx": self.limit_px,
            "sz": wire.number(max(0.0, self.remaining) if self.is_open else 0.0),
            "oid": self.oid,
            "timestamp": self.timestamp,
            "origSz": wire.number(self.orig_sz),
        }
        if self.cloid is not None:
            out["cloid"] = self.cloid
        return out

    def frontend_view(self) -> dict[str, Any]:
        """The ``frontendOpenOrders`` entry (``orderStatus``'s ``order`` too)."""
        out = self.basic_view()
        out.update(
            {
                "triggerCondition": "N/A",
                "isTrigger": False,
                "triggerPx": "0.0",
                "children": [],
                "isPositionTpsl": False,
                "reduceOnly": self.reduce_only,
                "orderType": "Limit",
                "tif": self.tif,
                "cloid": self.cloid,
            }
        )
        return out

    def update_view(self) -> dict[str, Any]:
        """The ``orderUpdates`` entry of the order's current status."""
        return {
            "order": self.basic_view(),
            "status": self.status,
            "statusTimestamp": self.status_timestamp,
        }


@dataclass
class OrderBook:
    """Every order of the user, and the resting ones per coin and side."""

    orders: dict[int, Order] = field(default_factory=dict)
    by_cloid: dict[str, int] = field(default_factory=dict)
    """The latest order of each cloid (a batchModify gives it a new oid)."""
    resting: dict[tuple[int, bool], int] = field(default_factory=dict)
    """(perp index, is_buy) -> oid of the resting order."""
    next_oid: int = 1

    def new_oid(self) -> int:
        """A fresh order id."""
        oid = self.next_oid
        self.next_oid += 1
        return oid

    def add(self, order: Order, perp: int) -> None:
        """Rest ``order`` on its side of perp ``perp``."""
        self.orders[order.oid] = order
        if order.cloid is not None:
            self.by_cloid[order.cloid] = order.oid
        self.resting[(perp, order.is_buy)] = order.oid

    def record(self, order: Order) -> None:
        """Keep an order that never rested (rejected when placed), for ``orderStatus``."""
        self.orders[order.oid] = order
        if order.cloid is not None:
            self.by_cloid[order.cloid] = order.oid

    def resting_order(self, perp: int, is_buy: bool) -> Order | None:
        """The order resting on this side of perp ``perp``."""
        oid = self.resting.get((perp, is_buy))
        return None if oid is None else self.orders[oid]

    def working(self, asset: int) -> Order | None:
        """The order resting on either side of ``asset`` (a hedge coin has at most one)."""
        return self.resting_order(asset, True) or self.resting_order(asset, False)

    def find(self, key: object) -> Order | None:
        """An order by oid or cloid (None for anything else)."""
        if isinstance(key, str):
            oid = self.by_cloid.get(key.lower())
            return None if oid is None else self.orders.get(oid)
        if isinstance(key, int) and not isinstance(key, bool):
            return self.orders.get(key)
        return None

    def close(self, order: Order, status: str, time_ms: int) -> None:
        """End ``order`` with ``status`` at ``time_ms``."""
        assert status in ORDER_STATUSES, status
        order.status = status
        order.status_timestamp = time_ms
        for key, oid in list(self.resting.items()):
            if oid == order.oid:
                del self.resting[key]

    def open_orders(self) -> list[Order]:
        """The resting orders, newest first (as the venue lists them)."""
        return sorted((self.orders[oid] for oid in self.resting.values()), key=lambda o: -o.oid)
