"""The live side (agents.deploy's and agents.live) imports no training stack, and agents.deploy's
exports are lazy."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

import agents.deploy

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = ("torch", "stable_baselines3", "ray", "hydra", "pandas", "matplotlib")
LIVE_SIDE = (
    "agents.deploy",
    "agents.deploy.risk",
    "agents.deploy.bundle",
    "agents.deploy.guard",
    "agents.live",
    "agents.live.venues",
)


def test_importing_the_live_side_in_a_fresh_process_imports_no_training_stack() -> None:
    present = [m for m in LIVE_SIDE if importlib.util.find_spec(m) is not None]
    assert {
        "agents.deploy",
        "agents.deploy.risk",
        "agents.deploy.guard",
        "agents.live.venues",
    } <= set(present)
    code = (
        "import importlib, sys\n"
        f"for name in {present!r}:\n"
        "    importlib.import_module(name)\n"
        "from agents.deploy import GuardedPolicy, RiskLimiter, RiskLimits, TradingState\n"
        "assert GuardedPolicy.__module__ == 'agents.deploy.guard'\n"
        f"print(','.join(m for m in {FORBIDDEN!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "", f"imported: {done.stdout.strip()}"


def test_exports_are_lazy_and_missing_ones_say_so() -> None:
    assert set(agents.deploy.__all__) == {
        "vet",
        "export_bundle",
        "load_bundle",
        "GuardedPolicy",
        "RiskLimits",
        "RiskLimiter",
        "TradingState",
        "RiskLimitedVectorEnv",
    }
    from agents.deploy.risk import RiskLimiter

    assert agents.deploy.RiskLimiter is RiskLimiter
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        agents.deploy.nothing  # noqa: B018
    for name, module in agents.deploy._EXPORTS.items():
        if importlib.util.find_spec(module) is None:
            with pytest.raises(AttributeError, match=f"{name} is not available yet"):
                getattr(agents.deploy, name)
