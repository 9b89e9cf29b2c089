"""``mmgym/PerpMM-v0``: market making on a simulated perpetual-futures order book."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray

from mmgym.core.kernel import (
    LIQUIDATED,
    TERMINATED,
    TRUNCATED,
    Markets,
    reset_markets,
    step_markets,
    step_markets_parallel,
)
from mmgym.core.layout import (
    ACCOUNT_WINDOW_DTYPE,
    account_dtype,
    asset_dtype,
    pack_params,
    window_dtype,
)
from mmgym.core.orders import ACTION_NAMES
from mmgym.core.params import MarketParams
from mmgym.core.rng import STREAMS, new_streams
from mmgym.envs.outputs import Columns, CopiedOutputs
from mmgym.envs.shell import BatchSimulator, KernelEnv, KernelVectorEnv, StepOutputs
from mmgym.features.observation import ObservationBuilder, ObservationConfig, observation_dim
from mmgym.scenarios import DEFAULT_SCENARIO, make_params

PNL_COMPONENTS: tuple[str, ...] = (
    "pnl_spread",
    "pnl_inventory",
    "pnl_fees",
    "pnl_funding",
    "pnl_hedge",
    "pnl_liquidation",
)
"""The PnL decomposition: per perp, these sum to the account's equity change (``pnl``)."""

ASSET_INFO_FIELDS: tuple[str, ...] = (
    *PNL_COMPONENTS,
    "inventory",
    "cash",
    "entry_price",
    "realised_pnl",
    "bid_filled",
    "ask_filled",
    "toxic_filled",
    "fills",
    "fill_notional",
    "bid_notional",
    "ask_notional",
    "rejected_post_only",
    "bid_ahead",
    "ask_ahead",
    "bid_qty",
    "ask_qty",
    "taker_buy_volume",
    "taker_sell_volume",
    "taker_buy_orders",
    "taker_sell_orders",
    "forced_buy_volume",
    "forced_sell_volume",
    "backstop_volume",
    "mid",
    "mark",
    "fair_price",
    "premium",
    "funding_paid",
    "hedge_position",
    "hedge_filled",
    "hedge_cost",
)
"""Per-perp entries of ``info``: shape (num_envs,) with one perp, (num_envs, K) with several.
``info`` lists the float fields first, then the integer ones."""

ACCOUNT_INFO_FIELDS: tuple[str, ...] = (
    "pnl",
    "equity",
    "equity_before",
    "margin_equity",
    "maintenance_margin",
    "margin_ratio",
    "regime",
    "crowd_liquidations",
)
"""Per-env entries of ``info`` (the cross-margined account and the market regime); ``info``
also holds ``liquidated``, whether the episode ended by the agent's liquidation."""

_FLAG_ROWS = {"terminated": TERMINATED, "truncated": TRUNCATED, "liquidated": LIQUIDATED}

PARALLEL_MIN_ENVS = 256
"""Batches at least this large step on all cores (smaller ones would pay more to start threads
than they gain). The results do not depend on it: envs share nothing."""


def action_names(num_assets: int) -> tuple[str, ...]:
    """Names of every action component, ``name[k]`` for perp k when there are several."""
    if num_assets == 1:
        return ACTION_NAMES
    return tuple(f"{name}[{k}]" for k in range(num_assets) for name in ACTION_NAMES)


