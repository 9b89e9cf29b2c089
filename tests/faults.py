"""Faults injected into real runs, for the paths that must survive them."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

EVALUATION_FAULT = "evaluation env failed"


def fail_evaluating_the_learned_policy(
    monkeypatch: pytest.MonkeyPatch, trainer: ModuleType
) -> None:
    """Make ``trainer.evaluate_policies`` raise whenever it evaluates the learned policy (with
    ``train.eval_every_steps=0``: the final evaluation), as a failing evaluation env would; the
    baselines' evaluation before training runs for real."""
    real = trainer.evaluate_policies

    def failing(policies: dict[str, Any], *args: Any) -> Any:
        if "learned" in policies:
            raise RuntimeError(EVALUATION_FAULT)
        return real(policies, *args)

    monkeypatch.setattr(trainer, "evaluate_policies", failing)
