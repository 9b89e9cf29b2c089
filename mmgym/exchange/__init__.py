"""The paper exchange: the mmgym market served over Hyperliquid's API (docs/live.md).

:class:`PaperVenue` is the venue's state over the PerpMM kernel (no I/O); :class:`PaperExchange`
its HTTP and WebSocket handlers; :func:`serve` runs them until SIGINT or SIGTERM and
:class:`BackgroundServer` on a thread. The server needs the ``live`` extra (aiohttp and
hyperliquid-python-sdk); the venue alone does not. :mod:`mmgym.exchange.fault_proxy` puts a
seeded fault-injection proxy between a client and any such server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mmgym.exchange.clock import TIME_MODES, Clock
from mmgym.exchange.venue import Coin, Event, MarketClosedError, OrderRefusedError, PaperVenue

if TYPE_CHECKING:
    from mmgym.exchange.server import BackgroundServer, PaperExchange, serve

__all__ = [
    "TIME_MODES",
    "BackgroundServer",
    "Clock",
    "Coin",
    "Event",
    "MarketClosedError",
    "OrderRefusedError",
    "PaperExchange",
    "PaperVenue",
    "serve",
]

_SERVER_NAMES = ("BackgroundServer", "PaperExchange", "serve")


def __getattr__(name: str) -> Any:
    """The server's names, imported on first use (they need aiohttp)."""
    if name in _SERVER_NAMES:
        from mmgym.exchange import server

        return getattr(server, name)
    raise AttributeError(f"module 'mmgym.exchange' has no attribute {name!r}")
