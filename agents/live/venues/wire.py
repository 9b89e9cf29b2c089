"""Hyperliquid's wire format: rounding onto the venue's price and size grid, order wires built
with the SDK's own functions, and the translation of the venue's answers and streamed messages
into the events of :mod:`agents.live.venues.base`.

A message that lacks a field or carries a malformed number raises :class:`VenueMessageError`
naming the message kind and the field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from mmgym.extras import extra_needed

from .base import (
    AccountState,
    AssetContext,
    BookLevel,
    BookSnapshot,
    CancelAck,
    Fill,
    FundingPayment,
    OpenOrder,
    OrderAck,
    OrderRequest,
    OrderState,
    OrderStatus,
    OrderUpdate,
    Position,
    Trade,
)

with extra_needed("agents.live.venues"):
    from hyperliquid.utils.signing import order_request_to_order_wire
    from hyperliquid.utils.types import Cloid

PERP_PRICE_DECIMALS = 6
"""A perp price has at most ``6 - szDecimals`` decimals (and 5 significant figures)."""
PRICE_SIGNIFICANT_FIGURES = 5
FLOAT_NOISE = Decimal("1e-12")
"""A value within this relative distance of a grid point is that grid point (``0.3 + 0.6`` is
0.9, not a tick below it)."""


class VenueMessageError(ValueError):
    """A venue message is not what Hyperliquid's API sends."""


@dataclass(frozen=True, slots=True)
class AssetMeta:
    """A perp of the venue's ``meta``: its name, asset index (its position in the universe) and
    size decimals."""

    name: str
    asset: int
    sz_decimals: int


def parse_meta(meta: Any) -> dict[str, AssetMeta]:
    """The perps of an ``{"type": "meta"}`` answer by name."""
    universe = _field(meta, "universe", "meta")
    if not isinstance(universe, list):
        raise VenueMessageError(f"meta 'universe' is not a list: {_show(universe)}")
    assets: dict[str, AssetMeta] = {}
    for index, info in enumerate(universe):
        name = _field(info, "name", "meta universe entry")
        decimals = _field(info, "szDecimals", f"meta universe entry {name!r}")
        if not isinstance(decimals, int) or not 0 <= decimals <= PERP_PRICE_DECIMALS:
            raise VenueMessageError(f"meta {name!r} has szDecimals {decimals!r}: want 0..6")
        assets[str(name)] = AssetMeta(str(name), index, decimals)
    return assets


# -- rounding ----------------------------------------------------------------------------------


def _decimal(value: float, what: str) -> Decimal:
    if not math.isfinite(value) or value <= 0.0:
        raise ValueError(f"{what} must be a positive finite number, got {value!r}")
    return Decimal(repr(float(value)))  # the shortest decimal that reads back as ``value``


def price_quantum(px: Decimal, sz_decimals: int) -> Decimal:
    """The price grid step at ``px``: 5 significant figures, at most ``6 - sz_decimals``
    decimals, and never coarser than 1 (integer prices are always valid)."""
    significant = Decimal(1).scaleb(px.adjusted() - PRICE_SIGNIFICANT_FIGURES + 1)
    finest = Decimal(1).scaleb(-(PERP_PRICE_DECIMALS - sz_decimals))
    return min(max(significant, finest), Decimal(1))


def round_price(px: float, sz_decimals: int, is_buy: bool) -> Decimal:
    """``px`` on the venue's grid, rounded away from the other side: bids down, asks up (a
    rounding never makes a quote cross)."""
    value = _decimal(px, "price")
    rounding = ROUND_FLOOR if is_buy else ROUND_CEILING
    rounded = value
    for _ in range(2):  # rounding up can add a digit (9.99995 -> 10.000): re-grid once more
        rounded = _to_grid(value, price_quantum(rounded, sz_decimals), rounding)
    if rounded <= 0:
        raise ValueError(f"price {px!r} rounds to {rounded} on the venue's grid")
    return rounded.normalize()


def round_size(sz: float, sz_decimals: int) -> Decimal:
    """``sz`` rounded down to ``sz_decimals`` decimals (never larger than asked); a size that
    rounds to zero is refused."""
    rounded = _to_grid(_decimal(sz, "size"), Decimal(1).scaleb(-sz_decimals), ROUND_FLOOR)
    if rounded == 0:
        raise ValueError(f"size {sz!r} rounds to 0 at szDecimals={sz_decimals}")
    return rounded.normalize()


