"""The one policy interface shared by baselines, learned policies and exported policies."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray


@runtime_checkable
class Policy(Protocol):
    """Maps a batch of observations to a batch of actions.

    ``act`` takes observations of shape ``(num_envs, obs_dim)`` and returns actions of shape
    ``(num_envs, action_dim)``; ``reset`` clears any internal state (for all envs, or for the
    envs selected by ``mask``). Evaluation, vetting and the live runner only use these two calls.
    """

    def act(self, obs: NDArray[np.float32]) -> NDArray[np.float32]: ...

    def reset(self, mask: NDArray[np.bool_] | None = None) -> None: ...
