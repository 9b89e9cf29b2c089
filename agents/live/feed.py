"""The live market feed: venue messages into the simulator's event windows and the RiskLimiter's
inputs, so the one observation builder and the one limiter see live data as they see the
simulator's.

Each message is O(1) and keeps only what a decision needs (conflation): the newest book of a
coin replaces the one before, its mid goes into the tick slot of its time stamp; a trade adds
its size to its tick's buy or sell volume; the newest asset context replaces the previous one.
A burst of messages thus never queues work for the decision path: the decision reads the
newest state, whatever arrived in between.

:meth:`MarketFeed.close_interval` writes one decision interval's windows
(:func:`mmgym.core.layout.window_dtype` per perp, :data:`~mmgym.core.layout.ACCOUNT_WINDOW_DTYPE`
for the account) and starts the next. Within the interval, tick ``t`` covers the venue time
``(start + t * tick, start + (t + 1) * tick]``; a tick with no book carries the mid before it
(the simulator's mid of that tick is the book's at its end).

What the venue does not send is derived the way the simulator defines it (docs/live.md,
"The live runner"): the background book is the venue's book less the account's own resting
orders; the queue ahead of an own order is the rest of its level (it is assumed last in its
queue); equity is the session's collateral plus the cash of the fills and funding payments
plus the positions at the mark; maintenance margin is the market's tiers at the marks; the time
to funding follows the market's funding interval on the venue's clock (funding on its multiples).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from agents.deploy.risk import RiskInputs, VenueSpec
from agents.live.venues.base import (
    AssetContext,
    BookLevel,
    BookSnapshot,
    FundingPayment,
    Trade,
    VenueEvent,
)
from mmgym.core.layout import ACCOUNT_WINDOW_DTYPE, BOOK_SNAPSHOT_LEVELS, window_dtype
from mmgym.core.params import MarketParams


@dataclass(frozen=True, slots=True)
class OwnOrder:
    """One of the account's resting (or in-flight) orders on a side of a perp."""

    px: float
    sz: float


@dataclass(frozen=True, slots=True)
class AccountView:
    """The account as the order manager books it: signed positions per coin, cash (quote
    currency: sales less purchases and fees, plus funding received) and own orders per
    ``(coin, is_buy)``."""

    positions: Mapping[str, float]
    cash: float
    orders: Mapping[tuple[str, bool], OwnOrder]


@dataclass
class _CoinState:
    book: BookSnapshot | None = None
    book_received_s: float = math.nan
    context: AssetContext | None = None
    fresh_context: bool = False
    """An asset context arrived since :meth:`MarketFeed.expect_new` (or ever, before it)."""
    last_mid: float = math.nan


