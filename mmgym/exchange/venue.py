"""The paper venue: a PerpMM market (one env) traded through Hyperliquid-shaped orders.

The user's resting bid and ask of each perp are the kernel agent's quotes. At each decision
interval the venue encodes them into an action with :func:`mmgym.core.orders.encode_quotes`
(exact), steps the simulator one interval, and books what the kernel's accounting booked: maker
fills (pick-offs included) at the quote's price with the maker fee, funding payments and a
liquidation. docs/live.md lists the rules; the main ones:

- one resting bid and one ask per perp (the kernel's agent model);
- Alo and Gtc limit orders only; a crossing Alo is rejected as Hyperliquid rejects it, a
  crossing Gtc is refused (the agent never takes liquidity), Ioc is refused;
- sizes within ``[min_quote_size, max_quote_size]``; prices the action can express at the
  current mid (a resting pair the mid drifted away from is canceled, ``outOfRangeCanceled``);
- an order placed between two decisions reaches the book after the market's latency in the
  next interval; until then the order it replaced can still fill (that fill carries the
  replaced order's oid);
- fills are reported once per order and decision interval (the kernel aggregates the
  interval's matches), with their exact sizes;
- each perp's hedge venue is its own coin ``<COIN>-HEDGE``: a Gtc order on it sets the hedge
  position the kernel's child-order scheduler works toward (the action's hedge fraction).

Pure Python and NumPy, no I/O: the server (:mod:`mmgym.exchange.server`) drives it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np

from mmgym.core.kernel import LIQUIDATED
from mmgym.core.layout import pack_params
from mmgym.core.orders import QUOTE_DTYPE, decode_actions, decoder_params, encode_quotes
from mmgym.core.params import MarketParams
from mmgym.core.rng import seeds_from
from mmgym.envs.perp_mm import PerpMMSimulator
from mmgym.exchange import wire
from mmgym.exchange.orders import FILLED_TOLERANCE, Order, OrderBook

HEDGE_SUFFIX = "-HEDGE"
ZERO_ADDRESS = "0x" + "0" * 40
ZERO_HASH = "0x" + "0" * 64
SCHEDULE_CANCEL_LEAD_MS = 5000
SCHEDULE_CANCEL_PER_DAY = 10
DAY_MS = 24 * 3600 * 1000
TIFS = ("Alo", "Gtc", "Ioc")


class OrderRefusedError(ValueError):
    """An order the venue refuses; the message is the status's error text."""


class PostOnlyRejectedError(OrderRefusedError):
    """An Alo order that would cross: rejected with an oid, as Hyperliquid rejects it."""

    def __init__(self, text: str, order: Order) -> None:
        super().__init__(text)
        self.order = order


class MarketClosedError(RuntimeError):
    """The market's episode ended (truncated or liquidated): it no longer advances."""


@dataclass(frozen=True)
class Coin:
    """A listed coin: a perp (asset index = perp index) or the hedge venue of perp ``perp``
    (``<COIN>-HEDGE``, asset index ``num_assets + perp``)."""

    name: str
    asset: int
    sz_decimals: int
    perp: int
    hedge: bool = False


@dataclass(frozen=True)
class Event:
    """One websocket message: ``channel``, the subscription key it goes to (a coin or the
    user, lower case) and its ``data``."""

    channel: str
    key: str
    data: Any


def funding_aligned_epoch(epoch_ms: int, first_funding_tick: int, params: MarketParams) -> int:
    """The market's start on the venue's clock: ``epoch_ms`` moved back (by less than one
    funding interval) so that its funding times fall on multiples of the funding interval, as
    Hyperliquid's hourly funding falls on the hour. The kernel draws the first funding's phase
    at random (``random_funding_phase``): a market starts at a random moment of the interval."""
    interval_ms = round(params.funding_interval_seconds * 1000.0)
    first_ms = round(first_funding_tick * params.tick_seconds * 1000.0)
    return epoch_ms - (epoch_ms + first_ms) % interval_ms


def sz_decimals_for(params: MarketParams) -> int:
    """The coins' szDecimals: ``6 - decimals(tick_size)``, so that every tick is a valid
    price up to 5 significant figures."""
    places = wire.tick_decimals(params.tick_size)
    if places > wire.MAX_PERP_DECIMALS:
        raise ValueError(
            f"tick_size {params.tick_size} has {places} decimals; Hyperliquid prices have at most "
            f"{wire.MAX_PERP_DECIMALS}"
        )
    return wire.MAX_PERP_DECIMALS - places


_COMPILED: set[int] = set()
"""Numbers of perps whose decision path this process has compiled."""


