"""Market parameters: one frozen dataclass, validated, packed into a record for the kernel.

Every number of the market model is a field here, so a scenario is just a set of overrides
(``mmgym.scenarios``) and any field can be overridden by keyword when an env is made.
Fields that depend on the volatility regime are triples ``(calm, volatile, stressed)``.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

REGIMES: tuple[str, ...] = ("calm", "volatile", "stressed")
NUM_REGIMES = len(REGIMES)
SECONDS_PER_YEAR = 365.0 * 24.0 * 3600.0
REWARDS: tuple[str, ...] = ("pnl", "inventory_penalty")
HEDGE_SCHEDULES: tuple[str, ...] = ("twap", "almgren_chriss")

Triple = tuple[float, float, float]


@dataclass(frozen=True)
class MarketParams:
    """All parameters of the PerpMM market (defaults: a liquid alt perp, Hyperliquid base fees)."""

    # --- time -------------------------------------------------------------------------------
    tick_seconds: float = 0.1
    """Market tick (s); every mechanism advances once per tick."""
    decision_interval: float = 1.0
    """Seconds between agent decisions; a multiple of ``tick_seconds``."""
    episode_seconds: float = 3600.0
    """Episode length in market time (s); a multiple of ``decision_interval``."""

    # --- fair (index) price -------------------------------------------------------------------
    initial_price: float = 100.0
    """Fair price at the start of an episode."""
    tick_size: float = 0.01
    """Price grid of the book."""
    volatility: Triple = (0.5, 1.0, 2.0)
    """Annualised diffusive volatility of the fair price, per regime."""
    jump_rate_per_hour: Triple = (0.2, 1.0, 6.0)
    """Expected number of fair-price jumps per hour, per regime."""
    jump_mean_size: Triple = (0.001, 0.002, 0.004)
    """Mean absolute log-size of a jump (exponentially distributed), per regime."""
    jump_down_prob: float = 0.7
    """Probability that a jump is downward (crypto jumps are mostly negative)."""

    # --- volatility regime (Markov chain) -----------------------------------------------------
    regime_switch_per_hour: tuple[Triple, Triple, Triple] = (
        (0.0, 1.0, 0.1),
        (2.0, 0.0, 0.5),
        (2.0, 4.0, 0.0),
    )
    """Transition rates between regimes per hour (row: from, column: to; diagonal ignored)."""
    initial_regime: str = "stationary"
    """Regime at reset: a regime name, or ``stationary`` to draw it from the stationary law."""

    # --- informed signal ---------------------------------------------------------------------
    signal_timescale: float = 30.0
    """Mean-reversion time (s) of the latent drift that informed takers trade on."""
    signal_move: Triple = (0.0002, 0.0004, 0.0008)
    """Stationary std of the price move the latent drift predicts over its timescale, per regime."""
    informed_fraction: Triple = (0.1, 0.2, 0.3)
    """Fraction of taker orders whose side follows the sign of the latent drift, per regime."""

    # --- taker flow (bivariate Hawkes) --------------------------------------------------------
    taker_rate: Triple = (1.0, 2.0, 4.0)
    """Baseline arrival rate of taker orders per side per second, per regime."""
    hawkes_self: float = 0.4
    """Branching ratio of buys on buys (and sells on sells)."""
    hawkes_cross: float = 0.2
    """Branching ratio of buys on sells (and sells on buys)."""
    hawkes_decay: float = 1.0
    """Decay rate (1/s) of the exponential excitation kernel."""
    order_size_min: float = 0.05
    """Scale of the Pareto taker order size (the smallest order, in base units)."""
    order_size_tail: float = 1.8
    """Pareto tail index of taker order sizes (> 1 for a finite mean)."""
    order_size_cap: float = 50.0
    """Largest taker order (base units)."""

    # --- order book ---------------------------------------------------------------------------
    book_levels: int = 20
    """Price levels simulated per side."""
    depth_top: Triple = (4.0, 2.0, 0.6)
    """Background depth at the best level (base units), per regime: thin in stress."""
    depth_slope: float = 0.15
    """Relative growth of background depth per level away from the touch."""
    depth_refill_seconds: Triple = (1.0, 2.0, 5.0)
    """Time constant (s) of depth replenishment toward the profile, per regime."""
    new_level_fraction: float = 0.25
    """Depth of a level the makers newly quote, as a fraction of its profile depth."""
    background_half_spread: Triple = (2.0, 3.0, 6.0)
    """Half-spread (ticks) that background makers keep around the anchor, per regime."""
    impact_coefficient: float = 0.5
    """Anchor shift (ticks) per unit of signed taker volume, per unit of top depth."""
    impact_decay_seconds: float = 10.0
    """Time constant (s) with which the mid's impact deviation from fair price decays."""
    arb_threshold_ticks: float = 0.0
    """An agent quote this far beyond the anchor is picked off by arbitrageurs (toxic fill)."""

    # --- several assets -----------------------------------------------------------------------
    num_assets: int = 1
    """Perps per env (K): same marginal parameters, correlated fair-price shocks."""
    asset_correlation: Triple = (0.3, 0.5, 0.9)
    """Correlation of the assets' fair-price shocks, per regime: it jumps toward 1 in stress."""

    # --- basis and mark price -----------------------------------------------------------------
    taker_imbalance: Triple = (0.0, 0.0, 0.0)
    """Tilt of baseline taker flow toward buys (+) or sells (-), per regime: mu (1 +/- tilt)."""
    decoupling_per_hour: tuple[float, float] = (0.05, 1.0)
    """Rates per hour of the basis decoupling from spot and of recoupling."""
    decoupled_pull_seconds: float = 1800.0
    """Time constant (s) of the arbitrage pull on the perp's deviation while decoupled
    (``impact_decay_seconds`` while coupled)."""
    mark_ema_seconds: float = 150.0
    """EMA time (s) of (mid - oracle) in the mark price (Hyperliquid: 150 s)."""

    # --- funding ------------------------------------------------------------------------------
    funding_interval_seconds: float = 3600.0
    """Time between funding payments (Hyperliquid: 1 h; Binance and BitMEX: 8 h)."""
    premium_sample_seconds: float = 5.0
    """Time between premium-index samples, averaged over the funding interval."""
    funding_interest_8h: float = 0.0001
    """Interest component I of the funding rate per 8 h (0.01 %)."""
    funding_clamp_8h: float = 0.0005
    """Clamp c on (I - premium) per 8 h: F = P + clamp(I - P, -c, c)."""
    funding_cap: float = 0.04
    """Largest absolute funding rate paid per interval (Hyperliquid: 4 % per hour)."""
    impact_notional: float = 6000.0
    """Notional walked through the book for the impact bid and ask of the premium index."""
    random_funding_phase: bool = True
    """Draw the time to the first funding uniformly over an interval (else a full interval)."""

    # --- margin and liquidation ---------------------------------------------------------------
    collateral: float = 10000.0
    """The agent's collateral (quote currency) at reset; cross-margined over its assets."""
    margin_tiers: tuple[tuple[float, float], ...] = ((0.0, 20.0), (500_000.0, 10.0))
    """(notional lower bound, max leverage) tiers; maintenance margin rate = 1 / (2 x max
    leverage), with the usual deduction so margin is continuous across tiers."""
    liquidation_max_slippage: float = 0.02
    """A forced close (agent or crowd) walks the book at most this far from the mark; the rest
    goes to the venue's backstop liquidator, off the book (Hyperliquid's vault)."""
    liquidation_penalty: float = 0.005
    """Penalty on the notional of a liquidated position (quote currency fraction)."""

    # --- the leveraged crowd ------------------------------------------------------------------
    crowd_open_interest: float = 200.0
    """Open interest of the leveraged crowd per side (base units per asset)."""
    crowd_leverage: float = 10.0
    """Mean leverage of crowd accounts (0: no leverage, no forced flow)."""
    crowd_accounts: int = 32
    """Crowd accounts simulated per env (half long, half short), each cross-margined."""
    crowd_entry_dispersion: float = 0.01
    """Std of the log distance of a crowd account's entry price from the mark when it opens
    (positions opened earlier): liquidation prices spread into clusters near the price."""
    crowd_holding_seconds: float = 900.0
    """Mean time (s) before a crowd account closes and reopens at the current price."""
    crowd_large_position: float = 20.0
    """A forced close above this size (base units) sends 20 % first, the rest after a cooldown."""
    crowd_cooldown_seconds: float = 30.0
    """Cooldown (s) between the partial and the final forced close of a large position."""

    # --- hedge venue --------------------------------------------------------------------------
    hedge_fee: float = 0.0004
    """Taker fee rate on the hedge venue."""
    hedge_noise_bp: float = 1.0
    """Std (bp) of the hedge venue's price around the oracle."""
    hedge_impact_y: float = 0.7
    """Y of the square-root impact Y sigma_day sqrt(Q / V_day) of a hedge child order."""
    hedge_volume_per_second: float = 20.0
    """Traded volume of the hedge venue (base units per second), for V in the impact law."""
    hedge_liquidity: float = 5.0
    """Mean size (base units) a hedge child order can fill at once (exponential): partial fills."""
    hedge_latency_seconds: float = 0.2
    """Delay (s) between a hedge decision and its first child order."""
    hedge_schedule: str = "twap"
    """``twap`` (equal children) or ``almgren_chriss`` (front-loaded sinh schedule)."""
    hedge_horizon_decisions: int = 5
    """Decisions over which a requested hedge is split into child orders."""
    hedge_urgency: float = 2.0
    """kappa T of the Almgren-Chriss schedule (0 tends to TWAP)."""

    # --- agent --------------------------------------------------------------------------------
    max_inventory: float = 10.0
    """Inventory limit (base units); quote sizes are cut so a fill cannot breach it."""
    max_quote_size: float = 2.0
    """Largest quote size (base units), at action size +1."""
    min_quote_size: float = 0.01
    """Quotes smaller than this are not placed."""
    max_half_spread_ticks: float = 20.0
    """Half-spread (ticks) at action half-spread +1."""
    max_skew_ticks: float = 20.0
    """Reservation-price offset (ticks) at action skew +/-1."""
    maker_fee: float = 0.00015
    """Fee rate on maker fills (negative for a rebate)."""
    taker_fee: float = 0.00045
    """Fee rate on taker fills."""
    latency_seconds: float = 0.05
    """Fixed delay (s) between a decision and its orders reaching the book."""
    latency_jitter_seconds: Triple = (0.01, 0.05, 0.2)
    """Mean of the exponential random part of the delay (s), per regime: wider in stress."""
    latency_cap_seconds: float = 0.5
    """Largest total delay (s); must be below ``decision_interval``."""

    # --- reward -------------------------------------------------------------------------------
    reward: str = "pnl"
    """``pnl`` (equity change) or ``inventory_penalty`` (equity change - phi q^2 dt, and
    ``- alpha q_T^2`` at the end)."""
    inventory_penalty: float = 0.0
    """phi: running penalty per unit of inventory squared per second."""
    terminal_inventory_penalty: float = 0.0
    """alpha: penalty per unit of inventory squared at the episode's end."""
    reward_scale: float = 1.0
    """Multiplier applied to the reward."""

    # --- observation --------------------------------------------------------------------------
    horizons: Triple = (1.0, 10.0, 300.0)
    """Feature horizons (s): execution, order-flow aggregation and regime scales."""
    return_scale_bp: float = 1.0
    """Returns and volatilities are given in basis points per sqrt(second) over this scale."""
    obs_clip: float = 10.0
    """Observations are clipped to [-obs_clip, obs_clip]."""

    # --- derived ------------------------------------------------------------------------------
    @property
    def ticks_per_decision(self) -> int:
        """Market ticks per agent decision."""
        return round(self.decision_interval / self.tick_seconds)

    @property
    def decisions_per_episode(self) -> int:
        """Agent decisions per episode."""
        return round(self.episode_seconds / self.decision_interval)

    def validate(self) -> MarketParams:
        """Raise ValueError naming the first invalid field; return self when all are valid."""
        _validate(self)
        return self

    def replace(self, **overrides: Any) -> MarketParams:
        """A copy with ``overrides`` applied; unknown names are a clear error."""
        check_field_names(overrides)
        return dataclasses.replace(self, **overrides).validate()


