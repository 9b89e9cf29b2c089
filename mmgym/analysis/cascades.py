"""Liquidation cascades: the largest burst of forced volume in a record and its series around it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from mmgym.analysis.market_record import MarketRecord

F64 = NDArray[np.float64]


@dataclass(frozen=True)
class CascadeWindow:
    """Time series of one env around its largest liquidation burst (asset ``asset``)."""

    env: int
    asset: int
    peak_second: float
    """Time (s since reset) of the end of the burst window."""
    burst_seconds: float
    burst_forced_volume: float
    """Forced volume (buys + sells, all assets) in the ``burst_seconds`` window ending at
    ``peak_second``."""
    burst_net_sell: float
    """Forced sells minus forced buys (all assets) in that window."""
    burst_liquidations: int
    time: F64
    """Seconds relative to ``peak_second``."""
    mid: F64
    fair: F64
    mark: F64
    forced_sell: F64
    forced_buy: F64
    taker_buy: F64
    taker_sell: F64
    bid_top: F64
    bid_depth5: F64
    ask_depth5: F64
    spread_ticks: F64
    liquidity_bid: F64
    """Makers' liquidity of the bid side (1: the configured book)."""
    liquidity_ask: F64
    liquidations: NDArray[np.int64]
    regime: NDArray[np.int8]


def cascade_window(
    record: MarketRecord,
    burst_seconds: float = 30.0,
    before_seconds: float = 180.0,
    after_seconds: float = 180.0,
    by: str = "net",
    skip_seconds: float = 0.0,
) -> CascadeWindow:
    """The largest liquidation burst of the record and its series around it.

    The burst is the env and window of ``burst_seconds`` with the most forced volume (summed
    over assets): ``by="net"`` ranks by one-sided forced volume ``|sells - buys|`` (a cascade
    pushes one way), ``by="gross"`` by ``sells + buys``. Windows ending in the first
    ``skip_seconds`` of the run are ignored.
    """
    if by == "net":
        flow = (record.forced_sell - record.forced_buy).sum(axis=2)  # (samples + 1, env)
    elif by == "gross":
        flow = (record.forced_buy + record.forced_sell).sum(axis=2)
    else:
        raise ValueError(f"by must be 'net' or 'gross', got {by!r}")
    per = max(1, round(burst_seconds / record.sample_seconds))
    csum = np.cumsum(flow, axis=0)
    window = csum.copy()
    window[per:] = csum[per:] - csum[:-per]
    rolling = np.abs(window)
    rolling[: round(skip_seconds / record.sample_seconds)] = -1.0
    peak = np.unravel_index(int(np.argmax(rolling)), rolling.shape)
    t_end, env = int(peak[0]), int(peak[1])
    first = max(0, t_end - per + 1)
    gross = (record.forced_buy + record.forced_sell)[first : t_end + 1, env]
    asset = int(np.argmax(gross.sum(axis=0)))
    lo = max(0, t_end - round(before_seconds / record.sample_seconds))
    hi = min(record.mid.shape[0], t_end + round(after_seconds / record.sample_seconds) + 1)
    sl = slice(lo, hi)
    tick = record.params.tick_size
    return CascadeWindow(
        env=env,
        asset=asset,
        peak_second=t_end * record.sample_seconds,
        burst_seconds=per * record.sample_seconds,
        burst_forced_volume=float(gross.sum()),
        burst_net_sell=float(
            (record.forced_sell - record.forced_buy)[first : t_end + 1, env].sum()
        ),
        burst_liquidations=int(record.liquidations[first : t_end + 1, env].sum()),
        time=(np.arange(lo, hi) - t_end) * record.sample_seconds,
        mid=record.mid[sl, env, asset],
        fair=record.fair[sl, env, asset],
        mark=record.mark[sl, env, asset],
        forced_sell=record.forced_sell[sl, env, asset],
        forced_buy=record.forced_buy[sl, env, asset],
        taker_buy=record.buy_volume[sl, env, asset],
        taker_sell=record.sell_volume[sl, env, asset],
        bid_top=record.bid_top[sl, env, asset],
        bid_depth5=record.bid_depth5[sl, env, asset],
        ask_depth5=record.ask_depth5[sl, env, asset],
        spread_ticks=(record.best_ask[sl, env, asset] - record.best_bid[sl, env, asset]) / tick,
        liquidity_bid=record.liquidity_bid[sl, env, asset],
        liquidity_ask=record.liquidity_ask[sl, env, asset],
        liquidations=record.liquidations[sl, env],
        regime=record.regime[sl, env],
    )