def _to_grid(value: Decimal, step: Decimal, rounding: str) -> Decimal:
    """``value`` rounded to a multiple of ``step`` in direction ``rounding``, or to the nearest
    multiple if it is within float noise of it."""
    nearest = (value / step).to_integral_value() * step
    if abs(value - nearest) <= value * FLOAT_NOISE:
        return nearest
    return (value / step).to_integral_value(rounding) * step


def is_on_grid(px: Decimal, sz_decimals: int) -> bool:
    """Whether ``px`` is a valid perp price for a coin with ``sz_decimals``."""
    return px > 0 and px % price_quantum(px, sz_decimals) == 0


def check_cloid(cloid: str) -> str:
    """``cloid`` if it is "0x" and 32 hex digits, else a ValueError naming it."""
    body = cloid[2:] if cloid.startswith("0x") else ""
    if len(body) != 32 or any(c not in "0123456789abcdefABCDEF" for c in body):
        raise ValueError(f"cloid must be '0x' and 32 hex digits, got {cloid!r}")
    return cloid.lower()


def order_wire(order: OrderRequest, asset: AssetMeta) -> dict[str, Any]:
    """The signed action's wire form of ``order`` (SDK's ``order_request_to_order_wire``) after
    rounding onto the coin's grid."""
    px = round_price(order.px, asset.sz_decimals, order.is_buy)
    sz = round_size(order.sz, asset.sz_decimals)
    request = {
        "coin": order.coin,
        "is_buy": order.is_buy,
        "sz": float(sz),
        "limit_px": float(px),
        "order_type": {"limit": {"tif": order.tif.value}},
        "reduce_only": order.reduce_only,
        "cloid": Cloid(check_cloid(order.cloid)),
    }
    return dict(order_request_to_order_wire(request, asset.asset))


