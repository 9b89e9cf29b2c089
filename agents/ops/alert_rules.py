"""Alert rules as configured (conf/live/alerts/*.yaml), checked: each names a condition on the
live runner's state, a threshold, a severity and the corrective state it triggers.

Pure Python with no import beyond the standard library, so that the config schema
(:class:`agents.config.AlertsConfig`) validates rules when the config is composed. The engine
that evaluates them is :mod:`agents.ops.alerts`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

SEVERITIES = ("info", "warning", "critical")
ACTIONS = ("none", "reduce", "halt")
"""``none``: only the alert; ``reduce``: REDUCING (the limiter's own hold, extended at every
evaluation the condition holds, ending ``reducing_hold_seconds`` after the last); ``halt``:
HALTED (every order cancelled at the next decision; only an operator resumes)."""

CONDITIONS: dict[str, tuple[str, str]] = {
    "funding_drift": (
        "quote",
        "abs(funding drift): the perps' funding payments received less the expected carry "
        "from the funding rates the venue published (agents/ops/pnl.py), over the session",
    ),
    "reconcile_drift": (
        "count",
        "reconciliations with the venue that found orders the journal never sent (orphans) "
        "or a position that differs after the missed fills were imported, since the last "
        "evaluation (missed fills alone are repaired, not counted)",
    ),
    "disconnected": (
        "s",
        "venue time since the evaluation that first saw the venue's stream down (0 while up)",
    ),
    "latency_p99": (
        "s",
        "the 99th percentile of the last `window` decisions' latency (host clock; none until "
        "`window` decisions were made)",
    ),
    "drawdown": (
        "fraction",
        "(peak equity - equity) / peak equity, the peak over the evaluations of this run",
    ),
    "denial_rate": (
        "count",
        "the RiskLimiter's order denials and clips per decision over the last `window` decisions",
    ),
    "risk_mode": ("state", "the risk mode: 0 ACTIVE, 1 REDUCING, 2 HALTED"),
    "position": (
        "fraction",
        "the largest abs(position) of the perps over the limiter's max_position",
    ),
    "stale_data": (
        "s",
        "the age of the market data the last decision read (inf: a perp's book of that "
        "interval never came)",
    ),
}
"""Condition name -> (unit, what its value is). A rule fires when the value is above its
threshold (unknown values never fire)."""
WINDOWED = ("latency_p99", "denial_rate")
"""Conditions that take a ``window`` (decisions)."""

FIELDS = (
    "name",
    "condition",
    "threshold",
    "severity",
    "action",
    "window",
    "resolve_after_s",
    "cooldown_s",
)


class RuleError(ValueError):
    """A rule or the webhook is misconfigured (the message names the rule and the field)."""


@dataclass(frozen=True)
class Rule:
    """One alert rule (docs/operations.md, "Alerts")."""

    name: str
    condition: str
    threshold: float
    severity: str = "warning"
    action: str = "none"
    window: int = 100
    """Decisions (only for :data:`WINDOWED` conditions)."""
    resolve_after_s: float = 60.0
    """An incident resolves once the condition stayed clear this long (venue time, s)."""
    cooldown_s: float | None = 300.0
    """While an incident stays open, a reminder at most this often (None: never)."""

    @property
    def unit(self) -> str:
        return CONDITIONS[self.condition][0]

    @classmethod
    def parse(cls, raw: Any, where: str = "rule") -> Rule:
        """The rule of a config mapping; :class:`RuleError` naming what is wrong."""
        if not isinstance(raw, Mapping):
            raise RuleError(f"{where}: a rule is a mapping of {list(FIELDS)}, got {raw!r}")
        name = raw.get("name")
        if not isinstance(name, str) or not name.strip() or not name.isidentifier():
            raise RuleError(f"{where}: name must be an identifier (letters, digits, _): {name!r}")
        where = f"alert rule {name!r}"
        unknown = sorted(str(k) for k in raw if k not in FIELDS)
        if unknown:
            raise RuleError(f"{where}: unknown field(s) {unknown}; the fields are {list(FIELDS)}")
        condition = raw.get("condition")
        if condition not in CONDITIONS:
            raise RuleError(f"{where}: condition must be one of {list(CONDITIONS)}: {condition!r}")
        severity = raw.get("severity", "warning")
        if severity not in SEVERITIES:
            raise RuleError(f"{where}: severity must be one of {list(SEVERITIES)}: {severity!r}")
        action = raw.get("action", "none")
        if action not in ACTIONS:
            raise RuleError(f"{where}: action must be one of {list(ACTIONS)}, got {action!r}")
        threshold = _number(raw.get("threshold"), where, "threshold")
        window = raw.get("window", 100)
        if not isinstance(window, int) or isinstance(window, bool) or window < 1:
            raise RuleError(f"{where}: window must be an integer >= 1 (decisions), got {window!r}")
        if "window" in raw and condition not in WINDOWED:
            raise RuleError(f"{where}: window applies only to {list(WINDOWED)}, not {condition}")
        resolve = _number(raw.get("resolve_after_s", 60.0), where, "resolve_after_s")
        cooldown_raw = raw.get("cooldown_s", 300.0)
        cooldown = None if cooldown_raw is None else _number(cooldown_raw, where, "cooldown_s")
        if resolve < 0 or (cooldown is not None and cooldown <= 0):
            raise RuleError(f"{where}: resolve_after_s must be >= 0 and cooldown_s > 0 (or null)")
        return cls(name, condition, threshold, severity, action, window, resolve, cooldown)


def _number(value: Any, where: str, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RuleError(f"{where}: {field} must be a finite number, got {value!r}")
    return float(value)


def parse_rules(raw: Any) -> tuple[Rule, ...]:
    """The rules of a config list; :class:`RuleError` for a bad one or a name used twice."""
    if raw is None:
        return ()
    if isinstance(raw, str | bytes) or not hasattr(raw, "__iter__"):
        raise RuleError(f"alerts.rules must be a list of rules, got {raw!r}")
    rules = tuple(Rule.parse(r, f"alerts.rules[{i}]") for i, r in enumerate(raw))
    names = [r.name for r in rules]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise RuleError(f"alerts.rules: rule name(s) {twice} used more than once")
    return rules


def check_webhook_url(url: str) -> str:
    """``url`` if it is http(s) with a host; :class:`RuleError` otherwise (the message shows
    the scheme and host only: a webhook's path often holds its secret)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RuleError(
            f"alerts.webhook.url must be an http:// or https:// URL with a host, got a "
            f"{parts.scheme or 'schemeless'} URL"
        )
    return url


def redacted(url: str) -> str:
    """The URL's scheme, host and port (what a log may show of a webhook)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
