"""The live runner's metrics for Prometheus, served on 127.0.0.1 on a thread of their own.

A registry of its own (nothing of the process's default one), served by prometheus-client's
HTTP server on a daemon thread (``LiveJob.metrics_port``; 0 picks a free port, logged and
journaled): a scrape never runs on the decision loop. The runner calls :meth:`LiveMetrics.update`
after each decision (and after each decision time skipped while the venue's stream is down): a
few ``set``, ``inc`` and ``observe`` calls on label children made once at the start.

Metrics (money in the quote currency):

- ``mmgym_equity``, ``mmgym_pnl`` (equity less the session's collateral);
- ``mmgym_pnl_component{component}``: the journal's PnL decomposition (``spread``,
  ``inventory``, ``mark_basis``, ``fees``, ``funding``, ``hedge``, and ``residual``: the equity
  change less their sum) between its first and last decision with a known equity, by
  :class:`~agents.ops.pnl.PnlAccumulator` from the rows the runner journaled, the code the session
  report uses (NaN before the first such decision);
- ``mmgym_funding_drift``: the perps' funding payments received less the expected carry,
  ``-position x oracle x published rate`` as of the last decision before each payment
  (:mod:`agents.ops.pnl`), summed over the journal;
- ``mmgym_position{coin}`` (perps and hedge coins), ``mmgym_exposure{coin}`` (position x mark);
- ``mmgym_resting_notional{coin,side}``: the open orders' unfilled notional per side;
- ``mmgym_hedge_delta{coin}``: the perp's position plus its hedge coin's (0 fully hedged);
- ``mmgym_risk_mode`` (0 ACTIVE, 1 REDUCING, 2 HALTED), ``mmgym_operator_reducing``;
- ``mmgym_limiter_counts_total{reason}``: the limiter's denials, clips and transitions;
- ``mmgym_decisions_total``, ``mmgym_skipped_decisions_total``, ``mmgym_reconciles_total``,
  ``mmgym_reconcile_drift_total``;
- ``mmgym_decision_latency_seconds`` and ``mmgym_message_to_order_seconds`` (histograms with
  sub-millisecond buckets; the second is fed where the runner's stats record it);
- ``mmgym_feed_messages_total``, ``mmgym_feed_conflated_total``: market messages taken, and
  those conflated into a newer one;
- ``mmgym_venue_connected``, ``mmgym_disconnects_total``, ``mmgym_reconnects_total``.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mmgym.extras import extra_needed

with extra_needed("agents.ops.metrics"):
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from agents.deploy.risk import Reason
from agents.live.journal import Kind
from agents.ops.control import HOST
from agents.ops.pnl import COMPONENTS, runner_pnl

if TYPE_CHECKING:
    from agents.live.runner import LiveRunner

log = logging.getLogger("mmgym.ops")

LATENCY_BUCKETS = (
    25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 0.1, 0.25,
    0.5, 1.0, 2.5, math.inf,
)  # fmt: skip
"""Seconds: sub-millisecond buckets for the decision path, up to seconds for a slow venue."""


class LiveMetrics:
    """The metrics of ``runner``, served on 127.0.0.1:``port`` (0: a free port) once
    :meth:`start` ran; :attr:`registry` is their own :class:`CollectorRegistry`."""

    def __init__(self, runner: LiveRunner, port: int = 0) -> None:
        self.runner = runner
        self.port = port
        self.url: str | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        r = self.registry = CollectorRegistry(auto_describe=True)
        coins = tuple(runner.config.coins)
        hedges = tuple(runner.config.hedge_coins or ())
        self._coins = coins
        self._hedges = hedges

        def gauge(name: str, doc: str, labels: Sequence[str] = ()) -> Gauge:
            return Gauge(name, doc, labels, registry=r)

        def counter(name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
            return Counter(name, doc, labels, registry=r)

        self.equity = gauge("mmgym_equity", "Equity (quote currency; NaN when a mark is unknown)")
        self.pnl = gauge("mmgym_pnl", "Equity less the session's collateral (quote currency)")
        component = gauge(
            "mmgym_pnl_component", "PnL decomposition of the journal (quote)", ["component"]
        )
        self._components = {name: component.labels(name) for name in (*COMPONENTS, "residual")}
        self.funding_drift = gauge(
            "mmgym_funding_drift", "Funding received less the expected carry (quote currency)"
        )
        position = gauge("mmgym_position", "Position (base units)", ["coin"])
        exposure = gauge("mmgym_exposure", "Position x mark (quote currency)", ["coin"])
        resting = gauge(
            "mmgym_resting_notional", "Open orders' unfilled notional (quote)", ["coin", "side"]
        )
        delta = gauge("mmgym_hedge_delta", "Perp position plus its hedge's (base units)", ["coin"])
        self._position = [position.labels(c) for c in coins]
        self._exposure = [exposure.labels(c) for c in coins]
        self._hedge_position = [position.labels(h) for h in hedges]
        self._hedge_exposure = [exposure.labels(h) for h in hedges]
        self._delta = [delta.labels(c) for c in coins] if hedges else []
        self._resting = [(resting.labels(c, "bid"), resting.labels(c, "ask")) for c in coins]
        self.mode = gauge("mmgym_risk_mode", "Risk mode: 0 ACTIVE, 1 REDUCING, 2 HALTED")
        self.operator_reducing = gauge(
            "mmgym_operator_reducing", "1 while an operator holds the account in REDUCING"
        )
        counts = counter("mmgym_limiter_counts", "Limiter denials, clips, transitions", ["reason"])
        self._counts = {int(x): counts.labels(x.name) for x in Reason if x != Reason.NONE}
        self._counted = np.zeros(len(Reason), dtype=np.int64)
        self._delta_counts = np.zeros(len(Reason), dtype=np.int64)
        self.decisions = counter("mmgym_decisions", "Decisions made")
        self.skipped = counter("mmgym_skipped_decisions", "Decision times skipped, stream down")
        self.reconciles = counter("mmgym_reconciles", "Reconciliations with the venue")
        self.drift = counter("mmgym_reconcile_drift", "Reconciliations that found drift")
        self.latency = Histogram(
            "mmgym_decision_latency_seconds",
            "Decision latency: pacer return to order manager return (host clock)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.message_to_order = Histogram(
            "mmgym_message_to_order_seconds",
            "Venue message taken to the orders it caused sent (host clock)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.messages = counter("mmgym_feed_messages", "Market messages taken by the feed")
        self.conflated = counter("mmgym_feed_conflated", "Market messages conflated")
        self.connected = gauge("mmgym_venue_connected", "1 while the venue's stream is up")
        self.disconnects = counter("mmgym_disconnects", "Venue streams lost")
        self.reconnects = counter("mmgym_reconnects", "Venue streams back after a loss")
        self._seen: dict[str, int] = {}
        self._latency_seen = 0
        self._message_seen = 0

    # --- the server -----------------------------------------------------------------------

    def start(self) -> str:
        """Serve the registry on 127.0.0.1 on a daemon thread (logged and journaled); the URL."""
        server, thread = start_http_server(self.port, addr=HOST, registry=self.registry)
        self._server, self._thread = server, thread
        self.url = f"http://{HOST}:{int(server.server_address[1])}/metrics"
        log.info("metrics served on %s", self.url)
        self.runner.journal.append(Kind.NOTE, {"event": "metrics_listening", "url": self.url})
        return self.url

    def close(self) -> None:
        """Stop serving (waits for the server's thread)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    # --- after each decision ----------------------------------------------------------------

    def update(self, decided: bool = True) -> None:
        """Take the runner's state after a decision (``decided``) or a skipped decision time."""
        runner = self.runner
        stats = runner.stats
        account = runner.account_view()
        positions = account.positions
        feed = runner.feed
        if feed is not None:
            equity = feed.equity(account)
            self.equity.set(equity)
            self.pnl.set(equity - feed.collateral)
            marks = feed.marks()
            self._inc(self.messages, "messages", feed.messages)
            self._inc(self.conflated, "conflated", feed.conflated)
        else:
            marks = np.full(len(self._coins), math.nan)
        self._pnl()
        orders = account.orders
        for k, coin in enumerate(self._coins):
            q = positions.get(coin, 0.0)
            mark = float(marks[k])
            self._position[k].set(q)
            self._exposure[k].set(q * mark)
            bid, ask = self._resting[k]
            o = orders.get((coin, True))
            bid.set(o.px * o.sz if o is not None else 0.0)
            o = orders.get((coin, False))
            ask.set(o.px * o.sz if o is not None else 0.0)
            if self._hedges:
                h = positions.get(self._hedges[k], 0.0)
                self._hedge_position[k].set(h)
                self._hedge_exposure[k].set(h * mark)
                self._delta[k].set(q + h)
        limiter = runner.guarded.limiter
        self.mode.set(int(limiter.state.mode[0]))
        self.operator_reducing.set(1.0 if limiter.operator_reducing[0] else 0.0)
        np.subtract(limiter.state.denials[0], self._counted, out=self._delta_counts)
        for r in np.flatnonzero(self._delta_counts > 0):
            if r:
                self._counts[int(r)].inc(int(self._delta_counts[r]))
        np.maximum(self._counted, limiter.state.denials[0], out=self._counted)
        self._inc(self.decisions, "decisions", stats.decisions)
        self._inc(self.skipped, "skipped", stats.skipped)
        self._inc(self.reconciles, "reconciles", stats.reconciles)
        self._inc(self.drift, "drift", stats.drift)
        self._inc(self.disconnects, "disconnects", stats.disconnects)
        reconnects = getattr(stats, "reconnects", None)
        if not isinstance(reconnects, int):
            reconnects = stats.disconnects - (0 if runner.connected else 1)
        self._inc(self.reconnects, "reconnects", reconnects)
        self.connected.set(1.0 if runner.connected else 0.0)
        latencies = stats.decision_latency_s
        while self._latency_seen < len(latencies):
            self.latency.observe(latencies[self._latency_seen])
            self._latency_seen += 1
        m2o = getattr(stats, "message_to_order_s", None)
        if isinstance(m2o, list):
            while self._message_seen < len(m2o):
                self.message_to_order.observe(m2o[self._message_seen])
                self._message_seen += 1
        elif decided and isinstance(m2o, float) and math.isfinite(m2o):
            self.message_to_order.observe(m2o)

    def _pnl(self) -> None:
        """The decomposition and funding drift of the rows journaled since the last update."""
        pnl = runner_pnl(self.runner).update()
        d = pnl.decomposition()
        for name, child in self._components.items():
            if d is None:
                child.set(math.nan)
            else:
                child.set(d.residual if name == "residual" else d.components[name])
        self.funding_drift.set(pnl.funding_drift)

    def _inc(self, counter: Counter, key: str, total: int) -> None:
        """Move ``counter`` up to the runner's running ``total``."""
        seen = self._seen.get(key, 0)
        if total > seen:
            counter.inc(total - seen)
            self._seen[key] = total
