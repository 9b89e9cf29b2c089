"""The one observation builder, shared by the simulator and the live runner.

It reads only event windows: per perp (``mmgym.core.layout.window_dtype``) the mid and the
taker buy and sell volume of every tick of the last decision interval, a book snapshot, the
agent's own orders and inventory, the oracle, premium and funding, the hedge position; per
account (``ACCOUNT_WINDOW_DTYPE``) equity, maintenance margin, collateral and time to funding.
It keeps exponential moving averages over three horizons (execution, order-flow aggregation,
regime) and writes one float32 vector per env: a block of ``ASSET_FEATURES`` per perp, then
``ACCOUNT_FEATURES``.

Per perp:

=====  =======================  ===========================================================
index  name                     definition
=====  =======================  ===========================================================
0      inventory                inventory / max_inventory
1-3    return_{h}               (log mid - EMA_h(log mid)) in bp / (return_scale_bp sqrt(h))
4-6    volatility_{h}           sqrt(EMA_h(r^2) / tick_seconds) in bp per sqrt(s) / scale
7-9    flow_imbalance_{h}       (EMA_h(buy vol) - EMA_h(sell vol)) / (sum), in [-1, 1]
10     book_imbalance           (bid depth - ask depth) / sum over the snapshot levels
11     spread                   (best ask - best bid) in ticks / 10
12     bid_distance             (mid - own bid) in ticks / max_half_spread_ticks (0: no bid)
13     bid_queue                volume ahead / (volume ahead + own size) (0: no bid)
14     ask_distance             (own ask - mid) in ticks / max_half_spread_ticks (0: no ask)
15     ask_queue                volume ahead / (volume ahead + own size) (0: no ask)
16     time                     elapsed fraction of the episode
17     premium                  last premium-index sample, in bp / 10
18     funding_estimate         funding rate of the running interval so far, in bp
19     basis                    (mid - oracle) / oracle, in bp / 10
20     last_funding             last realised funding rate, in bp
21     hedge_position           hedge position / max_inventory
=====  =======================  ===========================================================

Per account (after the K perp blocks):

=====  =======================  ===========================================================
0      margin_ratio             maintenance margin / margin equity (liquidation at 1)
1      equity_return            (margin equity / collateral - 1) x 100
2      time_to_funding          time to the next funding payment / funding interval
=====  =======================  ===========================================================

All features are clipped to [-clip, clip].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba as nb
import numpy as np
from numpy.typing import NDArray

from mmgym.core.params import MarketParams
from mmgym.core.records import Record

HORIZON_LABELS = ("fast", "medium", "slow")
OBS_NAMES: tuple[str, ...] = (
    "inventory",
    *(f"return_{h}" for h in HORIZON_LABELS),
    *(f"volatility_{h}" for h in HORIZON_LABELS),
    *(f"flow_imbalance_{h}" for h in HORIZON_LABELS),
    "book_imbalance",
    "spread",
    "bid_distance",
    "bid_queue",
    "ask_distance",
    "ask_queue",
    "time",
    "premium",
    "funding_estimate",
    "basis",
    "last_funding",
    "hedge_position",
)
ASSET_FEATURES = len(OBS_NAMES)
ACCOUNT_OBS_NAMES: tuple[str, ...] = ("margin_ratio", "equity_return", "time_to_funding")
ACCOUNT_FEATURES = len(ACCOUNT_OBS_NAMES)

# Offsets of the features in a perp's block (then in the account block), from their names. A
# per-horizon feature's offset is that of its first horizon; horizon h is at offset + h.
INVENTORY = OBS_NAMES.index("inventory")
RETURN = OBS_NAMES.index(f"return_{HORIZON_LABELS[0]}")
VOLATILITY = OBS_NAMES.index(f"volatility_{HORIZON_LABELS[0]}")
FLOW_IMBALANCE = OBS_NAMES.index(f"flow_imbalance_{HORIZON_LABELS[0]}")
BOOK_IMBALANCE = OBS_NAMES.index("book_imbalance")
SPREAD = OBS_NAMES.index("spread")
BID_DISTANCE = OBS_NAMES.index("bid_distance")
BID_QUEUE = OBS_NAMES.index("bid_queue")
ASK_DISTANCE = OBS_NAMES.index("ask_distance")
ASK_QUEUE = OBS_NAMES.index("ask_queue")
TIME = OBS_NAMES.index("time")
PREMIUM = OBS_NAMES.index("premium")
FUNDING_ESTIMATE = OBS_NAMES.index("funding_estimate")
BASIS = OBS_NAMES.index("basis")
LAST_FUNDING = OBS_NAMES.index("last_funding")
HEDGE_POSITION = OBS_NAMES.index("hedge_position")
MARGIN_RATIO = ACCOUNT_OBS_NAMES.index("margin_ratio")
EQUITY_RETURN = ACCOUNT_OBS_NAMES.index("equity_return")
TIME_TO_FUNDING = ACCOUNT_OBS_NAMES.index("time_to_funding")


def observation_names(num_assets: int) -> tuple[str, ...]:
    """Names of every observation component, ``name[k]`` for perp k when there are several."""
    if num_assets == 1:
        return OBS_NAMES + ACCOUNT_OBS_NAMES
    per_asset = tuple(f"{name}[{k}]" for k in range(num_assets) for name in OBS_NAMES)
    return per_asset + ACCOUNT_OBS_NAMES


def observation_dim(num_assets: int) -> int:
    """Length of the observation vector for ``num_assets`` perps."""
    return ASSET_FEATURES * num_assets + ACCOUNT_FEATURES


SPREAD_SCALE_TICKS = 10.0
H = len(HORIZON_LABELS)

CONFIG_DTYPE = np.dtype(
    [
        ("tick_seconds", "f8"),
        ("tick_size", "f8"),
        ("horizons", "f8", (H,)),
        ("ema_weight", "f8", (H,)),
        ("return_scale_bp", "f8"),
        ("max_inventory", "f8"),
        ("max_half_spread_ticks", "f8"),
        ("funding_interval", "f8"),
        ("clip", "f8"),
    ],
    align=True,
)

FEATURE_STATE_DTYPE = np.dtype(
    [
        ("log_mid", "f8"),
        ("ema_log_mid", "f8", (H,)),
        ("ema_sq_return", "f8", (H,)),
        ("ema_buy", "f8", (H,)),
        ("ema_sell", "f8", (H,)),
    ],
    align=True,
)


@dataclass(frozen=True)
class ObservationConfig:
    """What the builder needs to know about the market: its grid, clocks and limits."""

    tick_seconds: float
    tick_size: float
    horizons: tuple[float, float, float]
    return_scale_bp: float
    max_inventory: float
    max_half_spread_ticks: float
    funding_interval: float
    clip: float

    @classmethod
    def from_market(cls, p: MarketParams) -> ObservationConfig:
        """The configuration matching a simulated market."""
        return cls(
            tick_seconds=p.tick_seconds,
            tick_size=p.tick_size,
            horizons=p.horizons,
            return_scale_bp=p.return_scale_bp,
            max_inventory=p.max_inventory,
            max_half_spread_ticks=p.max_half_spread_ticks,
            funding_interval=p.funding_interval_seconds,
            clip=p.obs_clip,
        )

    def pack(self) -> NDArray[np.void]:
        """One-element record for the compiled builder."""
        out = np.zeros(1, dtype=CONFIG_DTYPE)
        r = out[0]
        r["tick_seconds"] = self.tick_seconds
        r["tick_size"] = self.tick_size
        r["horizons"] = self.horizons
        r["ema_weight"] = 1.0 - np.exp(-self.tick_seconds / np.array(self.horizons))
        r["return_scale_bp"] = self.return_scale_bp
        r["max_inventory"] = self.max_inventory
        r["max_half_spread_ticks"] = self.max_half_spread_ticks
        r["funding_interval"] = self.funding_interval
        r["clip"] = self.clip
        return out


@nb.njit(cache=True, error_model="numpy", inline="always")
def _queue_fraction(ahead: float, size: float) -> float:
    return ahead / (ahead + size) if size > 0.0 else 0.0


@nb.njit(cache=True, error_model="numpy")
def _asset_features(C: Record, w: Record, f: Record, o: NDArray[np.float32], base: int) -> None:
    """Update one perp's feature state from its window and write its block at ``base``."""
    n_h = C.horizons.shape[0]
    ticks = w.mid.shape[0]
    if w.episode_start:
        lm = math.log(w.mid[ticks - 1])
        f.log_mid = lm
        for h in range(n_h):
            f.ema_log_mid[h] = lm
            f.ema_sq_return[h] = 0.0
            f.ema_buy[h] = 0.0
            f.ema_sell[h] = 0.0
    else:
        for t in range(ticks):
            lm = math.log(w.mid[t])
            ret = lm - f.log_mid
            f.log_mid = lm
            bv = w.buy_volume[t]
            sv = w.sell_volume[t]
            for h in range(n_h):
                weight = C.ema_weight[h]
                f.ema_log_mid[h] += weight * (lm - f.ema_log_mid[h])
                f.ema_sq_return[h] += weight * (ret * ret - f.ema_sq_return[h])
                f.ema_buy[h] += weight * (bv - f.ema_buy[h])
                f.ema_sell[h] += weight * (sv - f.ema_sell[h])
    o[base + INVENTORY] = w.inventory / C.max_inventory
    for h in range(n_h):
        o[base + RETURN + h] = (
            (f.log_mid - f.ema_log_mid[h]) * 1e4 / (C.return_scale_bp * math.sqrt(C.horizons[h]))
        )
        volatility = math.sqrt(f.ema_sq_return[h] / C.tick_seconds) * 1e4 / C.return_scale_bp
        o[base + VOLATILITY + h] = volatility
        flow = f.ema_buy[h] + f.ema_sell[h]
        imbalance = (f.ema_buy[h] - f.ema_sell[h]) / flow if flow > 1e-12 else 0.0
        o[base + FLOW_IMBALANCE + h] = imbalance
    bid_depth = 0.0
    ask_depth = 0.0
    for j in range(w.bid_depth.shape[0]):
        bid_depth += w.bid_depth[j]
        ask_depth += w.ask_depth[j]
    total = bid_depth + ask_depth
    o[base + BOOK_IMBALANCE] = (bid_depth - ask_depth) / total if total > 0.0 else 0.0
    o[base + SPREAD] = (w.best_ask - w.best_bid) / C.tick_size / SPREAD_SCALE_TICKS
    mid = 0.5 * (w.best_bid + w.best_ask)
    scale = C.tick_size * C.max_half_spread_ticks
    o[base + BID_DISTANCE] = (mid - w.bid_price) / scale if w.bid_size > 0.0 else 0.0
    o[base + BID_QUEUE] = _queue_fraction(w.bid_queue_ahead, w.bid_size)
    o[base + ASK_DISTANCE] = (w.ask_price - mid) / scale if w.ask_size > 0.0 else 0.0
    o[base + ASK_QUEUE] = _queue_fraction(w.ask_queue_ahead, w.ask_size)
    o[base + TIME] = w.time_fraction
    o[base + PREMIUM] = w.premium * 1e3
    o[base + FUNDING_ESTIMATE] = w.funding_estimate * 1e4
    o[base + BASIS] = (mid - w.oracle) / w.oracle * 1e3
    o[base + LAST_FUNDING] = w.last_funding * 1e4
    o[base + HEDGE_POSITION] = w.hedge_position / C.max_inventory