class PaperVenue:
    """One PerpMM market of ``params`` seeded ``seed``, its coins and one user's account.

    ``coins`` names the perps (one per perp of the market); ``user`` is the account's address;
    time stamps are the epoch plus the simulated time, the epoch being ``epoch_ms`` moved back
    so that funding falls on multiples of the funding interval (:func:`funding_aligned_epoch`).
    ``warm``: compile the decision path on construction (once per process and number of
    perps), not in the first advance.
    """

    def __init__(
        self,
        params: MarketParams,
        seed: int,
        coins: Sequence[str],
        user: str,
        epoch_ms: int,
        *,
        warm: bool = True,
    ) -> None:
        if len(coins) != params.num_assets:
            raise ValueError(
                f"{len(coins)} coin names {list(coins)} for a market of {params.num_assets} "
                "perps: give one name per perp"
            )
        if len(set(coins)) != len(coins):
            raise ValueError(f"coin names must differ, got {list(coins)}")
        self.params = params.validate()
        self.user = user.lower()
        self.epoch_ms = int(epoch_ms)
        sz_decimals = sz_decimals_for(params)
        self.coins = tuple(Coin(name, k, sz_decimals, k) for k, name in enumerate(coins))
        """The perps."""
        k = len(coins)
        self.hedge_coins = tuple(
            Coin(f"{c.name}{HEDGE_SUFFIX}", k + c.perp, sz_decimals, c.perp, hedge=True)
            for c in self.coins
        )
        """The hedge venue of each perp, as its own coin."""
        self.listed = self.coins + self.hedge_coins
        self._coin_by_name = {c.name: c for c in self.listed}
        self.sim = PerpMMSimulator(1, params, parallel=False)
        self.sim.reset(np.ones(1, dtype=np.bool_), seeds_from(seed, 1))
        self.epoch_ms = funding_aligned_epoch(
            int(epoch_ms), int(self.account["next_funding_tick"]), params
        )
        self._decoder = decoder_params(pack_params(params))
        k = params.num_assets
        self._quotes = np.zeros((1, k), dtype=QUOTE_DTYPE)
        self._decoded = np.zeros((1, k), dtype=QUOTE_DTYPE)
        self._action = np.zeros((1, 5 * k), dtype=np.float64)
        self._cancelled = np.zeros(1, dtype=np.int64)
        self._no_reset = np.zeros(1, dtype=np.bool_)
        self.book = OrderBook()
        self._hedge_entry: dict[int, float] = {}
        """Perp -> average entry price of its hedge position."""
        self._slot_owner: dict[tuple[int, bool], int] = {}
        """(perp, is_buy) -> oid of the order whose quote sits in the kernel."""
        self.fills: list[dict[str, Any]] = []
        self.fundings: list[dict[str, Any]] = []
        """The user's funding payments (``userFunding`` entries)."""
        self.funding_rates: list[dict[str, Any]] = []
        """Every coin's settled funding rates (``fundingHistory`` entries)."""
        self.outbox: list[Event] = []
        """Websocket messages not yet sent (the server drains it)."""
        self._next_tid = 1
        self._cancel_at: int | None = None
        self._cancel_triggers: list[int] = []
        self.ended: str | None = None
        """None while the market runs; ``truncated`` or ``liquidated`` after its end."""
        self.day_volume = np.zeros(k)
        """Taker notional traded per perp (the ``dayNtlVlm`` of the asset context)."""
        self.steps = 0
        self.on_crowd_event: Callable[[dict[str, Any]], None] | None = None
        """Called after each interval in which crowd accounts were liquidated or forced
        orders traded, with :meth:`crowd_event` (the exchange's ``market_log``)."""
        self._crowd_liquidations = 0
        if warm and params.num_assets not in _COMPILED:
            # Compile the decision path now (a throwaway market of the same shape), so that the
            # first /paper/advance does not spend a cold compile (tens of seconds) in a request.
            PaperVenue(params, seed, coins, user, epoch_ms, warm=False).advance(1)
            _COMPILED.add(params.num_assets)

    # --- state --------------------------------------------------------------------------------

    @property
    def assets(self) -> np.ndarray:
        """The kernel's per-perp records of the one env (views)."""
        return self.sim.assets[0]

    @property
    def account(self) -> np.void:
        """The kernel's account record of the one env (a view)."""
        return self.sim.accounts[0]

    def time_ms(self) -> int:
        """The venue's clock: the epoch plus the simulated time (ms)."""
        seconds = int(self.account["tick"]) * self.params.tick_seconds
        return self.epoch_ms + round(seconds * 1000.0)

    def coin(self, name: str) -> Coin | None:
        """The listed coin ``name``."""
        return self._coin_by_name.get(name)

    def coin_of_asset(self, asset: object) -> Coin | None:
        """The listed coin with asset index ``asset``."""
        if isinstance(asset, int) and not isinstance(asset, bool) and 0 <= asset < len(self.listed):
            return self.listed[asset]
        return None

    def best_ticks(self, perp: int) -> tuple[int, int]:
        """The background book's best bid and ask (ticks)."""
        a = self.assets[perp]
        return int(a["best_bid"]), int(a["best_ask"])

    def price_text(self, ticks: int, coin: Coin) -> str:
        """A tick price as a wire price."""
        return wire.price(ticks * self.params.tick_size, coin.sz_decimals)

    def _emit(self, channel: str, key: str, data: Any) -> None:
        self.outbox.append(Event(channel, key.lower(), data))

    def _order_update(self, order: Order) -> None:
        self._emit("orderUpdates", self.user, [order.update_view()])

    # --- orders -------------------------------------------------------------------------------

    def place(self, order_wire: Any, replacing: Order | None = None) -> dict[str, Any]:
        """Place one wire order (``{a, b, p, s, r, t, c?}``); the status of the order response:
        ``{"resting": {"oid"}}`` or ``{"error": text}``. ``replacing``: the order a batchModify
        cancels if this one is accepted."""
        try:
            order, perp = self._accept(order_wire, replacing)
        except PostOnlyRejectedError as err:
            self.book.record(err.order)
            self._order_update(err.order)
            return {"error": str(err)}
        except OrderRefusedError as err:
            return {"error": str(err)}
        now = self.time_ms()
        if replacing is not None:
            self.book.close(replacing, "canceled", now)
            self._order_update(replacing)
        self.book.add(order, perp)
        self._order_update(order)
        resting: dict[str, Any] = {"oid": order.oid}
        if order.cloid is not None:
            resting["cloid"] = order.cloid
        return {"resting": resting}

    def _accept(self, w: Any, replacing: Order | None) -> tuple[Order, int]:
        """The order ``w`` describes, or OrderRefusedError naming the rule it breaks."""
        if not isinstance(w, dict):
            raise OrderRefusedError("Paper exchange: an order must be an object {a, b, p, s, r, t}")
        coin = self.coin_of_asset(w.get("a"))
        if coin is None:
            raise OrderRefusedError(
                f"Paper exchange: unknown asset {w.get('a')!r} (meta lists 0 to "
                f"{len(self.listed) - 1})"
            )
        asset = coin.asset
        if self.ended is not None:
            raise OrderRefusedError(
                wire.with_asset(f"Paper exchange: the market has ended ({self.ended}).", asset)
            )
        is_buy = w.get("b")
        reduce_only = w.get("r", False)
        if not isinstance(is_buy, bool) or not isinstance(reduce_only, bool):
            raise OrderRefusedError(
                wire.with_asset("Paper exchange: b and r must be booleans.", asset)
            )
        tif = _tif(w.get("t"))
        if tif is None:
            raise OrderRefusedError(
                wire.with_asset(
                    "Paper exchange: only limit orders {'limit': {'tif': 'Alo' | 'Gtc'}} are "
                    "served (no trigger orders).",
                    asset,
                )
            )
        px = wire.decimal_of(w.get("p"))
        if (
            px is None
            or not wire.valid_price(px, coin.sz_decimals)
            or not wire.on_tick_grid(px, self.params.tick_size)
        ):
            raise OrderRefusedError(wire.with_asset(wire.TICK_ERROR, asset))
        sz = wire.decimal_of(w.get("s"))
        if sz is None or not wire.valid_size(sz, coin.sz_decimals):
            raise OrderRefusedError(wire.with_asset(wire.SIZE_ERROR, asset))
        cloid = self._cloid(w.get("c"), asset, replacing)
        if coin.hedge:
            hedge = self._hedge_order(coin, is_buy, float(sz), tif, reduce_only, replacing)
            hedge.limit_px, hedge.cloid = str(w["p"]), cloid
            return hedge, coin.asset
        if tif == "Ioc":
            raise OrderRefusedError(
                wire.with_asset(
                    "Paper exchange: Ioc orders are refused: the simulated agent only makes "
                    "liquidity (use Alo or Gtc).",
                    asset,
                )
            )
        size = float(sz)
        p = self.params
        if size > p.max_quote_size or size < p.min_quote_size:
            raise OrderRefusedError(
                wire.with_asset(
                    f"Paper exchange: size {sz} is outside the market's quote sizes "
                    f"[{p.min_quote_size:g}, {p.max_quote_size:g}] (min_quote_size, "
                    "max_quote_size).",
                    asset,
                )
            )
        perp = coin.asset
        resting = self.book.resting_order(perp, is_buy)
        if resting is not None and (replacing is None or resting.oid != replacing.oid):
            side = "bid" if is_buy else "ask"
            raise OrderRefusedError(
                wire.with_asset(
                    f"Paper exchange: one resting {side} per coin (order {resting.oid} rests); "
                    "cancel or modify it first.",
                    asset,
                )
            )
        if reduce_only and not self._reduces(perp, is_buy):
            raise OrderRefusedError(wire.with_asset(wire.REDUCE_ONLY_ERROR, asset))
        ticks = round(px / Decimal(repr(float(p.tick_size))))
        order = self._new_order(coin, is_buy, str(w["p"]), int(ticks), size, tif, cloid)
        order.reduce_only = reduce_only
        best_bid, best_ask = self.best_ticks(perp)
        if _crosses(is_buy, order.ticks, best_ask if is_buy else best_bid):
            bbo = (self.price_text(best_bid, coin), self.price_text(best_ask, coin))
            if tif == "Alo":
                order.status = "badAloPxRejected"
                raise PostOnlyRejectedError(wire.post_only_error(*bbo, asset), order)
            raise OrderRefusedError(
                wire.with_asset(
                    f"Paper exchange: a Gtc order that would cross is refused (bbo was "
                    f"{bbo[0]}@{bbo[1]}): the simulated agent only makes liquidity.",
                    asset,
                )
            )
        other = self.book.resting_order(perp, not is_buy)
        if other is not None and other is not replacing and _crosses(is_buy, ticks, other.ticks):
            raise OrderRefusedError(
                wire.with_asset(
                    f"Paper exchange: the order would cross your own resting order "
                    f"{other.oid} at {other.limit_px}.",
                    asset,
                )
            )
        if not self._representable(perp, is_buy, order.ticks, size):
            raise OrderRefusedError(
                wire.with_asset(
                    f"Paper exchange: price {px} is beyond what the market's action can express "
                    f"with your other order at the current mid (a bid and an ask at most "
                    f"2 x max_half_spread_ticks + 1 ticks apart, centred within "
                    f"max_skew_ticks={p.max_skew_ticks:g} ticks of the mid).",
                    asset,
                )
            )
        return order, perp

    def _cloid(self, cloid: object, asset: int, replacing: Order | None) -> str | None:
        """A valid cloid not used by another resting order (lower case), or None."""
        if cloid is None:
            return None
        if not isinstance(cloid, str) or not wire.is_cloid(cloid):
            raise OrderRefusedError(
                wire.with_asset("Paper exchange: cloid must be 0x and 32 hex digits.", asset)
            )
        known = self.book.find(cloid.lower())
        if known is not None and known.is_open and known is not replacing:
            raise OrderRefusedError(
                wire.with_asset(
                    f"Paper exchange: cloid {cloid.lower()} is used by resting order {known.oid}.",
                    asset,
                )
            )
        return cloid.lower()

    def _hedge_order(
        self,
        coin: Coin,
        is_buy: bool,
        size: float,
        tif: str,
        reduce_only: bool,
        replacing: Order | None,
    ) -> Order:
        """An order on a hedge coin: a parent order the hedge venue works as taker children
        over ``hedge_horizon_decisions`` decisions, toward the position it aims at."""
        asset, k = coin.asset, coin.perp
        if tif != "Gtc" or reduce_only:
            raise OrderRefusedError(
                wire.with_asset(
                    "Paper exchange: the hedge venue takes Gtc orders without reduce-only, "
                    "worked as taker child orders over the market's hedge_horizon_decisions "
                    "(their price is not a limit).",
                    asset,
                )
            )
        resting = self.book.working(asset)
        if resting is not None and resting is not replacing:
            raise OrderRefusedError(
                wire.with_asset(
                    f"Paper exchange: one working order per hedge coin (order {resting.oid} "
                    "works); cancel or modify it first.",
                    asset,
                )
            )
        a = self.assets[k]
        inventory = float(a["inventory"])
        target = float(a["hedge_position"]) + (size if is_buy else -size)
        if not _offsets(target, inventory):
            raise OrderRefusedError(
                wire.with_asset(
                    f"Paper exchange: the hedge venue offsets the perp's position: a hedge "
                    f"position of {wire.number(target)} against {wire.number(inventory)} "
                    f"{self.coins[k].name} is beyond it (opposite sign, no larger).",
                    asset,
                )
            )
        order = self._new_order(coin, is_buy, "0", 0, size, tif, None)
        order.target = target
        return order

    def _new_order(
        self,
        coin: Coin,
        is_buy: bool,
        limit_px: str,
        ticks: int,
        size: float,
        tif: str,
        cloid: str | None,
    ) -> Order:
        """An open order of ``coin`` with a fresh oid, stamped now."""
        now = self.time_ms()
        return Order(
            oid=self.book.new_oid(),
            coin=coin.name,
            asset=coin.asset,
            is_buy=is_buy,
            limit_px=limit_px,
            ticks=ticks,
            orig_sz=size,
            tif=tif,
            reduce_only=False,
            cloid=cloid,
            timestamp=now,
            status_timestamp=now,
        )

    def hedge_fraction(self, perp: int) -> float:
        """The action's hedge fraction that aims the hedge venue of ``perp`` at the working
        hedge order's target, or (none working) at the hedge position as it is."""
        a = self.assets[perp]
        inventory = float(a["inventory"])
        if inventory == 0.0:
            return 0.0
        coin = self.hedge_coins[perp]
        order = self.book.working(coin.asset)
        target = order.target if order is not None else float(a["hedge_position"])
        assert target is not None
        return min(1.0, max(0.0, -target / inventory))

    def _representable(self, perp: int, is_buy: bool, ticks: int, size: float) -> bool:
        """Whether the perp's quotes, with this side set to (ticks, size), encode exactly."""
        self._fill_quotes()
        side = "bid" if is_buy else "ask"
        self._quotes[f"{side}_px"][0, perp] = ticks
        self._quotes[f"{side}_size"][0, perp] = size
        scratch = self._action.copy()
        self._encode(scratch)
        return int(self._cancelled[0]) == 0 or not any(self._dropped(perp, scratch))

    def _dropped(self, perp: int, action: np.ndarray) -> list[bool]:
        """Per side (bid, ask) of ``perp``: asked for but not in ``action``'s quotes."""
        a = self.sim.assets
        decode_actions(action, a["best_bid"], a["best_ask"], self._decoder, self._decoded)
        asked, got = self._quotes[0, perp], self._decoded[0, perp]
        return [
            bool(asked["bid_size"] > 0.0 and not got["bid_size"] > 0.0),
            bool(asked["ask_size"] > 0.0 and not got["ask_size"] > 0.0),
        ]

    def _encode(self, action: np.ndarray) -> int:
        a = self.sim.assets
        return int(
            encode_quotes(
                self._quotes, a["best_bid"], a["best_ask"], self._decoder, action, self._cancelled
            )
        )

    def cancel(self, asset: object, key: object) -> str | dict[str, str]:
        """Cancel the resting order ``key`` (oid or cloid) of ``asset``: ``"success"`` or
        ``{"error": text}``."""
        coin = self.coin_of_asset(asset)
        order = self.book.find(key) if coin is not None else None
        if order is None or not order.is_open or order.asset != asset:
            suffix = asset if isinstance(asset, int) else 0
            return {"error": wire.with_asset(wire.MISSING_ORDER_ERROR, suffix)}
        self.book.close(order, "canceled", self.time_ms())
        self._order_update(order)
        return "success"

    def modify(self, key: object, order_wire: Any) -> dict[str, Any]:
        """A batchModify entry: cancel the resting order ``key`` (oid or cloid) and place
        ``order_wire`` under a new oid (the cloid stays); its order status."""
        found = self.book.find(key)
        if found is None or not found.is_open:
            return {"error": "Cannot modify canceled or filled order"}
        if isinstance(order_wire, dict) and "c" not in order_wire and found.cloid is not None:
            order_wire = {**order_wire, "c": found.cloid}
        return self.place(order_wire, replacing=found)

    def schedule_cancel(self, time_ms: object) -> str | None:
        """Set (or with None unset) the dead-man's switch; the refusal text, or None."""
        if time_ms is None:
            self._cancel_at = None
            return None
        if not isinstance(time_ms, int) or isinstance(time_ms, bool):
            return "Paper exchange: scheduleCancel time must be an integer (ms)"
        now = self.time_ms()
        if time_ms < now + SCHEDULE_CANCEL_LEAD_MS:
            return (
                f"Paper exchange: scheduleCancel time {time_ms} must be at least "
                f"{SCHEDULE_CANCEL_LEAD_MS} ms after the exchange's time {now}"
            )
        recent = [t for t in self._cancel_triggers if t > now - DAY_MS]
        if len(recent) >= SCHEDULE_CANCEL_PER_DAY:
            return (
                f"Paper exchange: scheduleCancel triggered {len(recent)} times in the last day "
                f"(at most {SCHEDULE_CANCEL_PER_DAY})"
            )
        self._cancel_at = time_ms
        return None

    def _close_all(self, status: str) -> None:
        now = self.time_ms()
        for order in self.book.open_orders():
            self.book.close(order, status, now)
            self._order_update(order)

    # --- the market ---------------------------------------------------------------------------

    def advance(self, steps: int = 1) -> int:
        """Advance the market ``steps`` decision intervals; returns the intervals stepped.
        MarketClosedError once the episode has ended."""
        done = 0
        for _ in range(steps):
            if self.ended is not None:
                if done:
                    break
                raise MarketClosedError(
                    f"the market has ended ({self.ended}); restart the exchange"
                )
            self._step()
            done += 1
        return done

    def _fill_quotes(self) -> None:
        """The quotes of the resting orders and the hedge fractions, into ``self._quotes``."""
        q = self._quotes
        for name in ("bid_px", "ask_px", "bid_size", "ask_size", "hedge_fraction"):
            q[name] = 0
        for (perp, is_buy), oid in self.book.resting.items():
            if perp >= len(self.coins):
                continue  # a hedge order: the hedge fraction below
            order = self.book.orders[oid]
            side = "bid" if is_buy else "ask"
            q[f"{side}_px"][0, perp] = order.ticks
            q[f"{side}_size"][0, perp] = self._size_to_send(order, perp)
        for perp in range(len(self.coins)):
            q["hedge_fraction"][0, perp] = self.hedge_fraction(perp)

    def _reduces(self, perp: int, is_buy: bool) -> bool:
        """Whether a bid (``is_buy``) or an ask reduces the position of ``perp``: one opposite
        to it and at least ``min_quote_size`` (a smaller one cannot be quoted)."""
        position = float(self.assets[perp]["inventory"])
        return abs(position) >= self.params.min_quote_size and (position > 0.0) != is_buy

    def _size_to_send(self, order: Order, perp: int) -> float:
        """The order's remaining size, cut to the position for a reduce-only order."""
        size = order.remaining
        if order.reduce_only:
            size = min(size, abs(float(self.assets[perp]["inventory"])))
        return size

    def _step(self) -> None:
        """One decision interval: quotes in, kernel step, fills, funding and market data out."""
        now = self.time_ms()
        if self._cancel_at is not None and now >= self._cancel_at:
            self._close_all("scheduledCancel")
            self._cancel_triggers.append(now)
            self._cancel_at = None
        for order in self.book.open_orders():
            if order.reduce_only and not self._reduces(order.asset, order.is_buy):
                self.book.close(order, "reduceOnlyCanceled", now)
                self._order_update(order)
            elif order.target is None and order.remaining < self.params.min_quote_size:
                self.book.close(order, "belowMinSizeCanceled", now)
                self._order_update(order)
            elif order.target is not None:
                inventory = float(self.assets[order.asset - len(self.coins)]["inventory"])
                if not _offsets(order.target, inventory):  # the kernel cannot hold it
                    self.book.close(order, "outOfRangeCanceled", now)
                    self._order_update(order)
        self._fill_quotes()
        if self._encode(self._action):
            for perp in range(len(self.coins)):
                for is_buy, dropped in zip(
                    (True, False), self._dropped(perp, self._action), strict=True
                ):
                    dropped_order = self.book.resting_order(perp, is_buy)
                    if dropped and dropped_order is not None:
                        self.book.close(dropped_order, "outOfRangeCanceled", now)
                        self._order_update(dropped_order)
            self._fill_quotes()
            self._encode(self._action)
        perps = len(self.coins)
        sent = {
            key: self.book.orders[oid] for key, oid in self.book.resting.items() if key[0] < perps
        }
        a = self.assets
        before = {
            name: a[name].copy()
            for name in (
                "inventory",
                "cash",
                "entry_price",
                "bid_qty",
                "ask_qty",
                "hedge_position",
                "hedge_cash",
            )
        }
        sizes = {
            key: float(self._quotes[0, key[0]]["bid_size" if key[1] else "ask_size"])
            for key in sent
        }
        next_funding = int(self.account["next_funding_tick"])
        self.sim.step(self._action, self._no_reset)
        self.steps += 1
        now = self.time_ms()
        fills: list[dict[str, Any]] = []
        for coin in self.coins:
            fills += self._book_fills(coin, before, sent, sizes, now)
            fills += self._liquidation_fill(coin, before, fills, now)
        for coin in self.hedge_coins:
            fills += self._hedge_fill(coin, before, now)
        if fills:
            self.fills.extend(fills)
            self._emit(
                "userFills", self.user, {"user": self.user, "isSnapshot": False, "fills": fills}
            )
        if int(self.account["next_funding_tick"]) != next_funding:
            self._book_funding(next_funding)
        if bool(self.sim.flags[LIQUIDATED, 0]):
            self._close_all("liquidatedCanceled")
            self.ended = "liquidated"
        elif bool(self.sim.terminated[0]) or bool(self.sim.truncated[0]):
            self.ended = "truncated"
        if self.on_crowd_event is not None:
            event = self.crowd_event(now)
            if event is not None:
                self.on_crowd_event(event)
        for coin in self.coins:
            self._emit_trades(coin, now)
            self._emit("l2Book", coin.name, self.l2_book(coin))
            self._emit(
                "activeAssetCtx", coin.name, {"coin": coin.name, "ctx": self.asset_ctx(coin.asset)}
            )
        for coin in self.hedge_coins:
            self._emit(
                "activeAssetCtx", coin.name, {"coin": coin.name, "ctx": self.asset_ctx(coin.asset)}
            )

    def crowd_event(self, now: int) -> dict[str, Any] | None:
        """The last interval's liquidations of the leveraged crowd and forced volume per perp
        (base units), or None when there were none: what a venue's liquidation feed would
        show, which the Hyperliquid API this exchange serves does not carry."""
        total = int(self.account["crowd_liquidations"])
        new, self._crowd_liquidations = total - self._crowd_liquidations, total
        a = self.assets
        forced = a["forced_buy_volume"] + a["forced_sell_volume"] + a["backstop_volume"]
        if new <= 0 and not (forced > 0).any():
            return None
        coins = {
            c.name: {
                "forced_buy": float(a["forced_buy_volume"][c.perp]),
                "forced_sell": float(a["forced_sell_volume"][c.perp]),
                "backstop": float(a["backstop_volume"][c.perp]),
                "mid": float(a["mid"][c.perp]),
            }
            for c in self.coins
        }
        return {"time_ms": now, "liquidations": new, "coins": coins}

    def _book_fills(
        self,
        coin: Coin,
        before: dict[str, np.ndarray],
        sent: dict[tuple[int, bool], Order],
        sizes: dict[tuple[int, bool], float],
        now: int,
    ) -> list[dict[str, Any]]:
        """The interval's maker fills of one perp, attributed to orders."""
        k = coin.asset
        a = self.assets[k]
        tick = self.params.tick_size
        position = float(before["inventory"][k])
        entry = float(before["entry_price"][k])
        out = []
        rejected = int(a["rejected_post_only"])
        candidates: list[Order] = []
        for is_buy in (True, False):
            side = "bid" if is_buy else "ask"
            filled = float(a[f"{side}_filled"])
            notional = float(a[f"{side}_notional"])
            held = float(a[f"{side}_qty"])
            prev_oid = self._slot_owner.get((k, is_buy), -1)
            prev = self.book.orders.get(prev_oid) if float(before[f"{side}_qty"][k]) > 0 else None
            cur = sent.get((k, is_buy))
            parts: list[tuple[Order, float]] = []
            if filled > 0.0:
                if prev is None or cur is None or prev.oid == cur.oid:
                    owner = prev if prev is not None else cur
                    assert owner is not None, "a fill with no quote in the kernel"
                    parts.append((owner, filled))
                elif prev.ticks != cur.ticks:
                    p_prev, p_cur = prev.ticks * tick, cur.ticks * tick
                    q_prev = (notional - p_cur * filled) / (p_prev - p_cur)
                    q_prev = min(filled, max(0.0, q_prev))
                    if q_prev <= FILLED_TOLERANCE:
                        q_prev = 0.0
                    elif filled - q_prev <= FILLED_TOLERANCE:
                        q_prev = filled
                    parts += [(prev, q_prev), (cur, filled - q_prev)]
                else:
                    q_cur = min(filled, max(0.0, sizes[(k, is_buy)] - held))
                    parts += [(prev, filled - q_cur), (cur, q_cur)]
            for order, qty in parts:
                if qty <= 0.0:
                    continue
                fill, position, entry = self._fill(coin, order, qty, position, entry, now)
                out.append(fill)
            self._slot_owner.pop((k, is_buy), None)
            if cur is not None and held > 0.0:
                self._slot_owner[(k, is_buy)] = cur.oid
            if cur is not None and cur.is_open:
                if held > 0.0 and abs(cur.remaining - held) <= FILLED_TOLERANCE:
                    cur.remaining = held  # the kernel's size: resent bit for bit
                if cur.remaining <= FILLED_TOLERANCE:
                    self.book.close(cur, "filled", now)
                    self._order_update(cur)
                elif held == 0.0:
                    candidates.append(cur)
        self._reject_on_arrival(k, candidates, rejected, now)
        return out

    def _reject_on_arrival(self, k: int, candidates: list[Order], rejected: int, now: int) -> None:
        """Orders that reached the book crossed (the book moved during the latency): the kernel
        rejected them post-only. ``candidates`` are the sent orders the kernel does not hold."""
        if rejected <= 0 or not candidates:
            return
        if rejected < len(candidates):
            best_bid, best_ask = self.best_ticks(k)
            candidates = sorted(
                candidates,
                key=lambda o: (o.ticks - best_ask) if o.is_buy else (best_bid - o.ticks),
                reverse=True,
            )[:rejected]
        for order in candidates:
            self.book.close(order, "badAloPxRejected" if order.tif == "Alo" else "rejected", now)
            self._order_update(order)

    def _fill(
        self, coin: Coin, order: Order, qty: float, position: float, entry: float, now: int
    ) -> tuple[dict[str, Any], float, float]:
        """The wire fill of ``qty`` of ``order``; the position and entry price after it."""
        px = order.ticks * self.params.tick_size
        signed = qty if order.is_buy else -qty
        closed_pnl, new_position, new_entry = _trade(position, entry, signed, px)
        order.filled += qty
        order.remaining -= qty
        fill = self._fill_record(
            coin, order.limit_px, signed, position, closed_pnl, order.oid, order.cloid, now,
            fee=self.params.maker_fee * px * qty, crossed=False,
        )  # fmt: skip
        return fill, new_position, new_entry

    def _hedge_fill(
        self, coin: Coin, before: dict[str, np.ndarray], now: int
    ) -> list[dict[str, Any]]:
        """The interval's hedge child (at most one), as a taker fill of the working hedge
        order (or, none working, of the venue's own order keeping the hedge within the perp
        position)."""
        k = coin.perp
        a = self.assets[k]
        start = float(before["hedge_position"][k])
        signed = float(a["hedge_position"]) - start
        if signed == 0.0:
            return []
        spent = float(before["hedge_cash"][k]) - float(a["hedge_cash"])
        fee_rate = self.params.hedge_fee
        px = spent / (signed + fee_rate * abs(signed))
        order = self.book.working(coin.asset)
        if order is not None and order.is_buy == (signed > 0.0):
            oid, cloid = order.oid, order.cloid
            order.filled += abs(signed)
            order.remaining -= abs(signed)
            if order.remaining <= FILLED_TOLERANCE:
                self.book.close(order, "filled", now)
                self._order_update(order)
        else:
            oid, cloid = self.book.new_oid(), None
        entry = self._hedge_entry.get(k, 0.0)
        closed_pnl, _, self._hedge_entry[k] = _trade(start, entry, signed, px)
        fill = self._fill_record(
            coin, wire.number(px), signed, start, closed_pnl, oid, cloid, now,
            fee=fee_rate * px * abs(signed), crossed=True,
        )  # fmt: skip
        return [fill]

    def _liquidation_fill(
        self, coin: Coin, before: dict[str, np.ndarray], fills: list[dict[str, Any]], now: int
    ) -> list[dict[str, Any]]:
        """The forced close of a liquidation, as one taker fill at its all-in price."""
        k = coin.asset
        a = self.assets[k]
        maker = [f for f in fills if f["coin"] == coin.name]
        signed_maker = sum(float(f["sz"]) * (1 if f["side"] == "B" else -1) for f in maker)
        start = float(before["inventory"][k]) + signed_maker
        forced = float(a["inventory"]) - start
        if abs(forced) <= 1e-12:
            return []
        maker_out = sum(
            float(f["sz"]) * (1 if f["side"] == "B" else -1) * float(f["px"]) + float(f["fee"])
            for f in maker
        )
        spent = float(before["cash"][k]) - float(a["cash"]) - maker_out - float(a["funding_paid"])
        px = spent / forced
        fill = self._fill_record(
            coin, wire.number(px), forced, start,
            _trade(start, float(before["entry_price"][k]), forced, px)[0],
            self.book.new_oid(), None, now, fee=0.0, crossed=True,
        )  # fmt: skip
        fill["liquidation"] = {
            "liquidatedUser": self.user,
            "markPx": wire.price(float(a["mark"]), coin.sz_decimals),
            "method": "market",
        }
        return [fill]

    def _fill_record(
        self,
        coin: Coin,
        px: str,
        signed: float,
        start: float,
        closed_pnl: float,
        oid: int,
        cloid: str | None,
        now: int,
        fee: float,
        crossed: bool,
    ) -> dict[str, Any]:
        """A ``userFills`` entry: ``signed`` base units (+ bought) at the wire price ``px``
        from position ``start``."""
        fill = {
            "coin": coin.name,
            "px": px,
            "sz": wire.number(abs(signed)),
            "side": "B" if signed > 0.0 else "A",
            "time": now,
            "startPosition": wire.number(start),
            "dir": _direction(start, signed),
            "closedPnl": wire.number(closed_pnl),
            "hash": ZERO_HASH,
            "oid": oid,
            "crossed": crossed,
            "fee": wire.number(fee),
            "tid": self._tid(),
            "feeToken": "USDC",
        }
        if cloid is not None:
            fill["cloid"] = cloid
        return fill

    def _tid(self) -> int:
        tid = self._next_tid
        self._next_tid += 1
        return tid

    def _book_funding(self, funding_tick: int) -> None:
        """A funding settlement happened at ``funding_tick``: the rates and the user's payments."""
        time = self.epoch_ms + round(funding_tick * self.params.tick_seconds * 1000.0)
        payments = []
        for coin in self.coins:
            a = self.assets[coin.asset]
            rate = float(a["funding_history"][0])
            self.funding_rates.append(
                {
                    "coin": coin.name,
                    "fundingRate": wire.number(rate),
                    "premium": wire.number(float(a["premium"])),
                    "time": time,
                }
            )
            paid = float(a["funding_paid"])
            if paid != 0.0:
                payments.append(
                    {
                        "time": time,
                        "coin": coin.name,
                        "usdc": wire.number(-paid),
                        "szi": wire.number(float(a["inventory"])),
                        "fundingRate": wire.number(rate),
                    }
                )
        if payments:
            self.fundings.extend(payments)
            self._emit(
                "userFundings",
                self.user,
                {"user": self.user, "isSnapshot": False, "fundings": payments},
            )

    def _emit_trades(self, coin: Coin, now: int) -> None:
        """One print per aggressor side and tick of the interval's taker flow (the tick's
        volume, stamped at the tick's end, at the interval's last trade price: the kernel
        keeps no price per tick)."""
        w = self.sim.windows[0, coin.perp]
        ticks = w["buy_volume"].shape[0]
        tick_ms = self.params.tick_seconds * 1000.0
        start = now - round(ticks * tick_ms)
        last = float(self.assets[coin.asset]["last_trade"])
        px = wire.price(last, coin.sz_decimals)
        trades = []
        for t in range(ticks):
            stamp = start + round((t + 1) * tick_ms)
            for side, name in (("B", "buy_volume"), ("A", "sell_volume")):
                volume = float(w[name][t])
                if volume > 0.0:
                    self.day_volume[coin.asset] += volume * last
                    trades.append(
                        {
                            "coin": coin.name,
                            "side": side,
                            "px": px,
                            "sz": wire.number(volume),
                            "hash": ZERO_HASH,
                            "time": stamp,
                            "tid": self._tid(),
                            "users": [ZERO_ADDRESS, ZERO_ADDRESS],
                        }
                    )
        if trades:
            self._emit("trades", coin.name, trades)

    # --- views --------------------------------------------------------------------------------

    def l2_book(self, coin: Coin) -> dict[str, Any]:
        """The ``l2Book`` of ``coin``: the background book with the user's resting orders."""
        a = self.assets[coin.asset]
        levels = []
        for is_buy, best, depth, sign in (
            (True, int(a["best_bid"]), a["bid_depth"], -1),
            (False, int(a["best_ask"]), a["ask_depth"], 1),
        ):
            book: dict[int, list[float]] = {}
            for j, size in enumerate(depth):
                if size > 0.0:
                    book[best + sign * j] = [float(size), 1]
            own = self.book.resting_order(coin.asset, is_buy)
            if own is not None:
                level = book.setdefault(own.ticks, [0.0, 0])
                level[0] += own.remaining
                level[1] += 1
            ordered = sorted(book, reverse=is_buy)[: len(depth)]
            levels.append(
                [
                    {
                        "px": self.price_text(t, coin),
                        "sz": wire.number(book[t][0]),
                        "n": int(book[t][1]),
                    }
                    for t in ordered
                ]
            )
        return {"coin": coin.name, "time": self.time_ms(), "levels": levels}

    def asset_ctx(self, asset: int) -> dict[str, Any]:
        """The asset context of a listed coin (``activeAssetCtx``, ``metaAndAssetCtxs``). A
        hedge coin's prices are the oracle's (the hedge venue trades around it, with no book)."""
        coin = self.listed[asset]
        a = self.assets[coin.perp]
        sz = coin.sz_decimals
        oracle = wire.price(float(a["fair_price"]), sz)
        if coin.hedge:
            return {
                "funding": "0",
                "openInterest": "0",
                "prevDayPx": wire.price(self.params.initial_price, sz),
                "dayNtlVlm": "0",
                "premium": "0",
                "oraclePx": oracle,
                "markPx": oracle,
                "midPx": oracle,
                "impactPxs": None,
                "dayBaseVlm": "0",
            }
        estimate = float(self.sim.windows[0, coin.perp]["funding_estimate"])
        return {
            "funding": wire.number(estimate),
            "openInterest": wire.number(self.params.crowd_open_interest * 2.0),
            "prevDayPx": wire.price(self.params.initial_price, sz),
            "dayNtlVlm": wire.number(float(self.day_volume[coin.perp])),
            "premium": wire.number(float(a["premium"])),
            "oraclePx": oracle,
            "markPx": wire.price(float(a["mark"]), sz),
            "midPx": wire.price(float(a["mid"]), sz),
            "impactPxs": None,
            "dayBaseVlm": "0",
        }

    def meta(self) -> dict[str, Any]:
        """``meta``: the perps, then their hedge coins."""
        max_leverage = int(self.params.margin_tiers[0][1])
        return {
            "universe": [
                {"name": c.name, "szDecimals": c.sz_decimals, "maxLeverage": max_leverage}
                for c in self.listed
            ]
        }

    def clearinghouse_state(self) -> dict[str, Any]:
        """``clearinghouseState`` of the user: positions at the mark and the cross account."""
        e = self.account
        positions = []
        total_ntl = 0.0
        leverage = int(self.params.margin_tiers[0][1])
        for coin in self.coins:
            a = self.assets[coin.asset]
            q = float(a["inventory"])
            if q == 0.0:
                continue
            mark = float(a["mark"])
            entry = float(a["entry_price"])
            value = abs(q) * mark
            total_ntl += value
            upnl = q * (mark - entry)
            margin = value / leverage
            positions.append(
                {
                    "type": "oneWay",
                    "position": {
                        "coin": coin.name,
                        "szi": wire.number(q),
                        "leverage": {"type": "cross", "value": leverage},
                        "entryPx": wire.number(entry),
                        "positionValue": wire.number(value),
                        "unrealizedPnl": wire.number(upnl),
                        "returnOnEquity": wire.number(upnl / margin if margin else 0.0),
                        "liquidationPx": None,
                        "marginUsed": wire.number(margin),
                        "maxLeverage": leverage,
                        "cumFunding": {
                            "allTime": wire.number(self._funding_total(coin.name)),
                            "sinceOpen": "0",
                            "sinceChange": "0",
                        },
                    },
                }
            )
        for coin in self.hedge_coins:
            a = self.assets[coin.perp]
            q = float(a["hedge_position"])
            if q == 0.0:
                continue
            oracle = float(a["fair_price"])
            entry = self._hedge_entry.get(coin.perp, 0.0)
            upnl = q * (oracle - entry)
            positions.append(
                {
                    "type": "oneWay",
                    "position": {
                        "coin": coin.name,
                        "szi": wire.number(q),
                        "leverage": {"type": "cross", "value": 1},
                        "entryPx": wire.number(entry),
                        "positionValue": wire.number(abs(q) * oracle),
                        "unrealizedPnl": wire.number(upnl),
                        "returnOnEquity": "0",
                        "liquidationPx": None,
                        "marginUsed": "0",
                        "maxLeverage": 1,
                        "cumFunding": {"allTime": "0", "sinceOpen": "0", "sinceChange": "0"},
                    },
                }
            )
        equity = float(e["margin_equity"])
        summary = {
            "accountValue": wire.number(equity),
            "totalNtlPos": wire.number(total_ntl),
            "totalRawUsd": wire.number(equity - total_ntl),
            "totalMarginUsed": wire.number(total_ntl / leverage),
        }
        return {
            "marginSummary": summary,
            "crossMarginSummary": dict(summary),
            "crossMaintenanceMarginUsed": wire.number(float(e["maintenance_margin"])),
            "withdrawable": wire.number(max(0.0, equity - total_ntl / leverage)),
            "assetPositions": positions,
            "time": self.time_ms(),
        }

    def _funding_total(self, coin: str) -> float:
        return -sum(float(f["usdc"]) for f in self.fundings if f["coin"] == coin)


