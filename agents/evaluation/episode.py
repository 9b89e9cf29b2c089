"""One batch of episodes as it runs: per-step series, fills for markouts, the metrics row of
each episode, and the names of the markout metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from agents import metrics
from mmgym.core.params import MarketParams
from mmgym.envs.perp_mm import PNL_COMPONENTS


def markout_steps(seconds: float, params: MarketParams) -> int:
    """Decisions in ``seconds`` of market time (at least one)."""
    return max(1, round(seconds / params.decision_interval))


def markout_name(steps: int, params: MarketParams) -> str:
    """The metric name of a markout over ``steps`` decisions: its horizon in market seconds
    (``markout_10s``; ``markout_9s`` for 10 s asked at 3 s decisions)."""
    return f"markout_{steps * params.decision_interval:g}s"


@dataclass
class EpisodeRecorder:
    """Per-step series of a batch of envs, kept until each env's first episode ends."""

    num_envs: int
    steps: int
    series: dict[str, NDArray[np.float64]] = field(default_factory=dict)
    active: NDArray[np.bool_] = field(init=False)
    length: NDArray[np.int64] = field(init=False)

    KEYS = (
        "pnl",
        *PNL_COMPONENTS,
        "inventory_abs",
        "volume",
        "fills",
        "rejected_post_only",
        "hedge_cost",
        "liquidated",
    )

    def __post_init__(self) -> None:
        for key in self.KEYS:
            self.series[key] = np.zeros((self.steps, self.num_envs))
        self.active = np.ones(self.num_envs, dtype=np.bool_)
        self.length = np.zeros(self.num_envs, dtype=np.int64)

    def record(self, t: int, info: dict[str, Any], done: NDArray[np.bool_]) -> None:
        """Store step ``t`` for envs still in their first episode."""
        a = self.active
        s = self.series
        s["pnl"][t] = np.where(a, info["pnl"], 0.0)
        for key in PNL_COMPONENTS:
            s[key][t] = np.where(a, _per_env(info[key]), 0.0)
        s["inventory_abs"][t] = np.where(a, _per_env(np.abs(info["inventory"])), 0.0)
        s["volume"][t] = np.where(a, _per_env(info["bid_filled"] + info["ask_filled"]), 0.0)
        s["fills"][t] = np.where(a, _per_env(info["fills"]), 0.0)
        s["rejected_post_only"][t] = np.where(a, _per_env(info["rejected_post_only"]), 0.0)
        s["hedge_cost"][t] = np.where(a, _per_env(info["hedge_cost"]), 0.0)
        s["liquidated"][t] = np.where(a, info["liquidated"], False)
        self.length += a
        self.active = a & ~done


def _per_env(x: NDArray[Any]) -> NDArray[np.float64]:
    """Sum a per-perp array over perps."""
    arr = np.asarray(x, dtype=np.float64)
    return arr.sum(axis=1) if arr.ndim == 2 else arr


@dataclass
class FillTape:
    """Per-step fills and mids of every perp, for markouts."""

    steps: int
    num_envs: int
    num_assets: int
    mid: NDArray[np.float64] = field(init=False)
    bid_qty: NDArray[np.float64] = field(init=False)
    bid_px: NDArray[np.float64] = field(init=False)
    ask_qty: NDArray[np.float64] = field(init=False)
    ask_px: NDArray[np.float64] = field(init=False)

    def __post_init__(self) -> None:
        shape = (self.steps, self.num_envs, self.num_assets)
        for name in ("mid", "bid_qty", "bid_px", "ask_qty", "ask_px"):
            setattr(self, name, np.zeros(shape))

    def record(self, t: int, info: dict[str, Any], active: NDArray[np.bool_]) -> None:
        """Store step ``t``'s fills (VWAP per side) and end-of-step mids."""
        shape = (self.num_envs, self.num_assets)
        bid = np.asarray(info["bid_filled"]).reshape(shape) * active[:, None]
        ask = np.asarray(info["ask_filled"]).reshape(shape) * active[:, None]
        self.mid[t] = np.asarray(info["mid"]).reshape(shape)
        self.bid_qty[t] = bid
        self.ask_qty[t] = ask
        self.bid_px[t] = np.divide(
            np.asarray(info["bid_notional"]).reshape(shape), bid, out=np.zeros(shape), where=bid > 0
        )
        self.ask_px[t] = np.divide(
            np.asarray(info["ask_notional"]).reshape(shape), ask, out=np.zeros(shape), where=ask > 0
        )

    def markouts(self, env: int, length: int, horizons: list[int]) -> dict[int, float]:
        """Markouts of env ``env``'s fills over its episode, summed over perps."""
        total = dict.fromkeys(horizons, 0.0)
        for k in range(self.num_assets):
            m = metrics.markouts(
                self.mid[:length, env, k],
                self.bid_qty[:length, env, k],
                self.bid_px[:length, env, k],
                self.ask_qty[:length, env, k],
                self.ask_px[:length, env, k],
                tuple(horizons),
            )
            for h in horizons:
                total[h] += m[h]
        return total


def episode_row(
    rec: EpisodeRecorder,
    tape: FillTape,
    i: int,
    params: MarketParams,
    markout_steps: list[int],
) -> dict[str, float]:
    """The metrics of env ``i``'s episode: PnL and its parts, risk, execution, markouts."""
    n = int(rec.length[i])
    s = {key: series[:n, i] for key, series in rec.series.items()}
    volume = float(s["volume"].sum())
    row: dict[str, float] = {
        "env": i,
        "steps": n,
        "pnl": float(s["pnl"].sum()),
        **{key: float(s[key].sum()) for key in PNL_COMPONENTS},
        "sharpe": metrics.sharpe(s["pnl"]),
        "sortino": metrics.sortino(s["pnl"]),
        "max_drawdown": metrics.max_drawdown(s["pnl"]),
        "inventory_abs_mean": float(s["inventory_abs"].mean()) if n else 0.0,
        "time_at_limit": metrics.time_at_limit(
            s["inventory_abs"] / params.num_assets, params.max_inventory
        ),
        "fill_rate": float(np.mean(s["fills"] > 0)) if n else 0.0,
        "volume": volume,
        "rejected_post_only": float(s["rejected_post_only"].sum()),
        "hedge_cost": float(s["hedge_cost"].sum()),
        "liquidated": float(s["liquidated"].any()),
    }
    for steps, value in tape.markouts(i, n, markout_steps).items():
        row[markout_name(steps, params)] = value / volume if volume > 0 else 0.0
    return row
