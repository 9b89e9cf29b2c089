"""Venues: one async interface (:class:`Venue`, ``base.py``) and its Hyperliquid-protocol
implementation (:class:`HyperliquidVenue`), which trades the paper exchange and Hyperliquid
alike (docs/live.md)."""

from __future__ import annotations

from .backoff import Backoff
from .base import (
    AccountState,
    AssetContext,
    BookLevel,
    BookSnapshot,
    CancelAck,
    ConnectionChange,
    Fill,
    FundingPayment,
    OpenOrder,
    OrderAck,
    OrderRequest,
    OrderState,
    OrderStatus,
    OrderUpdate,
    Position,
    Tif,
    Trade,
    Venue,
    VenueEvent,
)
from .hyperliquid import MAINNET_API_URL, TESTNET_API_URL, HyperliquidVenue, new_cloid
from .keys import KeyLoadError, Signer, load_signer
from .transport import OutcomeUnknownError, VenueRequestError
from .wire import VenueMessageError, VenueRejectedError

__all__ = [
    "MAINNET_API_URL",
    "TESTNET_API_URL",
    "AccountState",
    "AssetContext",
    "Backoff",
    "BookLevel",
    "BookSnapshot",
    "CancelAck",
    "ConnectionChange",
    "Fill",
    "FundingPayment",
    "HyperliquidVenue",
    "KeyLoadError",
    "OpenOrder",
    "OrderAck",
    "OrderRequest",
    "OrderState",
    "OrderStatus",
    "OrderUpdate",
    "OutcomeUnknownError",
    "Position",
    "Signer",
    "Tif",
    "Trade",
    "Venue",
    "VenueEvent",
    "VenueMessageError",
    "VenueRejectedError",
    "VenueRequestError",
    "load_signer",
    "new_cloid",
]
