"""The limiter's inputs read from the PerpMM simulator's state (the live runner fills the same
records from venue messages)."""

from __future__ import annotations

import numba as nb
import numpy as np
from numpy.typing import NDArray

from agents.deploy.risk.jit import JIT
from mmgym.core.records import Record


@nb.njit(**JIT, inline="always")
def read_env_state(
    P: Record, e: Record, A: NDArray[np.void], v: Record, X: NDArray[np.void]
) -> None:
    """:func:`read_decision_state` of one env: its account ``e`` and perps ``A`` into its
    account inputs ``v`` and perp inputs ``X``."""
    v.time_s = e.tick * P.tick_seconds
    v.equity = e.equity
    v.margin_equity = e.margin_equity
    v.maintenance_margin = e.maintenance_margin
    v.data_age_s = 0.0
    v.stale = False
    rejects = 0.0
    for k in range(A.shape[0]):
        a = A[k]
        x = X[k]
        x.best_bid = a.best_bid
        x.best_ask = a.best_ask
        x.mark = a.mark
        x.position = a.inventory
        x.bid_resting_px = a.bid_px
        x.ask_resting_px = a.ask_px
        x.bid_resting = a.bid_qty
        x.ask_resting = a.ask_qty
        if a.pending_tick >= 0:
            x.bid_resting += a.pending_bid_qty
            x.ask_resting += a.pending_ask_qty
        x.stale = False
        rejects += a.rejected_post_only
    v.rejects = rejects


@nb.njit(**JIT)
def read_decision_state(
    Pa: NDArray[np.void],
    accounts: NDArray[np.void],
    assets: NDArray[np.void],
    account_inputs: NDArray[np.void],
    asset_inputs: NDArray[np.void],
) -> None:
    """Fill the limiter's inputs from the simulator's state at decision time. Orders in flight
    count as resting (both can fill); the simulator's data is never stale."""
    P = Pa[0]
    for i in range(accounts.shape[0]):
        read_env_state(P, accounts[i], assets[i], account_inputs[i], asset_inputs[i])