def field_names() -> list[str]:
    """Names of all market parameters."""
    return [f.name for f in dataclasses.fields(MarketParams)]


def check_field_names(overrides: dict[str, Any]) -> None:
    """Raise ValueError for any override that is not a market parameter."""
    valid = set(field_names())
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise ValueError(
            f"unknown market parameter(s) {unknown}; valid parameters are: {sorted(valid)}"
        )


def _fail(name: str, requirement: str, value: Any) -> None:
    raise ValueError(f"{name} must be {requirement}, got {value!r}")


def _positive(p: MarketParams, name: str) -> None:
    value = getattr(p, name)
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        _fail(name, "a finite number > 0", value)


def _non_negative(p: MarketParams, name: str) -> None:
    value = getattr(p, name)
    if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
        _fail(name, "a finite number >= 0", value)


def _triple(p: MarketParams, name: str, positive: bool) -> None:
    value = getattr(p, name)
    ok = isinstance(value, tuple | list) and len(value) == NUM_REGIMES
    if ok:
        for v in value:
            if (
                not (isinstance(v, int | float) and math.isfinite(v))
                or v < 0
                or (positive and v == 0)
            ):
                ok = False
    if not ok:
        sign = "> 0" if positive else ">= 0"
        _fail(name, f"three finite numbers {sign} (calm, volatile, stressed)", value)