class MarketFeed:
    """Venue messages of ``coins`` (the bundle's perps, in the bundle's order) into event
    windows and risk inputs for one account.

    Args:
        market: the bundle's market (tick size and tick, decision interval, episode length,
            funding interval, margin tiers).
        coins: the venue's names of the perps, perp ``k`` of the bundle is ``coins[k]``.
        hedge_coins: the hedge venue's coin of each perp (``None``: no hedge leg).
        epoch_ms: the venue time (ms) the session's episode and funding clock start from.
        collateral: the account's collateral at the start (quote currency): equity is measured
            from it as in the simulator.
    """

    def __init__(
        self,
        market: MarketParams,
        coins: Sequence[str],
        *,
        hedge_coins: Sequence[str] | None = None,
        epoch_ms: int,
        collateral: float,
    ) -> None:
        if len(coins) != market.num_assets:
            raise ValueError(
                f"the market has {market.num_assets} perp(s), got {len(coins)} coin(s): {coins}"
            )
        if hedge_coins is not None and len(hedge_coins) != len(coins):
            raise ValueError(f"one hedge coin per perp, got {hedge_coins} for {coins}")
        if not (math.isfinite(collateral) and collateral > 0.0):
            raise ValueError(f"collateral must be a finite amount > 0, got {collateral}")
        self.market = market
        self.coins = tuple(coins)
        self.hedge_coins = tuple(hedge_coins) if hedge_coins is not None else None
        self.epoch_ms = int(epoch_ms)
        self.collateral = float(collateral)
        self.ticks = market.ticks_per_decision
        self.tick_ms = market.tick_seconds * 1000.0
        self._index = {c: k for k, c in enumerate(self.coins)}
        k = len(self.coins)
        self._coins = [_CoinState() for _ in range(k)]
        self.windows = np.zeros((1, k), dtype=window_dtype(self.ticks))
        """(1, perps) event windows of the last closed interval."""
        self.account_windows = np.zeros(1, dtype=ACCOUNT_WINDOW_DTYPE)
        self._mid = np.full((k, self.ticks), np.nan)
        self._buy = np.zeros((k, self.ticks))
        self._sell = np.zeros((k, self.ticks))
        self._last_funding = np.zeros(k)
        self.interval_start_ms: int | None = None
        """Venue time of the start of the running interval (None before the first decision)."""
        self.funding_received = 0.0
        self.messages = 0
        """Market messages taken (books, trades, contexts)."""
        self.conflated = 0
        """Books that replaced one no decision had read."""
        self._book_read = [True] * k
        self.updated = asyncio.Event()
        """Set by every book and asset context (a pacer waiting for :meth:`complete` clears it
        and waits, instead of polling)."""
        self._tiers = VenueSpec.from_market(market).tiers_array()
        """Rows (notional lower bound, maintenance rate, deduction)."""

    # --- messages -----------------------------------------------------------------------------

    def handle(self, event: VenueEvent, received_s: float = math.nan) -> None:
        """Take one venue event (books, trades, asset contexts and funding payments; the rest
        is the order manager's). ``received_s``: the host's monotonic clock at arrival."""
        if isinstance(event, BookSnapshot):
            self.on_book(event, received_s)
        elif isinstance(event, Trade):
            self.on_trade(event)
        elif isinstance(event, AssetContext):
            self.on_context(event)
        elif isinstance(event, FundingPayment):
            self.on_funding(event)

    def on_book(self, book: BookSnapshot, received_s: float = math.nan) -> None:
        k = self._index.get(book.coin)
        if k is None or not book.bids or not book.asks:
            return
        self.messages += 1
        c = self._coins[k]
        if not self._book_read[k]:
            self.conflated += 1
        c.book = book
        c.book_received_s = received_s
        self._book_read[k] = False
        mid = 0.5 * (book.bids[0].px + book.asks[0].px)
        self._mid[k, self._slot(book.time_ms)] = mid
        self.updated.set()

    def on_trade(self, trade: Trade) -> None:
        k = self._index.get(trade.coin)
        if k is None:
            return
        self.messages += 1
        volumes = self._buy if trade.is_buy else self._sell
        volumes[k, self._slot(trade.time_ms)] += trade.sz

    def on_context(self, context: AssetContext) -> None:
        k = self._index.get(context.coin)
        if k is None:
            return
        self.messages += 1
        c = self._coins[k]
        c.context = context
        c.fresh_context = True
        self.updated.set()

    def on_funding(self, payment: FundingPayment) -> None:
        """A funding payment: its rate is the perp's last realised funding, its amount cash."""
        k = self._index.get(payment.coin)
        if k is not None:
            self._last_funding[k] = payment.rate
        if not payment.snapshot:
            self.funding_received += payment.usdc

    def _slot(self, time_ms: int) -> int:
        start = self.interval_start_ms
        if start is None:
            return self.ticks - 1
        t = math.ceil((time_ms - start) / self.tick_ms) - 1
        return min(max(t, 0), self.ticks - 1)

    # --- state ----------------------------------------------------------------------------------

    def book(self, coin: str) -> BookSnapshot | None:
        k = self._index.get(coin)
        return None if k is None else self._coins[k].book

    def time_ms(self) -> int | None:
        """The venue time of the oldest newest book (every perp has data up to it); None until
        every perp has a book."""
        times = [c.book.time_ms for c in self._coins if c.book is not None]
        return min(times) if len(times) == len(self._coins) else None

    def expect_new(self) -> None:
        """Before the market moves on: :meth:`complete` then waits for new asset contexts."""
        for c in self._coins:
            c.fresh_context = False

    def complete(self, time_ms: int) -> bool:
        """Whether every perp's book of venue time ``time_ms`` or later has arrived, and an
        asset context since :meth:`expect_new` (the paper exchange sends a perp's context after
        its book and trades)."""
        return all(
            c.book is not None and c.book.time_ms >= time_ms and c.fresh_context
            for c in self._coins
        )

    def data_age_s(self, now_s: float, now_ms: int | None = None) -> float:
        """Seconds since the oldest perp's newest book arrived (host clock); inf when a perp
        has none, or (given the decision's venue time ``now_ms``) none of that time: its book of
        the interval never came, so what the feed holds is stale."""
        if now_ms is not None and any(
            c.book is None or c.book.time_ms < now_ms for c in self._coins
        ):
            return math.inf
        ages = [now_s - c.book_received_s for c in self._coins]
        return max(ages) if all(math.isfinite(a) for a in ages) else math.inf

    # --- the decision's inputs ---------------------------------------------------------------

    def close_interval(self, now_ms: int, account: AccountView) -> None:
        """Write the interval ending at venue time ``now_ms`` into :attr:`windows` and
        :attr:`account_windows`, then start the next interval at ``now_ms``."""
        first = self.interval_start_ms is None
        p = self.market
        tick = p.tick_size
        equity = self.equity(account)
        for k, c in enumerate(self._coins):
            w = self.windows[0, k]
            self._fill_mids(k, c)
            w["mid"] = self._mid[k]
            w["buy_volume"] = self._buy[k]
            w["sell_volume"] = self._sell[k]
            self._book_window(w, c, account, self.coins[k], tick)
            ctx = c.context
            w["inventory"] = account.positions.get(self.coins[k], 0.0)
            w["oracle"] = ctx.oracle_px if ctx is not None else math.nan
            w["premium"] = _premium(ctx)
            w["funding_estimate"] = ctx.funding_rate if ctx is not None else math.nan
            w["last_funding"] = self._last_funding[k]
            hedge = self.hedge_coins[k] if self.hedge_coins is not None else None
            w["hedge_position"] = account.positions.get(hedge, 0.0) if hedge else 0.0
            elapsed_s = (now_ms - self.epoch_ms) / 1000.0
            w["time_fraction"] = min(max(elapsed_s / p.episode_seconds, 0.0), 1.0)
            w["episode_start"] = first
            self._book_read[k] = True
        v = self.account_windows[0]
        v["equity"] = equity
        v["maintenance_margin"] = self.maintenance_margin(account)
        v["collateral"] = self.collateral
        v["time_to_funding"] = self.time_to_funding_s(now_ms)
        self._buy.fill(0.0)
        self._sell.fill(0.0)
        last = self._mid[:, -1].copy()
        self._mid.fill(np.nan)
        for k, c in enumerate(self._coins):
            c.last_mid = float(last[k])
        self.interval_start_ms = int(now_ms)

    def _fill_mids(self, k: int, c: _CoinState) -> None:
        """Carry each tick's mid forward from the tick before (from the previous interval's
        last mid at the first tick; backwards from the first known mid at the very start)."""
        row = self._mid[k]
        previous = c.last_mid
        if not math.isfinite(previous):
            known = row[np.isfinite(row)]
            previous = float(known[0]) if known.size else math.nan
        for t in range(row.shape[0]):
            if math.isfinite(row[t]):
                previous = row[t]
            else:
                row[t] = previous

    def _book_window(
        self, w: np.void, c: _CoinState, account: AccountView, coin: str, tick: float
    ) -> None:
        bid = account.orders.get((coin, True))
        ask = account.orders.get((coin, False))
        book = c.book
        levels = BOOK_SNAPSHOT_LEVELS
        w["bid_depth"] = 0.0
        w["ask_depth"] = 0.0
        if book is None:
            w["best_bid"] = w["best_ask"] = math.nan
            bid_ahead = ask_ahead = math.nan
        else:
            best_bid, bid_depth, bid_ahead = _background(book.bids, bid, True, tick, levels)
            best_ask, ask_depth, ask_ahead = _background(book.asks, ask, False, tick, levels)
            w["best_bid"], w["best_ask"] = best_bid, best_ask
            w["bid_depth"] = bid_depth
            w["ask_depth"] = ask_depth
        for side, order, ahead in (("bid", bid, bid_ahead), ("ask", ask, ask_ahead)):
            w[f"{side}_price"] = order.px if order is not None else 0.0
            w[f"{side}_size"] = order.sz if order is not None else 0.0
            w[f"{side}_queue_ahead"] = ahead if order is not None else 0.0

    def marks(self) -> NDArray[np.float64]:
        """Each perp's mark (NaN until its asset context arrived)."""
        return np.array(
            [c.context.mark_px if c.context is not None else math.nan for c in self._coins]
        )

    def equity(self, account: AccountView) -> float:
        """Collateral plus cash plus the perps' positions at their marks (NaN when a held
        position's mark is unknown). Hedge positions are the hedge venue's, outside it."""
        total = self.collateral + account.cash
        for coin, mark in zip(self.coins, self.marks(), strict=True):
            position = account.positions.get(coin, 0.0)
            if position != 0.0:
                total += position * mark
        return total

    def maintenance_margin(self, account: AccountView) -> float:
        """The market's tiered maintenance margin of the positions at the marks."""
        total = 0.0
        for coin, mark in zip(self.coins, self.marks(), strict=True):
            notional = abs(account.positions.get(coin, 0.0)) * mark
            if notional > 0.0:
                tier = self._tiers[self._tiers[:, 0] <= notional][-1]
                total += notional * tier[1] - tier[2]
        return total

    def time_to_funding_s(self, now_ms: int) -> float:
        """Seconds to the next funding time: funding falls on multiples of the market's funding
        interval on the venue's clock (Hyperliquid's hourly funding on the hour; the paper
        exchange aligns its clock so)."""
        interval_ms = self.market.funding_interval_seconds * 1000.0
        return (interval_ms - now_ms % interval_ms) / 1000.0

    def fill_risk_inputs(
        self,
        inputs: RiskInputs,
        account: AccountView,
        time_s: float,
        data_age_s: float,
        rejects: int,
    ) -> None:
        """The RiskLimiter's decision-time inputs of account 0: the books (ticks), marks,
        positions and own orders (ticks), equity and margin; unknown values stay NaN."""
        a = inputs.accounts[0]
        equity = self.equity(account)
        a["time_s"] = time_s
        a["equity"] = equity
        a["margin_equity"] = equity
        a["maintenance_margin"] = self.maintenance_margin(account)
        a["data_age_s"] = data_age_s
        a["rejects"] = rejects
        a["stale"] = False
        tick = self.market.tick_size
        marks = self.marks()
        for k, coin in enumerate(self.coins):
            x = inputs.assets[0, k]
            w = self.windows[0, k]
            x["best_bid"] = round(w["best_bid"] / tick) if math.isfinite(w["best_bid"]) else np.nan
            x["best_ask"] = round(w["best_ask"] / tick) if math.isfinite(w["best_ask"]) else np.nan
            x["mark"] = marks[k]
            x["position"] = account.positions.get(coin, 0.0)
            for side, is_buy in (("bid", True), ("ask", False)):
                order = account.orders.get((coin, is_buy))
                x[f"{side}_resting_px"] = round(order.px / tick) if order is not None else np.nan
                x[f"{side}_resting"] = order.sz if order is not None else 0.0
            x["stale"] = self._coins[k].book is None


