"""Registration of mmgym's environments with Gymnasium (run on ``import mmgym``)."""

from __future__ import annotations

import gymnasium as gym

PERP_MM_ID = "mmgym/PerpMM-v0"
AVELLANEDA_STOIKOV_ID = "mmgym/AvellanedaStoikov-v0"


def register_envs() -> None:
    """Register every mmgym env id (idempotent)."""
    specs = {
        PERP_MM_ID: ("mmgym.envs.perp_mm:PerpMMEnv", "mmgym.envs.perp_mm:PerpMMVectorEnv"),
        AVELLANEDA_STOIKOV_ID: (
            "mmgym.envs.avellaneda_stoikov:AvellanedaStoikovEnv",
            "mmgym.envs.avellaneda_stoikov:AvellanedaStoikovVectorEnv",
        ),
    }
    for env_id, (entry_point, vector_entry_point) in specs.items():
        if env_id in gym.registry:
            continue
        gym.register(id=env_id, entry_point=entry_point, vector_entry_point=vector_entry_point)
