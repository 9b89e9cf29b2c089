"""The live runner: one decision path from venue messages to orders.

One asyncio loop, per decision:

1. the venue's messages have filled the feed (:class:`~agents.live.feed.MarketFeed`: the
   simulator's event windows, conflated) and the order manager (orders, fills);
2. the one observation builder (:class:`~mmgym.features.observation.ObservationBuilder`) turns
   the interval's windows into the observation;
3. :class:`~agents.deploy.guard.GuardedPolicy` decides: checks, policy, the shared decoder, the
   RiskLimiter;
4. the decision is journaled, then the order manager moves the venue's book to the limited
   quotes (intents journaled before each send); the hedge leg's order goes to the hedge coin.

Before the first decision the runner rebuilds its state from the journal
(:func:`~agents.live.recovery.recover`), reconciles with the venue, and only then quotes. Fills,
order updates and funding payments are journaled as they arrive, before they change any state.
When the venue's stream drops, the runner cancels what it can, stops quoting, moves the risk
state per its config, and reconciles when the stream is back. Nothing here waits on reports or
monitoring: the decision path is the feed, the builder, the guard and the order manager.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agents.deploy.guard import GuardedDecision, GuardedPolicy
from agents.deploy.risk import Reason, RiskInputs, TradingMode
from agents.deploy.risk.state import Transition
from agents.live.collector import DecisionCollector
from agents.live.feed import AccountView, MarketFeed, OwnOrder
from agents.live.journal import Journal, Kind
from agents.live.order_manager import ManagerConfig, OrderManager, Quote, from_recovered
from agents.live.order_state import FINAL, OrderPhase
from agents.live.order_throttle import SharedThrottle
from agents.live.pacing import LockstepPacer, Pacer
from agents.live.recovery import RecoveredState, recover
from agents.live.venues.base import (
    ConnectionChange,
    Fill,
    FundingPayment,
    OrderUpdate,
    Tif,
    Venue,
    VenueEvent,
)
from mmgym.features.observation import ObservationBuilder, ObservationConfig

if TYPE_CHECKING:
    from agents.ops.alerts import AlertEngine
    from agents.ops.control import OpsControl
    from agents.ops.metrics import LiveMetrics
    from agents.ops.pnl import JournalPnl

log = logging.getLogger("mmgym.live")

ON_DISCONNECT = ("reduce", "halt")
"""What a lost stream does to the risk state: ``reduce`` (the limiter goes REDUCING at once;
nothing is quoted until the stream is back and reconciled, then only reducing orders until
``reducing_hold_seconds`` after the reconnect, when the limiter's own rule returns it to ACTIVE)
or ``halt`` (HALTED at once; only an operator resumes). Either way the runner cancels every
open order it can and the venue's dead-man's switch covers what it cannot."""
DISCONNECT_OPERATOR = "runner: venue stream lost"
"""The operator named by the limiter commands a lost stream gives (journaled with them)."""
EXIT_CANCEL_WAIT_S = 10.0
"""On the way out, how long the runner waits for a disconnect's cancels still running."""


@dataclass(frozen=True)
class RunnerConfig:
    """How the runner trades one account."""

    coins: tuple[str, ...]
    """The venue's coin of each of the bundle's perps, in the bundle's order."""
    hedge_coins: tuple[str, ...] | None = None
    """The hedge venue's coin of each perp (None: the policy's hedge fraction is not traded)."""
    epoch_ms: int | None = None
    """Venue time (ms) of the episode's start (the feed's time feature and funding clock);
    None: the first decision's venue time."""
    collateral: float | None = None
    """The account's collateral (quote currency); None: the venue's account value at start."""
    max_decisions: int | None = None
    """Stop after this many decisions (None: until the market ends or the runner is stopped)."""
    reconcile_every: int = 30
    """Reconcile orders, fills and positions with the venue every this many decisions."""
    on_disconnect: str = "reduce"
    """:data:`ON_DISCONNECT`."""
    dead_mans_switch_s: float | None = 60.0
    """Keep the venue's dead-man's switch this far ahead of the decisions' venue time (s),
    moved by the decision loop (None: off). Hyperliquid wants it at least 5 s ahead."""
    cancel_on_exit: bool = True
    """Cancel every open order when the runner stops (not when it is killed)."""
    manager: ManagerConfig = field(default_factory=ManagerConfig)
    seed: int | None = 0
    """Seeds the order manager's cloids and jitter (None: the OS's random stream)."""

    def __post_init__(self) -> None:
        if not self.coins:
            raise ValueError("the runner needs at least one coin")
        if self.on_disconnect not in ON_DISCONNECT:
            raise ValueError(
                f"on_disconnect must be one of {ON_DISCONNECT}, got {self.on_disconnect!r}"
            )
        if self.reconcile_every < 1:
            raise ValueError(f"reconcile_every must be >= 1, got {self.reconcile_every}")


@dataclass
class RunnerStats:
    """What the runner did (read by benchmarks and the operator)."""

    decisions: int = 0
    skipped: int = 0
    """Decision times passed while the stream was down (nothing quoted)."""
    reconciles: int = 0
    drift: int = 0
    """Reconciliations that found something out of step (missed fills included)."""
    out_of_step: int = 0
    """Reconciliations that found orphan orders or a position differing after the import
    (:attr:`~agents.live.order_manager.ReconcileReport.out_of_step`)."""
    disconnects: int = 0
    decision_latency_s: list[float] = field(default_factory=list)
    """Per decision: from the pacer's return to the order manager's return (host clock)."""
    message_to_order_s: list[float] = field(default_factory=list)
    """Per decision that sent an order action, on a venue that times them (``mark_sends``):
    from the arrival of the newest market message it decided on (read from the WebSocket) to
    its first order action handed to the HTTP transport (host monotonic clock)."""


class LiveRunner:
    """Trades ``guarded`` on ``venue`` for one account, journaling to ``journal``.

    Args:
        venue: the venue (not yet connected: the runner enters it).
        guarded: the bundle's policy behind the guard and limiter (one account).
        journal: the write-ahead journal (opened; its events are the runner's memory).
        config: :class:`RunnerConfig`.
        pacer: when to decide (:mod:`agents.live.pacing`).
        observation_config: the observation builder's settings (the bundle's).
        clock_s: the host's monotonic clock (data ages).
    """

    def __init__(
        self,
        venue: Venue,
        guarded: GuardedPolicy,
        journal: Journal,
        config: RunnerConfig,
        pacer: Pacer,
        *,
        observation_config: ObservationConfig | None = None,
        clock_s: Callable[[], float] = time.monotonic,
    ) -> None:
        if guarded.num_accounts != 1:
            raise ValueError(f"the runner trades one account, the guard has {guarded.num_accounts}")
        if len(config.coins) != guarded.num_assets:
            raise ValueError(
                f"the bundle trades {guarded.num_assets} perp(s), the config names "
                f"{len(config.coins)} coin(s): {config.coins}"
            )
        self.venue = venue
        if hasattr(venue, "conflate_books"):
            venue.conflate_books = True  # a decision reads only a coin's newest book
        self.guarded = guarded
        self.journal = journal
        self.config = config
        self.pacer = pacer
        self.market = guarded.market
        self.tick_size = self.market.tick_size
        self._observation_config = observation_config or ObservationConfig.from_market(self.market)
        self._clock_s = clock_s
        self.builder = ObservationBuilder(self._observation_config, 1, guarded.num_assets)
        self.inputs = RiskInputs.unknown(1, guarded.num_assets)
        self.manager = OrderManager(
            venue,
            journal.append,
            throttle=SharedThrottle(guarded.limiter),
            config=config.manager,
            seed=config.seed,
        )
        self.feed: MarketFeed | None = None
        self.stats = RunnerStats()
        self.recovered: RecoveredState | None = None
        self.connected = True
        self._funding_cash = 0.0
        self._rejects = 0
        self._stopping = asyncio.Event()
        self._needs_reconcile = False
        self._reconnecting = False
        """The stream dropped and the runner has not reconciled since it came back."""
        self._epoch_ms = config.epoch_ms
        self._collateral = math.nan
        self._early: list[VenueEvent] = []
        """Market data that arrived before the feed exists (before the first decision)."""
        self._background: set[asyncio.Task[Any]] = set()
        self._switch_at_ms: int | None = None
        self._last_latency_ms: dict[str, float] | None = None
        """The last decision's latencies (ms), journaled with the next decision (a decision's
        row is written before its orders are sent, so its own are not known yet)."""
        if isinstance(pacer, LockstepPacer) and pacer.connected is None:
            pacer.connected = lambda: self.connected  # no waiting for data while cut off
        self.ops: OpsControl | None = None
        """The operator's controls (:mod:`agents.ops.control`), served while :meth:`run` runs;
        their commands are applied between decisions."""
        self.collector: DecisionCollector | None = None
        """Runs the garbage collector between decisions while :meth:`run` trades
        (:mod:`agents.live.collector`)."""
        self.metrics: LiveMetrics | None = None
        """The metrics (:mod:`agents.ops.metrics`), served while :meth:`run` runs on a thread
        of their own, updated after each decision."""
        self.alerts: AlertEngine | None = None
        """The alert rules (:mod:`agents.ops.alerts`), evaluated after each decision (and each
        decision time skipped); their corrective actions applied at once, between decisions."""
        self.pnl: JournalPnl | None = None
        """The PnL decomposition and funding drift of the journal's rows, kept by the metrics
        and the alerts (:func:`agents.ops.pnl.runner_pnl`)."""

    # --- lifecycle ----------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the runner to stop after the decision in progress (signal-safe)."""
        self._stopping.set()

    async def run(self) -> RunnerStats:
        """Recover, reconcile, then decide until the market ends, ``max_decisions`` or
        :meth:`stop`. On the way out: waits for a disconnect's cancels, cancels the open orders
        (``cancel_on_exit``), reconciles (fills whose messages were lost, orders in doubt) and
        cancels once more what the reconcile found still resting."""
        async with self.venue:
            await self._start()
            pump = asyncio.create_task(self._pump(), name="mmgym-live-pump")
            try:
                await self._serve_ops(True)
                await self._reconcile("start")
                with DecisionCollector() as self.collector:
                    await self._loop(pump)
            finally:
                try:
                    await self._finish_background()
                    if self.config.cancel_on_exit:
                        await self._cancel_all("exit")
                    await self._reconcile("exit")  # lost fills and updates, orders in doubt
                    if self.config.cancel_on_exit and self._resting():
                        await self._cancel_all("exit, after the reconcile")
                finally:
                    pump.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await pump
                    await self._serve_ops(False)
                    await self.pacer.close()
                    self._journal_stop()
        return self.stats

    def _journal_stop(self) -> None:
        """The ``stop`` note: the session's end (a watcher stops on it) with the stats and the
        last decision's latencies. Never raises (the way out must finish)."""
        stats = self.stats
        try:
            self.journal.append(
                Kind.NOTE,
                {
                    "event": "stop",
                    "decisions": stats.decisions,
                    "skipped": stats.skipped,
                    "disconnects": stats.disconnects,
                    "reconciles": stats.reconciles,
                    "drift": stats.drift,
                    "latency_ms": self._last_latency_ms,
                },
            )
        except Exception as err:  # a closed or broken journal: the stop is still a stop
            log.warning("the stop note was not journaled: %s", err)

    async def _start(self) -> None:
        state = recover(self.journal)
        self.recovered = state
        orders, fills = from_recovered(state)
        self.manager.restore(orders, fills, restart=state.last_seq)
        self._funding_cash = sum(state.funding.values())
        if state.risk_state == TradingMode.HALTED.name:
            self.guarded.limiter.halt(0, "journal: HALTED before the restart")
        else:  # an operator's REDUCING outlives a restart, as HALTED does
            last = self.journal.last(Kind.RISK_TRANSITION)
            if last is not None and last.payload.get("reason") == Reason.OPERATOR_REDUCE.name:
                self.guarded.limiter.reduce(0, str(last.payload.get("operator") or "journal"))
        if state.peak_equity is not None:  # the kill switch's drawdown carries on
            peak = self.guarded.limiter.state.records["peak_equity"]
            if not peak[0] >= state.peak_equity:  # (NaN before the first decision)
                peak[0] = state.peak_equity
        await self.venue.subscribe_account()
        for coin in self.config.coins:  # a hedge coin's fills come with the account's
            await self.venue.subscribe_market(coin)
        collateral = self.config.collateral
        if collateral is None:
            collateral = self._journaled("collateral")
        if self._epoch_ms is None:
            epoch = self._journaled("epoch_ms")
            self._epoch_ms = None if epoch is None else int(epoch)
        self._restore_reducing(state)
        self._restore_window(state)
        if collateral is None:
            if any(abs(q) > 0.0 for q in self.manager.positions.values()):
                raise ValueError(
                    "the journal holds positions but no collateral: set the session's "
                    "collateral (collateral=...), the account value alone does not give it"
                )
            collateral = (await self.venue.account()).account_value
        self._collateral = float(collateral)
        self.journal.append(
            Kind.NOTE,
            {
                "event": "start",
                "recovered_seq": state.last_seq,
                "open_orders": len(state.open_orders()),
                "positions": state.positions,
                "collateral": self._collateral,
            },
        )

    async def _serve_ops(self, start: bool) -> None:
        """Start (or stop) the operator's controls and the metrics, where set."""
        if start:
            if self.metrics is not None:
                self.metrics.start()
            if self.ops is not None:
                await self.ops.start()
            return
        if self.ops is not None:
            await self.ops.close()
        if self.metrics is not None:
            self.metrics.close()
        if self.alerts is not None:
            await asyncio.to_thread(self.alerts.close)  # the webhook's last posts

    def _restore_reducing(self, state: RecoveredState) -> None:
        """A REDUCING of the kill switch, an alert or a lost stream (not an operator's: that
        one is held until ``resume``) outlives a restart: REDUCING again, its hold counted from
        the last journaled decision (``reducing_hold_seconds``), ended as usual by the kill
        switch once no trigger holds."""
        transition = state.risk_transition
        if state.risk_state != TradingMode.REDUCING.name or transition is None:
            return
        name = transition.payload.get("reason")
        if name == Reason.OPERATOR_REDUCE.name:
            return
        reason = Reason.__members__.get(str(name), Reason.STALE_MARKET_DATA)
        if not reason.is_transition:
            reason = Reason.STALE_MARKET_DATA
        time_s = None
        decision = state.last_decision
        venue_ms = None if decision is None else decision.payload.get("venue_time_ms")
        if isinstance(venue_ms, int) and self._epoch_ms is not None:
            time_s = (venue_ms - self._epoch_ms) / 1000.0
        self.guarded.limiter.reduce_temporarily(
            0, "journal: REDUCING before the restart", reason=reason, time_s=time_s
        )

    def _restore_window(self, state: RecoveredState) -> None:
        """The kill switch's rolling window outlives a restart: the equities, venue rejects and
        market index of the journaled decisions since the last operator reset go back into it
        (on the venue's clock), so a loss, a reject storm or a market-wide move within
        ``rolling_window_seconds`` counts whether or not the runner restarted."""
        if not state.window_path or self._epoch_ms is None:
            return
        epoch = self._epoch_ms
        path = state.window_path
        self.guarded.limiter.restore_window(
            0,
            [(sample.venue_ms - epoch) / 1000.0 for sample in path],
            [sample.equity for sample in path],
            [sample.rejects for sample in path],
            [sample.market_index for sample in path],
        )

    def _journaled(self, key: str) -> float | None:
        """The first value of ``key`` a note of the journal holds (a restart keeps the first
        session's collateral and episode start)."""
        for event in self.journal.events():
            value = event.payload.get(key) if event.kind is Kind.NOTE else None
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
        return None

    # --- messages -----------------------------------------------------------------------------

    async def _pump(self) -> None:
        """Every venue event, journaled before it changes state: fills and order updates to the
        order manager (which journals them), funding payments journaled here, market data to
        the feed (conflated)."""
        async for event in self.venue.events():
            self.handle(event)

    def handle(self, event: VenueEvent) -> None:
        if isinstance(event, Fill | OrderUpdate):
            if isinstance(event, OrderUpdate) and event.status.endswith("Rejected"):
                self._rejects += 1
            self.manager.handle(event)
        elif isinstance(event, FundingPayment):
            if self.journal.append(Kind.FUNDING, event) is not None:
                self._funding_cash += event.usdc
            if self.feed is not None:
                self.feed.on_funding(event)
        elif isinstance(event, ConnectionChange):
            self._on_connection(event)
        elif self.feed is not None:
            self.feed.handle(event, self._clock_s())
        else:
            self._early.append(event)

    def _on_connection(self, change: ConnectionChange) -> None:
        """A lost stream: stop deciding, move the risk state per ``on_disconnect`` (journaled
        before anything else happens), cancel every open order in the background (HTTP may
        still work; the dead-man's switch covers what it cannot reach). Back: reconcile before
        the next decision (:meth:`_loop`)."""
        self.journal.append(
            Kind.NOTE, {"event": "connection", "connected": change.connected, "why": change.reason}
        )
        if not change.connected and self.connected:
            self.connected = False
            self.stats.disconnects += 1
            limiter = self.guarded.limiter
            if self.config.on_disconnect == "halt":
                limiter.halt(0, DISCONNECT_OPERATOR)
            else:
                limiter.reduce_temporarily(0, DISCONNECT_OPERATOR)
            self._journal_transitions()
            self._needs_reconcile = True
            self._reconnecting = True
            task = asyncio.get_running_loop().create_task(self._cancel_all("disconnect"))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        elif change.connected:
            self.connected = True

    def _journal_transitions(self) -> None:
        """Journal the risk transitions not yet journaled (a command outside a decision)."""
        for transition in self.guarded.drain_transitions():
            self.journal.append(Kind.RISK_TRANSITION, _transition_payload(transition))

    def _reconnected(self, now_ms: int) -> None:
        """The first decision after a reconnect, reconciled: with ``on_disconnect="reduce"``
        the REDUCING hold restarts from now (the trigger held until the stream came back)."""
        self._reconnecting = False
        if self.config.on_disconnect == "reduce":
            epoch = self._epoch_ms
            time_s = None if epoch is None else (now_ms - epoch) / 1000.0
            self.guarded.limiter.reduce_temporarily(0, DISCONNECT_OPERATOR, time_s=time_s)

    async def _finish_background(self) -> None:
        """Wait (at most :data:`EXIT_CANCEL_WAIT_S`) for a disconnect's cancels still running,
        then stop them."""
        tasks = list(self._background)
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=EXIT_CANCEL_WAIT_S)
        for task in pending:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # --- decisions ------------------------------------------------------------------------------

    async def _loop(self, pump: asyncio.Task[None]) -> None:
        limit = self.config.max_decisions
        while not self._stopping.is_set() and (limit is None or self.stats.decisions < limit):
            if self.collector is not None:
                self.collector.collect()  # after the last decision's orders, before the wait
            if pump.done():
                pump.result()  # the stream ended: raise what ended it
                raise RuntimeError("the venue's event stream ended")
            feed = self._feed()
            now_ms = await self.pacer.next_decision(feed)
            if now_ms is None:
                log.info("the market ended after %d decisions", self.stats.decisions)
                return
            if self.ops is not None:
                self.ops.apply_pending()  # the operator's commands, between decisions
            started = self._clock_s()
            if not self.connected:
                self.stats.skipped += 1
                self._after(now_ms, decided=False)
                continue
            if self._needs_reconcile:
                await self._reconcile("reconnect" if self._reconnecting else "retry")
            if self._reconnecting:
                if self._needs_reconcile:  # back, but not reconciled: no quotes yet
                    self.stats.skipped += 1
                    continue
                self._reconnected(now_ms)
            self._drain()
            arrived = self._mark_sends()
            await self.decide(now_ms)
            latency = self._clock_s() - started
            self.stats.decision_latency_s.append(latency)
            self._last_latency_ms = {"decision": 1000.0 * latency}
            sent = getattr(self.venue, "first_sent_s", math.nan)
            if sent - arrived >= 0.0:  # False when either is NaN
                self.stats.message_to_order_s.append(sent - arrived)
                self._last_latency_ms["message_to_order"] = 1000.0 * (sent - arrived)
            if self.stats.decisions % self.config.reconcile_every == 0:
                await self._reconcile("periodic")
            self._after(now_ms, decided=True)

    def _after(self, now_ms: int, decided: bool) -> None:
        """After a decision (or a decision time skipped): the metrics, then the alert rules
        (whose corrective state applies at once, before the next decision)."""
        if self.metrics is not None:
            self.metrics.update(decided=decided)
        if self.alerts is not None:
            self.alerts.evaluate(now_ms)

    def _drain(self) -> None:
        """Take the events the venue already holds (the pump may not have run since they
        arrived), so the decision reads the newest state; in order, books conflated."""
        ready = getattr(self.venue, "ready_events", None)
        if ready is not None:
            for event in ready():
                self.handle(event)

    def _mark_sends(self) -> float:
        """Start timing the decision's first order action; the arrival of the newest market
        message (NaN when the venue does not time them)."""
        mark = getattr(self.venue, "mark_sends", None)
        if mark is None:
            return math.nan
        mark()
        return float(getattr(self.venue, "market_received_s", math.nan))

    def _feed(self) -> MarketFeed:
        if self.feed is None:
            epoch = self._epoch_ms
            self.feed = MarketFeed(
                self.market,
                self.config.coins,
                hedge_coins=self.config.hedge_coins,
                epoch_ms=epoch if epoch is not None else 0,
                collateral=self._collateral,
            )
            for event in self._early:
                self.feed.handle(event, self._clock_s())
            self._early.clear()
        return self.feed

    def account_view(self) -> AccountView:
        """Positions, cash and own orders as the order manager books them."""
        orders: dict[tuple[str, bool], OwnOrder] = {}
        for order in self.manager.active():
            if order.phase in FINAL:
                continue
            key = (order.coin, order.is_buy)
            version = order.version
            size = version.remaining
            if order.phase == OrderPhase.PENDING_REPLACE and order.pending is not None:
                size = max(size, order.pending.remaining)  # either can be on the book
            held = orders.get(key)
            orders[key] = OwnOrder(version.px, size + (held.sz if held is not None else 0.0))
        return AccountView(
            positions=self.manager.positions,
            cash=self.manager.cash + self._funding_cash,
            orders=orders,
        )

    async def decide(self, now_ms: int) -> GuardedDecision:
        """One decision at venue time ``now_ms``: windows, observation, guard, journal,
        orders."""
        feed = self._feed()
        if self._epoch_ms is None:
            self._epoch_ms = now_ms
            feed.epoch_ms = now_ms
            self.journal.append(Kind.NOTE, {"event": "episode_start", "epoch_ms": now_ms})
        account = self.account_view()
        feed.close_interval(now_ms, account)
        obs = self.builder.update(feed.windows, feed.account_windows)
        time_s = (now_ms - feed.epoch_ms) / 1000.0
        rejects, self._rejects = self._rejects, 0
        feed.fill_risk_inputs(
            self.inputs, account, time_s, feed.data_age_s(self._clock_s(), now_ms), rejects
        )
        decision = self.guarded.decide(obs, self.inputs)
        desired = self._desired(decision)
        # committed with the first order's intent, before its send: one sync, not two
        with self.journal.batch(defer=True):
            for transition in self.guarded.drain_transitions():
                self.journal.append(Kind.RISK_TRANSITION, _transition_payload(transition))
            payload = self._decision_payload(now_ms, decision, desired, account, rejects)
            self.journal.append(Kind.DECISION, payload)
        self.stats.decisions += 1
        try:
            await self.manager.sync(desired, time_s)
            await self._hedge(decision, account)
            await self._refresh_switch(now_ms)
        finally:
            self.journal.commit()  # a decision that sent nothing
        return decision

    async def _refresh_switch(self, now_ms: int) -> None:
        """Keep the venue's dead-man's switch ``dead_mans_switch_s`` ahead of the decision's
        venue time, moved once half of it has passed. Driven by the decisions on the venue's
        clock: if decisions stop (a hung loop, a dead process, a lost venue), the venue cancels
        every open order within the window, in any time mode."""
        window = self.config.dead_mans_switch_s
        if window is None:
            return
        window_ms = int(window * 1000)
        if self._switch_at_ms is not None and self._switch_at_ms - now_ms > window_ms // 2:
            return
        try:
            await self.venue.schedule_cancel(now_ms + window_ms)
            self._switch_at_ms = now_ms + window_ms
        except Exception as err:  # tried again at the next decision
            log.warning("dead-man's switch not moved: %s", err)

    def _desired(self, decision: GuardedDecision) -> dict[str, Quote]:
        tick = self.tick_size
        desired: dict[str, Quote] = {}
        for k, coin in enumerate(self.config.coins):
            q = decision.quotes[0, k]
            bid_sz = float(q["bid_size"])
            ask_sz = float(q["ask_size"])
            desired[coin] = Quote(
                bid_px=float(q["bid_px"]) * tick if bid_sz > 0.0 else 0.0,
                bid_sz=bid_sz if bid_sz > 0.0 else 0.0,
                ask_px=float(q["ask_px"]) * tick if ask_sz > 0.0 else 0.0,
                ask_sz=ask_sz if ask_sz > 0.0 else 0.0,
            )
        return desired

    def _decision_payload(
        self,
        now_ms: int,
        decision: GuardedDecision,
        desired: Mapping[str, Quote],
        account: AccountView,
        rejects: int,
    ) -> dict[str, Any]:
        """What a decision saw and chose: the market (mids, marks, the published funding rates
        and oracle prices), the account (positions,
        cash, equity, all in quote currency), the venue rejects counted since the previous
        decision, the risk mode, the limited quotes (price, size
        per side; size 0 is no order), the hedge fractions, the limiter's counts by reason,
        and the previous decision's latencies (ms: ``decision``, and ``message_to_order``
        when it sent an order; None at the first decision of a run)."""
        feed = self._feed()
        windows = feed.windows[0]
        mids = 0.5 * (windows["best_bid"] + windows["best_ask"])
        return {
            "venue_time_ms": now_ms,
            "mids": {c: _finite(float(m)) for c, m in zip(self.config.coins, mids, strict=True)},
            "marks": {
                c: _finite(float(m)) for c, m in zip(self.config.coins, feed.marks(), strict=True)
            },
            "funding_rates": {
                c: _finite(float(r))
                for c, r in zip(self.config.coins, windows["funding_estimate"], strict=True)
            },
            "oracles": {
                c: _finite(float(x))
                for c, x in zip(self.config.coins, windows["oracle"], strict=True)
            },
            "positions": {c: q for c, q in account.positions.items() if q},
            "cash": account.cash,
            "equity": _finite(feed.equity(account)),
            "rejects": rejects,
            "mode": TradingMode(int(self.guarded.state.mode[0])).name,
            "untrusted": Reason(int(decision.untrusted[0])).name if decision.untrusted[0] else None,
            "quotes": {
                coin: [q.bid_px, q.bid_sz, q.ask_px, q.ask_sz] for coin, q in desired.items()
            },
            "hedge_fraction": [_finite(float(x)) for x in decision.quotes[0]["hedge_fraction"]],
            "reasons": {r.name: n for r, n in decision.reasons(0).items()},
            "latency_ms": self._last_latency_ms,
        }

    async def _hedge(self, decision: GuardedDecision, account: AccountView) -> None:
        """Move each hedge position toward ``-hedge_fraction x position`` with one Gtc order on
        the hedge coin (none while one is working)."""
        hedges = self.config.hedge_coins
        if hedges is None:
            return
        min_size = self.market.min_quote_size
        for k, (coin, hedge) in enumerate(zip(self.config.coins, hedges, strict=True)):
            fraction = float(decision.quotes[0, k]["hedge_fraction"])
            if not math.isfinite(fraction) or self.manager.active(hedge):
                continue
            position = account.positions.get(coin, 0.0)
            held = account.positions.get(hedge, 0.0)
            change = -fraction * position - held
            if abs(change) < min_size:
                continue
            mark = float(self._feed().marks()[k])
            if not math.isfinite(mark):
                continue
            await self.manager.place([(hedge, change > 0.0, mark, abs(change))], tif=Tif.GTC)

    # --- reconcile, cancel -------------------------------------------------------------------

    async def _reconcile(self, why: str) -> None:
        try:
            report = await self.manager.reconcile(self.stats.decisions)
        except Exception as err:  # the venue did not answer: try again at the next one
            log.warning("reconcile (%s) failed: %s", why, err)
            self._needs_reconcile = True
            return
        self._needs_reconcile = False
        self.stats.reconciles += 1
        if report.drift:
            self.stats.drift += 1
            log.warning("reconcile (%s) found drift: %s", why, report.summary())
        if report.out_of_step:
            self.stats.out_of_step += 1

    def _resting(self) -> bool:
        """Whether the manager holds an order on the venue's book."""
        return any(
            o.phase in (OrderPhase.RESTING, OrderPhase.PARTIALLY_FILLED)
            for o in self.manager.active()
        )

    async def _cancel_all(self, why: str) -> None:
        """Cancel every order the manager holds open (what it cannot reach, the venue's
        dead-man's switch cancels). Never raises: a failed cancel is logged, and the next
        reconcile sees the order again."""
        try:
            orders = list(self.manager.active())
        except Exception as err:  # never raise out of a safety path
            log.warning("cancel on %s failed: %s", why, err)
            return
        for order in orders:
            if order.phase in (OrderPhase.RESTING, OrderPhase.PARTIALLY_FILLED):
                try:
                    await self.manager.cancel(order)
                except Exception as err:  # never raise out of a safety path
                    log.warning("cancel of %s on %s failed: %s", order.cloid, why, err)


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _transition_payload(transition: Transition) -> dict[str, Any]:
    return {
        "from": transition.previous.name,
        "to": transition.mode.name,
        "reason": transition.reason.name,
        "time_s": _finite(float(transition.time_s)),
        "operator": transition.operator,
    }
