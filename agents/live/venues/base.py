"""The venue interface: what the live runner needs from an exchange, as one async Protocol and
the frozen events and answers it exchanges with the venue.

Prices and sizes are floats in the venue's units (quote currency per coin, coins); times are
milliseconds since the Unix epoch (the venue's clock). Every order carries a client order id
(``cloid``) chosen before it is sent, so an order whose fate is unknown can be looked up.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


class Tif(enum.StrEnum):
    """Time in force: ``ALO`` is post-only (rejected if it would cross), ``GTC`` rests,
    ``IOC`` takes what it can and cancels the rest."""

    ALO = "Alo"
    GTC = "Gtc"
    IOC = "Ioc"


class OrderState(enum.StrEnum):
    """Where an order stands. ``UNKNOWN``: the request may or may not have reached the venue
    (a time-out or a transport error of the POST); it is resolved by looking the cloid up,
    never by sending the order again."""

    RESTING = "resting"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A limit order to place. ``px`` and ``sz`` are rounded to the venue's grid before signing
    (bids down, asks up, sizes down), so rounding never makes a quote more aggressive or larger
    than asked."""

    coin: str
    is_buy: bool
    sz: float
    px: float
    cloid: str
    tif: Tif = Tif.ALO
    reduce_only: bool = False


@dataclass(frozen=True, slots=True)
class OrderAck:
    """The venue's answer to one placed or replaced order. ``error`` carries the venue's text
    for a rejection; ``oid`` is None unless the venue assigned one."""

    cloid: str
    state: OrderState
    oid: int | None = None
    filled_sz: float = 0.0
    avg_px: float | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class CancelAck:
    """The venue's answer to one cancel: ``ok`` or the venue's error text. ``unknown`` when the
    request's fate could not be confirmed (a time-out or transport error)."""

    ok: bool
    error: str | None = None
    unknown: bool = False


@dataclass(frozen=True, slots=True)
class BookLevel:
    px: float
    sz: float
    n: int


@dataclass(frozen=True, slots=True)
class BookSnapshot:
    """An L2 book snapshot, best levels first."""

    coin: str
    bids: tuple[BookLevel, ...]
    asks: tuple[BookLevel, ...]
    time_ms: int


@dataclass(frozen=True, slots=True)
class Trade:
    """A public trade; ``is_buy`` is the aggressor's side."""

    coin: str
    is_buy: bool
    px: float
    sz: float
    time_ms: int
    tid: int


@dataclass(frozen=True, slots=True)
class AssetContext:
    """A perp's funding rate (per funding interval), mark, oracle and mid prices, and the last
    premium-index sample (None when the venue did not send one)."""

    coin: str
    funding_rate: float
    mark_px: float
    oracle_px: float
    mid_px: float | None
    open_interest: float
    premium: float | None = None


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """A change of one of the account's orders. ``status`` is the venue's word (e.g.
    ``badAloPxRejected``), ``state`` its meaning. ``sz`` is the size still open."""

    coin: str
    oid: int | None
    cloid: str | None
    is_buy: bool
    px: float
    sz: float
    orig_sz: float
    status: str
    state: OrderState
    time_ms: int


@dataclass(frozen=True, slots=True)
class Fill:
    """One of the account's fills, unique by ``tid``. ``fee`` is paid (positive) in quote
    currency; ``start_position`` is the signed position before the fill. ``snapshot``: it came
    in the snapshot a (re)subscription replays, so it may predate this process."""

    coin: str
    oid: int
    cloid: str | None
    tid: int
    is_buy: bool
    px: float
    sz: float
    fee: float
    closed_pnl: float
    start_position: float
    crossed: bool
    liquidation: bool
    time_ms: int
    snapshot: bool = False


@dataclass(frozen=True, slots=True)
class FundingPayment:
    """A funding settlement: ``usdc`` received (positive) or paid (negative) on position
    ``szi`` at ``rate``; ``snapshot`` as for :class:`Fill`."""

    coin: str
    usdc: float
    szi: float
    rate: float
    time_ms: int
    snapshot: bool = False


