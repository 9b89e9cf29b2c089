"""Fault rules, the seeded decision of which message gets which fault, and the fault log.

A :class:`FaultRule` names a fault kind, the messages it applies to (a target, and optionally a
path, a label and WebSocket connections) and when it fires: with a probability per matching
message, or at scripted positions (``nth``: the 1-based indices among the messages it matches).
:class:`FaultPlan` decides for each message which rule fires (the first one that does, in rule
order); every draw is a hash of (seed, rule, stream, index), so a run that sends the same
messages in each stream gets the same faults, whatever the interleaving of the streams.

Streams: all HTTP requests form one stream (``http``); each WebSocket connection (numbered from 1
in the order the proxy accepts them) has two, client to server (``ws_up``) and server to client
(``ws_down``); the WebSocket handshakes form one stream (``ws_connect``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Target(StrEnum):
    """Which messages a rule applies to."""

    HTTP = "http"  # an HTTP request (POST /info, POST /exchange, ...)
    WS_CONNECT = "ws_connect"  # a WebSocket handshake
    WS_UP = "ws_up"  # a WebSocket message from the client to the server
    WS_DOWN = "ws_down"  # a WebSocket message from the server to the client


class FaultKind(StrEnum):
    """What is done to a message. ``seconds`` is the rule's duration parameter."""

    DROP_REQUEST = "drop_request"  # HTTP: not forwarded; ``seconds`` later the connection closes
    DROP_RESPONSE = "drop_response"  # HTTP: forwarded; the answer is discarded, connection closes
    DROP = "drop"  # WebSocket message: not delivered
    DUPLICATE = "duplicate"  # forwarded twice (HTTP: the client gets the first answer)
    DELAY = "delay"  # forwarded ``seconds`` later (WebSocket: the stream waits, order kept)
    REORDER = "reorder"  # held until the next message of its stream passed (``seconds`` at most)
    DISCONNECT = "disconnect"  # the client's connection closes at once, message not forwarded
    ERROR_5XX = "error_5xx"  # HTTP / handshake: answered with ``status`` (default 502)
    REJECT = "reject"  # HTTP: answered {"status": "err", "response": text}
    ORDER_ERROR = "order_error"  # HTTP /exchange: every order or cancel answered {"error": text}


ALLOWED: dict[Target, frozenset[FaultKind]] = {
    Target.HTTP: frozenset(FaultKind) - {FaultKind.DROP},
    Target.WS_CONNECT: frozenset(
        {FaultKind.DROP_REQUEST, FaultKind.DELAY, FaultKind.DISCONNECT, FaultKind.ERROR_5XX}
    ),
    Target.WS_UP: frozenset(
        {
            FaultKind.DROP,
            FaultKind.DUPLICATE,
            FaultKind.DELAY,
            FaultKind.REORDER,
            FaultKind.DISCONNECT,
        }
    ),
}
ALLOWED[Target.WS_DOWN] = ALLOWED[Target.WS_UP]
ANSWERS = frozenset({FaultKind.ERROR_5XX, FaultKind.REJECT, FaultKind.ORDER_ERROR})
DEFAULT_SECONDS = {
    FaultKind.DROP_REQUEST: 0.0,
    FaultKind.DROP_RESPONSE: 0.0,
    FaultKind.DELAY: 0.2,
    FaultKind.REORDER: 0.5,
}
MAX_SECONDS = 60.0  # every hold, delay and reorder window is bounded


