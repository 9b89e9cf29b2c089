"""Alert rules: their config is checked with clear errors; incidents are de-duplicated,
reminded of at most once per cooldown and resolved after the hold (an injected clock); the
webhook posts off the caller's thread to a loopback server, rate-limited, and a webhook that is
down is logged and counted, never raised."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from agents.ops.alert_rules import CONDITIONS, Rule, RuleError, check_webhook_url, parse_rules
from agents.ops.alerts import Incidents, Webhook
from tests.ops_support import HookServer, closed_port_url
from tests.venue_support import loopback_only  # noqa: F401

pytestmark = pytest.mark.usefixtures("loopback_only")


def _rule(**kw: Any) -> Rule:
    raw = {"name": "drift", "condition": "funding_drift", "threshold": 1.0, **kw}
    return Rule.parse(raw)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"name": "a b", "condition": "drawdown", "threshold": 1}, "name must be an identifier"),
        ({"name": "x", "condition": "weather", "threshold": 1}, "condition must be one of"),
        ({"name": "x", "condition": "drawdown", "threshold": "1"}, "'x'.*threshold must be"),
        ({"name": "x", "condition": "drawdown"}, "threshold must be a finite number"),
        ({"name": "x", "condition": "drawdown", "threshold": 1, "severity": "loud"}, "severity"),
        ({"name": "x", "condition": "drawdown", "threshold": 1, "action": "flatten"}, "action"),
        ({"name": "x", "condition": "drawdown", "threshold": 1, "colour": 1}, "unknown field"),
        ({"name": "x", "condition": "drawdown", "threshold": 1, "window": 5}, "window applies"),
        ({"name": "x", "condition": "latency_p99", "threshold": 1, "window": 0}, "window must"),
        ({"name": "x", "condition": "drawdown", "threshold": 1, "cooldown_s": 0}, "cooldown_s"),
        ("drawdown > 1", "a rule is a mapping"),
    ],
)
def test_a_bad_rule_is_refused_naming_it(raw: Any, message: str) -> None:
    with pytest.raises(RuleError, match=message):
        parse_rules([raw])


def test_rules_parse_and_a_name_used_twice_is_refused() -> None:
    rules = parse_rules(
        [{"name": c, "condition": c, "threshold": 0.5, "action": "reduce"} for c in CONDITIONS]
    )
    assert [r.condition for r in rules] == list(CONDITIONS)
    assert rules[0].unit == "quote" and rules[0].severity == "warning"
    with pytest.raises(RuleError, match=r"\['x'\] used more than once"):
        parse_rules([{"name": "x", "condition": "drawdown", "threshold": 1}] * 2)
    assert parse_rules(None) == ()


def test_a_webhook_url_must_be_http_and_errors_hide_its_path() -> None:
    assert check_webhook_url("https://hooks.example/x") == "https://hooks.example/x"
    for bad in ("ftp://host/secret-token", "file:///etc/passwd", "127.0.0.1:9/secret-token"):
        with pytest.raises(RuleError, match="http:// or https://") as err:
            check_webhook_url(bad)
        assert "secret-token" not in str(err.value) and "passwd" not in str(err.value)


def test_a_storm_is_one_incident_reminded_once_per_cooldown_then_resolved() -> None:
    rule = _rule(resolve_after_s=10.0, cooldown_s=60.0)
    incidents = Incidents(clock_ms=lambda: 123)
    sent = []
    for t in range(0, 100):  # fires at every evaluation for 100 s
        notice = incidents.observe(rule, 5.0 + t, float(t))
        if notice is not None:
            sent.append((t, notice.state, notice.repeat, notice.suppressed))
    assert sent == [(0, "firing", False, 0), (60, "firing", True, 60)]
    # clear, but only for less than the hold: still the same incident (flapping)
    for t in (100, 105):
        assert incidents.observe(rule, 0.5, float(t)) is None
    assert incidents.observe(rule, 2.0, 108.0) is None  # held again: counted
    assert incidents.observe(rule, None, 112.0) is None  # unknown does not hold
    assert incidents.observe(rule, 0.0, 117.0) is None  # 9 s after the last hold
    notice = incidents.observe(rule, 0.0, 118.0)
    assert notice is not None and (notice.state, notice.suppressed) == ("resolved", 40)
    assert notice.incident == "drift@123" and not incidents.open
    # a later one is a new incident
    again = incidents.observe(rule, 3.0, 200.0)
    assert again is not None and (again.state, again.repeat, again.suppressed) == (
        "firing",
        False,
        0,
    )
    payload = again.payload(1_700_000_000_000)
    assert payload == {
        "rule": "drift",
        "severity": "warning",
        "action": "none",
        "state": "firing",
        "repeat": False,
        "incident": "drift@123",
        "value": 3.0,
        "threshold": 1.0,
        "unit": "quote",
        "message": payload["message"],
        "suppressed": 0,
        "venue_time_ms": 1_700_000_000_000,
    }
    assert "drift firing: funding_drift 3 quote > 1" in payload["message"]


def test_without_a_cooldown_an_open_incident_is_never_reminded_and_zero_hold_resolves_at_once():
    rule = _rule(resolve_after_s=0.0, cooldown_s=None)
    incidents = Incidents()
    notices = [incidents.observe(rule, 2.0, float(t)) for t in range(1000)]
    assert [n.state for n in notices if n is not None] == ["firing"]
    resolved = incidents.observe(rule, 1.0, 1000.0)  # at the threshold: not above it
    assert resolved is not None and (resolved.state, resolved.suppressed) == ("resolved", 999)


def test_the_webhook_posts_off_thread_rate_limited_and_survives_being_down(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hook = HookServer()
    now = [0.0]
    try:
        webhook = Webhook(hook.url, max_per_minute=6.0, clock_s=lambda: now[0])
        assert webhook.burst == 1.0
        sent = [webhook.send({"rule": f"r{i}"}) for i in range(3)]
        now[0] = 9.9  # 0.99 of a token refilled
        sent.append(webhook.send({"rule": "r3"}))
        now[0] = 10.0  # one token: one post
        sent += [webhook.send({"rule": "r4"}), webhook.send({"rule": "r5"})]
        assert webhook.flush(10.0)
        assert sent == [True, False, False, False, True, False]
        assert [b["rule"] for b in hook.bodies] == ["r0", "r4"]
        assert (webhook.stats.posted, webhook.stats.dropped, webhook.stats.failed) == (2, 4, 0)
        webhook.close()
    finally:
        hook.close()
    down = Webhook(closed_port_url() + "/secret-token", timeout_s=2.0)
    with caplog.at_level(logging.WARNING, logger="mmgym.alerts"):
        assert down.send({"rule": "x"})
        assert down.flush(10.0)
    down.close()
    assert down.stats.failed == 1 and down.stats.posted == 0
    assert "failed" in caplog.text and "secret-token" not in caplog.text