def _tif(order_type: object) -> str | None:
    """The tif of a limit order type ``{"limit": {"tif": ...}}``; None for anything else."""
    if not isinstance(order_type, dict) or set(order_type) != {"limit"}:
        return None
    limit = order_type["limit"]
    tif = limit.get("tif") if isinstance(limit, dict) else None
    return tif if tif in TIFS else None


def _offsets(hedge: float, inventory: float) -> bool:
    """Whether a hedge position offsets a perp position: opposite sign, no larger."""
    return hedge == 0.0 or (hedge * inventory < 0.0 and abs(hedge) <= abs(inventory) * (1 + 1e-12))


def _crosses(is_buy: bool, ticks: int, other_ticks: int) -> bool:
    """Whether a bid (``is_buy``) or an ask at ``ticks`` reaches an opposite price."""
    return ticks >= other_ticks if is_buy else ticks <= other_ticks


def _trade(position: float, entry: float, signed: float, px: float) -> tuple[float, float, float]:
    """Realised PnL, position and entry price after a trade (the kernel's accounting rule)."""
    new_position = position + signed
    if position == 0.0 or (position > 0.0) == (signed > 0.0):
        return 0.0, new_position, (entry * abs(position) + px * abs(signed)) / abs(new_position)
    closed = min(abs(signed), abs(position))
    pnl = closed * (px - entry) * (1.0 if position > 0.0 else -1.0)
    if abs(signed) > abs(position):
        return pnl, new_position, px
    return pnl, new_position, (0.0 if new_position == 0.0 else entry)


def _direction(position: float, signed: float) -> str:
    """Hyperliquid's ``dir`` of a fill."""
    after = position + signed
    if position > 0.0 and after < 0.0:
        return "Long > Short"
    if position < 0.0 and after > 0.0:
        return "Short > Long"
    if signed > 0.0:
        return "Close Short" if position < 0.0 else "Open Long"
    return "Close Long" if position > 0.0 else "Open Short"
