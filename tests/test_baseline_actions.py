"""Every baseline's actions, bit for bit, against actions recorded from an earlier version.

A guard for refactoring: the recorded file holds observation sequences from real PerpMM
rollouts (one perp and three perps, so the stateful rules of ``adaptive`` run as in an
episode, autoresets included) and a grid of inventories and times, with the actions each
registered baseline returned for them. The model baselines run twice: with their default
(calibrated) parameters and with explicit ``sigma``, ``A`` and ``k``. A change in calibration
(for example a change of the market kernel's random streams) moves the default cases only;
the explicit ones isolate the policies' own arithmetic. The AvellanedaStoikov-v0 policies are
recorded on a grid of ``(q, t)``.

Regenerate (only when a change of actions is intended): ``python tests/test_baseline_actions.py``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

DATA = Path(__file__).parent / "data" / "baseline_actions.npz"

MARKETS: dict[str, dict[str, Any]] = {
    "volatile": {"scenario": "volatile"},
    "penalised": {
        "scenario": "calm",
        "reward": "inventory_penalty",
        "inventory_penalty": 2e-4,
        "terminal_inventory_penalty": 1e-2,
    },
    "three_perps": {"scenario": "cross_margin_event"},
}
"""Markets the PerpMM baselines are recorded on: a scenario and parameter overrides."""

EXPLICIT_MODEL = {"sigma": 0.02, "A": 1.5, "k": 40.0}
"""Model parameters (price per sqrt(s), lots per s, per price unit) of the explicit cases."""

SETTINGS = ("default", "explicit")
MODEL_BASELINES = ("avellaneda_stoikov", "glft", "cartea_jaimungal")
ROLLOUT_ENVS, ROLLOUT_STEPS = 8, 40


def _market(market: str) -> tuple[str, dict[str, Any]]:
    """Scenario and overrides of ``market`` (30 s episodes: a rollout crosses an autoreset)."""
    overrides = dict(MARKETS[market])
    return overrides.pop("scenario"), {"episode_seconds": 30.0, **overrides}


def _params(market: str) -> Any:
    from mmgym.scenarios import make_params

    scenario, overrides = _market(market)
    return make_params(scenario, **overrides)


def _cases() -> list[tuple[str, str, str]]:
    """(baseline, market, settings) for every registered baseline."""
    from agents.baselines.registry import BASELINES, load_all

    load_all()
    out = []
    for name in sorted(BASELINES):
        for market in MARKETS:
            for label in SETTINGS if name in MODEL_BASELINES else SETTINGS[:1]:
                out.append((name, market, label))
    return out


def _build(name: str, market: str, label: str) -> Any:
    """Baseline ``name`` on ``market`` with its defaults or the explicit model parameters."""
    from agents.baselines.registry import make_baseline, settings_of

    explicit = {k: v for k, v in EXPLICIT_MODEL.items() if k in settings_of(name)}
    return make_baseline(name, _params(market), **(explicit if label == "explicit" else {}))


def _replay(policy: Any, sequence: NDArray[np.float32]) -> NDArray[np.float32]:
    """Actions for a sequence of observation batches (steps, envs, features), in order."""
    return np.stack([policy.act(obs) for obs in sequence])


def _grid(params: Any) -> NDArray[np.float32]:
    """Every perp at the same inventory and time: a grid over both, other features 0."""
    from mmgym.features.observation import ASSET_FEATURES, OBS_NAMES, observation_dim

    rows = list(itertools.product(np.linspace(-1.2, 1.2, 25), np.linspace(0.0, 1.0, 11)))
    obs = np.zeros((len(rows), observation_dim(params.num_assets)), dtype=np.float32)
    for k in range(params.num_assets):
        base = k * ASSET_FEATURES
        obs[:, base + OBS_NAMES.index("inventory")] = [q for q, _ in rows]
        obs[:, base + OBS_NAMES.index("time")] = [t for _, t in rows]
        obs[:, base + OBS_NAMES.index("volatility_medium")] = 1.5
    return obs


def _rollout(market: str, seed: int) -> NDArray[np.float32]:
    """Observations of a rollout of ``adaptive`` with noisy actions (steps, envs, features)."""
    from agents.baselines.registry import make_baseline
    from mmgym.envs.perp_mm import PerpMMVectorEnv

    scenario, overrides = _market(market)
    env = PerpMMVectorEnv(ROLLOUT_ENVS, scenario, **overrides)
    policy = make_baseline("adaptive", env.params)
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    out = []
    for _ in range(ROLLOUT_STEPS):
        out.append(obs.copy())
        action = policy.act(obs) + rng.normal(0.0, 0.3, size=env.action_space.shape)
        obs, *_ = env.step(np.clip(action, -1.0, 1.0).astype(np.float32))
    env.close()
    return np.stack(out)


def _as_env_policies() -> dict[str, Callable[[], Any]]:
    """Policies of mmgym/AvellanedaStoikov-v0, by name."""
    from agents.baselines import as_env_policies as p

    return {
        "as_inventory": lambda: p.AvellanedaStoikovPolicy(0.1, 2.0, 1.5, 1.0),
        "as_symmetric": lambda: p.SymmetricPolicy(0.1, 2.0, 1.5, 1.0),
        "glft_as_env": lambda: p.GLFTPolicy(0.1, 2.0, 140.0, 1.5),
        "cj_as_env": lambda: p.CarteaJaimungalPolicy(0.2, 0.5, 140.0, 1.5, 1.0, 10, 200),
    }


def _as_grid() -> NDArray[np.float32]:
    rows = list(itertools.product(np.arange(-12.0, 13.0), np.linspace(0.0, 1.0, 41)))
    return np.asarray(rows, dtype=np.float32)


def record() -> None:
    """Write the observations and every baseline's actions to :data:`DATA`."""
    data: dict[str, NDArray[Any]] = {}
    for i, market in enumerate(MARKETS):
        data[f"obs/{market}/rollout"] = _rollout(market, seed=100 + i)
        data[f"obs/{market}/grid"] = _grid(_params(market))
    for name, market, label in _cases():
        for kind in ("rollout", "grid"):
            policy = _build(name, market, label)
            obs = data[f"obs/{market}/{kind}"]
            sequence = obs if kind == "rollout" else obs[None]
            data[f"act/{name}/{market}/{label}/{kind}"] = _replay(policy, sequence)
    data["obs/as_env/grid"] = _as_grid()
    for name, build in _as_env_policies().items():
        data[f"act/{name}"] = build().act(data["obs/as_env/grid"])
    DATA.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(DATA, **data)


