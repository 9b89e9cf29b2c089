"""Parameters of the closed-form models, calibrated to a PerpMM market.

The closed forms of :mod:`agents.baselines.closed_form` assume the models' dynamics: a mid that
is a driftless diffusion with constant volatility ``sigma``, and fills of one lot at Poisson
intensity ``A exp(-k delta)`` for a quote ``delta`` away from the mid, independent of
everything else. PerpMM departs from this in every respect: the price has jumps, regimes and an
informed drift; taker flow is a Hawkes process with Pareto sizes, so fills are clustered,
partial and adversely selected; quotes sit in queues on a tick grid, arrive after a latency and
pay fees. :func:`calibrate` only finds the model that best matches the market's first-order
behaviour, so the quotes are sensible. They are not optimal in PerpMM.

- ``sigma`` (price per sqrt(second)) is the calm-regime diffusive volatility at the initial
  price: ``volatility[0] x initial_price / sqrt(seconds per year)``, whatever regime the
  scenario starts in. Jumps are left out.
- ``A`` (lots per second) and ``k`` (per price unit) come from the simulator itself. A short
  seeded run quotes one lot on both sides at fixed symmetric depths (no skew, no hedge) and
  measures the filled volume per second per side, in lots. A least-squares line through
  ``ln(rate)`` against the depth gives ``ln A`` (intercept) and ``-k`` (slope). The depths
  are the ones the baselines request, before the decoder rounds them outward to the tick grid,
  so the fit describes exactly the mapping the baselines use. The run lifts the inventory limit
  (``max_inventory``) so that quotes are never cut; nothing else in the market changes.
  The measured rates fall in steps rather than exponentially. Inside the background spread
  every taker reaches the quote, at the touch it queues, and beyond it a taker must walk the
  book. With regime switching, the stressed book's wide spread (6 ticks by default) even makes
  the deepest quotes fill more than shallower ones. The line is a compromise over these steps:
  with the default market it is within a factor 2 of every rate up to 4 ticks.

Results are cached per parameter set (``functools.lru_cache`` on the frozen parameters).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np

from mmgym.core.orders import encode_action
from mmgym.core.params import SECONDS_PER_YEAR, MarketParams

DEPTHS_TICKS: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0)
"""Half-spreads (ticks from the mid) quoted in the calibration run."""


class ModelCalibration(NamedTuple):
    """Model parameters for a PerpMM market, in price units, seconds and lots."""

    sigma: float
    """Volatility of the mid, price units per sqrt(second)."""
    A: float
    """Fill intensity at zero depth, lots per second per side."""
    k: float
    """Decay of the fill intensity per price unit of depth."""
    lot: float
    """Quote size (base units) of the calibration run and the models' unit of inventory."""
    depths: tuple[float, ...]
    """Depths quoted (price units)."""
    rates: tuple[float, ...]
    """Measured fills per second per side (lots) at each depth, both sides averaged."""

    def intensity(self, depth: float) -> float:
        """Fitted ``A exp(-k depth)``."""
        return self.A * math.exp(-self.k * depth)


def calm_sigma(params: MarketParams) -> float:
    """Calm-regime diffusive volatility of the price, price units per sqrt(second)."""
    return params.volatility[0] * params.initial_price / math.sqrt(SECONDS_PER_YEAR)


def default_lot(params: MarketParams) -> float:
    """A tenth of ``max_inventory``, at most ``max_quote_size``."""
    return min(params.max_quote_size, params.max_inventory / 10.0)


@functools.lru_cache(maxsize=32)
def calibrate(
    params: MarketParams,
    lot: float | None = None,
    depths_ticks: tuple[float, ...] = DEPTHS_TICKS,
    seconds: float = 600.0,
    envs_per_depth: int = 16,
    seed: int = 0,
) -> ModelCalibration:
    """Fit ``sigma``, ``A`` and ``k`` for ``params`` (see the module docstring; cached).

    ``lot``: quote size, default :func:`default_lot`. The run has ``envs_per_depth`` markets per
    depth for ``seconds`` of market time from ``seed`` (about one second of compute with the
    defaults on one core). Depths with no fill at all are left out of the fit; at least two
    must remain.
    """
    from mmgym.envs.perp_mm import PerpMMSimulator  # the env is only needed to calibrate

    params = params.validate()
    lot = default_lot(params) if lot is None else float(lot)
    if not (math.isfinite(lot) and 0 < lot <= params.max_quote_size):
        raise ValueError(f"lot must be in (0, max_quote_size={params.max_quote_size}], got {lot}")
    if len(depths_ticks) < 2 or min(depths_ticks) < 0.5:
        raise ValueError(f"need at least two depths >= 0.5 ticks, got {depths_ticks}")
    steps = max(1, round(seconds / params.decision_interval))
    run = params.replace(max_inventory=1e9, episode_seconds=steps * params.decision_interval)
    depth = np.repeat(np.asarray(depths_ticks, dtype=np.float64), envs_per_depth)
    n = depth.size
    sim = PerpMMSimulator(n, run, parallel=False)
    sim.reset(np.ones(n, dtype=np.bool_), np.arange(seed, seed + n, dtype=np.uint64))
    block = encode_action(run, 0.0, depth, lot, lot)
    action = np.tile(block, (1, run.num_assets))
    keep = np.zeros(n, dtype=np.bool_)
    filled = np.zeros(n)
    for _ in range(steps):
        sim.step(action, keep)
        info = sim.info(copy=False)
        both = info["bid_filled"] + info["ask_filled"]
        filled += both.sum(axis=1) if both.ndim == 2 else both
    per_side = filled / (2.0 * run.num_assets * lot * steps * params.decision_interval)
    rates = per_side.reshape(len(depths_ticks), envs_per_depth).mean(axis=1)
    x = np.asarray(depths_ticks, dtype=np.float64) * params.tick_size
    ok = rates > 0
    if ok.sum() < 2:
        raise RuntimeError(f"too few depths with fills to fit A and k: rates {rates}")
    slope, intercept = np.polyfit(x[ok], np.log(rates[ok]), 1)
    if slope >= 0:
        raise RuntimeError(f"fill rates do not fall with depth: rates {rates} at depths {x}")
    return ModelCalibration(
        sigma=calm_sigma(params),
        A=float(math.exp(intercept)),
        k=float(-slope),
        lot=lot,
        depths=tuple(float(v) for v in x),
        rates=tuple(float(v) for v in rates),
    )
