"""A passive recording of simulated perp markets: :func:`simulate` and its :class:`MarketRecord`.

:func:`simulate` runs ``num_envs`` markets of a scenario with a passive agent (no orders, no
hedge), so the market is observed undisturbed, and records them: per market tick the taker
order count and the regime, per ``sample_seconds`` (1 s) the book, prices, funding and the
traded volumes. To see every tick, the envs are stepped one tick per decision
(``decision_interval = tick_seconds``); nothing in the market depends on the decision interval,
only the agent's orders (there are none) and observations (unused) do.

Series layout: the record stores arrays ``(time, env, asset)``; :meth:`MarketRecord.series`
returns them as ``(series, time)`` with one independent series per env and asset.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mmgym.core.params import MarketParams
from mmgym.envs.perp_mm import PerpMMVectorEnv
from mmgym.scenarios import make_params

PASSIVE_ACTION: tuple[float, ...] = (0.0, -0.6, -1.0, -1.0, -1.0)
"""Action block per perp that places no orders and hedges nothing (sizes -1 are below the
minimum quote size)."""

DEPTH_LEVELS = 5
"""Levels summed for the ``*_depth5`` book depth."""

F64 = NDArray[np.float64]


@dataclass
class MarketRecord:
    """What :func:`simulate` recorded. Per-sample arrays have ``samples + 1`` rows: row 0 is
    the state at reset, row ``t`` the state at the end of sample interval ``t`` (volumes are
    summed over the interval)."""

    scenario: str
    params: MarketParams
    """Parameters of the scenario as simulated (with the recording overrides)."""
    seed: int
    sample_seconds: float
    label: str
    """Name of the run in tables (the scenario name unless :func:`simulate` was given one)."""
    # per tick
    orders: NDArray[np.int16]
    """Taker orders (buys + sells, forced closes excluded) per tick, (ticks, env, asset)."""
    tick_regime: NDArray[np.int8]
    """Regime during each tick, (ticks, env)."""
    # per sample, (samples + 1, env, asset)
    mid: F64
    fair: F64
    mark: F64
    premium: F64
    """Last premium-index sample (fraction)."""
    funding_estimate: F64
    """Funding rate of the running interval so far (fraction per interval)."""
    last_funding: F64
    """Last realised funding rate (fraction per interval)."""
    best_bid: F64
    best_ask: F64
    bid_top: F64
    """Depth at the best bid (base units)."""
    ask_top: F64
    bid_depth5: F64
    """Depth of the best ``DEPTH_LEVELS`` bid levels (base units)."""
    ask_depth5: F64
    buy_volume: F64
    """Taker (Hawkes) buy volume over the interval."""
    sell_volume: F64
    forced_buy: F64
    """Forced (liquidation) buy volume over the interval."""
    forced_sell: F64
    liquidity_bid: F64
    """Makers' liquidity on the bid side (1: the configured book; :mod:`mmgym.core.liquidity`)."""
    liquidity_ask: F64
    coupled: NDArray[np.bool_]
    """Whether the basis is coupled to spot (arbitrage pull at full strength)."""
    # per sample, (samples + 1, env)
    regime: NDArray[np.int8]
    liquidations: NDArray[np.int64]
    """Crowd liquidations in the interval."""
    stress_multiplier: F64
    """Multiplier of the regime chain's rates into stress (:mod:`mmgym.core.stress`)."""
    funded: NDArray[np.bool_]
    """A funding payment happened in the interval (its rate is ``last_funding``)."""
    seconds: float = field(init=False)

    def __post_init__(self) -> None:
        self.seconds = (self.mid.shape[0] - 1) * self.sample_seconds

    @property
    def num_envs(self) -> int:
        """Number of simulated markets."""
        return int(self.mid.shape[1])

    @property
    def num_assets(self) -> int:
        """Perps per market."""
        return int(self.mid.shape[2])

    @property
    def tick_seconds(self) -> float:
        """Market tick (s)."""
        return float(self.params.tick_seconds)

    def series(self, name: str) -> NDArray[Any]:
        """A per-sample or per-tick field as ``(series, time)``: one row per env and asset."""
        x = getattr(self, name)
        if x.ndim == 2:  # per env: repeat for each asset
            x = np.repeat(x[:, :, None], self.num_assets, axis=2)
        t = x.shape[0]
        return np.ascontiguousarray(x.transpose(1, 2, 0).reshape(-1, t))


