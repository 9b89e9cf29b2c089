"""Adverse selection of a touch quoter: its share of the effective spread.

:func:`touch_quoter_markouts` runs a quoter that rests a small bid at the background best bid
and a small ask at the best ask, re-quoting every market tick (decisions one tick apart, as in
:mod:`mmgym.analysis.market_record`), held in one regime. With decisions a tick apart the
latency is capped at zero, so its orders land at the start of each tick before the tick's
takers and price move, on par with the background makers (:mod:`mmgym.core.kernel`). For
each fill of ``q`` at price ``p`` with the mid ``m_0`` just before it (the mid the quote was
placed at):

- effective half-spread ``|p - m_0| / m_0`` (bp),
- adverse selection: the mid's move against the maker over the horizon, ``(m_0 - m_H) / m_0``
  for a bid fill and ``(m_H - m_0) / m_0`` for an ask fill (bp),

and the share is ``sum q x AS / sum q x effective`` (the realised spread is the rest). Fills
within the last horizon of a run are left out. Standard errors: delta method on the ratio,
clustered by env (envs are independent).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mmgym.analysis.estimate import Estimate
from mmgym.analysis.market_record import PASSIVE_ACTION, fixed_regime, recording_overrides
from mmgym.envs.perp_mm import PerpMMVectorEnv
from mmgym.scenarios import make_params

F64 = NDArray[np.float64]
TOUCH_EPSILON = 1e-6
"""Ticks by which the quoter's half-spread is cut so rounding outward puts it at the touch."""


@dataclass(frozen=True)
class AdverseSelection:
    """Per-env sums of a touch quoter's fills and the estimates they give."""

    filled: F64
    """Filled quantity per env (fills resolved within the run)."""
    effective_bp: F64
    """Sum of quantity x effective half-spread (bp) per env."""
    adverse_bp: F64
    """Sum of quantity x adverse move over the horizon (bp) per env."""
    horizon_seconds: float

    def _ratio(self, num: F64, den: F64) -> Estimate:
        ratio = float(num.sum() / den.sum())
        se = math.sqrt(float(np.sum((num - ratio * den) ** 2))) / abs(float(den.sum()))
        return Estimate(ratio, se, int(num.size))

    @property
    def share(self) -> Estimate:
        """Adverse selection over the effective half-spread."""
        return self._ratio(self.adverse_bp, self.effective_bp)

    @property
    def effective(self) -> Estimate:
        """Quantity-weighted effective half-spread (bp)."""
        return self._ratio(self.effective_bp, self.filled)

    @property
    def adverse(self) -> Estimate:
        """Quantity-weighted adverse move (bp)."""
        return self._ratio(self.adverse_bp, self.filled)


def touch_quoter_markouts(
    scenario: str = "calm",
    regime: str = "calm",
    num_envs: int = 256,
    hours: float = 1.0,
    horizon_seconds: float = 300.0,
    size: float = 0.1,
    seed: int = 0,
    **overrides: Any,
) -> AdverseSelection:
    """Run the touch quoter in ``scenario`` held in ``regime`` (see the module docstring)."""
    return _markouts(
        scenario, regime, num_envs, hours, horizon_seconds, seed, overrides, _TouchQuoter(size)
    )


def taker_markouts(
    scenario: str = "calm",
    regime: str = "calm",
    num_envs: int = 256,
    hours: float = 1.0,
    horizon_seconds: float = 300.0,
    seed: int = 0,
    **overrides: Any,
) -> AdverseSelection:
    """The market's own adverse selection: every order of the taker flow against the
    background makers (the crowd's forced orders, which walk the book after it, are left out),
    the agent passive, in ``scenario`` held in ``regime``.

    The effective half-spread of a trade is its distance from the book's mid just before the
    tick's taker orders (``taker_mid``), summed over the levels it walked (the kernel's
    ``taker_buy_cost`` and ``taker_sell_cost``); the adverse move is the mid's move over the
    horizon from that mid, against the makers. This is the decomposition of the effective
    spread that trade-based studies estimate for a market (its price-impact share)."""
    return _markouts(scenario, regime, num_envs, hours, horizon_seconds, seed, overrides, _Takers())


