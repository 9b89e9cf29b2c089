"""The fuzz command: a tiny budget runs clean, and its checks do catch a breach."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from agents.deploy.fuzz import POLICIES, FuzzReport, _check_step, fuzz
from agents.deploy.limited_env import RiskLimitedVectorEnv
from agents.deploy.risk import RiskLimits
from mmgym.envs.perp_mm import PerpMMVectorEnv

ROOT = Path(__file__).resolve().parent.parent


def test_fuzz_command_with_a_tiny_budget_prints_no_breach_and_the_tables() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "agents.deploy.fuzz",
            "--decisions",
            "3e3",
            "--num-envs",
            "12",
            "--scenarios",
            "calm",
            "cross_margin_event",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    out = done.stdout
    assert "| **total** | **0** |" in out
    assert "| reason | kind | count | per 1k decisions |" in out
    assert "| ACCOUNT_OPENED | transition |" in out and "| CROSSES_BOOK | order |" in out
    for line in out.splitlines():
        if line.startswith("|"):
            assert line.endswith("|") and line.count("|") in (3, 5, 6)


def test_every_policy_runs_and_the_report_counts_decisions() -> None:
    report = fuzz(1_200, num_envs=12, scenarios=("volatile",), progress=False)
    assert report.total_breaches == 0
    assert report.decisions == 1_200 and report.modes.sum() == report.decisions
    assert len(POLICIES) == 6


def test_the_checks_catch_orders_beyond_the_limits_they_are_given() -> None:
    """Checked against limits ten times smaller than the env's, the same orders breach."""
    env = RiskLimitedVectorEnv(PerpMMVectorEnv(8, scenario="calm"), RiskLimits())
    env.reset(seed=0)
    env.step(np.tile([0.0, -1.0, 1.0, 1.0, 1.0], (8, 1)))  # the largest quotes at the touch
    report = FuzzReport()
    small = RiskLimits(max_position=0.1, max_gross_notional=10.0, max_net_notional=5.0)
    _check_step(env, small, np.ones(8, dtype=np.bool_), report)
    assert report.breaches["position"] > 0
    assert report.breaches["gross"] > 0 and report.breaches["net"] > 0
    clean = FuzzReport()
    _check_step(env, RiskLimits(), np.ones(8, dtype=np.bool_), clean)
    assert clean.total_breaches == 0