def fixed_regime(regime: str) -> dict[str, Any]:
    """Overrides that hold a market in ``regime`` (no switching)."""
    zero = (0.0, 0.0, 0.0)
    return {"initial_regime": regime, "regime_switch_per_hour": (zero, zero, zero)}


def passive_run(
    scenario: str,
    num_envs: int,
    samples: int,
    sample_seconds: float,
    seed: int,
    overrides: Mapping[str, Any],
    progress: Callable[[int], object] | None = None,
) -> Iterator[PerpMMVectorEnv]:
    """A passive agent in ``num_envs`` markets of ``scenario`` (env ``i`` seeded ``seed + i``,
    parameters ``overrides``), one decision per ``sample_seconds`` for ``samples`` decisions:
    yields the env after the reset and after each decision (``samples + 1`` times; read its
    state before the next). ``progress`` is called with each decision's market ticks."""
    env = PerpMMVectorEnv(
        num_envs=num_envs,
        scenario=scenario,
        parallel=False,
        copy=False,
        **{
            **overrides,
            "decision_interval": sample_seconds,
            "episode_seconds": samples * sample_seconds,
        },
    )
    try:
        k = env.params.num_assets
        action = np.tile(np.array(PASSIVE_ACTION * k, dtype=np.float64), (num_envs, 1))
        env.reset(seed=seed)
        yield env
        ticks = env.params.ticks_per_decision
        for _ in range(samples):
            env.step(action)
            if progress is not None:
                progress(ticks)
            yield env
    finally:
        env.close()


def recording_overrides(base: MarketParams, seconds: float) -> dict[str, Any]:
    """Step one tick per decision. The agent's order and hedge latencies must then fit inside
    one tick; the passive agent sends neither, so they do not matter."""
    dt = base.tick_seconds
    latency = min(base.latency_seconds, 0.25 * dt)
    return {
        "decision_interval": dt,
        "latency_seconds": latency,
        "latency_cap_seconds": 0.5 * (latency + dt),
        "hedge_latency_seconds": min(base.hedge_latency_seconds, 0.5 * dt),
        "episode_seconds": seconds,
    }


