"""Streaming market scalars of a training run (``mm/*``), shared by the SB3 and RLlib trainers.

Both trainers feed every step's native info arrays to one :class:`MarketScalars` and log its
means once per rollout (SB3) or ``sample()`` (RLlib). Each ``mm/*`` value is a mean per
env-step, summed over the perps of an env:

- ``mm/pnl`` and its parts (``mm/spread_pnl``, ``mm/inventory_pnl``, ``mm/funding_pnl``,
  ``mm/fees``), ``mm/inventory_abs``;
- ``mm/adverse_selection``: the cost of trading with better-informed flow, measured as the mid's
  move against each fill over ``markout_steps`` decisions, from the mid the quote was priced off
  (the mid at the decision before the fill):
  ``bid_qty x (mid_ref - mid_{t+h}) + ask_qty x (mid_{t+h} - mid_ref)``. Positive is a cost.
  Fills whose horizon runs past the end of their episode are marked at its last mid, as the
  evaluation's markouts are, so over an episode
  ``adverse_selection = spread captured against mid_ref - markout_h`` exactly
  (``eval/<policy>/markout_10s`` is that markout per unit filled). A fill is counted when its
  horizon completes, so the scalar lags the fills by ``markout_steps`` decisions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

DOMAIN_TAGS = {
    "mm/pnl": "pnl",
    "mm/inventory_abs": "inventory",
    "mm/funding_pnl": "pnl_funding",
    "mm/spread_pnl": "pnl_spread",
    "mm/inventory_pnl": "pnl_inventory",
    "mm/fees": "pnl_fees",
}
"""TensorBoard tags of the per-step market metrics read straight from the env's info."""

ADVERSE_SELECTION_TAG = "mm/adverse_selection"
MARKET_TAGS = (*DOMAIN_TAGS, ADVERSE_SELECTION_TAG)
"""Every ``mm/*`` tag a training run logs."""
UNITS = {tag: "quote per env-step" for tag in MARKET_TAGS} | {
    "mm/inventory_abs": "base units, mean over env-steps"
}
"""The unit of each ``mm/*`` tag."""


def tag_label(tag: str) -> str:
    """An axis label of a training scalar: ``mm/pnl (quote per env-step)``, other tags as
    they are."""
    return f"{tag} ({UNITS[tag]})" if tag in UNITS else tag


class MarketScalars:
    """Accumulates the ``mm/*`` scalars of a batch of envs, one step at a time.

    Call :meth:`start` with the mids of envs that begin an episode (every env after a reset),
    :meth:`update` after every step with the env's info, and :meth:`pop` (or :meth:`pop_sums`)
    to read and clear them. ``stepped`` masks out envs that did not trade in a step (NEXT_STEP
    autoreset, where the step after an episode's end only resets the env).
    """

    def __init__(self, num_envs: int, num_assets: int, markout_steps: int) -> None:
        if markout_steps < 1:
            raise ValueError(f"markout_steps must be at least 1, got {markout_steps}")
        self.num_envs = num_envs
        self.num_assets = num_assets
        self.markout_steps = markout_steps
        shape = (markout_steps, num_envs, num_assets)
        self._bid_qty = np.zeros(shape)
        self._ask_qty = np.zeros(shape)
        self._ref_mid = np.zeros(shape)
        self._last_mid = np.zeros((num_envs, num_assets))
        self._slot = 0
        self._every = np.ones(num_envs, dtype=np.bool_)
        self._sums = dict.fromkeys(MARKET_TAGS, 0.0)
        self._steps = 0

    def start(self, mask: NDArray[np.bool_] | None, mid: Any) -> None:
        """Envs in ``mask`` (all when None) begin an episode at ``mid`` (shape (envs, perps))."""
        mids = self._per_asset(mid)
        if mask is None:
            self._last_mid[:] = mids
        else:
            self._last_mid[mask] = mids[mask]

    def update(
        self,
        info: dict[str, Any],
        stepped: NDArray[np.bool_] | None = None,
        done: NDArray[np.bool_] | None = None,
    ) -> None:
        """Add one step: ``info`` is the native env's, ``done`` marks envs whose episode ended
        at this step (their pending fills are marked at this step's mid)."""
        stepped = self._every if stepped is None else np.asarray(stepped, dtype=np.bool_)
        count = int(stepped.sum())
        if count == 0:
            return
        for tag, key in DOMAIN_TAGS.items():
            value = self._per_asset(info[key])[stepped]
            if key == "inventory":
                value = np.abs(value)
            self._sums[tag] += float(value.sum()) / count
        mid = self._per_asset(info["mid"])
        slot = self._slot
        cost = self._mark(slot, mid)  # fills of markout_steps decisions ago
        self._bid_qty[slot] = np.where(stepped[:, None], self._per_asset(info["bid_filled"]), 0.0)
        self._ask_qty[slot] = np.where(stepped[:, None], self._per_asset(info["ask_filled"]), 0.0)
        self._ref_mid[slot] = self._last_mid
        if done is not None and np.any(done):
            ended = np.asarray(done, dtype=np.bool_) & stepped
            for pending in range(self.markout_steps):
                cost += np.where(ended, self._mark(pending, mid), 0.0)
                self._bid_qty[pending][ended] = 0.0
                self._ask_qty[pending][ended] = 0.0
        self._last_mid[stepped] = mid[stepped]
        self._slot = (slot + 1) % self.markout_steps
        self._sums[ADVERSE_SELECTION_TAG] += float(cost[stepped].sum()) / count
        self._steps += 1

    def pop_sums(self) -> tuple[dict[str, float], int]:
        """The sums over steps of the per-step means (over envs) since the last call, and the
        number of steps; then clear. Sums from several samplers add up; divide by the steps."""
        sums, steps = self._sums, self._steps
        self._sums = dict.fromkeys(MARKET_TAGS, 0.0)
        self._steps = 0
        return sums, steps

    def pop(self) -> dict[str, float]:
        """The means per env-step since the last call (empty when no step); then clear."""
        sums, steps = self.pop_sums()
        return {tag: total / steps for tag, total in sums.items()} if steps else {}

    def _mark(self, slot: int, mid: NDArray[np.float64]) -> NDArray[np.float64]:
        """Adverse-selection cost per env of the fills in ``slot``, marked at ``mid``."""
        move = mid - self._ref_mid[slot]
        cost: NDArray[np.float64] = (self._ask_qty[slot] - self._bid_qty[slot]) * move
        return cost.sum(axis=1)

    def _per_asset(self, value: Any) -> NDArray[np.float64]:
        return np.asarray(value, dtype=np.float64).reshape(self.num_envs, -1)