@dataclass(frozen=True, slots=True)
class Position:
    """A signed position (``szi`` > 0 long) and its entry price."""

    coin: str
    szi: float
    entry_px: float | None
    unrealized_pnl: float
    liquidation_px: float | None
    margin_used: float


@dataclass(frozen=True, slots=True)
class AccountState:
    """Positions and margin summary of the account, as of the venue's ``time_ms`` (None if the
    venue did not say)."""

    positions: tuple[Position, ...]
    account_value: float
    total_margin_used: float
    total_ntl_pos: float
    withdrawable: float
    time_ms: int | None = None


@dataclass(frozen=True, slots=True)
class OpenOrder:
    """A resting order as the venue lists it."""

    coin: str
    oid: int
    cloid: str | None
    is_buy: bool
    px: float
    sz: float
    orig_sz: float
    tif: str | None
    reduce_only: bool
    time_ms: int


@dataclass(frozen=True, slots=True)
class OrderStatus:
    """The venue's record of one order looked up by cloid or oid; ``order`` is None and
    ``state`` ``UNKNOWN`` when the venue does not know it."""

    state: OrderState
    status: str
    order: OpenOrder | None
    time_ms: int | None

    def as_update(self) -> OrderUpdate | None:
        """The answer as the order update it amounts to; None when the venue does not know
        the order."""
        order = self.order
        if order is None:
            return None
        return OrderUpdate(
            coin=order.coin,
            oid=order.oid,
            cloid=order.cloid,
            is_buy=order.is_buy,
            px=order.px,
            sz=order.sz,
            orig_sz=order.orig_sz,
            status=self.status,
            state=self.state,
            time_ms=self.time_ms if self.time_ms is not None else order.time_ms,
        )


@dataclass(frozen=True, slots=True)
class ConnectionChange:
    """The market-data/account stream went down (``connected`` False, with the reason) or came
    back and resubscribed everything (``connected`` True). Events in between may be missing:
    a consumer reconciles over the queries (open orders, fills since, positions)."""

    connected: bool
    attempt: int
    reason: str


VenueEvent = (
    BookSnapshot | Trade | AssetContext | OrderUpdate | Fill | FundingPayment | ConnectionChange
)


@runtime_checkable
class Venue(Protocol):
    """An exchange as the live runner sees it. Connect with ``async with venue:``; subscribe,
    then read ``events()``; order actions answer with the venue's per-order verdict."""

    async def __aenter__(self) -> Venue: ...

    async def __aexit__(self, *exc: object) -> None: ...

    async def subscribe_market(self, coin: str) -> None:
        """Stream the coin's book, trades and asset context."""
        ...

    async def subscribe_account(self) -> None:
        """Stream the account's order updates, fills and funding payments."""
        ...

    def events(self) -> AsyncIterator[VenueEvent]:
        """Everything subscribed, in arrival order; fills once each (by ``tid``)."""
        ...

    async def place(self, orders: Sequence[OrderRequest]) -> tuple[OrderAck, ...]: ...

    async def cancel(self, coin: str, oid: int) -> CancelAck: ...

    async def cancel_by_cloid(self, coin: str, cloid: str) -> CancelAck: ...

    async def replace(self, target: int | str, order: OrderRequest) -> OrderAck:
        """Cancel-replace the order with oid or cloid ``target`` by ``order``."""
        ...

    async def open_orders(self) -> tuple[OpenOrder, ...]: ...

    async def account(self) -> AccountState: ...

    async def positions(self) -> tuple[Position, ...]: ...

    async def fills_since(self, time_ms: int) -> tuple[Fill, ...]: ...

    async def funding_since(self, time_ms: int) -> tuple[FundingPayment, ...]: ...

    async def order_status(self, cloid: str) -> OrderStatus: ...

    async def schedule_cancel(self, at_ms: int | None) -> None:
        """Cancel all open orders at ``at_ms`` unless called again before (None unsets)."""
        ...
