"""Gymnasium shells over the mmgym market kernels."""

from mmgym.envs.registration import AVELLANEDA_STOIKOV_ID, PERP_MM_ID, register_envs

__all__ = ["AVELLANEDA_STOIKOV_ID", "PERP_MM_ID", "register_envs"]