class PerpMMSimulator(BatchSimulator):
    """``num_envs`` independent perpetual markets, each with one market-making agent."""

    def __init__(self, num_envs: int, params: MarketParams, parallel: bool | None = None) -> None:
        super().__init__(num_envs)
        if parallel is None:
            parallel = num_envs >= PARALLEL_MIN_ENVS
        self.parallel = bool(parallel)
        """Whether the kernel steps the envs on all cores."""
        self._step_kernel = step_markets_parallel if parallel else step_markets
        self.params = params.validate()
        self._packed = pack_params(params)
        n, k = self.num_envs, params.num_assets
        self.accounts = np.zeros(n, dtype=account_dtype(k, params.crowd_accounts))
        self.assets = np.zeros((n, k), dtype=asset_dtype(params.book_levels))
        self.windows = np.zeros((n, k), dtype=window_dtype(params.ticks_per_decision))
        self.account_windows = np.zeros(n, dtype=ACCOUNT_WINDOW_DTYPE)
        self.rng = new_streams(n, STREAMS)
        """Both random streams of every env: ``(STREAMS, n)`` (:mod:`mmgym.core.rng`)."""
        self._markets: Markets = (
            self._packed, self.accounts, self.assets, self.windows, self.account_windows, self.rng
        )  # fmt: skip
        """What the kernel advances (:data:`mmgym.core.kernel.Markets`)."""
        self.builder = ObservationBuilder(ObservationConfig.from_market(params), n, k)
        self.obs = self.builder.obs
        self.reward = np.zeros(n, dtype=np.float64)
        self.flags = np.zeros((len(_FLAG_ROWS), n), dtype=np.bool_)
        self.terminated = self.flags[TERMINATED]
        self.truncated = self.flags[TRUNCATED]
        self._all = np.ones(n, dtype=np.bool_)
        self._no_seeds = np.zeros(n, dtype=np.uint64)
        asset_fields = Columns.of_records(self.assets, ASSET_INFO_FIELDS, first_only=k == 1)
        account_fields = Columns.of_records(self.accounts, ACCOUNT_INFO_FIELDS)
        self._views = asset_fields.views() | account_fields.views()
        self._views["liquidated"] = self.flags[LIQUIDATED]
        self._copies = CopiedOutputs(
            self.obs, self.reward, self.flags, _FLAG_ROWS, asset_fields, account_fields
        )
        self.action_names = action_names(k)
        clip = params.obs_clip
        self.single_observation_space = spaces.Box(-clip, clip, (observation_dim(k),), np.float32)
        self.single_action_space = spaces.Box(-1.0, 1.0, (len(ACTION_NAMES) * k,), np.float32)

    def reset(self, mask: NDArray[np.bool_], seeds: NDArray[np.uint64] | None) -> None:
        """Start new episodes for envs in ``mask``."""
        reset_markets(
            self._markets,
            mask,
            seeds if seeds is not None else self._no_seeds,
            seeds is not None,
            self.reward,
            self.flags,
        )
        self.builder.update(self.windows, self.account_windows, mask)

    def step(self, actions: NDArray[Any], autoreset: NDArray[np.bool_]) -> int:
        """Advance every env by one decision interval."""
        bad = self._step_kernel(self._markets, actions, autoreset, self.reward, self.flags)
        if bad < 0:
            self.builder.update(self.windows, self.account_windows, self._all)
        return int(bad)

    def info(self, copy: bool) -> dict[str, Any]:
        """PnL decomposition, fills, queues, funding, hedge, margin and market of the last step.

        Views that the next step overwrites, or (``copy``) arrays no later step writes to.
        """
        return self.outputs(copy)[4]

    def outputs(self, copy: bool) -> StepOutputs:
        """The last step's outputs; with ``copy``, made by one compiled call (CopiedOutputs)."""
        if copy:
            return self._copies.fill()
        return self.obs, self.reward, self.terminated, self.truncated, dict(self._views)


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

    sim: PerpMMSimulator

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
    ``decision_interval`` (1 s). It is a perpetual: the mid deviates from the oracle through
    impact and an arbitrage pull that weakens when the basis decouples; the mark price, a
    premium index sampled from the book, and clamped funding paid every interval; tiered
    maintenance margin with liquidation through the book; a leveraged, cross-margined crowd
    whose forced closes cascade; ``num_assets`` perps with correlated shocks; and a hedge venue
    with square-root impact and a TWAP or Almgren-Chriss child-order scheduler.

    ## Action Space
    ``Box(-1, 1, (5 K,), float32)``: per perp ``(skew, half_spread, bid_size, ask_size,
    hedge)``; see :mod:`mmgym.core.orders` for the exact mapping to prices and sizes.

    ## Observation Space
    ``Box(-obs_clip, obs_clip, (22 K + 3,), float32)``: per perp inventory, returns, realised
    volatility and taker-flow imbalance on three horizons (1 s, 10 s, 300 s), book imbalance,
    spread, own quote distances and queue positions, elapsed time, premium, funding estimate,
    basis, last funding, hedge position; then margin ratio, equity return and time to funding;
    see :mod:`mmgym.features.observation`.

    ## Rewards
    ``reward="pnl"``: the change of equity (collateral + per perp cash + inventory x mark +
    the hedge leg at the oracle) over the interval.
    ``reward="inventory_penalty"``: that change minus ``inventory_penalty x sum(q^2 dt)`` and,
    at the episode's end, minus ``terminal_inventory_penalty x q_T^2``. Times ``reward_scale``.

    ## Starting State
    Flat inventory, no hedge and ``collateral`` at the initial price; the regime is
    ``initial_regime`` (or drawn from the chain's stationary law); the book sits at its profile
    around the fair price; the crowd opens at that price; the first funding falls at a random
    phase of its interval.

    ## Episode End
    Truncation after ``episode_seconds`` of market time (default one hour, 3600 decisions).
    Termination when the agent is liquidated (``info["liquidated"]``).

    ## Arguments
    ``scenario`` (default ``"calm"``) picks a named parameter set from :mod:`mmgym.scenarios`;
    any field of :class:`mmgym.core.params.MarketParams` can be overridden by keyword, e.g.
    ``gymnasium.make("mmgym/PerpMM-v0", scenario="volatile", maker_fee=0.0)``.

    ``info`` holds the step's PnL decomposition per perp (``pnl_spread``, ``pnl_inventory``,
    ``pnl_fees``, ``pnl_funding``, ``pnl_hedge``, ``pnl_liquidation``, summing to ``pnl``),
    fills, post-only rejections, queue positions, funding, hedge, margin and market state;
    docs/envs.md lists every key.
    """

    sim: PerpMMSimulator

    def __init__(self, scenario: str = DEFAULT_SCENARIO, **overrides: Any) -> None:
        params = _params_from_kwargs(scenario, overrides)
        super().__init__(PerpMMSimulator(1, params))
        self.params = params
        self.scenario = scenario
