"""``mmgym/PerpMM-v0``: market making on a simulated perpetual-futures order book."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray

from mmgym.core.kernel import reset_markets, step_markets, step_markets_parallel
from mmgym.core.layout import pack_params, state_dtype, window_dtype
from mmgym.core.orders import ACTION_NAMES
from mmgym.core.params import MarketParams
from mmgym.envs.shell import BatchSimulator, KernelEnv, KernelVectorEnv
from mmgym.features.observation import OBS_DIM, ObservationBuilder, ObservationConfig
from mmgym.scenarios import DEFAULT_SCENARIO, make_params

INFO_FIELDS: tuple[str, ...] = (
    "equity",
    "pnl_spread",
    "pnl_inventory",
    "pnl_fees",
    "inventory",
    "cash",
    "entry_price",
    "realised_pnl",
    "bid_filled",
    "ask_filled",
    "toxic_filled",
    "fills",
    "rejected_post_only",
    "bid_ahead",
    "ask_ahead",
    "bid_qty",
    "ask_qty",
    "taker_buy_volume",
    "taker_sell_volume",
    "taker_buy_orders",
    "taker_sell_orders",
    "fill_notional",
    "regime",
    "mid",
    "fair_price",
)
"""Per-env entries of ``info`` (see :class:`PerpMMEnv`)."""


PARALLEL_MIN_ENVS = 256
"""Batches at least this large step on all cores (smaller ones would pay more to start threads
than they gain). The results do not depend on it: envs share nothing."""


class PerpMMSimulator(BatchSimulator):
    """``num_envs`` independent perpetual markets, each with one market-making agent."""

    def __init__(self, num_envs: int, params: MarketParams, parallel: bool | None = None) -> None:
        super().__init__(num_envs)
        if parallel is None:
            parallel = num_envs >= PARALLEL_MIN_ENVS
        self._step_kernel = step_markets_parallel if parallel else step_markets
        self.params = params.validate()
        self._packed = pack_params(params)
        n = self.num_envs
        self.state = np.zeros(n, dtype=state_dtype(params.book_levels))
        self.window = np.zeros(n, dtype=window_dtype(params.ticks_per_decision))
        self.rng = np.zeros(n, dtype=np.uint64)
        self.builder = ObservationBuilder(ObservationConfig.from_market(params), n)
        self.obs = self.builder.obs
        self.reward = np.zeros(n, dtype=np.float64)
        self.terminated = np.zeros(n, dtype=np.bool_)
        self.truncated = np.zeros(n, dtype=np.bool_)
        self._all = np.ones(n, dtype=np.bool_)
        self._no_seeds = np.zeros(n, dtype=np.uint64)
        self._views = {name: self.state[name] for name in INFO_FIELDS}
        clip = params.obs_clip
        self.single_observation_space = spaces.Box(-clip, clip, (OBS_DIM,), np.float32)
        self.single_action_space = spaces.Box(-1.0, 1.0, (len(ACTION_NAMES),), np.float32)

    def reset(self, mask: NDArray[np.bool_], seeds: NDArray[np.uint64] | None) -> None:
        """Start new episodes for envs in ``mask``."""
        reseed = seeds is not None
        reset_markets(
            self._packed,
            self.state,
            self.window,
            self.rng,
            mask,
            seeds if seeds is not None else self._no_seeds,
            reseed,
        )
        self.reward[mask] = 0.0
        self.terminated[mask] = False
        self.truncated[mask] = False
        self.builder.update(self.window, mask)

    def step(self, actions: NDArray[Any], autoreset: NDArray[np.bool_]) -> int:
        """Advance every env by one decision interval."""
        bad = self._step_kernel(
            self._packed,
            self.state,
            self.window,
            self.rng,
            actions,
            autoreset,
            self.reward,
            self.terminated,
            self.truncated,
        )
        if bad < 0:
            self.builder.update(self.window, self._all)
        return int(bad)

    def info(self, copy: bool) -> dict[str, Any]:
        """PnL decomposition, fills, queue and market diagnostics of the last step."""
        if copy:
            return {name: view.copy() for name, view in self._views.items()}
        return dict(self._views)


def _params_from_kwargs(scenario: str, overrides: dict[str, Any]) -> MarketParams:
    return make_params(scenario, **overrides)


class PerpMMVectorEnv(KernelVectorEnv):
    """Native vector twin of :class:`PerpMMEnv`: ``num_envs`` markets stepped by one kernel call.

    Arguments are those of :class:`PerpMMEnv` plus ``num_envs``, ``copy`` (return fresh arrays
    each step, default True; False returns views that the next call overwrites) and ``parallel``
    (step on all cores; default: when ``num_envs >= 256``). Results are identical either way;
    pass ``parallel=False`` when other processes share the cores (e.g. Ray env runners), since
    a parallel step waits for its slowest thread.
    """

    action_names = ACTION_NAMES

    def __init__(
        self,
        num_envs: int = 1,
        scenario: str = DEFAULT_SCENARIO,
        copy: bool = True,
        parallel: bool | None = None,
        **overrides: Any,
    ) -> None:
        params = _params_from_kwargs(scenario, overrides)
        super().__init__(PerpMMSimulator(num_envs, params, parallel=parallel), copy=copy)
        self.params = params
        self.scenario = scenario


class PerpMMEnv(KernelEnv):
    """Market making on a perpetual-futures limit order book.

    ## Description
    A vectorised, event-accurate model of a perp order book on a tick grid. The fair (index)
    price follows a regime-switching diffusion (calm / volatile / stressed) with mostly-negative
    jumps. Taker orders arrive from a bivariate Hawkes process (self- and cross-excitation) with
    Pareto sizes; an informed fraction trades on a latent drift that later moves the price.
    Background depth sits on ``book_levels`` levels per side, replenishes toward a profile that
    thins in stress, and is walked level by level by takers. The agent quotes one bid and one
    ask: orders join the back of the queue, keep priority only if their price is unchanged,
    are post-only, pay the maker fee, and reach the book after a latency that widens in stress.
    The market ticks every ``tick_seconds`` (0.1 s); the agent decides every
    ``decision_interval`` (1 s).

    ## Action Space
    ``Box(-1, 1, (4,), float32)``: ``(skew, half_spread, bid_size, ask_size)``; see
    :mod:`mmgym.core.orders` for the exact mapping to prices and sizes.

    ## Observation Space
    ``Box(-obs_clip, obs_clip, (17,), float32)``: inventory, returns, realised volatility and
    taker-flow imbalance on three horizons (1 s, 10 s, 300 s), book imbalance, spread, own
    quote distances and queue positions, elapsed time; see :mod:`mmgym.features.observation`.

    ## Rewards
    ``reward="pnl"``: the change of equity (cash + inventory x mid) over the interval.
    ``reward="inventory_penalty"``: that change minus ``inventory_penalty x sum(q^2 dt)`` and,
    at the episode's end, minus ``terminal_inventory_penalty x q_T^2``. Times ``reward_scale``.

    ## Starting State
    Flat inventory and zero cash at the initial price; the regime is ``initial_regime`` (or drawn
    from the chain's stationary law); the book sits at its profile around the fair price.

    ## Episode End
    Truncation after ``episode_seconds`` of market time (default one hour, 3600 decisions).
    No termination yet.

    ## Arguments
    ``scenario`` (default ``"calm"``) picks a named parameter set from :mod:`mmgym.scenarios`;
    any field of :class:`mmgym.core.params.MarketParams` can be overridden by keyword, e.g.
    ``gymnasium.make("mmgym/PerpMM-v0", scenario="volatile", maker_fee=0.0)``.

    ``info`` holds the step's PnL decomposition (``pnl_spread``, ``pnl_inventory``,
    ``pnl_fees``, summing to the change of ``equity``), fills (``bid_filled``, ``ask_filled``,
    ``toxic_filled``, ``fills``), ``rejected_post_only``, queue positions (``bid_ahead``,
    ``ask_ahead``) and market state (``regime``, ``mid``, ``fair_price``).
    """

    action_names = ACTION_NAMES

    def __init__(self, scenario: str = DEFAULT_SCENARIO, **overrides: Any) -> None:
        params = _params_from_kwargs(scenario, overrides)
        super().__init__(PerpMMSimulator(1, params))
        self.params = params
        self.scenario = scenario
