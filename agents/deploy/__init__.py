"""From a trained policy to production: vetting, export to bundles, the guarded policy and the
RiskLimiter (docs/deploy.md).

Names are exported lazily, so that importing this package, or the live side
(``agents.deploy.risk``, ``.bundle``, ``.guard``), pulls in no torch, stable-baselines3, Ray,
Hydra, pandas or matplotlib: only the module that defines a name is imported, when the name is
first used.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "vet": "agents.deploy.vetting",
    "export_bundle": "agents.deploy.export",
    "load_bundle": "agents.deploy.bundle",
    "GuardedPolicy": "agents.deploy.guard",
    "RiskLimits": "agents.deploy.risk",
    "RiskLimiter": "agents.deploy.risk",
    "TradingState": "agents.deploy.risk",
    "RiskLimitedVectorEnv": "agents.deploy.limited_env",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'agents.deploy' has no attribute {name!r}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name != module_name:
            raise
        raise AttributeError(
            f"agents.deploy.{name} is not available yet: {module_name} does not exist"
        ) from err
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