def _multiple(p: MarketParams, name: str, of: str) -> None:
    ratio = getattr(p, name) / getattr(p, of)
    if abs(ratio - round(ratio)) > 1e-9 or round(ratio) < 1:
        _fail(name, f"a positive whole multiple of {of} ({getattr(p, of)})", getattr(p, name))


def _validate(p: MarketParams) -> None:
    for name in (
        "tick_seconds",
        "decision_interval",
        "episode_seconds",
        "initial_price",
        "tick_size",
        "signal_timescale",
        "hawkes_decay",
        "order_size_min",
        "order_size_cap",
        "impact_decay_seconds",
        "max_inventory",
        "max_quote_size",
        "max_half_spread_ticks",
        "reward_scale",
        "return_scale_bp",
        "obs_clip",
    ):
        _positive(p, name)
    for name in (
        "hawkes_self",
        "hawkes_cross",
        "depth_slope",
        "impact_coefficient",
        "arb_threshold_ticks",
        "min_quote_size",
        "max_skew_ticks",
        "latency_seconds",
        "latency_cap_seconds",
        "inventory_penalty",
        "terminal_inventory_penalty",
    ):
        _non_negative(p, name)
    for name in ("volatility", "depth_top", "depth_refill_seconds", "horizons"):
        _triple(p, name, positive=True)
    for name in (
        "jump_rate_per_hour",
        "jump_mean_size",
        "signal_move",
        "informed_fraction",
        "taker_rate",
        "background_half_spread",
        "latency_jitter_seconds",
    ):
        _triple(p, name, positive=False)
    for name in (
        "decoupled_pull_seconds",
        "mark_ema_seconds",
        "funding_interval_seconds",
        "premium_sample_seconds",
        "impact_notional",
        "collateral",
        "crowd_holding_seconds",
        "liquidation_max_slippage",
        "crowd_large_position",
        "crowd_cooldown_seconds",
        "hedge_volume_per_second",
        "hedge_liquidity",
    ):
        _positive(p, name)
    for name in (
        "funding_interest_8h",
        "funding_clamp_8h",
        "funding_cap",
        "liquidation_penalty",
        "crowd_open_interest",
        "crowd_leverage",
        "crowd_entry_dispersion",
        "hedge_fee",
        "hedge_noise_bp",
        "hedge_impact_y",
        "hedge_latency_seconds",
        "hedge_urgency",
    ):
        _non_negative(p, name)
    if not isinstance(p.num_assets, int) or not 1 <= p.num_assets <= 16:
        _fail("num_assets", "an integer in [1, 16]", p.num_assets)
    if any(not -0.0 <= c < 1.0 for c in p.asset_correlation):
        _fail("asset_correlation", "three correlations in [0, 1)", p.asset_correlation)
    if any(not -1.0 < t < 1.0 for t in p.taker_imbalance):
        _fail("taker_imbalance", "three numbers in (-1, 1)", p.taker_imbalance)
    if len(p.decoupling_per_hour) != 2 or any(r < 0 for r in p.decoupling_per_hour):
        _fail("decoupling_per_hour", "two rates >= 0 (decouple, recouple)", p.decoupling_per_hour)
    _multiple(p, "premium_sample_seconds", "tick_seconds")
    _multiple(p, "funding_interval_seconds", "premium_sample_seconds")
    tiers = p.margin_tiers
    if (
        not tiers
        or tiers[0][0] != 0.0
        or any(len(t) != 2 or t[1] < 1.0 for t in tiers)
        or any(b[0] <= a[0] or b[1] > a[1] for a, b in itertools.pairwise(tiers))
    ):
        _fail(
            "margin_tiers",
            "(lower bound, max leverage) pairs from 0 up, bounds rising, leverage >= 1 falling",
            tiers,
        )
    if (
        not isinstance(p.crowd_accounts, int)
        or not 2 <= p.crowd_accounts <= 256
        or p.crowd_accounts % 2
    ):
        _fail("crowd_accounts", "an even integer in [2, 256]", p.crowd_accounts)
    if p.hedge_latency_seconds >= p.decision_interval:
        _fail(
            "hedge_latency_seconds",
            f"< decision_interval ({p.decision_interval}): a child is sent once per decision",
            p.hedge_latency_seconds,
        )
    if p.hedge_schedule not in HEDGE_SCHEDULES:
        _fail("hedge_schedule", f"one of {list(HEDGE_SCHEDULES)}", p.hedge_schedule)
    if not isinstance(p.hedge_horizon_decisions, int) or p.hedge_horizon_decisions < 1:
        _fail("hedge_horizon_decisions", "an integer >= 1", p.hedge_horizon_decisions)
    _multiple(p, "decision_interval", "tick_seconds")
    _multiple(p, "episode_seconds", "decision_interval")
    if p.arb_threshold_ticks > min(p.background_half_spread):
        _fail(
            "arb_threshold_ticks",
            f"<= the smallest background_half_spread ({min(p.background_half_spread)}), "
            "or a resting quote could sit through the background's opposite best price",
            p.arb_threshold_ticks,
        )
    if p.hawkes_self + p.hawkes_cross >= 1.0:
        _fail(
            "hawkes_self + hawkes_cross",
            "< 1 (the branching ratio of the Hawkes flow; >= 1 explodes)",
            p.hawkes_self + p.hawkes_cross,
        )
    if not 0.0 <= p.jump_down_prob <= 1.0:
        _fail("jump_down_prob", "in [0, 1]", p.jump_down_prob)
    if any(not 0.0 <= f <= 1.0 for f in p.informed_fraction):
        _fail("informed_fraction", "three numbers in [0, 1]", p.informed_fraction)
    if p.order_size_tail <= 1.0 or not math.isfinite(p.order_size_tail):
        _fail("order_size_tail", "> 1 (a finite mean order size)", p.order_size_tail)
    if p.order_size_cap < p.order_size_min:
        _fail("order_size_cap", f">= order_size_min ({p.order_size_min})", p.order_size_cap)
    if not isinstance(p.book_levels, int) or not 2 <= p.book_levels <= 200:
        _fail("book_levels", "an integer in [2, 200]", p.book_levels)
    if not 0.0 < p.new_level_fraction <= 1.0:
        _fail("new_level_fraction", "in (0, 1]", p.new_level_fraction)
    if p.min_quote_size > p.max_quote_size:
        _fail("min_quote_size", f"<= max_quote_size ({p.max_quote_size})", p.min_quote_size)
    if p.latency_seconds + 1e-12 > p.latency_cap_seconds:
        _fail(
            "latency_cap_seconds",
            f">= latency_seconds ({p.latency_seconds})",
            p.latency_cap_seconds,
        )
    if p.latency_cap_seconds >= p.decision_interval:
        _fail(
            "latency_cap_seconds",
            f"< decision_interval ({p.decision_interval})",
            p.latency_cap_seconds,
        )
    if p.maker_fee <= -0.01 or p.maker_fee >= 0.01 or not math.isfinite(p.maker_fee):
        _fail("maker_fee", "a rate in (-0.01, 0.01)", p.maker_fee)
    if p.taker_fee < 0 or p.taker_fee >= 0.01 or not math.isfinite(p.taker_fee):
        _fail("taker_fee", "a rate in [0, 0.01)", p.taker_fee)
    if p.reward not in REWARDS:
        _fail("reward", f"one of {list(REWARDS)}", p.reward)
    if p.initial_regime not in (*REGIMES, "stationary"):
        _fail("initial_regime", f"one of {[*REGIMES, 'stationary']}", p.initial_regime)
    rates = p.regime_switch_per_hour
    if (
        not isinstance(rates, tuple | list)
        or len(rates) != NUM_REGIMES
        or any(len(row) != NUM_REGIMES for row in rates)
        or any(not math.isfinite(r) or r < 0 for row in rates for r in row)
    ):
        _fail("regime_switch_per_hour", "a 3x3 matrix of finite rates >= 0", rates)
    if sorted(p.horizons) != list(p.horizons):
        _fail("horizons", "increasing", p.horizons)