@pytest.fixture(scope="module")
def recorded() -> dict[str, NDArray[Any]]:
    with np.load(DATA) as f:
        return dict(f)


@pytest.mark.parametrize(("name", "market", "label"), _cases())
def test_perp_baseline_actions_are_unchanged(
    recorded: dict[str, NDArray[Any]], name: str, market: str, label: str
) -> None:
    for kind in ("rollout", "grid"):
        policy = _build(name, market, label)
        obs = recorded[f"obs/{market}/{kind}"]
        actions = _replay(policy, obs if kind == "rollout" else obs[None])
        expected = recorded[f"act/{name}/{market}/{label}/{kind}"]
        assert actions.dtype == expected.dtype
        np.testing.assert_array_equal(actions, expected, err_msg=f"{name} {market} {kind}")


def test_every_registered_baseline_is_recorded(recorded: dict[str, NDArray[Any]]) -> None:
    names = {key.split("/")[1] for key in recorded if key.startswith("act/")}
    assert {name for name, _, _ in _cases()} <= names


@pytest.mark.parametrize("name", sorted(_as_env_policies()))
def test_as_env_policy_actions_are_unchanged(recorded: dict[str, NDArray[Any]], name: str) -> None:
    actions = _as_env_policies()[name]().act(recorded["obs/as_env/grid"])
    np.testing.assert_array_equal(actions, recorded[f"act/{name}"])


# --- the same actions along other paths: batch 1, partial resets, other dtypes and layouts ------


@pytest.mark.parametrize(("name", "market", "label"), _cases())
def test_one_env_at_a_time_gives_the_recorded_actions(
    recorded: dict[str, NDArray[Any]], name: str, market: str, label: str
) -> None:
    """Each env of the rollout replayed alone (batch 1) acts as it did in the batch, autoresets
    included. The policy first acts on the whole batch and is then reset, so the change of batch
    size and ``reset()`` must both leave no state behind."""
    obs = recorded[f"obs/{market}/rollout"]
    expected = recorded[f"act/{name}/{market}/{label}/rollout"]
    policy = _build(name, market, label)
    _replay(policy, obs)
    for i in range(obs.shape[1]):
        if i > 0:
            policy.reset()
        actions = _replay(policy, obs[:, i : i + 1])
        np.testing.assert_array_equal(actions[:, 0], expected[:, i], err_msg=f"{name} env {i}")


@pytest.mark.parametrize(("name", "market", "label"), _cases())
def test_reset_of_some_envs_restarts_only_those(
    recorded: dict[str, NDArray[Any]], name: str, market: str, label: str
) -> None:
    """``reset(mask)`` mid-rollout: the other envs keep their recorded actions, the masked ones
    act from there as a fresh policy would (batch 1)."""
    obs = recorded[f"obs/{market}/rollout"]
    expected = recorded[f"act/{name}/{market}/{label}/rollout"]
    cut = 20  # within the first episode (30 decisions)
    mask = np.arange(obs.shape[1]) % 3 == 0
    policy = _build(name, market, label)
    np.testing.assert_array_equal(_replay(policy, obs[:cut]), expected[:cut])
    policy.reset(mask)
    if name == "adaptive":  # stateful: the masked envs' EWMA restarts, the others' goes on
        assert policy.corr_count.tolist() == [0 if m else cut for m in mask]
    rest = _replay(policy, obs[cut:])
    np.testing.assert_array_equal(rest[:, ~mask], expected[cut:, ~mask])
    for i in np.flatnonzero(mask):
        fresh = _replay(_build(name, market, label), obs[cut:, i : i + 1])
        np.testing.assert_array_equal(rest[:, i], fresh[:, 0], err_msg=f"{name} env {i}")


@pytest.mark.parametrize(("name", "market", "label"), _cases())
def test_float64_and_non_contiguous_observations_give_the_recorded_actions(
    recorded: dict[str, NDArray[Any]], name: str, market: str, label: str
) -> None:
    obs = recorded[f"obs/{market}/rollout"]
    expected = recorded[f"act/{name}/{market}/{label}/rollout"]
    as_float64 = _replay(_build(name, market, label), obs.astype(np.float64))
    np.testing.assert_array_equal(as_float64, expected)
    wide = np.zeros((*obs.shape[:2], 2 * obs.shape[2]), dtype=np.float32)
    wide[:, :, ::2] = obs
    strided = _replay(_build(name, market, label), wide[:, :, ::2])
    np.testing.assert_array_equal(strided, expected)


if __name__ == "__main__":
    record()
    print(f"wrote {DATA}")
