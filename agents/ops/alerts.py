"""Alerts of the live runner: rules evaluated after each decision, their incidents journaled,
logged and posted to an optional webhook, their corrective state applied between decisions.

The runner calls :meth:`AlertEngine.evaluate` after each decision and after each decision time
skipped while the venue's stream is down. Each rule (:class:`~agents.ops.alert_rules.Rule`)
measures its condition; above its threshold it holds. An incident opens when a rule's condition
holds and none of the rule's is open: a ``firing`` row is journaled (``Kind.ALERT``, payload
in docs/live.md), logged and posted, and the rule's action applied at once (before the next
decision, as an operator's command is): ``reduce`` calls
:meth:`~agents.deploy.risk.RiskLimiter.reduce_temporarily` (``ALERT``), again at every
evaluation the condition holds, so the limiter's REDUCING lasts until ``reducing_hold_seconds``
after the last; ``halt`` calls :meth:`~agents.deploy.risk.RiskLimiter.halt` (``ALERT``): every
order is cancelled at the next decision and only an operator resumes. The transition is
journaled as ``risk_transition`` naming the rule (``alert``, ``alert_seq``, operator
``alert:<rule>``).

De-duplication: while an incident is open, each further evaluation that holds is counted
(``suppressed``), not sent; a reminder (``firing``, ``repeat`` true, with the count) goes out
at most once per ``cooldown_s``. The incident resolves (a ``resolved`` row) once the condition
stayed clear for ``resolve_after_s``: a condition that flaps within that stays one incident.
Rule times are the decisions' venue times. The webhook posts each row's payload (and its
``seq``) as JSON from a thread of its own, through a bounded queue, each post with a time-out,
at most ``max_per_minute`` (host clock); what it drops or fails to post is logged (the URL's
host only), never raised, and never waits the decision loop.
"""

from __future__ import annotations

import collections
import json
import logging
import math
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from agents.deploy.risk import Reason, TradingMode
from agents.live.journal import Kind
from agents.ops.alert_rules import Rule, check_webhook_url, redacted
from agents.ops.pnl import runner_pnl

if TYPE_CHECKING:
    from agents.live.runner import LiveRunner

log = logging.getLogger("mmgym.alerts")

LOG_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.CRITICAL}
OPERATOR_PREFIX = "alert:"
"""A rule's action names the operator ``alert:<rule>`` in the limiter's transition."""


# --- incidents ----------------------------------------------------------------------------------


@dataclass
class Incident:
    """One open incident of a rule."""

    rule: Rule
    key: str
    """``<rule>@<host ms it opened>``."""
    value: float | None
    last_held_s: float
    last_sent_s: float
    suppressed: int = 0


@dataclass(frozen=True)
class Notice:
    """A row to journal, log and post: ``state`` ``firing`` or ``resolved``."""

    rule: Rule
    state: str
    repeat: bool
    incident: str
    value: float | None
    suppressed: int

    def payload(self, venue_time_ms: int | None) -> dict[str, Any]:
        rule = self.rule
        return {
            "rule": rule.name,
            "severity": rule.severity,
            "action": rule.action,
            "state": self.state,
            "repeat": self.repeat,
            "incident": self.incident,
            "value": _finite(self.value),
            "threshold": rule.threshold,
            "unit": rule.unit,
            "message": self.message(),
            "suppressed": self.suppressed,
            "venue_time_ms": venue_time_ms,
        }

    def message(self) -> str:
        rule = self.rule
        value = "unknown" if self.value is None else f"{self.value:.6g}"
        if self.state == "resolved":
            limit = f"{rule.threshold:g}"
            return f"{rule.name} resolved: {rule.condition} {value} {rule.unit} (<= {limit})"
        again = " still" if self.repeat else ""
        return (
            f"{rule.name}{again} firing: {rule.condition} {value} {rule.unit} > "
            f"{rule.threshold:g}, action {rule.action}"
        )


class Incidents:
    """The rules' incidents: :meth:`observe` takes each evaluation's measure of a rule and
    returns what to send (nothing, a firing, a reminder or a resolution). Times in s."""

    def __init__(self, clock_ms: Callable[[], int] | None = None) -> None:
        self.open: dict[str, Incident] = {}
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)

    def observe(self, rule: Rule, value: float | None, now_s: float) -> Notice | None:
        held = value is not None and value > rule.threshold
        incident = self.open.get(rule.name)
        if held:
            if incident is None:
                key = f"{rule.name}@{self._clock_ms()}"
                self.open[rule.name] = Incident(rule, key, value, now_s, now_s)
                return Notice(rule, "firing", False, key, value, 0)
            incident.value = value
            incident.last_held_s = now_s
            incident.suppressed += 1
            cooldown = rule.cooldown_s
            if cooldown is not None and now_s - incident.last_sent_s >= cooldown:
                count, incident.suppressed = incident.suppressed, 0
                incident.last_sent_s = now_s
                return Notice(rule, "firing", True, incident.key, value, count)
            return None
        if incident is not None and now_s - incident.last_held_s >= rule.resolve_after_s:
            del self.open[rule.name]
            return Notice(rule, "resolved", False, incident.key, value, incident.suppressed)
        return None


