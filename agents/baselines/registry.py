"""Named PerpMM baselines: one registry that evaluation and training share.

A baseline is a class implementing :class:`agents.policy.Policy` whose constructor takes the
market's :class:`~mmgym.core.params.MarketParams` first and its own settings as keywords.
Its settings are the constructor's keyword parameters, or, when the class names a settings
dataclass in ``settings_type``, that dataclass's fields (the constructor then takes them as
keywords too). ``make_baseline(name, params, **settings)`` builds one and names what is wrong
with a bad call.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable
from typing import Any, TypeVar

from agents.policy import Policy
from mmgym.core.params import MarketParams

BASELINES: dict[str, type] = {}
T = TypeVar("T", bound=type)


def register(name: str) -> Callable[[T], T]:
    """Class decorator adding a baseline under ``name``."""

    def add(cls: T) -> T:
        if name in BASELINES and BASELINES[name] is not cls:
            raise ValueError(f"baseline {name!r} is registered twice")
        BASELINES[name] = cls
        return cls

    return add


def settings_of(name: str) -> dict[str, Any]:
    """Settings a baseline accepts, with defaults (``inspect.Parameter.empty`` when required)."""
    cls = _lookup(name)
    settings_type = getattr(cls, "settings_type", None)
    if settings_type is not None:
        return {f.name: _field_default(f) for f in dataclasses.fields(settings_type)}
    signature = inspect.signature(cls)
    return {
        p.name: p.default
        for p in list(signature.parameters.values())[1:]  # skip params
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


def setting_types(name: str) -> dict[str, Any]:
    """The type of each setting of a baseline (from its settings dataclass or constructor)."""
    cls = _lookup(name)
    declared: Any = getattr(cls, "settings_type", None) or cls.__init__  # type: ignore[misc]
    hints = typing.get_type_hints(declared)
    return {setting: hints.get(setting, Any) for setting in settings_of(name)}


def _field_default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return inspect.Parameter.empty


def make_baseline(name: str, params: MarketParams, **settings: Any) -> Policy:
    """Build baseline ``name`` for a market with ``params``; bad names and settings are named."""
    cls = _lookup(name)
    accepted = settings_of(name)
    unknown = sorted(set(settings) - set(accepted))
    if unknown:
        raise ValueError(
            f"baseline {name!r} has no setting(s) {unknown}; its settings are {sorted(accepted)}"
        )
    policy = cls(params, **settings)
    if not isinstance(policy, Policy):
        raise TypeError(f"baseline {name!r} does not implement act(obs) and reset(mask)")
    return policy


def _lookup(name: str) -> type:
    load_all()
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; valid baselines are: {sorted(BASELINES)}")
    return BASELINES[name]


def load_all() -> None:
    """Import every baseline module so their ``@register`` decorators run."""
    import importlib
    import pkgutil

    import agents.baselines as package

    for module in pkgutil.iter_modules(package.__path__):
        if module.name != "registry":
            importlib.import_module(f"agents.baselines.{module.name}")