@dataclass(frozen=True)
class FaultRule:
    """One fault: its kind, the messages it applies to and when it fires.

    ``p`` (a probability per matching message) and ``nth`` (1-based indices among the matching
    messages of a stream) are exclusive; with neither the rule fires on every matching message.
    ``limit`` caps how often it fires in all. ``path`` (HTTP and handshakes) and ``label`` (the
    action or info ``type`` of an HTTP body; the ``method`` or subscription ``type`` of a message
    to the server; the ``channel`` of a message to the client) narrow the match; ``connections``
    limits WebSocket rules to those connection numbers. ``seconds`` is the delay, the reorder
    window or the hold before a dropped request's connection closes (``max_seconds``: drawn
    uniformly in [seconds, max_seconds]). ``after_forward`` makes an answer kind (5xx, reject,
    order error) reach the server first, so the client's answer hides what the server did.
    """

    kind: FaultKind
    target: Target = Target.HTTP
    p: float | None = None
    nth: tuple[int, ...] = ()
    limit: int | None = None
    path: str | None = None
    label: str | None = None
    connections: tuple[int, ...] = ()
    seconds: float | None = None
    max_seconds: float | None = None
    status: int = 502
    text: str = "rejected by the fault proxy"
    after_forward: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", _enum(FaultKind, self.kind, "kind"))
        object.__setattr__(self, "target", _enum(Target, self.target, "target"))
        object.__setattr__(self, "nth", tuple(int(i) for i in self.nth))
        object.__setattr__(self, "connections", tuple(int(c) for c in self.connections))
        problem = self._problem()
        if problem:
            raise ValueError(f"fault rule {self.describe()}: {problem}")

    def _problem(self) -> str | None:
        if self.kind not in ALLOWED[self.target]:
            allowed = ", ".join(sorted(ALLOWED[self.target]))
            return f"{self.kind} does not apply to {self.target} (allowed: {allowed})"
        if self.p is not None and self.nth:
            return "give either p or nth, not both"
        if self.p is not None and not 0.0 <= self.p <= 1.0:
            return f"p={self.p} is not a probability in [0, 1]"
        if any(i < 1 for i in self.nth):
            return f"nth={list(self.nth)}: indices count from 1"
        if self.limit is not None and self.limit < 1:
            return f"limit={self.limit} must be at least 1"
        if self.connections and self.target in (Target.HTTP, Target.WS_CONNECT):
            return "connections applies to ws_up and ws_down only"
        low, high = self.seconds, self.max_seconds
        for name, value in (("seconds", low), ("max_seconds", high)):
            if value is not None and not 0.0 <= value <= MAX_SECONDS:
                return f"{name}={value} is outside [0, {MAX_SECONDS}] s"
        if high is not None and high < (low or 0.0):
            return f"max_seconds={high} is below seconds={low}"
        if self.kind == FaultKind.ERROR_5XX and not 500 <= self.status <= 599:
            return f"status={self.status} is not a 5xx status"
        if self.after_forward and self.kind not in ANSWERS:
            return "after_forward applies to error_5xx, reject and order_error only"
        if self.after_forward and self.target != Target.HTTP:
            return "after_forward applies to HTTP requests only"
        return None

    def describe(self) -> str:
        """The rule in the command line's syntax (``target:kind:key=value...``)."""
        parts = [str(self.target), str(self.kind)]
        for key, default in _DEFAULTS.items():
            value = getattr(self, key)
            if value != default:
                if isinstance(value, tuple):
                    value = ",".join(str(v) for v in value)
                parts.append(f"{key}={value}")
        return ":".join(parts)

    def matches(self, target: Target, path: str, labels: tuple[str, ...], connection: int) -> bool:
        """Whether a message of ``target`` on ``path`` with ``labels`` is one of this rule's."""
        return (
            target == self.target
            and (self.path is None or self.path == path)
            and (self.label is None or self.label in labels)
            and (not self.connections or connection in self.connections)
        )

    def duration(self, draw: float) -> float:
        """The rule's duration (s) given a uniform draw in [0, 1)."""
        low = self.seconds if self.seconds is not None else DEFAULT_SECONDS.get(self.kind, 0.0)
        if self.max_seconds is None:
            return low
        return low + draw * (self.max_seconds - low)

    @classmethod
    def parse(cls, spec: str) -> FaultRule:
        """A rule from ``target:kind[:key=value...]``, e.g. ``http:drop_response:label=order:nth=3``
        or ``ws_down:drop:p=0.01:connections=1``; list values are comma-separated."""
        fields = spec.split(":")
        if len(fields) < 2:
            raise ValueError(f"fault rule {spec!r}: expected target:kind[:key=value...]")
        options: dict[str, Any] = {}
        for item in fields[2:]:
            key, sep, value = item.partition("=")
            if not sep or key not in _PARSERS:
                keys = ", ".join(_PARSERS)
                raise ValueError(
                    f"fault rule {spec!r}: {item!r} is not key=value with a key in {keys}"
                )
            try:
                options[key] = _PARSERS[key](value)
            except ValueError as error:
                raise ValueError(f"fault rule {spec!r}: {key}={value!r}: {error}") from None
        return cls(kind=fields[1], target=fields[0], **options)  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultRule:
        """A rule from a mapping of its fields (a JSON plan's entry)."""
        unknown = set(data) - {"kind", "target", *_DEFAULTS}
        if unknown:
            raise ValueError(f"fault rule {data}: unknown fields {sorted(unknown)}")
        return cls(**data)