# --- the webhook --------------------------------------------------------------------------------


@dataclass
class WebhookStats:
    posted: int = 0
    failed: int = 0
    dropped: int = 0
    """Not posted: the queue was full or the rate limit reached."""


class Webhook:
    """POSTs JSON to ``url`` from a daemon thread: a bounded queue (:meth:`send` never waits),
    ``timeout_s`` per post, at most ``max_per_minute`` posts (a token bucket on ``clock_s``).
    A failure is logged with the URL's host only and counted, never raised."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 5.0,
        queue_size: int = 100,
        max_per_minute: float = 30.0,
        clock_s: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = check_webhook_url(url)
        self.where = redacted(url)
        self.timeout_s = timeout_s
        self.rate_per_s = max_per_minute / 60.0
        self.burst = max(1.0, max_per_minute / 6.0)
        self._tokens = self.burst
        self._refilled = clock_s()
        self._clock_s = clock_s
        self.stats = WebhookStats()
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=queue_size)
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self._thread = threading.Thread(target=self._run, name="mmgym-alert-webhook", daemon=True)
        self._thread.start()

    def send(self, body: dict[str, Any]) -> bool:
        """Queue ``body`` for posting (False: dropped, over the rate or the queue full)."""
        now = self._clock_s()
        self._tokens = min(self.burst, self._tokens + (now - self._refilled) * self.rate_per_s)
        self._refilled = now
        if self._tokens < 1.0:
            self.stats.dropped += 1
            log.warning("alert webhook %s: over %g posts a minute, %s not posted", self.where,
                        self.rate_per_s * 60.0, body.get("rule"))  # fmt: skip
            return False
        try:
            self._queue.put_nowait(body)
        except queue.Full:
            self.stats.dropped += 1
            log.warning("alert webhook %s: queue full, %s not posted", self.where, body.get("rule"))
            return False
        self._tokens -= 1.0
        return True

    def _run(self) -> None:
        while True:
            body = self._queue.get()
            try:
                if body is None:
                    return
                self._post(body)
            finally:
                self._queue.task_done()

    def _post(self, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        request = urllib.request.Request(
            self.url, data=data, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                response.read()
            self.stats.posted += 1
        except (urllib.error.HTTPError, urllib.error.URLError, OSError, ValueError) as err:
            self.stats.failed += 1
            code = getattr(err, "code", None)
            why = f"HTTP {code}" if isinstance(code, int) else type(err).__name__
            log.warning("alert webhook %s failed (%s): %s not posted", self.where, why,
                        body.get("rule"))  # fmt: skip

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait (at most ``timeout_s``) until every queued post was tried; whether they were."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def close(self, timeout_s: float = 10.0) -> None:
        """Post what is queued (at most ``timeout_s``), then stop the thread."""
        self.flush(timeout_s)
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            return  # a daemon thread: it ends with the process
        self._thread.join(timeout=timeout_s)


# --- the runner's measures ----------------------------------------------------------------------


@dataclass
class _Measures:
    """What the conditions need across evaluations."""

    peak_equity: float = -math.inf
    drift_seen: int = 0
    down_since_ms: int | None = None
    denials: collections.deque[int] = field(default_factory=lambda: collections.deque(maxlen=1))


def _order_reasons() -> np.ndarray:
    return np.array([r < Reason.ACCOUNT_OPENED and r != Reason.NONE for r in Reason], dtype=bool)


class AlertEngine:
    """Evaluates ``rules`` on ``runner`` (:meth:`evaluate`), journals, logs and posts their
    incidents (``webhook``: optional), and applies their actions to the runner's limiter."""

    def __init__(
        self,
        runner: LiveRunner,
        rules: Sequence[Rule],
        webhook: Webhook | None = None,
        *,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        self.runner = runner
        self.rules = tuple(rules)
        self.webhook = webhook
        self.incidents = Incidents(clock_ms)
        self._m = _Measures()
        windows = [r.window for r in self.rules if r.condition == "denial_rate"]
        self._m.denials = collections.deque(maxlen=max(windows, default=1) + 1)
        self._order_reasons = _order_reasons()
        self._last_rows: dict[str, dict[str, Any]] = {}
        self.evaluations = 0

    def active(self) -> list[dict[str, Any]]:
        """The open incidents: each one's last row, with its latest value and the count of
        evaluations that held since (for a dashboard and ``GET /v1/status``)."""
        out = []
        for name, incident in self.incidents.open.items():
            row = dict(self._last_rows.get(name, {}))
            row["value"] = _finite(incident.value)
            row["suppressed"] = incident.suppressed
            out.append(row)
        return out

    def close(self) -> None:
        if self.webhook is not None:
            self.webhook.close()

    # --- after each decision ------------------------------------------------------------------

    def evaluate(self, now_ms: int | None) -> None:
        """Measure every rule at the decision time ``now_ms`` (venue ms), send what changed and
        apply the actions. Never raises: a failure is logged (the decision loop goes on)."""
        try:
            self._evaluate(now_ms)
        except Exception:
            log.exception("alert evaluation failed")

    def _evaluate(self, now_ms: int | None) -> None:
        self.evaluations += 1
        now_s = (now_ms if now_ms is not None else time.time_ns() // 1_000_000) / 1000.0
        values = self._measure(now_ms)
        for rule in self.rules:
            value = values[rule.name]
            notice = self.incidents.observe(rule, value, now_s)
            seq = None
            if notice is not None:
                seq = self._send(notice, now_ms)
            held = value is not None and value > rule.threshold
            if held and rule.action != "none":
                self._act(rule, seq, first=notice is not None and not notice.repeat)

    def _send(self, notice: Notice, now_ms: int | None) -> int | None:
        payload = notice.payload(now_ms)
        seq = self.runner.journal.append(Kind.ALERT, payload)
        if notice.state == "firing":
            self._last_rows[notice.rule.name] = payload
        log.log(LOG_LEVELS[notice.rule.severity], "alert %s", payload["message"])
        if self.webhook is not None:
            self.webhook.send({**payload, "seq": seq})
        return seq

    def _act(self, rule: Rule, seq: int | None, first: bool) -> None:
        """The rule's corrective state, now (between decisions); its transitions journaled."""
        limiter = self.runner.guarded.limiter
        who = f"{OPERATOR_PREFIX}{rule.name}"
        if rule.action == "reduce":
            limiter.reduce_temporarily(0, who, reason=Reason.ALERT)
        elif rule.action == "halt" and first and limiter.state.mode_of(0) != TradingMode.HALTED:
            limiter.halt(0, who, reason=Reason.ALERT)
        from agents.live.runner import _transition_payload

        for transition in self.runner.guarded.drain_transitions():
            payload = _transition_payload(transition)
            payload["alert"] = rule.name
            payload["alert_seq"] = seq
            self.runner.journal.append(Kind.RISK_TRANSITION, payload)

    def _measure(self, now_ms: int | None) -> dict[str, float | None]:
        runner = self.runner
        m = self._m
        stats = runner.stats
        limiter = runner.guarded.limiter
        denials = int(np.sum(limiter.state.denials[0][self._order_reasons]))
        m.denials.append(denials)
        new_drift = stats.out_of_step - m.drift_seen
        m.drift_seen = stats.out_of_step
        if runner.connected:
            m.down_since_ms = None
        elif m.down_since_ms is None:
            m.down_since_ms = now_ms
        equity = math.nan
        if runner.feed is not None:
            equity = runner.feed.equity(runner.account_view())
        if math.isfinite(equity):
            m.peak_equity = max(m.peak_equity, equity)
        out: dict[str, float | None] = {}
        for rule in self.rules:
            c = rule.condition
            value: float | None
            if c == "funding_drift":
                value = abs(runner_pnl(runner).update().funding_drift)
            elif c == "reconcile_drift":
                value = float(new_drift)
            elif c == "disconnected":
                since = m.down_since_ms
                value = 0.0 if since is None or now_ms is None else (now_ms - since) / 1000.0
            elif c == "latency_p99":
                latencies = stats.decision_latency_s
                value = (
                    float(np.percentile(latencies[-rule.window :], 99))
                    if len(latencies) >= rule.window
                    else None
                )
            elif c == "drawdown":
                peak = m.peak_equity
                value = (peak - equity) / peak if math.isfinite(equity) and peak > 0 else None
            elif c == "denial_rate":
                history = list(m.denials)[-(rule.window + 1) :]
                value = (
                    (history[-1] - history[0]) / rule.window
                    if len(history) == rule.window + 1
                    else None
                )
            elif c == "risk_mode":
                value = float(limiter.state.mode[0])
            elif c == "position":
                limit = float(limiter.limits.max_position)
                positions = runner.manager.positions
                largest = max(abs(positions.get(coin, 0.0)) for coin in runner.config.coins)
                value = largest / limit if limit > 0 else None
            else:  # stale_data
                age = float(runner.inputs.accounts[0]["data_age_s"])
                value = age if not math.isnan(age) else None
            out[rule.name] = value
        return out


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def from_config(runner: LiveRunner, rules: Sequence[Rule], webhook: Any) -> AlertEngine:
    """The engine of ``rules`` with the configured webhook (``webhook.url`` None: none)."""
    hook = None
    if webhook is not None and getattr(webhook, "url", None):
        hook = Webhook(
            webhook.url,
            timeout_s=webhook.timeout_s,
            queue_size=webhook.queue_size,
            max_per_minute=webhook.max_per_minute,
        )
    return AlertEngine(runner, rules, hook)