@nb.njit(cache=True, error_model="numpy")
def build_observations(
    Ca: NDArray[np.void],
    windows: NDArray[np.void],
    account_windows: NDArray[np.void],
    feat: NDArray[np.void],
    obs: NDArray[np.float32],
    mask: NDArray[np.bool_],
) -> None:
    """Update the feature state of envs in ``mask`` from their windows and write their features."""
    C = Ca[0]
    n_assets = windows.shape[1]
    for i in range(windows.shape[0]):
        if not mask[i]:
            continue
        o = obs[i]
        for k in range(n_assets):
            _asset_features(C, windows[i, k], feat[i, k], o, k * ASSET_FEATURES)
        v = account_windows[i]
        base = n_assets * ASSET_FEATURES
        o[base + MARGIN_RATIO] = v.maintenance_margin / v.equity if v.equity > 0.0 else C.clip
        o[base + EQUITY_RETURN] = (v.equity / v.collateral - 1.0) * 100.0
        o[base + TIME_TO_FUNDING] = v.time_to_funding / C.funding_interval
        clip = C.clip
        for k in range(o.shape[0]):
            o[k] = min(clip, max(-clip, o[k]))


class ObservationBuilder:
    """Stateful feature builder for ``num_envs`` streams of event windows."""

    def __init__(self, config: ObservationConfig, num_envs: int, num_assets: int = 1) -> None:
        self.config = config
        self._packed = config.pack()
        self.state = np.zeros((num_envs, num_assets), dtype=FEATURE_STATE_DTYPE)
        self.obs = np.zeros((num_envs, observation_dim(num_assets)), dtype=np.float32)
        self._all = np.ones(num_envs, dtype=np.bool_)

    def update(
        self,
        windows: NDArray[np.void],
        account_windows: NDArray[np.void],
        mask: NDArray[np.bool_] | None = None,
    ) -> NDArray[np.float32]:
        """Consume the windows of every env in ``mask`` and return the feature buffer."""
        if windows.shape != self.state.shape or account_windows.shape != self.state.shape[:1]:
            raise ValueError(
                f"windows of shape {windows.shape} and {account_windows.shape} do not fit a "
                f"builder of {self.state.shape[0]} envs x {self.state.shape[1]} perps"
            )
        build_observations(
            self._packed,
            windows,
            account_windows,
            self.state,
            self.obs,
            self._all if mask is None else mask,
        )
        return self.obs