def _premium(ctx: AssetContext | None) -> float:
    """The venue's premium sample, else the mark's premium over the oracle."""
    if ctx is None:
        return math.nan
    if ctx.premium is not None:
        return ctx.premium
    return (ctx.mark_px - ctx.oracle_px) / ctx.oracle_px if ctx.oracle_px else math.nan


def _background(
    levels: Sequence[BookLevel],
    own: OwnOrder | None,
    is_buy: bool,
    tick: float,
    count: int,
) -> tuple[float, NDArray[np.float64], float]:
    """The background side of a venue book: the own order's size taken out of its level; the
    best remaining price, the depth at ``count`` tick offsets from it, and the size ahead of
    the own order (its level's rest)."""
    sizes: dict[int, float] = {}
    for level in levels:
        ticks = round(level.px / tick)
        sizes[ticks] = sizes.get(ticks, 0.0) + level.sz
    ahead = math.nan
    if own is not None:
        own_ticks = round(own.px / tick)
        rest = sizes.get(own_ticks, 0.0) - own.sz
        ahead = max(rest, 0.0)
        if own_ticks in sizes:
            sizes[own_ticks] = rest
    present = [t for t, s in sizes.items() if s > 1e-12]
    depth = np.zeros(count)
    if not present:
        return math.nan, depth, ahead
    best = max(present) if is_buy else min(present)
    for t in present:
        j = best - t if is_buy else t - best
        if j < count:
            depth[j] = sizes[t]
    return best * tick, depth, ahead
