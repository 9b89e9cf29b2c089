"""Builders of RiskLimiter inputs and quotes for the risk tests (one account unless told)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from agents.deploy.risk import (
    Reason,
    RiskInputs,
    RiskLimiter,
    RiskLimits,
    TradingMode,
    Transition,
    VenueSpec,
    new_quotes,
)
from mmgym.scenarios import make_params

VENUE = VenueSpec.from_market(make_params("calm"))
"""Tick 0.01, maker fee 1.5 bp, minimum order 0.01, maintenance 2.5 % (20x)."""
MARK = 100.0
BID, ASK = 9_999, 10_001
"""The touch in ticks around a mark of 100."""

QUIET = {"estimator_warmup": 0}
"""No estimator warm-up: tests of other checks see the plain limits."""


def make_limiter(num_assets: int = 1, num_accounts: int = 1, **changes: Any) -> RiskLimiter:
    """A limiter with the default limits, no warm-up, and ``changes``."""
    limits = RiskLimits(**{**QUIET, **changes})
    return RiskLimiter(limits, VENUE, num_accounts, num_assets)


def _per_asset(value: float | Sequence[float], k: int) -> NDArray[np.float64]:
    return np.broadcast_to(np.asarray(value, dtype=np.float64), (k,)).copy()


def make_inputs(
    num_assets: int = 1,
    *,
    time_s: float = 0.0,
    equity: float = 10_000.0,
    margin_equity: float | None = None,
    maintenance: float | None = None,
    data_age: float = 0.0,
    rejects: float = 0.0,
    account_stale: bool = False,
    mark: float | Sequence[float] = MARK,
    bid: float | Sequence[float] = BID,
    ask: float | Sequence[float] = ASK,
    position: float | Sequence[float] = 0.0,
    bid_resting: float | Sequence[float] = 0.0,
    ask_resting: float | Sequence[float] = 0.0,
    bid_resting_px: float | Sequence[float] = 9_990,
    ask_resting_px: float | Sequence[float] = 10_010,
    stale: bool | Sequence[bool] = False,
) -> RiskInputs:
    """One account's inputs; per-perp values broadcast over ``num_assets``. The maintenance
    margin defaults to the venue's for the positions at the marks."""
    k = num_assets
    inputs = RiskInputs.unknown(1, k)
    a = inputs.assets[0]
    a["mark"] = _per_asset(mark, k)
    a["best_bid"] = _per_asset(bid, k)
    a["best_ask"] = _per_asset(ask, k)
    a["position"] = _per_asset(position, k)
    a["bid_resting"] = _per_asset(bid_resting, k)
    a["ask_resting"] = _per_asset(ask_resting, k)
    a["bid_resting_px"] = _per_asset(bid_resting_px, k)
    a["ask_resting_px"] = _per_asset(ask_resting_px, k)
    a["stale"] = np.broadcast_to(np.asarray(stale), (k,))
    if maintenance is None:
        notional = np.abs(a["position"]) * a["mark"]
        maintenance = float(np.nansum(notional * VENUE.margin_tiers[0][1]))
    v = inputs.accounts
    v["time_s"] = time_s
    v["equity"] = equity
    v["margin_equity"] = equity if margin_equity is None else margin_equity
    v["maintenance_margin"] = maintenance
    v["data_age_s"] = data_age
    v["rejects"] = rejects
    v["stale"] = account_stale
    return inputs


def make_quotes(
    num_assets: int = 1,
    *,
    bid_px: int | Sequence[int] = 9_998,
    bid: float | Sequence[float] = 1.0,
    ask_px: int | Sequence[int] = 10_002,
    ask: float | Sequence[float] = 1.0,
    hedge: float | Sequence[float] = 0.5,
) -> NDArray[np.void]:
    """One account's quotes; per-perp values broadcast."""
    k = num_assets
    q = new_quotes(1, k)
    q["bid_px"][0] = np.broadcast_to(np.asarray(bid_px, dtype=np.int64), (k,))
    q["ask_px"][0] = np.broadcast_to(np.asarray(ask_px, dtype=np.int64), (k,))
    q["bid_size"][0] = _per_asset(bid, k)
    q["ask_size"][0] = _per_asset(ask, k)
    q["hedge_fraction"][0] = _per_asset(hedge, k)
    return q


def counted(counts: NDArray[np.int64], account: int = 0) -> dict[str, int]:
    """The non-zero counts of one account's decision, by reason name."""
    return {Reason(r).name: int(counts[account, r]) for r in np.flatnonzero(counts[account])}


def decide(
    limiter: RiskLimiter, quotes: NDArray[np.void], inputs: RiskInputs
) -> tuple[NDArray[np.void], dict[str, int]]:
    """Limit a copy of ``quotes``; return it with the decision's counts by name."""
    out = quotes.copy()
    counts = limiter.limit(out, inputs)
    return out, counted(counts)


def quiet_step(limiter: RiskLimiter, t: float, **inputs: Any) -> list[Transition]:
    """One decision at time ``t`` with no orders; the transitions it recorded."""
    decide(limiter, make_quotes(bid=0.0, ask=0.0), make_inputs(time_s=t, **inputs))
    return limiter.drain_transitions()


def mode_moves(transitions: list[Transition]) -> list[tuple[TradingMode, TradingMode, Reason]]:
    """(previous mode, mode, reason) of each transition."""
    return [(x.previous, x.mode, x.reason) for x in transitions]
