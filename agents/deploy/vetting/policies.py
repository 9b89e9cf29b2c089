"""The policy under vetting (``run:<dir>``, ``baseline:<name>``, ``bundle:<dir>``) and the
markets of the stress suite it acts in."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from agents.baselines.registry import BASELINES, load_all, make_baseline
from agents.deploy.bundle import DECODING_FIELDS, market_to_json, sha256_of
from agents.market import Market, market_of
from agents.policy import Policy
from agents.policy_names import baseline_name, learned_name
from mmgym.core.params import MarketParams
from mmgym.scenarios import make_params

KINDS = ("run", "baseline", "bundle")
INTERFACE_FIELDS: tuple[str, ...] = tuple(
    dict.fromkeys(
        (
            *DECODING_FIELDS,
            "tick_seconds",
            "decision_interval",
            "horizons",
            "return_scale_bp",
            "funding_interval_seconds",
            "obs_clip",
        )
    )
)
"""The market parameters a trained policy's observations and actions depend on (the action
decoder's and the observation builder's): every scenario is run with the policy's values."""
RUN_FILES = ("config.yaml", "model.zip", "vecnormalize.pkl")
"""The files of an SB3 training run whose sha256 the report records (export checks them)."""


class VettingInputError(ValueError):
    """Bad input to vetting (a missing directory, an unknown baseline, a bad bundle)."""


@dataclass(frozen=True)
class VettedPolicy:
    """The policy under vetting and what identifies it in ``vetting.json``."""

    kind: Literal["run", "baseline", "bundle"]
    path: str
    """The run or bundle directory (absolute), or the baseline's name."""
    name: str
    """Its display name (:mod:`agents.policy_names`)."""
    files_sha256: dict[str, str]
    """sha256 of the files it is made of, by name relative to ``path`` (none for a baseline)."""
    interface: MarketParams | None
    """The market it was trained for, whose :data:`INTERFACE_FIELDS` every scenario takes
    (None: a baseline, which acts in any market)."""
    factory: Callable[[MarketParams], Policy]
    """Builds the policy for a market. A baseline of the comparison with the same name is the
    same policy: it is run once."""

    def to_dict(self) -> dict[str, Any]:
        """``vetting.json``'s ``policy``."""
        return {
            "kind": self.kind,
            "path": self.path,
            "name": self.name,
            "files_sha256": dict(self.files_sha256),
        }


def resolve_policy(spec: str) -> VettedPolicy:
    """The policy ``spec`` names: ``run:<training run dir>``, ``baseline:<name>`` or
    ``bundle:<bundle dir>``. Raises :class:`VettingInputError` naming what is wrong."""
    kind, sep, target = str(spec).partition(":")
    if not sep or kind not in KINDS or not target.strip():
        raise VettingInputError(
            f"policy={spec!r}: give run:<training run dir>, baseline:<name> or bundle:<bundle dir>"
        )
    if kind == "baseline":
        return _baseline(target)
    path = Path(target).expanduser().resolve()
    if not path.is_dir():
        raise VettingInputError(f"policy={spec}: {path} is not a directory")
    return _run(path) if kind == "run" else _bundle(path)


def _baseline(name: str) -> VettedPolicy:
    load_all()
    if name not in BASELINES:
        raise VettingInputError(f"unknown baseline {name!r}; registered: {sorted(BASELINES)}")
    return VettedPolicy(
        "baseline", name, name, {}, None, lambda params: make_baseline(name, params)
    )


def _run(path: Path) -> VettedPolicy:
    from omegaconf import OmegaConf

    config_file = path / "config.yaml"
    if not config_file.is_file():
        raise VettingInputError(f"{path}: not a training run directory (no config.yaml)")
    try:
        cfg: Any = OmegaConf.to_container(OmegaConf.load(config_file), resolve=True)
        agent = dict(cfg["agent"])
        algo = str(agent["algo"])
        market = market_of(
            cfg["env"]["scenario"], cfg["train"]["episode_seconds"], cfg["env"]["overrides"]
        )
    except Exception as err:  # YAML, missing keys, a bad market
        raise VettingInputError(f"{config_file}: not a usable run config ({err})") from None
    load_all()
    if algo in BASELINES:
        settings = {k: tuple(v) if isinstance(v, list) else v for k, v in agent.items()}
        settings.pop("algo")
        files = {"config.yaml": sha256_of(config_file.read_bytes())}
        return VettedPolicy(
            "run",
            str(path),
            baseline_name(algo, settings),
            files,
            market.params,
            lambda params: make_baseline(algo, params, **settings),
        )
    missing = [name for name in RUN_FILES if not (path / name).is_file()]
    if missing:
        raise VettingInputError(f"{path}: missing {missing} (not a finished training run?)")
    files = {name: sha256_of((path / name).read_bytes()) for name in RUN_FILES}
    from agents.learned import load_run

    try:
        load_run(path, market.params)  # fail now, not in the middle of the suite
    except (ValueError, OSError) as err:
        raise VettingInputError(f"{path}: {err}") from None
    name = learned_name(algo, agent.get("residual_on"))
    return VettedPolicy(
        "run", str(path), name, files, market.params, lambda params: load_run(path, params)
    )


def _bundle(path: Path) -> VettedPolicy:
    from agents.deploy.bundle import load_bundle

    bundle = load_bundle(path)  # BundleError (a ValueError) names a bad or tampered file
    m = bundle.manifest
    files = {p.name: sha256_of(p.read_bytes()) for p in sorted(path.iterdir()) if p.is_file()}
    if m.network is None:
        assert m.baseline is not None
        name = baseline_name(m.baseline.name, m.baseline.settings)
    else:
        name = learned_name(m.network.algo, m.baseline.name if m.baseline else None)
    policy = bundle.policy
    return VettedPolicy("bundle", str(path), name, files, bundle.market, lambda params: policy)


def scenario_market(
    scenario: str,
    episode_seconds: float,
    env_overrides: dict[str, Any],
    interface: MarketParams | None,
) -> Market:
    """The market of ``scenario`` in the suite: ``episode_seconds``, the ``env_overrides``,
    and the policy's :data:`INTERFACE_FIELDS` where the scenario's differ (a one-perp policy
    runs ``cross_margin_event`` with one perp)."""
    overrides = {k: v for k, v in env_overrides.items() if k != "episode_seconds"}
    base = make_params(scenario, episode_seconds=episode_seconds, **overrides)
    if interface is not None:
        for name in INTERFACE_FIELDS:
            value = getattr(interface, name)
            if value != getattr(base, name):
                overrides[name] = value
    return market_of(scenario, episode_seconds, overrides)


def params_sha256(params: MarketParams) -> str:
    """sha256 of a market's parameters as canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(market_to_json(params), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
