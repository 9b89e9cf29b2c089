"""mmgym: reinforcement-learning environments for market making on perpetual futures.

Importing mmgym registers ``mmgym/PerpMM-v0`` and ``mmgym/AvellanedaStoikov-v0`` with Gymnasium.
"""

from mmgym.envs.registration import AVELLANEDA_STOIKOV_ID, PERP_MM_ID, register_envs

__version__ = "0.1.0"
__all__ = ["AVELLANEDA_STOIKOV_ID", "PERP_MM_ID", "__version__", "register_envs"]

register_envs()
