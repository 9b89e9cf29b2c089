"""What every training run shares, whatever trains it (SB3, RLlib, a baseline's run): the
errors that stop a run."""

from __future__ import annotations


class TrainingDivergedError(RuntimeError):
    """Training stopped early on a non-finite number; the message says which."""