def simulate(
    scenario: str,
    num_envs: int = 32,
    hours: float = 4.0,
    seed: int = 0,
    sample_seconds: float = 1.0,
    progress: Callable[[int], object] | None = None,
    label: str | None = None,
    **overrides: Any,
) -> MarketRecord:
    """Simulate ``num_envs`` independent markets of ``scenario`` for ``hours`` with a passive
    agent and record them.

    ``overrides`` are market parameters on top of the scenario's. ``progress``, if given, is
    called with the number of ticks just simulated (e.g. ``tqdm.update``). Env ``i`` is seeded
    with ``seed + i``. ``label`` names the run in tables (default: the scenario).
    """
    base = make_params(scenario, **overrides)
    dt = base.tick_seconds
    per_sample = round(sample_seconds / dt)
    if per_sample < 1 or abs(per_sample * dt - sample_seconds) > 1e-9:
        raise ValueError(f"sample_seconds must be a multiple of tick_seconds ({dt})")
    samples = max(1, round(hours * 3600.0 / sample_seconds))
    seconds = samples * sample_seconds
    ticks = samples * per_sample
    # one decision per tick: the passive run's decisions are the ticks recorded one by one
    run = passive_run(
        scenario, num_envs, ticks, dt, seed, {**overrides, **recording_overrides(base, seconds)}
    )
    env = next(run)
    params = env.params
    n, k = num_envs, params.num_assets
    sim = env.sim
    assets, accounts, windows = sim.assets, sim.accounts, sim.windows

    orders = np.zeros((ticks, n, k), dtype=np.int16)
    tick_regime = np.zeros((ticks, n), dtype=np.int8)
    shape = (samples + 1, n, k)
    rec: dict[str, NDArray[Any]] = {
        name: np.zeros(shape)
        for name in (
            "mid",
            "fair",
            "mark",
            "premium",
            "funding_estimate",
            "last_funding",
            "best_bid",
            "best_ask",
            "bid_top",
            "ask_top",
            "bid_depth5",
            "ask_depth5",
            "buy_volume",
            "sell_volume",
            "forced_buy",
            "forced_sell",
            "liquidity_bid",
            "liquidity_ask",
        )
    }
    coupled = np.zeros(shape, dtype=np.bool_)
    regime = np.zeros((samples + 1, n), dtype=np.int8)
    liquidations = np.zeros((samples + 1, n), dtype=np.int64)
    stress_multiplier = np.zeros((samples + 1, n))
    funded = np.zeros((samples + 1, n), dtype=np.bool_)

    tick = params.tick_size
    # Views into the kernel's state (written in place by every step).
    buy_orders, sell_orders = assets["taker_buy_orders"], assets["taker_sell_orders"]
    step_volumes = [
        (assets["taker_buy_volume"], rec["buy_volume"]),
        (assets["taker_sell_volume"], rec["sell_volume"]),
        (assets["forced_buy_volume"], rec["forced_buy"]),
        (assets["forced_sell_volume"], rec["forced_sell"]),
    ]
    acc_regime = accounts["regime"]

    def snapshot(t: int) -> None:
        rec["mid"][t] = assets["mid"]
        rec["fair"][t] = assets["fair_price"]
        rec["mark"][t] = assets["mark"]
        rec["premium"][t] = assets["premium"]
        rec["funding_estimate"][t] = windows["funding_estimate"]
        rec["last_funding"][t] = assets["funding_history"][:, :, 0]
        rec["best_bid"][t] = assets["best_bid"] * tick
        rec["best_ask"][t] = assets["best_ask"] * tick
        rec["bid_top"][t] = assets["bid_depth"][:, :, 0]
        rec["ask_top"][t] = assets["ask_depth"][:, :, 0]
        rec["bid_depth5"][t] = assets["bid_depth"][:, :, :DEPTH_LEVELS].sum(axis=2)
        rec["ask_depth5"][t] = assets["ask_depth"][:, :, :DEPTH_LEVELS].sum(axis=2)
        rec["liquidity_bid"][t] = assets["liquidity_bid"]
        rec["liquidity_ask"][t] = assets["liquidity_ask"]
        coupled[t] = assets["coupled"]
        stress_multiplier[t] = accounts["stress_multiplier"]
        regime[t] = acc_regime
        liquidations[t] = accounts["crowd_liquidations"]

    snapshot(0)
    next_funding = accounts["next_funding_tick"].copy()
    for t_tick, _ in enumerate(run):
        s = t_tick // per_sample + 1
        np.add(buy_orders, sell_orders, out=orders[t_tick], casting="unsafe")
        tick_regime[t_tick] = acc_regime
        for source, target in step_volumes:
            target[s] += source
        if (t_tick + 1) % per_sample == 0:
            snapshot(s)
            nf = accounts["next_funding_tick"]
            funded[s] = nf != next_funding
            next_funding[:] = nf
            if progress is not None:
                progress(per_sample)
    cumulative = liquidations.copy()
    liquidations[1:] = np.diff(cumulative, axis=0)
    liquidations[0] = 0
    return MarketRecord(
        scenario=scenario,
        params=params,
        seed=seed,
        sample_seconds=float(sample_seconds),
        label=label or scenario,
        orders=orders,
        tick_regime=tick_regime,
        coupled=coupled,
        regime=regime,
        liquidations=liquidations,
        funded=funded,
        stress_multiplier=stress_multiplier,
        **rec,
    )
