"""Structured-config schemas registered with Hydra's ConfigStore.

Each YAML under ``conf/`` names its schema in its defaults list, so a misspelt key or a wrong
type fails at composition, before any compute, with the key's name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, TypeVar

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from agents.evaluation import EvaluationConfig


@dataclass
class EvaluateJob:
    """``scripts/evaluate.py``: what to evaluate and where the results go."""

    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    tensorboard: bool = True
    """Write TensorBoard scalars next to the report."""


J = TypeVar("J")


def to_job(cfg: DictConfig, schema: type[J]) -> J:
    """The typed job of a composed config, refusing keys its schema does not declare.

    Hydra lets ``+key=value`` append keys even to a structured config, and ``to_object`` then
    drops them silently; a misspelt setting must fail instead, naming the key.
    """
    _check_known_keys(cfg, "")
    job = OmegaConf.to_object(cfg)
    if not isinstance(job, schema):
        raise TypeError(f"config does not compose into {schema.__name__}")
    return job


def _check_known_keys(node: Any, path: str) -> None:
    if not isinstance(node, DictConfig):
        return
    kind = OmegaConf.get_type(node)
    if kind is not None and dataclasses.is_dataclass(kind):
        known = {f.name for f in dataclasses.fields(kind)}
        unknown = sorted(str(k) for k in node if k not in known)
        if unknown:
            where = path or "the config"
            raise ValueError(f"unknown key(s) {unknown} in {where}; valid keys are {sorted(known)}")
    for key in node:
        name = str(key)
        if name == "hydra":
            continue
        _check_known_keys(node._get_node(name), f"{path}.{name}" if path else name)


def register_configs() -> None:
    """Register every schema (idempotent)."""
    store = ConfigStore.instance()
    store.store(name="evaluate_schema", node=EvaluateJob)


register_configs()
