"""Stress feedback: realised volatility and liquidations raise the intensity of stress.

Per env, two exponentially weighted memories with time constant ``stress_feedback_seconds``:

- ``stress_variance``: the mean over the env's perps of ``z^2``, ``z`` a tick's log mid move
  over the regime's diffusive sigma per tick (about the mid's noise level when nothing happens;
  jumps and gaps raise it);
- ``stress_liquidations``: a decayed count of the crowd's liquidations (about the number of the
  last ``stress_feedback_seconds``).

They set the multiplier of the regime chain's rates into more stressed regimes (calm to volatile
and stressed, volatile to stressed; :func:`mmgym.core.regime.next_regime_scaled`)::

    m = 1 + stress_volatility_sensitivity x max(sqrt(stress_variance) - threshold, 0)
          + stress_liquidation_sensitivity x stress_liquidations

With both sensitivities 0 the multiplier is 1 exactly and the chain samples ``exp(Q dt)`` as it
did without the feedback, bit for bit. No random draws.
"""

from __future__ import annotations

import math

import numba as nb

from mmgym.core.records import Record


@nb.njit(cache=True, error_model="numpy", inline="always")
def stress_multiplier(e: Record, P: Record) -> float:
    """Multiplier of the rates into more stressed regimes, from the env's stress memories."""
    excess = max(math.sqrt(e.stress_variance) - P.stress_volatility_threshold, 0.0)
    return (
        1.0
        + P.stress_volatility_sensitivity * excess
        + P.stress_liquidation_sensitivity * e.stress_liquidations
    )


@nb.njit(cache=True, error_model="numpy")
def step_stress(e: Record, P: Record, sum_z2: float, assets: int) -> None:
    """Fold one tick into the stress memories: ``sum_z2`` is the sum over the perps of the
    squared normalised mid moves; new liquidations come from the crowd's counter."""
    d = P.stress_decay_per_tick
    e.stress_variance = d * e.stress_variance + (1.0 - d) * sum_z2 / assets
    new = e.crowd_liquidations - e.stress_liquidations_seen
    e.stress_liquidations_seen = e.crowd_liquidations
    e.stress_liquidations = d * e.stress_liquidations + new
    e.stress_multiplier = stress_multiplier(e, P)


@nb.njit(cache=True, error_model="numpy")
def reset_stress(e: Record) -> None:
    """Quiet memories at the start of an episode (multiplier 1)."""
    e.stress_variance = 0.0
    e.stress_liquidations = 0.0
    e.stress_liquidations_seen = 0
    e.stress_multiplier = 1.0