# --- derived quantities shared by the kernel and the tests -----------------------------------


def regime_generator(p: MarketParams) -> NDArray[np.float64]:
    """Generator matrix Q (per second) of the regime chain."""
    q = np.array(p.regime_switch_per_hour, dtype=np.float64) / 3600.0
    np.fill_diagonal(q, 0.0)
    np.fill_diagonal(q, -q.sum(axis=1))
    return q


def regime_transition_matrix(p: MarketParams) -> NDArray[np.float64]:
    """Exact one-tick transition matrix exp(Q dt) of the regime chain."""
    q = regime_generator(p) * p.tick_seconds
    # Matrix exponential by scaling and squaring of a Taylor series (Q dt is tiny).
    s = max(0, int(np.ceil(np.log2(max(np.abs(q).sum(axis=1).max(), 1e-300)))) + 1)
    a = q / (2.0**s)
    result = np.eye(NUM_REGIMES)
    term = np.eye(NUM_REGIMES)
    for k in range(1, 20):
        term = term @ a / k
        result = result + term
    for _ in range(s):
        result = result @ result
    return result


def regime_stationary_law(p: MarketParams) -> NDArray[np.float64]:
    """Stationary distribution pi of the regime chain (pi Q = 0, sum pi = 1)."""
    q = regime_generator(p)
    a = np.vstack([q.T, np.ones(NUM_REGIMES)])
    b = np.zeros(NUM_REGIMES + 1)
    b[-1] = 1.0
    pi, *_ = np.linalg.lstsq(a, b, rcond=None)
    pi = np.clip(pi, 0.0, None)
    return pi / pi.sum()