def order_action(wires: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {"type": "order", "orders": list(wires), "grouping": "na"}


def modify_action(target: int | str, wire: Mapping[str, Any]) -> dict[str, Any]:
    oid: int | str = target if isinstance(target, int) else check_cloid(target)
    return {"type": "batchModify", "modifies": [{"oid": oid, "order": dict(wire)}]}


def cancel_action(asset: int, oid: int) -> dict[str, Any]:
    return {"type": "cancel", "cancels": [{"a": asset, "o": oid}]}


def cancel_by_cloid_action(asset: int, cloid: str) -> dict[str, Any]:
    return {"type": "cancelByCloid", "cancels": [{"asset": asset, "cloid": check_cloid(cloid)}]}


def schedule_cancel_action(at_ms: int | None) -> dict[str, Any]:
    action: dict[str, Any] = {"type": "scheduleCancel"}
    if at_ms is not None:
        action["time"] = int(at_ms)
    return action


# -- answers to /exchange ----------------------------------------------------------------------


def order_state(status: str) -> OrderState:
    """The meaning of one of the venue's order status words (``open``, ``filled``,
    ``canceled``, ``badAloPxRejected``, ``reduceOnlyCanceled``, ...). A word the venue may add
    later maps to ``UNKNOWN``, which a consumer resolves by looking the order up."""
    if status in ("open", "triggered"):
        return OrderState.RESTING
    if status == "filled":
        return OrderState.FILLED
    if status in ("canceled", "scheduledCancel") or status.endswith("Canceled"):
        return OrderState.CANCELED
    if status == "rejected" or status.endswith("Rejected"):
        return OrderState.REJECTED
    return OrderState.UNKNOWN


def _statuses(answer: Any, kind: str, count: int) -> list[Any] | str:
    """The per-request statuses of an /exchange answer, or the error text of a whole-request
    failure (``{"status": "err", "response": "..."}``)."""
    status = _field(answer, "status", f"{kind} answer")
    if status == "err":
        return str(_field(answer, "response", f"{kind} error answer"))
    if status != "ok":
        raise VenueMessageError(f"{kind} answer has status {status!r}: {_show(answer)}")
    response = _field(answer, "response", f"{kind} answer")
    data = _field(response, "data", f"{kind} answer response")
    statuses = _field(data, "statuses", f"{kind} answer data")
    if not isinstance(statuses, list) or len(statuses) != count:
        raise VenueMessageError(f"{kind} answer has {_show(statuses)} for {count} request(s)")
    return statuses


def parse_order_answer(answer: Any, cloids: Sequence[str]) -> tuple[OrderAck, ...]:
    """Acks of an ``order`` or ``batchModify`` answer, one per sent order (in order)."""
    statuses = _statuses(answer, "order", len(cloids))
    if isinstance(statuses, str):
        return tuple(OrderAck(c, OrderState.REJECTED, error=statuses) for c in cloids)
    return tuple(_order_ack(s, c) for s, c in zip(statuses, cloids, strict=True))


def _order_ack(status: Any, cloid: str) -> OrderAck:
    if isinstance(status, str):  # "waitingForFill" / "waitingForTrigger": accepted, no oid yet
        return OrderAck(cloid, OrderState.RESTING)
    if "resting" in status:
        return OrderAck(cloid, OrderState.RESTING, oid=_int(status["resting"], "oid", "resting"))
    if "filled" in status:
        filled = status["filled"]
        return OrderAck(
            cloid,
            OrderState.FILLED,
            oid=_int(filled, "oid", "filled"),
            filled_sz=_float(filled, "totalSz", "filled"),
            avg_px=_float(filled, "avgPx", "filled"),
        )
    if "error" in status:
        return OrderAck(cloid, OrderState.REJECTED, error=str(status["error"]))
    raise VenueMessageError(f"order status is none of resting/filled/error: {_show(status)}")


def parse_cancel_answer(answer: Any) -> CancelAck:
    """The ack of a one-cancel ``cancel`` / ``cancelByCloid`` answer."""
    statuses = _statuses(answer, "cancel", 1)
    if isinstance(statuses, str):
        return CancelAck(False, error=statuses)
    status = statuses[0]
    if status == "success":
        return CancelAck(True)
    if isinstance(status, Mapping) and "error" in status:
        return CancelAck(False, error=str(status["error"]))
    raise VenueMessageError(f"cancel status is neither success nor error: {_show(status)}")


def check_default_answer(answer: Any, kind: str) -> None:
    """Raise :class:`VenueRejectedError` unless an answer without statuses (``scheduleCancel``) is
    ``{"status": "ok", ...}``."""
    status = _field(answer, "status", f"{kind} answer")
    if status != "ok":
        raise VenueRejectedError(f"{kind} refused: {_show(answer.get('response', answer))}")


class VenueRejectedError(RuntimeError):
    """The venue refused a whole request (its text is in the message)."""


# -- streamed messages and /info answers -------------------------------------------------------


def parse_book(data: Any) -> BookSnapshot:
    where = "l2Book"
    levels = _field(data, "levels", where)
    if not isinstance(levels, list) or len(levels) != 2:
        raise VenueMessageError(f"l2Book 'levels' is not [bids, asks]: {_show(levels)}")
    bids, asks = (tuple(_level(level) for level in side) for side in levels)
    return BookSnapshot(str(_field(data, "coin", where)), bids, asks, _int(data, "time", where))


def _level(level: Any) -> BookLevel:
    # The common case first (a JSON object with numeric strings and an int count: one dict
    # lookup per field); anything else takes the checked path below, which names what is wrong.
    if type(level) is dict:
        try:
            px = float(level["px"])
            sz = float(level["sz"])
            n = level["n"]
        except (KeyError, TypeError, ValueError):
            pass
        else:
            if type(n) is int and math.isfinite(px) and math.isfinite(sz):
                return BookLevel(px, sz, n)
    return BookLevel(
        _float(level, "px", "l2Book level"),
        _float(level, "sz", "l2Book level"),
        _int(level, "n", "l2Book level"),
    )


def parse_trades(data: Any) -> tuple[Trade, ...]:
    if not isinstance(data, list):
        raise VenueMessageError(f"trades data is not a list: {_show(data)}")
    return tuple(
        Trade(
            coin=str(_field(t, "coin", "trade")),
            is_buy=_side(t, "trade"),
            px=_float(t, "px", "trade"),
            sz=_float(t, "sz", "trade"),
            time_ms=_int(t, "time", "trade"),
            tid=_int(t, "tid", "trade"),
        )
        for t in data
    )


def parse_asset_ctx(data: Any) -> AssetContext:
    where = "activeAssetCtx"
    ctx = _field(data, "ctx", where)
    mid = ctx.get("midPx") if isinstance(ctx, Mapping) else None
    premium = ctx.get("premium") if isinstance(ctx, Mapping) else None
    return AssetContext(
        coin=str(_field(data, "coin", where)),
        funding_rate=_float(ctx, "funding", where),
        mark_px=_float(ctx, "markPx", where),
        oracle_px=_float(ctx, "oraclePx", where),
        mid_px=None if mid is None else _float(ctx, "midPx", where),
        open_interest=_float(ctx, "openInterest", where),
        premium=None if premium is None else _float(ctx, "premium", where),
    )


def parse_order_updates(data: Any) -> tuple[OrderUpdate, ...]:
    if not isinstance(data, list):
        raise VenueMessageError(f"orderUpdates data is not a list: {_show(data)}")
    updates = []
    for item in data:
        order = _field(item, "order", "orderUpdate")
        status = str(_field(item, "status", "orderUpdate"))
        updates.append(
            OrderUpdate(
                coin=str(_field(order, "coin", "orderUpdate order")),
                oid=_int(order, "oid", "orderUpdate order"),
                cloid=_cloid(order),
                is_buy=_side(order, "orderUpdate order"),
                px=_float(order, "limitPx", "orderUpdate order"),
                sz=_float(order, "sz", "orderUpdate order"),
                orig_sz=_float(order, "origSz", "orderUpdate order"),
                status=status,
                state=order_state(status),
                time_ms=_int(item, "statusTimestamp", "orderUpdate"),
            )
        )
    return tuple(updates)


def parse_fill(fill: Any, snapshot: bool = False) -> Fill:
    where = "fill"
    return Fill(
        coin=str(_field(fill, "coin", where)),
        oid=_int(fill, "oid", where),
        cloid=_cloid(fill),
        tid=_int(fill, "tid", where),
        is_buy=_side(fill, where),
        px=_float(fill, "px", where),
        sz=_float(fill, "sz", where),
        fee=_float(fill, "fee", where),
        closed_pnl=_float(fill, "closedPnl", where),
        start_position=_float(fill, "startPosition", where),
        crossed=bool(_field(fill, "crossed", where)),
        liquidation=fill.get("liquidation") is not None,
        time_ms=_int(fill, "time", where),
        snapshot=snapshot,
    )


def parse_user_fills(data: Any) -> tuple[Fill, ...]:
    """The fills of a ``userFills`` stream message (snapshot or not)."""
    fills = _field(data, "fills", "userFills")
    snapshot = bool(data.get("isSnapshot", False))
    return tuple(parse_fill(f, snapshot) for f in _list(fills, "userFills 'fills'"))


def parse_fill_list(data: Any) -> tuple[Fill, ...]:
    """The fills of a ``userFills`` / ``userFillsByTime`` /info answer."""
    return tuple(parse_fill(f) for f in _list(data, "userFills answer"))


def _funding(item: Any, where: str, snapshot: bool = False) -> FundingPayment:
    return FundingPayment(
        coin=str(_field(item, "coin", where)),
        usdc=_float(item, "usdc", where),
        szi=_float(item, "szi", where),
        rate=_float(item, "fundingRate", where),
        time_ms=_int(item, "time", where),
        snapshot=snapshot,
    )


def parse_user_fundings(data: Any) -> tuple[FundingPayment, ...]:
    """The payments of a ``userFundings`` stream message."""
    fundings = _field(data, "fundings", "userFundings")
    snapshot = bool(data.get("isSnapshot", False))
    entries = _list(fundings, "userFundings")
    return tuple(_funding(f, "userFundings entry", snapshot) for f in entries)


def parse_funding_history(data: Any) -> tuple[FundingPayment, ...]:
    """The payments of a ``userFunding`` /info answer: ``[{time, hash, delta: {type:
    "funding", coin, usdc, szi, fundingRate}}]`` (other delta types are skipped)."""
    payments = []
    for item in _list(data, "userFunding answer"):
        delta = _field(item, "delta", "userFunding entry")
        if _field(delta, "type", "userFunding delta") != "funding":
            continue
        payments.append(_funding({**delta, "time": _field(item, "time", "userFunding")}, "delta"))
    return tuple(payments)


def parse_clearinghouse(data: Any) -> AccountState:
    where = "clearinghouseState"
    positions = []
    for item in _list(_field(data, "assetPositions", where), "assetPositions"):
        p = _field(item, "position", "assetPosition")
        positions.append(
            Position(
                coin=str(_field(p, "coin", "position")),
                szi=_float(p, "szi", "position"),
                entry_px=_optional_float(p, "entryPx", "position"),
                unrealized_pnl=_float(p, "unrealizedPnl", "position"),
                liquidation_px=_optional_float(p, "liquidationPx", "position"),
                margin_used=_float(p, "marginUsed", "position"),
            )
        )
    summary = _field(data, "marginSummary", where)
    return AccountState(
        positions=tuple(positions),
        account_value=_float(summary, "accountValue", "marginSummary"),
        total_margin_used=_float(summary, "totalMarginUsed", "marginSummary"),
        total_ntl_pos=_float(summary, "totalNtlPos", "marginSummary"),
        withdrawable=_float(data, "withdrawable", where),
        time_ms=_int(data, "time", where) if "time" in data else None,
    )


def parse_open_order(order: Any) -> OpenOrder:
    where = "open order"
    return OpenOrder(
        coin=str(_field(order, "coin", where)),
        oid=_int(order, "oid", where),
        cloid=_cloid(order),
        is_buy=_side(order, where),
        px=_float(order, "limitPx", where),
        sz=_float(order, "sz", where),
        orig_sz=_float(order, "origSz", where) if "origSz" in order else _float(order, "sz", where),
        tif=order.get("tif"),
        reduce_only=bool(order.get("reduceOnly", False)),
        time_ms=_int(order, "timestamp", where),
    )


def parse_open_orders(data: Any) -> tuple[OpenOrder, ...]:
    """A ``frontendOpenOrders`` (or ``openOrders``) answer."""
    return tuple(parse_open_order(o) for o in _list(data, "frontendOpenOrders answer"))


def parse_order_status(data: Any) -> OrderStatus:
    """An ``orderStatus`` answer: ``{"status": "order", "order": {"order", "status",
    "statusTimestamp"}}`` or ``{"status": "unknownOid"}``."""
    status = _field(data, "status", "orderStatus answer")
    if status == "unknownOid":
        return OrderStatus(OrderState.UNKNOWN, "unknownOid", None, None)
    if status != "order":
        raise VenueMessageError(f"orderStatus answer has status {status!r}: {_show(data)}")
    record = _field(data, "order", "orderStatus answer")
    word = str(_field(record, "status", "orderStatus order"))
    return OrderStatus(
        state=order_state(word),
        status=word,
        order=parse_open_order(_field(record, "order", "orderStatus order")),
        time_ms=_int(record, "statusTimestamp", "orderStatus order"),
    )


# -- field access ------------------------------------------------------------------------------


def _show(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _field(obj: Any, key: str, where: str) -> Any:
    if not isinstance(obj, Mapping):
        raise VenueMessageError(f"{where} is not an object: {_show(obj)}")
    if key not in obj:
        raise VenueMessageError(f"{where} lacks {key!r}: {_show(obj)}")
    return obj[key]


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise VenueMessageError(f"{where} is not a list: {_show(value)}")
    return value


def _float(obj: Any, key: str, where: str) -> float:
    raw = _field(obj, key, where)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise VenueMessageError(f"{where} {key!r} is not a number: {raw!r}") from None
    if not math.isfinite(value):
        raise VenueMessageError(f"{where} {key!r} is not finite: {raw!r}")
    return value


def _optional_float(obj: Any, key: str, where: str) -> float | None:
    return None if _field(obj, key, where) is None else _float(obj, key, where)


def _int(obj: Any, key: str, where: str) -> int:
    raw = _field(obj, key, where)
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise VenueMessageError(f"{where} {key!r} is not an integer: {raw!r}")
    return raw


def _side(obj: Any, where: str) -> bool:
    side = _field(obj, "side", where)
    if side not in ("A", "B"):
        raise VenueMessageError(f"{where} 'side' is {side!r}: want 'A' (ask) or 'B' (bid)")
    return bool(side == "B")


def _cloid(obj: Mapping[str, Any]) -> str | None:
    cloid = obj.get("cloid")
    return None if cloid is None else str(cloid).lower()
