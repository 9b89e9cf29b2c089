"""stable-baselines3 integration: the native vector env as an SB3 VecEnv."""

from mmgym.extras import extra_needed

with extra_needed("agents.sb3"):
    import stable_baselines3  # noqa: F401  (every module here builds on it)