def depth_profile(p: MarketParams) -> NDArray[np.float64]:
    """Background depth per level, shape (regimes, book_levels)."""
    levels = np.arange(p.book_levels, dtype=np.float64)
    return np.array(p.depth_top, dtype=np.float64)[:, None] * (1.0 + p.depth_slope * levels)


def hawkes_stationary_rate(p: MarketParams, regime: int) -> float:
    """Stationary arrival rate of taker orders per side per second: mu / (1 - n)."""
    return float(p.taker_rate[regime] / (1.0 - p.hawkes_self - p.hawkes_cross))


def correlation_cholesky(p: MarketParams) -> NDArray[np.float64]:
    """Cholesky factors of the equicorrelation matrices of the asset shocks, (regimes, K, K)."""
    k = p.num_assets
    out = np.zeros((NUM_REGIMES, k, k))
    for r, rho in enumerate(p.asset_correlation):
        corr = np.full((k, k), rho) + (1.0 - rho) * np.eye(k)
        out[r] = np.linalg.cholesky(corr)
    return out


def maintenance_tiers(p: MarketParams) -> NDArray[np.float64]:
    """Rows (lower bound, maintenance rate, deduction): MM = notional x rate - deduction.

    Rate = 1 / (2 x max leverage); ``deduction_n = deduction_{n-1} + bound_n (rate_n -
    rate_{n-1})`` keeps the margin continuous at each bound (Hyperliquid's rule).
    """
    rows: list[tuple[float, float, float]] = []
    deduction = 0.0
    previous = 0.0
    for bound, leverage in p.margin_tiers:
        rate = 0.5 / leverage
        if rows:
            deduction += bound * (rate - previous)
        rows.append((bound, rate, deduction))
        previous = rate
    return np.array(rows, dtype=np.float64)


def maintenance_margin(p: MarketParams, notional: float) -> float:
    """Maintenance margin of one position of ``notional`` (reference implementation)."""
    rows = maintenance_tiers(p)
    _bound, rate, deduction = rows[np.searchsorted(rows[:, 0], notional, side="right") - 1]
    return float(notional * rate - deduction)
