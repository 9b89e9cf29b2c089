"""How the paper market's time moves: the three time modes.

- ``wall``: one decision interval per ``decision_interval`` seconds of wall time;
- ``accelerated``: ``speed`` decision intervals per ``decision_interval`` of wall time;
- ``lockstep``: the market moves only when a client posts ``/paper/advance`` (deterministic).

The venue's time stamps are ``epoch_ms`` plus the simulated time, in milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

TIME_MODES: tuple[str, ...] = ("wall", "accelerated", "lockstep")


@dataclass(frozen=True)
class Clock:
    """A time mode and its pace."""

    mode: str = "lockstep"
    speed: float = 1.0
    """Decision intervals per ``decision_interval`` of wall time in ``accelerated`` mode."""

    def __post_init__(self) -> None:
        if self.mode not in TIME_MODES:
            raise ValueError(f"time_mode must be one of {list(TIME_MODES)}, got {self.mode!r}")
        if not self.speed > 0:
            raise ValueError(f"speed must be > 0, got {self.speed}")

    @property
    def lockstep(self) -> bool:
        """Whether only ``/paper/advance`` moves the market."""
        return self.mode == "lockstep"

    def seconds_per_decision(self, decision_interval: float) -> float:
        """Wall seconds between two decision intervals (wall and accelerated modes)."""
        if self.lockstep:
            raise ValueError("a lockstep market advances only on /paper/advance")
        return decision_interval / (self.speed if self.mode == "accelerated" else 1.0)
