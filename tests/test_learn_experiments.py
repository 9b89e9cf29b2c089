"""The "does it learn?" experiments, end to end on tiny budgets, and learn_cj's reference.

The smoke runs only check that each module trains, evaluates and writes finite numbers; the
learning itself is measured by the full runs (``experiments/learn_cj``, ``experiments/learn_perp``).
The reference check runs the exact CJ strategy through learn_cj's evaluation and reference code:
at a fine ``dt`` (discretisation bias 0.08, below the SE) its simulated value must reproduce the
closed form ``h(0, 0)``, so a PPO fraction of ``h(0, 0)`` is measured against the right number.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from agents.baselines.as_env_policies import GLFTPolicy
from agents.baselines.registry import BASELINES
from experiments.cj2015.run import cj_policy, exact_value
from experiments.learn_cj import run as learn_cj
from experiments.learn_perp import run as learn_perp


def _finite_numbers(node: Any) -> list[float]:
    if isinstance(node, dict):
        return [x for value in node.values() for x in _finite_numbers(value)]
    if isinstance(node, list | tuple):
        return [x for value in node for x in _finite_numbers(value)]
    if isinstance(node, bool) or not isinstance(node, int | float):
        return []
    return [float(node)]


def test_learn_cj_smoke(tmp_path: Path) -> None:
    out = tmp_path / "learn_cj"
    argv = ["--out", str(out), "--steps", "3000", "--envs", "16", "--paths", "400"]
    results = learn_cj.main([*argv, "--seeds", "0", "--curve-every", "1000"])
    for name in ("results.md", "results.json", "learning_curve.png"):
        assert (out / name).is_file(), name
    data = json.loads((out / "results.json").read_text())
    assert all(math.isfinite(x) for x in _finite_numbers(data))
    (seed,) = data["seeds"]
    assert seed["steps"] >= 3000 and len(seed["curve"]) >= 3
    refs = data["refs"]
    # The discrete env's optimum is at least CJ's value in it; both exceed h(0, 0) at this dt.
    assert refs["optimum"] >= refs["cj_exact"] > refs["h00"] > 0
    assert results.seeds[0].se > 0
    assert "of h(0, 0)" in (out / "results.md").read_text()


def test_cj_through_learn_cj_evaluation_reproduces_h00() -> None:
    cfg = learn_cj.LearnConfig(dt=0.0005, eval_paths=6000)
    c = cfg.cj()
    refs = learn_cj.references(c)
    sample = learn_cj.evaluate(cj_policy(c), c)
    assert abs(refs.bias) < sample.se  # the DP's bias is below the SE at this dt
    _, low, high = learn_cj.fraction(sample.mean, sample.ci, refs.h00)
    assert low <= 1.0 <= high, (sample.mean, sample.se, refs.h00)
    assert abs(sample.mean - refs.h00) < 2.0 * sample.se


def test_discrete_optimum_bounds_every_policy() -> None:
    c = learn_cj.LearnConfig(dt=0.005).cj()
    optimum = learn_cj.discrete_optimum(c)
    for policy in (cj_policy(c), GLFTPolicy(0.3, c.sigma, c.A, c.k)):
        assert exact_value(policy, c) <= optimum + 1e-9
    # Converged in the number of coordinate sweeps.
    assert abs(learn_cj.discrete_optimum(c, sweeps=40) - optimum) < 1e-9


def test_learn_perp_smoke(tmp_path: Path) -> None:
    out = tmp_path / "learn_perp"
    argv = ["--out", str(out), "--runs-dir", str(tmp_path / "runs"), "--scenarios", "calm"]
    argv += ["--seeds", "0", "--steps", "1024", "--envs", "8", "--episode-seconds", "30"]
    argv += ["--eval-seeds", "1000", "1001", "--eval-envs", "4"]
    results = learn_perp.main(argv)
    for name in ("results.md", "results.json"):
        assert (out / name).is_file(), name
    data = json.loads((out / "results.json").read_text())
    (scenario,) = data["scenarios"]
    policies = {row["policy"] for row in scenario["league"]}
    assert "ppo_s0" in policies and scenario["best_baseline"] in policies
    assert set(BASELINES) <= policies  # every registered baseline
    (comparison,) = scenario["comparisons"]
    assert comparison["episodes"] == 8
    assert all(math.isfinite(x) for x in _finite_numbers(scenario))
    assert isinstance(comparison["met"], bool)
    assert (tmp_path / "runs" / "calm-ppo-s0" / "model.zip").is_file()
    assert np.isfinite(results.scenarios[0].comparisons[0].pnl_diff)
