"""The shape of liquidation cascades: how far the book thins, how wide the spread gets, how
concentrated in time and how one-sided the forced flow is, per env on its largest cascade.

For each env the cascade is the window of ``burst_seconds`` with the most forced volume (buys
plus sells, every asset). Around its end ``t``:

- **depth drop**: ``1 - min / typical`` of the near-mid depth of the side the forced flow hit
  (the best levels, ``bid_depth5`` when forced sells dominate the event, else ``ask_depth5``,
  summed over assets) smoothed over ``smooth_seconds``: the minimum within ``book_seconds / 2``
  of ``t`` against the env's median over the whole run;
- **spread ratio**: the largest smoothed spread (mean over assets) within ``book_seconds / 2``
  of ``t`` over the env's median spread;
- **peak share**: forced volume of the burst (the busiest ``burst_seconds``) over the forced
  volume of the event window (``event_seconds`` centred on ``t``);
- **long share**: forced sells (longs closed) over all forced volume in the event window.

Envs whose largest burst has less than ``min_volume`` forced volume have no cascade and are
left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from mmgym.analysis.market_record import MarketRecord

F64 = NDArray[np.float64]

SHAPE_FIELDS = ("depth_drop", "spread_ratio", "peak_share", "long_share")
"""The measured quantities, in order."""


@dataclass(frozen=True)
class CascadeShape:
    """Per-env shape of the largest cascade (one entry per env that has one)."""

    env: NDArray[np.int64]
    peak_second: F64
    forced_volume: F64
    """Forced volume of the event window (base units, all assets)."""
    depth_drop: F64
    spread_ratio: F64
    peak_share: F64
    long_share: F64

    @property
    def one_side(self) -> F64:
        """Share of the event's forced volume on its dominant side (longs or shorts), 0.5-1."""
        return np.maximum(self.long_share, 1.0 - self.long_share)

    def mean_se(self, name: str) -> tuple[float, float]:
        """Mean over envs of field ``name`` and its standard error (std / sqrt(n))."""
        x = np.asarray(getattr(self, name), dtype=np.float64)
        if x.size == 0:
            return math.nan, math.nan
        se = float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else math.nan
        return float(x.mean()), se


def rolling_mean(x: F64, window: int) -> F64:
    """Trailing mean over ``window`` samples along axis 0 (shorter at the start)."""
    csum = np.cumsum(x, axis=0)
    out = csum.copy()
    out[window:] = csum[window:] - csum[:-window]
    counts = np.minimum(np.arange(1, x.shape[0] + 1), window).astype(np.float64)
    shape = (-1,) + (1,) * (x.ndim - 1)
    return out / counts.reshape(shape)


def rolling_sum(x: F64, window: int) -> F64:
    """Trailing sum over ``window`` samples along axis 0."""
    csum = np.cumsum(x, axis=0)
    out = csum.copy()
    out[window:] = csum[window:] - csum[:-window]
    return out


def cascade_shapes(
    record: MarketRecord,
    burst_seconds: float = 60.0,
    event_seconds: float = 2400.0,
    book_seconds: float = 600.0,
    smooth_seconds: float = 10.0,
    min_volume: float = 1.0,
) -> CascadeShape:
    """The shape of every env's largest cascade (see the module's docstring)."""
    dt = record.sample_seconds
    per = max(1, round(burst_seconds / dt))
    half = round(0.5 * event_seconds / dt)
    book_half = round(0.5 * book_seconds / dt)
    smooth = max(1, round(smooth_seconds / dt))
    forced_sell = record.forced_sell.sum(axis=2)
    forced = record.forced_buy.sum(axis=2) + forced_sell  # (samples + 1, env)
    burst = rolling_sum(forced, per)
    bid_depth = rolling_mean(record.bid_depth5.sum(axis=2), smooth)
    ask_depth = rolling_mean(record.ask_depth5.sum(axis=2), smooth)
    spread = rolling_mean(
        ((record.best_ask - record.best_bid) / record.params.tick_size).mean(axis=2), smooth
    )
    rows: list[tuple[float, ...]] = []
    envs: list[int] = []
    last = forced.shape[0] - 1
    for env in range(forced.shape[1]):
        t = int(np.argmax(burst[:, env]))
        if burst[t, env] < min_volume:
            continue
        lo, hi = max(0, t - half), min(last, t + half)
        near = slice(max(0, t - book_half), min(last, t + book_half) + 1)
        total = float(forced[lo : hi + 1, env].sum())
        sells = float(forced_sell[lo : hi + 1, env].sum())
        depth = bid_depth if sells >= 0.5 * total else ask_depth
        typical_depth = float(np.median(depth[:, env]))
        typical_spread = float(np.median(spread[:, env]))
        rows.append(
            (
                t * dt,
                total,
                1.0 - float(depth[near, env].min()) / typical_depth,
                float(spread[near, env].max()) / typical_spread,
                float(burst[t, env]) / total,
                sells / total,
            )
        )
        envs.append(env)
    cols = np.array(rows, dtype=np.float64).reshape(-1, 6).T
    return CascadeShape(np.array(envs, dtype=np.int64), *cols)
