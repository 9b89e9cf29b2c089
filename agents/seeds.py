"""The seeds a user can type: integers in [0, 2**32 - 1].

stable-baselines3 and numpy's legacy seeding take nothing larger, and envs are reset with
``seed x num_envs`` (sub-env i: + i), so configs check the seed as typed, at composition,
before an error could show a derived one.
"""

from __future__ import annotations

MAX_SEED = 2**32 - 1


def is_valid_seed(seed: object) -> bool:
    """An integer in [0, MAX_SEED]."""
    return isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed <= MAX_SEED


def check_seed(name: str, seed: int) -> None:
    """Refuse a seed outside [0, MAX_SEED], naming the setting and the value typed."""
    if not is_valid_seed(seed):
        raise ValueError(f"{name} must be an integer in [0, {MAX_SEED}], got {seed}")
