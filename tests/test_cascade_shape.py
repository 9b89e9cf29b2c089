"""The cascade-shape measures on a synthetic record with known answers."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from mmgym.analysis.cascade_shape import cascade_shapes
from mmgym.core.params import MarketParams


def _record(envs: int = 2) -> Any:
    """One hour of 1 s samples: env 0 has a cascade (forced sells of 30/s for 30 s ending at
    t = 2009 s, a forced buy of 100 at t = 1500 s, the bids thinned from 10 to 1 and the spread
    widened from 4 to 40 ticks for 20 s); env 1 has no forced flow."""
    n = 3601
    shape = (n, envs, 1)
    forced_sell = np.zeros(shape)
    forced_buy = np.zeros(shape)
    forced_sell[1980:2010, 0, 0] = 30.0
    forced_buy[1500, 0, 0] = 100.0
    bid_depth5 = np.full(shape, 10.0)
    ask_depth5 = np.full(shape, 10.0)
    bid_depth5[1995:2015, 0, 0] = 1.0
    tick = 0.01
    best_bid = np.full(shape, 100.0 - 2 * tick)
    best_ask = np.full(shape, 100.0 + 2 * tick)
    best_bid[1995:2015, 0, 0] = 100.0 - 20 * tick
    best_ask[1995:2015, 0, 0] = 100.0 + 20 * tick
    return SimpleNamespace(
        forced_sell=forced_sell,
        forced_buy=forced_buy,
        bid_depth5=bid_depth5,
        ask_depth5=ask_depth5,
        best_bid=best_bid,
        best_ask=best_ask,
        sample_seconds=1.0,
        params=MarketParams(tick_size=tick),
    )


def test_cascade_shape_on_a_known_record() -> None:
    shape = cascade_shapes(_record())
    assert list(shape.env) == [0]  # env 1 has no cascade
    assert shape.peak_second[0] == 2009.0  # the first window holding all 30 s of sells
    assert shape.forced_volume[0] == pytest.approx(1000.0)
    assert shape.depth_drop[0] == pytest.approx(0.9)  # the 10 s mean reaches 1 of a typical 10
    assert shape.spread_ratio[0] == pytest.approx(10.0)
    assert shape.peak_share[0] == pytest.approx(0.9)  # 900 of 1000 in the busiest minute
    assert shape.long_share[0] == pytest.approx(0.9)
    mean, se = shape.mean_se("long_share")
    assert mean == pytest.approx(0.9) and np.isnan(se)  # one env: no SE


def test_a_cascade_outside_the_event_window_does_not_count() -> None:
    record = _record()
    record.forced_buy[100, 0, 0] = 100.0  # 1909 s before the peak: outside +-20 min
    record.forced_buy[1500, 0, 0] = 0.0
    shape = cascade_shapes(record)
    assert shape.forced_volume[0] == pytest.approx(900.0)
    assert shape.long_share[0] == 1.0
