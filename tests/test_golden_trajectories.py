"""Golden trajectories: refactors of the kernel and the shells must leave every trajectory
bit-identical.

Each case steps an env with seeded random actions through several episodes (autoresets
included) and hashes, separately, the observations, the rewards with the end flags, and every
``info`` entry (sorted by key, with dtype and shape). The digests in
``golden_trajectories.json`` were recorded before the kernel's refactors. A change of market
behaviour that is intended regenerates them, and says so in its commit:

    .venv/bin/python tests/test_golden_trajectories.py --write

The digests hold for float64 arithmetic on x86-64 Linux with the pinned NumPy and numba.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import mmgym

GOLDEN = Path(__file__).with_name("golden_trajectories.json")
STEPS = 300
NUM_ENVS = 3
SHORT = {"episode_seconds": 100.0}  # 100 decisions: two autoresets within STEPS

CASES: dict[str, dict[str, Any]] = {
    "calm": {"scenario": "calm", **SHORT},
    "volatile": {"scenario": "volatile", **SHORT},
    "liquidation_cascade": {"scenario": "liquidation_cascade", **SHORT},
    "cross_margin_event_k3": {"scenario": "cross_margin_event", "num_assets": 3, **SHORT},
    "funding_squeeze": {"scenario": "funding_squeeze", "funding_interval_seconds": 30.0, **SHORT},
    "hedge_twap": {"scenario": "calm", "hedge_schedule": "twap", **SHORT},
    "hedge_almgren_chriss": {"scenario": "calm", "hedge_schedule": "almgren_chriss", **SHORT},
    "inventory_penalty": {
        "scenario": "volatile",
        "reward": "inventory_penalty",
        "inventory_penalty": 1e-3,
        "terminal_inventory_penalty": 1e-2,
        **SHORT,
    },
    "agent_liquidated": {  # high leverage on little collateral: random quotes get liquidated
        "scenario": "volatile",
        "collateral": 1.0,
        "margin_tiers": ((0.0, 1000.0), (500.0, 500.0)),
        **SHORT,
    },
    "parallel_kernel": {"scenario": "flash_crash", "parallel": True, **SHORT},
}
AS_CASES: dict[str, dict[str, Any]] = {
    "as_wealth": {},
    "as_inventory_penalty": {"reward": "inventory_penalty", "phi": 0.01, "alpha": 0.1},
}


def _update(digest: Any, value: Any) -> None:
    arr = np.ascontiguousarray(np.asarray(value))
    digest.update(f"{arr.dtype.str}{arr.shape}".encode())
    digest.update(arr.tobytes())


def _update_info(digest: Any, info: dict[str, Any]) -> None:
    for key in sorted(info):
        digest.update(key.encode())
        _update(digest, info[key])


def _trajectory_digests(env_id: str, kwargs: dict[str, Any], seed: int) -> dict[str, str]:
    """Digests of the obs, the (reward, terminated, truncated) and the info of a run."""
    env = gym.make_vec(env_id, num_envs=NUM_ENVS, vectorization_mode="vector_entry_point", **kwargs)
    shape = env.action_space.shape
    low, high = env.action_space.low, env.action_space.high
    rng = np.random.default_rng(seed)
    digests = {name: hashlib.sha256() for name in ("obs", "reward", "info")}
    obs, info = env.reset(seed=seed)
    _update(digests["obs"], obs)
    _update_info(digests["info"], info)
    terminated_count = truncated_count = 0
    for _ in range(STEPS):
        action = rng.uniform(low, high, size=shape).astype(np.float32)
        obs, reward, terminated, truncated, info = env.step(action)
        _update(digests["obs"], obs)
        for value in (reward, terminated, truncated):
            _update(digests["reward"], value)
        _update_info(digests["info"], info)
        terminated_count += int(terminated.sum())
        truncated_count += int(truncated.sum())
    env.close()
    out = {name: d.hexdigest() for name, d in digests.items()}
    out["terminated"] = str(terminated_count)
    out["truncated"] = str(truncated_count)
    return out


def _all_digests() -> dict[str, dict[str, str]]:
    out = {}
    for seed, (name, kwargs) in enumerate(CASES.items()):
        out[name] = _trajectory_digests(mmgym.PERP_MM_ID, kwargs, seed=100 + seed)
    for seed, (name, kwargs) in enumerate(AS_CASES.items()):
        out[name] = _trajectory_digests(mmgym.AVELLANEDA_STOIKOV_ID, kwargs, seed=200 + seed)
    return out


@pytest.mark.parametrize("name", [*CASES, *AS_CASES])
def test_trajectory_matches_its_golden_digest(name: str) -> None:
    golden = json.loads(GOLDEN.read_text())[name]
    if name in CASES:
        index = list(CASES).index(name)
        got = _trajectory_digests(mmgym.PERP_MM_ID, CASES[name], seed=100 + index)
    else:
        index = list(AS_CASES).index(name)
        got = _trajectory_digests(mmgym.AVELLANEDA_STOIKOV_ID, AS_CASES[name], seed=200 + index)
    assert got == golden


def test_golden_cases_exercise_autoreset_and_liquidation() -> None:
    golden = json.loads(GOLDEN.read_text())
    assert all(int(case["truncated"]) >= NUM_ENVS for case in golden.values())
    assert int(golden["agent_liquidated"]["terminated"]) > 0


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        raise SystemExit("usage: python tests/test_golden_trajectories.py --write")
    GOLDEN.write_text(json.dumps(_all_digests(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}")