def _enum(kind: type[StrEnum], value: Any, name: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(kind)
        raise ValueError(f"fault rule: {name}={value!r} is not one of {choices}") from None


def _ints(value: str) -> tuple[int, ...]:
    return tuple(int(v) for v in value.split(",") if v)


def _bool(value: str) -> bool:
    if value.lower() in ("1", "true", "yes"):
        return True
    if value.lower() in ("0", "false", "no"):
        return False
    raise ValueError("expected true or false")


_PARSERS: dict[str, Any] = {
    "p": float,
    "nth": _ints,
    "limit": int,
    "path": str,
    "label": str,
    "connections": _ints,
    "seconds": float,
    "max_seconds": float,
    "status": int,
    "text": str,
    "after_forward": _bool,
}
_DEFAULTS: dict[str, Any] = {
    "p": None,
    "nth": (),
    "limit": None,
    "path": None,
    "label": None,
    "connections": (),
    "seconds": None,
    "max_seconds": None,
    "status": 502,
    "text": "rejected by the fault proxy",
    "after_forward": False,
}


def uniform(seed: int, *key: object) -> float:
    """A uniform draw in [0, 1) that depends only on ``seed`` and ``key``."""
    text = "/".join(str(k) for k in (seed, *key)).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big") / 2.0**64


@dataclass(frozen=True)
class Decision:
    """The rule that fires on one message (its index in the plan) and its duration (s)."""

    rule_index: int
    rule: FaultRule
    match_index: int  # the message's 1-based index among the rule's matches in its stream
    seconds: float


@dataclass
class FaultPlan:
    """Seeded decisions over a list of rules; counts matching messages per rule and stream."""

    rules: list[FaultRule]
    seed: int = 0
    _matched: dict[tuple[int, str], int] = field(default_factory=dict)
    _fired: dict[int, int] = field(default_factory=dict)

    def decide(
        self,
        target: Target,
        stream: str,
        path: str = "",
        labels: tuple[str, ...] = (),
        connection: int = 0,
    ) -> Decision | None:
        """The fault for the next message of ``stream`` (None: it passes untouched). Every rule
        that matches counts the message, whether or not an earlier rule fires on it."""
        chosen: Decision | None = None
        for index, rule in enumerate(self.rules):
            if not rule.matches(target, path, labels, connection):
                continue
            count = self._matched.get((index, stream), 0) + 1
            self._matched[index, stream] = count
            if chosen is not None or not self._fires(index, rule, stream, count):
                continue
            self._fired[index] = self._fired.get(index, 0) + 1
            draw = uniform(self.seed, "seconds", index, stream, count)
            chosen = Decision(index, rule, count, rule.duration(draw))
        return chosen

    def _fires(self, index: int, rule: FaultRule, stream: str, count: int) -> bool:
        if rule.limit is not None and self._fired.get(index, 0) >= rule.limit:
            return False
        if rule.nth:
            return count in rule.nth
        if rule.p is None:
            return True
        return uniform(self.seed, "fire", index, stream, count) < rule.p


@dataclass(frozen=True)
class FaultRecord:
    """What the proxy did to one message. ``delivered``: whether the message reached its
    recipient (for an HTTP request, the server: a dropped answer after the request reached the
    server has True, a dropped request False); ``upstream_status``: the HTTP status the server
    answered, if it answered."""

    target: str
    stream: str
    message: int  # the message's 1-based index in its stream
    kind: str
    rule: int
    match_index: int
    path: str
    label: str
    delivered: bool
    upstream_status: int | None = None
    seconds: float = 0.0
    detail: str = ""
    at: float = field(default=0.0, compare=False)  # seconds since the proxy started

    def to_json(self) -> str:
        """One line of the JSON-lines fault log."""
        return json.dumps(asdict(self), sort_keys=True)
