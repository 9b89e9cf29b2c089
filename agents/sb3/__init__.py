"""stable-baselines3 integration: the native vector env as an SB3 VecEnv."""