class _TouchQuoter:
    """Fills of a quoter resting ``size`` at the background's best bid and ask."""

    def __init__(self, size: float) -> None:
        self.size = size

    def act(self, a: NDArray[np.void], p: Any, action: F64) -> None:
        half = 0.5 * (a["best_ask"] - a["best_bid"])
        size_action = 2.0 * self.size / p.max_quote_size - 1.0
        # the decoder's half-spread law, a hair inside so outward rounding lands on the touch
        action[:, 1] = 2.0 * (half - TOUCH_EPSILON - 0.5) / (p.max_half_spread_ticks - 0.5) - 1.0
        action[:, 2] = size_action
        action[:, 3] = size_action
        action[:, 4] = -1.0  # no hedge

    def fills(self, a: NDArray[np.void], tick: float, mid: F64) -> tuple[F64, F64, F64, F64]:
        bid, ask = a["bid_filled"], a["ask_filled"]
        n = bid.shape[0]
        bid_px = np.divide(a["bid_notional"], bid, out=np.zeros(n), where=bid > 0)
        ask_px = np.divide(a["ask_notional"], ask, out=np.zeros(n), where=ask > 0)
        earned = (bid * (mid - bid_px) + ask * (ask_px - mid)) / mid * 1e4
        return ask - bid, mid, earned, bid + ask


class _Takers:
    """The taker flow's trades (not the crowd's forced orders), seen from the background
    makers; the agent quotes nothing."""

    def act(self, a: NDArray[np.void], p: Any, action: F64) -> None:
        action[:] = PASSIVE_ACTION

    def fills(self, a: NDArray[np.void], tick: float, mid: F64) -> tuple[F64, F64, F64, F64]:
        mid0 = a["taker_mid"] * tick
        buy, sell = a["taker_buy_volume"], a["taker_sell_volume"]
        earned = (a["taker_buy_cost"] + a["taker_sell_cost"]) * tick / mid0 * 1e4
        return buy - sell, mid0, earned, buy + sell


def _markouts(
    scenario: str,
    regime: str,
    num_envs: int,
    hours: float,
    horizon_seconds: float,
    seed: int,
    overrides: dict[str, Any],
    maker: _TouchQuoter | _Takers,
) -> AdverseSelection:
    """Step ``num_envs`` markets one tick per decision, ``maker`` acting, and resolve each
    tick's fills (net sold, the mid they are measured from, spread earned in bp x quantity,
    quantity) against the mid ``horizon_seconds`` later."""
    overrides = {**fixed_regime(regime), **overrides}
    base = make_params(scenario, **overrides)
    seconds = hours * 3600.0
    env = PerpMMVectorEnv(
        num_envs=num_envs,
        scenario=scenario,
        copy=False,
        parallel=False,
        **{**overrides, **recording_overrides(base, seconds)},
    )
    p = env.params
    if p.num_assets != 1:
        raise ValueError(f"markouts are measured on one perp, got num_assets={p.num_assets}")
    env.reset(seed=seed)
    sim = env.sim
    a = sim.assets[:, 0]
    tick = p.tick_size
    steps = round(seconds / p.tick_seconds)
    lag = round(horizon_seconds / p.tick_seconds)
    if lag >= steps:
        raise ValueError(f"horizon_seconds ({horizon_seconds}) must be shorter than the run")
    n = num_envs
    action = np.zeros((n, 5))
    # ring buffers of the last `lag` steps: net filled (asks - bids), mid before, spread earned
    net = np.zeros((lag, n))
    mid0 = np.zeros((lag, n))
    earned = np.zeros((lag, n))
    qty = np.zeros((lag, n))
    filled = np.zeros(n)
    effective = np.zeros(n)
    adverse = np.zeros(n)
    no_reset = np.zeros(n, dtype=np.bool_)
    for t in range(steps):
        mid = 0.5 * (a["best_bid"] + a["best_ask"]) * tick
        maker.act(a, p, action)
        sim.step(action, no_reset)
        slot = t % lag
        if t >= lag:  # resolve the fills of step t - lag against the mid now
            move = (a["mid"] - mid0[slot]) / mid0[slot] * 1e4
            adverse += net[slot] * move
            effective += earned[slot]
            filled += qty[slot]
        net[slot], mid0[slot], earned[slot], qty[slot] = maker.fills(a, tick, mid)
    return AdverseSelection(filled, effective, adverse, horizon_seconds)
