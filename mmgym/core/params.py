"""Market parameters: one frozen dataclass, each field declared once with its meaning, rule and
packed form.

Every number of the market model is a field here, so a scenario is just a set of overrides
(``mmgym.scenarios``) and any field can be overridden by keyword when an env is made.
Fields that depend on the volatility regime are triples ``(calm, volatile, stressed)``.

A field is declared with :func:`mmgym.core.param_spec.param`: its default, what it means (with
units), the rule its value must satisfy, and the entries it packs into the kernel's parameter
record, named in the kernel's units (``latency_ticks``, ``jump_prob_per_tick``). The record's
layout (``mmgym.core.layout.param_dtype``), its packing and the reference page
``docs/parameters.md`` derive from these declarations; rules that relate several fields are
spelled out in :meth:`MarketParams.validate`.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mmgym.core.carry import stationary_law
from mmgym.core.codes import STATIONARY_REGIME, HedgeSchedule, Regime, Reward, names
from mmgym.core.param_spec import (
    BOOLEAN,
    NON_NEGATIVE,
    POSITIVE,
    Packed,
    Rule,
    check_rules,
    greater_than,
    integer_in,
    is_number,
    number_in,
    one_of,
    param,
    sequence_of,
)

REGIMES: tuple[str, ...] = names(Regime)
NUM_REGIMES = len(REGIMES)
REWARDS: tuple[str, ...] = names(Reward)
HEDGE_SCHEDULES: tuple[str, ...] = names(HedgeSchedule)
SECONDS_PER_YEAR = 365.0 * 24.0 * 3600.0
SECONDS_PER_DAY = 24.0 * 3600.0
SECONDS_PER_8H = 8.0 * 3600.0
NEAR_LEVELS = 5
"""Levels of the depth profile that make the near-mid depth toxic flow is measured against."""

Triple = tuple[float, float, float]
PER_REGIME = ("regimes",)
"""Shape of a packed per-regime entry."""

# --- rules of single fields -------------------------------------------------------------------

POSITIVE_TRIPLE = sequence_of(3, POSITIVE, "three finite numbers > 0 (calm, volatile, stressed)")
NON_NEGATIVE_TRIPLE = sequence_of(
    3, NON_NEGATIVE, "three finite numbers >= 0 (calm, volatile, stressed)"
)
RATE_MATRIX = sequence_of(
    NUM_REGIMES,
    sequence_of(NUM_REGIMES, NON_NEGATIVE, "three rates"),
    "a 3x3 matrix of finite rates >= 0",
)
INCREASING = Rule("increasing", lambda v: sorted(v) == list(v))
IMPACT_MEMORY = 3
"""Slow parts of the impact propagator (:mod:`mmgym.core.impact`)."""
POSITIVE_TRIPLE_OF_SCALES = sequence_of(IMPACT_MEMORY, POSITIVE, "three time scales > 0 (s)")


def _valid_tiers(tiers: Any) -> bool:
    return (
        isinstance(tiers, tuple | list)
        and len(tiers) > 0
        and all(
            isinstance(t, tuple | list) and len(t) == 2 and all(is_number(x) for x in t)
            for t in tiers
        )
        and tiers[0][0] == 0.0
        and all(t[1] >= 1.0 for t in tiers)
        and all(b[0] > a[0] and b[1] <= a[1] for a, b in itertools.pairwise(tiers))
    )


MARGIN_TIERS = Rule(
    "(lower bound, max leverage) pairs from 0 up, bounds rising, leverage >= 1 falling",
    _valid_tiers,
)

# --- packed forms that take a few lines -------------------------------------------------------


def _ticks(p: MarketParams, seconds: float) -> int:
    """A duration in whole ticks."""
    return round(seconds / p.tick_seconds)


def _prob_per_tick(p: MarketParams, rate_per_hour: float) -> float:
    """Probability of at least one event of a Poisson rate within one tick."""
    return -math.expm1(-rate_per_hour * p.tick_seconds / 3600.0)


def _sigma_per_tick(p: MarketParams) -> NDArray[np.float64]:
    """Std of the fair price's log return over one tick, per regime."""
    return np.array(p.volatility) * math.sqrt(p.tick_seconds / SECONDS_PER_YEAR)


def _transition_cdf(p: MarketParams) -> NDArray[np.float64]:
    cdf = np.cumsum(regime_transition_matrix(p), axis=1)
    cdf[:, -1] = 1.0
    return cdf


def _regime_rate_per_tick(p: MarketParams) -> NDArray[np.float64]:
    """Off-diagonal rates of the regime chain per tick, ``q_ij dt`` (diagonal 0)."""
    q = regime_generator(p) * p.tick_seconds
    np.fill_diagonal(q, 0.0)
    return q


def _near_depth(p: MarketParams) -> NDArray[np.float64]:
    """Depth of the profile's best ``NEAR_LEVELS`` levels per side, per regime."""
    return depth_profile(p)[:, :NEAR_LEVELS].sum(axis=1)


def _stationary_cdf(p: MarketParams) -> NDArray[np.float64]:
    cdf = np.cumsum(regime_stationary_law(p))
    cdf[-1] = 1.0
    return cdf


def _initial_regime_code(p: MarketParams) -> int:
    if p.initial_regime == "stationary":
        return STATIONARY_REGIME
    return REGIMES.index(p.initial_regime)


def _signal_decay(p: MarketParams) -> float:
    return math.exp(-p.tick_seconds / p.signal_timescale)


def _signal_noise(p: MarketParams) -> float:
    """Innovation scale that keeps the OU drift's stationary std per tick."""
    decay = _signal_decay(p)
    return math.sqrt(1.0 - decay * decay)


def _taker_rate_per_tick(p: MarketParams, side: float) -> NDArray[np.float64]:
    """Baseline taker arrivals per tick of the buy (side +1) or sell (-1) side, per regime."""
    return np.array(p.taker_rate) * (1.0 + side * np.array(p.taker_imbalance)) * p.tick_seconds


def _excitation_decay(p: MarketParams) -> float:
    return math.exp(-p.hawkes_decay * p.tick_seconds)


def _excitation_jump(p: MarketParams, branching_ratio: float) -> float:
    """Jump of the excitation per event (1/s), chosen so that each event's expected offspring
    equals the branching ratio exactly in discrete time: sum_k J d^(k-1) dt = J dt / (1 - d)."""
    return branching_ratio * (1.0 - _excitation_decay(p)) / p.tick_seconds


def _stationary_excitation(p: MarketParams) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Stationary excitation per side and regime: lambda - mu with lambda = (I - B)^-1 mu."""
    buy = np.zeros(NUM_REGIMES)
    sell = np.zeros(NUM_REGIMES)
    b = np.array([[p.hawkes_self, p.hawkes_cross], [p.hawkes_cross, p.hawkes_self]])
    for r in range(NUM_REGIMES):
        mu = p.taker_rate[r] * np.array([1.0 + p.taker_imbalance[r], 1.0 - p.taker_imbalance[r]])
        lam = np.linalg.solve(np.eye(2) - b, mu)
        buy[r], sell[r] = float(lam[0] - mu[0]), float(lam[1] - mu[1])
    return buy, sell


def _carry_decay(p: MarketParams) -> float:
    """Decay of the premium's OU part over one premium sample."""
    return math.exp(-p.premium_sample_seconds / p.carry_timescale)


def _carry_noise(p: MarketParams) -> NDArray[np.float64]:
    """Innovation std per premium sample that keeps the OU part's stationary std, per regime."""
    decay = _carry_decay(p)
    return np.array(p.carry_volatility) * math.sqrt(1.0 - decay * decay)


def _carry_start(p: MarketParams) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Stationary mean and std of the premium per regime (diffusive returns, jumps and the
    informed drift left out): the law it starts an episode from."""
    ticks = p.premium_sample_seconds / p.tick_seconds
    sigma = _sigma_per_tick(p)
    decay = _carry_decay(p)
    mean = np.zeros(NUM_REGIMES)
    std = np.zeros(NUM_REGIMES)
    for r in range(NUM_REGIMES):
        var = sigma[r] ** 2 * ticks
        mean[r], std[r] = stationary_law(
            p.carry_mean[r],
            p.carry_volatility[r],
            decay,
            p.carry_return_beta,
            -0.5 * var,
            var,
            -math.expm1(-p.carry_squeeze_per_hour[r] * p.premium_sample_seconds / 3600.0),
            p.carry_squeeze_size,
        )
    return mean, std


VOL_UPDATE_SECONDS = 1.0
"""Market time between updates of the log-volatility components."""
VOL_TRIPLE = sequence_of(3, NON_NEGATIVE, "three finite numbers >= 0 (fast, medium, slow)")


def _vol_update_ticks(p: MarketParams) -> int:
    """Ticks between updates of the log-volatility components (one second, at least a tick)."""
    return max(1, round(VOL_UPDATE_SECONDS / p.tick_seconds))


def _vol_decay(p: MarketParams) -> NDArray[np.float64]:
    """Exact OU decay of each log-volatility component over one update."""
    step = _vol_update_ticks(p) * p.tick_seconds
    return np.exp(-step / np.array(p.vol_timescales, dtype=np.float64))


def _vol_noise(p: MarketParams) -> NDArray[np.float64]:
    """Innovation scale of each component that keeps its stationary std at ``vol_of_vol``."""
    decay = _vol_decay(p)
    return np.array(p.vol_of_vol, dtype=np.float64) * np.sqrt(1.0 - decay * decay)


def _hedge_impact(p: MarketParams) -> NDArray[np.float64]:
    """Y sigma_day / sqrt(V_day): the square-root impact per sqrt(base unit), per regime."""
    sigma_day = np.array(p.volatility) * math.sqrt(SECONDS_PER_DAY / SECONDS_PER_YEAR)
    volume_day = p.hedge_volume_per_second * SECONDS_PER_DAY
    return p.hedge_impact_y * sigma_day / math.sqrt(volume_day)


@dataclass(frozen=True)
class MarketParams:
    """All parameters of the PerpMM market (defaults: a liquid alt perp, Hyperliquid base fees)."""

    # --- time -------------------------------------------------------------------------------
    tick_seconds: float = param(
        0.1,
        "Market tick (s); every mechanism advances once per tick.",
        POSITIVE,
        Packed("tick_seconds"),
    )
    decision_interval: float = param(
        1.0,
        "Seconds between agent decisions; a multiple of ``tick_seconds``.",
        POSITIVE,
        Packed("ticks_per_decision", lambda p: p.ticks_per_decision, "i8"),
    )
    episode_seconds: float = param(
        3600.0,
        "Episode length in market time (s); a multiple of ``decision_interval``.",
        POSITIVE,
        Packed("episode_ticks", lambda p: p.decisions_per_episode * p.ticks_per_decision, "i8"),
    )

    # --- fair (index) price -------------------------------------------------------------------
    initial_price: float = param(
        100.0,
        "Fair price at the start of an episode.",
        POSITIVE,
        Packed("initial_price_ticks", lambda p: p.initial_price / p.tick_size),
    )
    tick_size: float = param(
        0.01,
        "Price grid of the book.",
        POSITIVE,
        Packed("tick_size"),
    )
    volatility: Triple = param(
        (0.5, 1.0, 2.0),
        "Annualised diffusive volatility of the fair price, per regime.",
        POSITIVE_TRIPLE,
        Packed("sigma_per_tick", _sigma_per_tick, shape=PER_REGIME),
        Packed(
            "drift_correction_per_tick", lambda p: -0.5 * _sigma_per_tick(p) ** 2, shape=PER_REGIME
        ),
    )
    jump_rate_per_hour: Triple = param(
        (0.2, 1.0, 6.0),
        "Expected number of fair-price jumps per hour, per regime.",
        NON_NEGATIVE_TRIPLE,
        Packed(
            "jump_prob_per_tick",
            lambda p: np.array(p.jump_rate_per_hour) * p.tick_seconds / 3600.0,
            shape=PER_REGIME,
        ),
    )
    jump_mean_size: Triple = param(
        (0.001, 0.002, 0.004),
        "Mean absolute log-size of a jump (exponentially distributed), per regime.",
        NON_NEGATIVE_TRIPLE,
        Packed("jump_mean_log_size", shape=PER_REGIME),
    )
    jump_down_prob: float = param(
        0.7,
        "Probability that a jump is downward (crypto jumps are mostly negative).",
        number_in(0.0, 1.0),
        Packed("jump_down_prob"),
    )

    # --- multi-timescale stochastic volatility (mmgym.core.stochastic_vol) ---------------------
    vol_of_vol: tuple[float, float, float] = param(
        (0.25, 0.25, 0.3),
        "Stationary std of the fast, medium and slow components of log volatility: a "
        "market-wide multiplier v of the diffusive shocks, normalised so E[v^2] = 1 (the "
        "regime's ``volatility`` stays the mean variance). All 0: constant volatility per "
        "regime.",
        VOL_TRIPLE,
        Packed("vol_of_vol_std", lambda p: np.array(p.vol_of_vol, dtype=np.float64), shape=(3,)),
        Packed("vol_log_variance", lambda p: float(sum(s * s for s in p.vol_of_vol))),
        Packed("vol_update_ticks", _vol_update_ticks, "i8"),
    )
    vol_timescales: tuple[float, float, float] = param(
        (60.0, 1800.0, 86400.0),
        "Mean-reversion times (s) of the fast, medium and slow log-volatility components; "
        "spread over decades, their sum's autocorrelation decays like a power law.",
        (sequence_of(3, POSITIVE, "three finite numbers > 0 (fast, medium, slow)"), INCREASING),
        Packed("vol_decay_per_update", _vol_decay, shape=(3,)),
        Packed("vol_noise_per_update", _vol_noise, shape=(3,)),
    )

    # --- volatility regime (Markov chain) -----------------------------------------------------
    regime_switch_per_hour: tuple[Triple, Triple, Triple] = param(
        (
            (0.0, 1.0, 0.1),
            (2.0, 0.0, 0.5),
            (2.0, 4.0, 0.0),
        ),
        "Transition rates between regimes per hour (row: from, column: to; diagonal ignored).",
        RATE_MATRIX,
        Packed("transition_cdf_per_tick", _transition_cdf, shape=("regimes", "regimes")),
        Packed("stationary_cdf", _stationary_cdf, shape=PER_REGIME),
    )
    initial_regime: str = param(
        "stationary",
        "Regime at reset: a regime name, or ``stationary`` to draw it from the stationary law.",
        one_of((*REGIMES, "stationary")),
        Packed("initial_regime", _initial_regime_code, "i8"),
    )

    # --- informed signal ---------------------------------------------------------------------
    signal_timescale: float = param(
        30.0,
        "Mean-reversion time (s) of the latent drift that informed takers trade on.",
        POSITIVE,
        Packed("signal_decay_per_tick", _signal_decay),
        Packed("signal_noise_per_tick", _signal_noise),
    )
    signal_move: Triple = param(
        (0.0002, 0.0004, 0.0008),
        "Stationary std of the price move the latent drift predicts over its timescale, per "
        "regime.",
        NON_NEGATIVE_TRIPLE,
        Packed(
            "signal_std_per_second",
            lambda p: np.array(p.signal_move) / p.signal_timescale,
            shape=PER_REGIME,
        ),
    )
    informed_fraction: Triple = param(
        (0.1, 0.2, 0.3),
        "Fraction of taker orders whose side follows the sign of the latent drift, per regime.",
        sequence_of(3, number_in(0.0, 1.0), "three numbers in [0, 1] (calm, volatile, stressed)"),
        Packed("informed_fraction", shape=PER_REGIME),
    )

    # --- taker flow (bivariate Hawkes) --------------------------------------------------------
    taker_rate: Triple = param(
        (0.5, 1.0, 2.0),
        "Baseline (immigrant) arrival rate of taker orders per side per second, per regime; "
        "the stationary rate is ``taker_rate / (1 - hawkes_self - hawkes_cross)``.",
        NON_NEGATIVE_TRIPLE,
        Packed("taker_buy_rate_per_tick", lambda p: _taker_rate_per_tick(p, 1.0), shape=PER_REGIME),
        Packed(
            "taker_sell_rate_per_tick", lambda p: _taker_rate_per_tick(p, -1.0), shape=PER_REGIME
        ),
        Packed(
            "excitation_mean_buy_per_second",
            lambda p: _stationary_excitation(p)[0],
            shape=PER_REGIME,
        ),
        Packed(
            "excitation_mean_sell_per_second",
            lambda p: _stationary_excitation(p)[1],
            shape=PER_REGIME,
        ),
    )
    hawkes_self: float = param(
        0.53,
        "Branching ratio of buys on buys (and sells on sells).",
        NON_NEGATIVE,
        Packed("excitation_self_per_second", lambda p: _excitation_jump(p, p.hawkes_self)),
    )
    hawkes_cross: float = param(
        0.27,
        "Branching ratio of buys on sells (and sells on buys).",
        NON_NEGATIVE,
        Packed("excitation_cross_per_second", lambda p: _excitation_jump(p, p.hawkes_cross)),
    )
    hawkes_decay: float = param(
        1.0,
        "Decay rate (1/s) of the exponential excitation kernel.",
        POSITIVE,
        Packed("excitation_decay_per_tick", _excitation_decay),
    )
    order_size_min: float = param(
        0.05,
        "Scale of the Pareto taker order size (the smallest order, in base units).",
        POSITIVE,
        Packed("order_size_min"),
    )
    order_size_tail: float = param(
        1.8,
        "Pareto tail index of taker order sizes (> 1 for a finite mean).",
        greater_than(1.0, "a finite mean order size"),
        Packed("order_size_inv_tail", lambda p: 1.0 / p.order_size_tail),
    )
    order_size_cap: float = param(
        50.0,
        "Largest taker order (base units).",
        POSITIVE,
        Packed("order_size_cap"),
    )

    # --- order book ---------------------------------------------------------------------------
    book_levels: int = param(
        20,
        "Price levels simulated per side.",
        integer_in(2, 200),
    )
    depth_top: Triple = param(
        (4.0, 2.0, 0.6),
        "Background depth at the best level (base units), per regime: thin in stress.",
        POSITIVE_TRIPLE,
        Packed("depth_profile", lambda p: depth_profile(p), shape=("regimes", "levels")),
    )
    depth_slope: float = param(
        0.15,
        "Relative growth of background depth per level away from the touch.",
        NON_NEGATIVE,
    )
    depth_refill_seconds: Triple = param(
        (1.0, 2.0, 5.0),
        "Time constant (s) of depth replenishment toward the profile, per regime.",
        POSITIVE_TRIPLE,
        Packed(
            "refill_fraction_per_tick",
            lambda p: 1.0 - np.exp(-p.tick_seconds / np.array(p.depth_refill_seconds)),
            shape=PER_REGIME,
        ),
    )
    new_level_fraction: float = param(
        0.25,
        "Depth of a level the makers newly quote, as a fraction of its profile depth.",
        number_in(0.0, 1.0, "(]"),
        Packed("new_level_fraction"),
    )
    background_half_spread: Triple = param(
        (2.0, 3.0, 6.0),
        "Half-spread (ticks) that background makers keep around the anchor, per regime.",
        NON_NEGATIVE_TRIPLE,
        Packed("background_half_spread_ticks", shape=PER_REGIME),
    )
    impact_coefficient: float = param(
        0.5,
        "Anchor shift (ticks) per unit of signed taker volume, per unit of top depth.",
        NON_NEGATIVE,
        Packed(
            "impact_ticks_per_unit",
            lambda p: p.impact_coefficient / np.array(p.depth_top),
            shape=PER_REGIME,
        ),
    )
    impact_decay_seconds: float = param(
        10.0,
        "Time constant (s) with which the mid's impact deviation from fair price decays.",
        POSITIVE,
        Packed(
            "impact_decay_per_tick_coupled",
            lambda p: math.exp(-p.tick_seconds / p.impact_decay_seconds),
        ),
    )
    impact_memory_seconds: tuple[float, float, float] = param(
        (60.0, 600.0, 6000.0),
        "Time scales (s) of the slow parts of the impact propagator, which move the fair price "
        "(spot follows the perp) and relax on their own scale (:mod:`mmgym.core.impact`).",
        POSITIVE_TRIPLE_OF_SCALES,
        Packed(
            "impact_memory_decay_per_tick",
            lambda p: np.exp(-p.tick_seconds / np.array(p.impact_memory_seconds)),
            shape=("memory",),
        ),
    )
    impact_memory_shares: tuple[float, float, float] = param(
        (0.08, 0.08, 0.017),
        "Shares of the instantaneous impact held by each slow part (``impact_memory_seconds``); "
        "with the fast share on ``impact_decay_seconds`` (the rest) they make the propagator "
        "G(t) ~ t^-1/2 between about 10 s and 1 h, so metaorders follow the square-root law.",
        sequence_of(IMPACT_MEMORY, number_in(0.0, 1.0), "three shares in [0, 1]"),
        Packed(
            "impact_memory_share", lambda p: np.array(p.impact_memory_shares), shape=("memory",)
        ),
    )
    impact_permanent_share: float = param(
        0.01,
        "Share of the instantaneous impact that moves the fair price for good (price discovery "
        "in the perp). With the memory shares at 0 and this at 0: the old transient-only model.",
        number_in(0.0, 1.0),
        Packed("impact_permanent_share"),
        Packed(
            "impact_fast_share",
            lambda p: 1.0 - p.impact_permanent_share - sum(p.impact_memory_shares),
        ),
    )
    arb_threshold_ticks: float = param(
        0.0,
        "An agent quote this far beyond the anchor is picked off by arbitrageurs (toxic fill).",
        NON_NEGATIVE,
        Packed("arb_threshold_ticks"),
    )

    # --- endogenous liquidity (mmgym.core.liquidity) ------------------------------------------
    liquidity_recovery_seconds: float = param(
        30.0,
        "Time constant (s) with which the makers' liquidity recovers toward 1 after withdrawing.",
        POSITIVE,
        Packed(
            "liquidity_recovery_per_tick",
            lambda p: math.exp(-p.tick_seconds / p.liquidity_recovery_seconds),
        ),
    )
    liquidity_floor: float = param(
        0.05,
        "Lowest maker liquidity: the book keeps at least this fraction of its depth profile.",
        number_in(0.0, 1.0, "(]"),
        Packed("liquidity_floor"),
    )
    liquidity_flow_seconds: float = param(
        10.0,
        "Memory (s) of the one-sided (buys minus sells, forced included) volume makers react to.",
        POSITIVE,
        Packed(
            "liquidity_flow_decay_per_tick",
            lambda p: math.exp(-p.tick_seconds / p.liquidity_flow_seconds),
        ),
        Packed("near_depth", _near_depth, shape=PER_REGIME),
    )
    liquidity_toxicity_threshold: float = param(
        4.0,
        "One-sided volume of the flow memory, over the near-mid depth profile (5 levels), above "
        "which makers withdraw.",
        NON_NEGATIVE,
        Packed("liquidity_toxicity_threshold"),
    )
    liquidity_toxicity_rate: float = param(
        0.5,
        "Withdrawal rate (1/s) per unit of toxicity above the threshold (0: no reaction to flow).",
        NON_NEGATIVE,
        Packed(
            "liquidity_toxicity_rate_per_tick", lambda p: p.liquidity_toxicity_rate * p.tick_seconds
        ),
    )
    liquidity_move_threshold: float = param(
        8.0,
        "Oracle (index) move in one tick, in the regime's diffusive sigmas per tick, above which "
        "the makers on the side it goes against withdraw.",
        NON_NEGATIVE,
        Packed("liquidity_move_threshold"),
    )
    liquidity_move_sensitivity: float = param(
        0.02,
        "Withdrawal (log of the liquidity lost) per sigma of a tick's oracle move above the "
        "threshold (0: no reaction to moves).",
        NON_NEGATIVE,
        Packed("liquidity_move_sensitivity"),
    )
    liquidity_herding: float = param(
        0.5,
        "Branching ratio of the makers' herding: each unit of withdrawal triggers this many more "
        "through cancels answering cancels (< 1; 0: no herding).",
        number_in(0.0, 1.0, "[)"),
        Packed(
            "liquidity_herding_jump",
            lambda p: (
                p.liquidity_herding * -math.expm1(-p.tick_seconds / p.liquidity_herding_seconds)
            ),
        ),
    )
    liquidity_herding_seconds: float = param(
        2.0,
        "Decay time (s) of the herding withdrawal intensity.",
        POSITIVE,
        Packed(
            "liquidity_herding_decay_per_tick",
            lambda p: math.exp(-p.tick_seconds / p.liquidity_herding_seconds),
        ),
    )
    liquidity_spread_elasticity: float = param(
        1.0,
        "The background half-spread is ``background_half_spread / liquidity^elasticity`` "
        "(0: the spread ignores liquidity).",
        NON_NEGATIVE,
        Packed("liquidity_spread_elasticity"),
    )

    # --- stress feedback on the regime chain (mmgym.core.stress) ------------------------------
    stress_feedback_seconds: float = param(
        120.0,
        "Memory (s) of the realised volatility and liquidations that raise the rates into stress.",
        POSITIVE,
        Packed(
            "stress_decay_per_tick", lambda p: math.exp(-p.tick_seconds / p.stress_feedback_seconds)
        ),
        Packed("regime_rate_per_tick", _regime_rate_per_tick, shape=("regimes", "regimes")),
    )
    stress_volatility_threshold: float = param(
        3.0,
        "Realised volatility of the mid (in the regime's diffusive sigmas) above which the rates "
        "into more stressed regimes rise.",
        NON_NEGATIVE,
        Packed("stress_volatility_threshold"),
    )
    stress_volatility_sensitivity: float = param(
        0.5,
        "Rise of the rates into more stressed regimes (multiplier - 1) per sigma of realised "
        "volatility above the threshold (0: no volatility feedback).",
        NON_NEGATIVE,
        Packed("stress_volatility_sensitivity"),
    )
    stress_liquidation_sensitivity: float = param(
        0.2,
        "Rise of the rates into more stressed regimes (multiplier - 1) per crowd liquidation "
        "in the feedback memory (0: no liquidation feedback).",
        NON_NEGATIVE,
        Packed("stress_liquidation_sensitivity"),
    )

    # --- several assets -----------------------------------------------------------------------
    num_assets: int = param(
        1,
        "Perps per env (K): same marginal parameters, correlated fair-price shocks.",
        integer_in(1, 16),
    )
    asset_correlation: Triple = param(
        (0.9, 0.93, 0.97),
        "Correlation of the assets' fair-price shocks, per regime: it rises toward 1 in stress. "
        "The default puts the calm 1-5 min mid-return correlation at the BTC-ETH 0.7-0.8 "
        "(each perp's own informed drift and book noise lower it below the shocks').",
        sequence_of(3, number_in(0.0, 1.0, "[)"), "three correlations in [0, 1)"),
        Packed(
            "shock_cholesky",
            lambda p: correlation_cholesky(p.num_assets, p.asset_correlation),
            shape=("regimes", "assets", "assets"),
        ),
    )
    signal_correlation: Triple = param(
        (0.0, 0.3, 0.95),
        "Correlation of the assets' latent-drift shocks (the news informed takers trade on), "
        "per regime: each perp's own in calm, market-wide in stress, so that the informed "
        "flow and the moves it predicts are shared across perps when the market falls "
        "together. 0 in every regime gives each perp its own news.",
        sequence_of(3, number_in(0.0, 1.0, "[)"), "three correlations in [0, 1)"),
        Packed(
            "signal_cholesky",
            lambda p: correlation_cholesky(p.num_assets, p.signal_correlation),
            shape=("regimes", "assets", "assets"),
        ),
    )

    # --- basis and mark price -----------------------------------------------------------------
    taker_imbalance: Triple = param(
        (0.0, 0.0, 0.0),
        "Tilt of baseline taker flow toward buys (+) or sells (-), per regime: mu (1 +/- tilt).",
        sequence_of(3, number_in(-1.0, 1.0, "()"), "three numbers in (-1, 1)"),
    )
    decoupling_per_hour: tuple[float, float] = param(
        (0.05, 1.0),
        "Rates per hour of the basis decoupling from spot and of recoupling.",
        sequence_of(2, NON_NEGATIVE, "two rates >= 0 (decouple, recouple)"),
        Packed("decouple_prob_per_tick", lambda p: _prob_per_tick(p, p.decoupling_per_hour[0])),
        Packed("recouple_prob_per_tick", lambda p: _prob_per_tick(p, p.decoupling_per_hour[1])),
    )
    decoupled_pull_seconds: float = param(
        1800.0,
        "Time constant (s) of the arbitrage pull on the perp's deviation while decoupled "
        "(``impact_decay_seconds`` while coupled).",
        POSITIVE,
        Packed(
            "impact_decay_per_tick_decoupled",
            lambda p: math.exp(-p.tick_seconds / p.decoupled_pull_seconds),
        ),
    )
    mark_ema_seconds: float = param(
        150.0,
        "EMA time (s) of (mid - oracle) in the mark price (Hyperliquid: 150 s).",
        POSITIVE,
        Packed(
            "mark_ema_weight_per_tick", lambda p: -math.expm1(-p.tick_seconds / p.mark_ema_seconds)
        ),
    )

    # --- funding ------------------------------------------------------------------------------
    funding_interval_seconds: float = param(
        3600.0,
        "Time between funding payments (Hyperliquid: 1 h; Binance and BitMEX: 8 h).",
        POSITIVE,
        Packed("funding_interval_ticks", lambda p: _ticks(p, p.funding_interval_seconds), "i8"),
        Packed("funding_interval_over_8h", lambda p: p.funding_interval_seconds / SECONDS_PER_8H),
    )
    premium_sample_seconds: float = param(
        5.0,
        "Time between premium-index samples, averaged over the funding interval.",
        POSITIVE,
        Packed("premium_sample_ticks", lambda p: _ticks(p, p.premium_sample_seconds), "i8"),
    )
    funding_interest_8h: float = param(
        0.0001,
        "Interest component I of the funding rate per 8 h (0.01 %).",
        NON_NEGATIVE,
        Packed("funding_interest_8h"),
    )
    funding_clamp_8h: float = param(
        0.0005,
        "Clamp c on (I - premium) per 8 h: F = P + clamp(I - P, -c, c).",
        NON_NEGATIVE,
        Packed("funding_clamp_8h"),
    )
    funding_cap: float = param(
        0.04,
        "Largest absolute funding rate paid per interval (Hyperliquid: 4 % per hour).",
        NON_NEGATIVE,
        Packed("funding_cap_per_interval"),
    )
    impact_notional: float = param(
        400.0,
        "Notional walked through the book for the impact bid and ask of the premium index (the "
        "default is about the top level's notional: small against the near-touch depth, as "
        "venues' impact notionals are against real books).",
        POSITIVE,
        Packed("impact_notional"),
    )
    random_funding_phase: bool = param(
        True,
        "Draw the time to the first funding uniformly over an interval (else a full interval).",
        BOOLEAN,
        Packed("random_funding_phase", dtype="?"),
    )

    # --- leverage demand (the carry premium) -------------------------------------------------
    carry_mean: Triple = param(
        (0.00005, -0.0002, -0.0008),
        "Long-run mean of the leverage-demand premium (fraction of price) per regime: background "
        "makers quote around fair x (1 + premium) + impact, so the premium index and funding "
        "follow it. ``carry_mean``, ``carry_volatility``, ``carry_return_beta`` and "
        "``carry_squeeze_per_hour`` all 0: no premium (the book centred on fair + impact). The "
        "defaults put the 8 h funding of ``calm`` at the published BTC figures "
        "(docs/stylized_facts.md).",
        sequence_of(3, Rule("a finite number", is_number), "three finite numbers"),
        Packed("carry_mean", shape=PER_REGIME),
    )
    carry_volatility: Triple = param(
        (0.0003, 0.0004, 0.0006),
        "Stationary std of the premium's Ornstein-Uhlenbeck part (fraction of price), per regime.",
        NON_NEGATIVE_TRIPLE,
        Packed("carry_noise_per_sample", lambda p: _carry_noise(p), shape=PER_REGIME),
    )
    carry_timescale: float = param(
        28800.0,
        "Mean-reversion time (s) of the premium; it is updated at every premium sample.",
        POSITIVE,
        Packed("carry_decay_per_sample", lambda p: _carry_decay(p)),
    )
    carry_return_beta: float = param(
        0.035,
        "Premium added per unit log return of the fair price (rallies raise the demand for "
        "leverage, drawdowns push it negative); it then decays with ``carry_timescale``.",
        Rule("a finite number", is_number),
        Packed("carry_return_beta"),
    )
    carry_squeeze_per_hour: Triple = param(
        (0.01, 0.01, 0.0),
        "Rate per hour of squeezes, per regime: upward jumps of the premium (exponential size).",
        NON_NEGATIVE_TRIPLE,
        Packed(
            "carry_squeeze_prob_per_sample",
            lambda p: (
                -np.expm1(-np.array(p.carry_squeeze_per_hour) * p.premium_sample_seconds / 3600.0)
            ),
            shape=PER_REGIME,
        ),
    )
    carry_squeeze_size: float = param(
        0.0012,
        "Mean size of a squeeze (fraction of price).",
        NON_NEGATIVE,
        Packed("carry_squeeze_size"),
        Packed("carry_start_mean", lambda p: _carry_start(p)[0], shape=PER_REGIME),
        Packed("carry_start_std", lambda p: _carry_start(p)[1], shape=PER_REGIME),
    )

    # --- margin and liquidation ---------------------------------------------------------------
    collateral: float = param(
        10000.0,
        "The agent's collateral (quote currency) at reset; cross-margined over its assets.",
        POSITIVE,
        Packed("collateral"),
    )
    margin_tiers: tuple[tuple[float, float], ...] = param(
        ((0.0, 20.0), (500_000.0, 10.0)),
        "(notional lower bound, max leverage) tiers; maintenance margin rate = 1 / (2 x max "
        "leverage), with the usual deduction so margin is continuous across tiers.",
        MARGIN_TIERS,
        Packed("maintenance_tiers", lambda p: maintenance_tiers(p), shape=("tiers", 3)),
        Packed("max_leverage", lambda p: p.margin_tiers[0][1]),
        Packed("crowd_maintenance_rate", lambda p: 0.5 / p.margin_tiers[0][1]),
    )
    liquidation_max_slippage: float = param(
        0.02,
        "A forced close (agent or crowd) walks the book at most this far from the mark; the "
        "rest goes to the venue's backstop liquidator, off the book (Hyperliquid's vault).",
        POSITIVE,
        Packed("liquidation_max_slippage"),
    )
    liquidation_penalty: float = param(
        0.005,
        "Penalty on the notional of a liquidated position (quote currency fraction).",
        NON_NEGATIVE,
        Packed("liquidation_penalty"),
    )

    # --- the leveraged crowd ------------------------------------------------------------------
    crowd_open_interest: float = param(
        200.0,
        "Open interest of the leveraged crowd per side (base units per asset).",
        NON_NEGATIVE,
        Packed("crowd_open_interest"),
    )
    crowd_leverage: float = param(
        10.0,
        "Mean leverage of crowd accounts (0: no leverage, no forced flow).",
        NON_NEGATIVE,
        Packed("crowd_leverage"),
    )
    crowd_accounts: int = param(
        32,
        "Crowd accounts simulated per env (half long, half short), each cross-margined.",
        integer_in(2, 256, even=True),
    )
    crowd_entry_dispersion: float = param(
        0.01,
        "Std of the log distance of a crowd account's entry price from the mark when it opens "
        "(positions opened earlier): liquidation prices spread into clusters near the price.",
        NON_NEGATIVE,
        Packed("crowd_entry_dispersion"),
    )
    crowd_holding_seconds: float = param(
        900.0,
        "Mean time (s) before a crowd account closes and reopens at the current price.",
        POSITIVE,
        Packed(
            "crowd_renewal_prob_per_tick",
            lambda p: -math.expm1(-p.tick_seconds / p.crowd_holding_seconds),
        ),
    )
    crowd_large_position: float = param(
        20.0,
        "A forced close above this size (base units) sends 20 % first, the rest after a cooldown.",
        POSITIVE,
        Packed("crowd_large_position"),
    )
    crowd_cooldown_seconds: float = param(
        30.0,
        "Cooldown (s) between the partial and the final forced close of a large position.",
        POSITIVE,
        Packed("crowd_cooldown_ticks", lambda p: _ticks(p, p.crowd_cooldown_seconds), "i8"),
    )

    # --- hedge venue --------------------------------------------------------------------------
    hedge_fee: float = param(
        0.0004,
        "Taker fee rate on the hedge venue.",
        NON_NEGATIVE,
        Packed("hedge_fee"),
    )
    hedge_noise_bp: float = param(
        1.0,
        "Std (bp) of the hedge venue's price around the oracle.",
        NON_NEGATIVE,
        Packed("hedge_noise_fraction", lambda p: p.hedge_noise_bp * 1e-4),
    )
    hedge_impact_y: float = param(
        0.7,
        "Y of the square-root impact Y sigma_day sqrt(Q / V_day) of a hedge child order.",
        NON_NEGATIVE,
        Packed("hedge_impact_per_sqrt_unit", _hedge_impact, shape=PER_REGIME),
    )
    hedge_volume_per_second: float = param(
        20.0,
        "Traded volume of the hedge venue (base units per second), for V in the impact law.",
        POSITIVE,
    )
    hedge_liquidity: float = param(
        5.0,
        "Mean size (base units) a hedge child order can fill at once (exponential): partial fills.",
        POSITIVE,
        Packed("hedge_liquidity"),
    )
    hedge_latency_seconds: float = param(
        0.2,
        "Delay (s) between a hedge decision and its first child order.",
        NON_NEGATIVE,
        Packed(
            "hedge_latency_ticks",
            lambda p: math.ceil(p.hedge_latency_seconds / p.tick_seconds - 1e-9),
            "i8",
        ),
    )
    hedge_schedule: str = param(
        "twap",
        "``twap`` (equal children) or ``almgren_chriss`` (front-loaded sinh schedule).",
        one_of(HEDGE_SCHEDULES),
        Packed("hedge_schedule", lambda p: HEDGE_SCHEDULES.index(p.hedge_schedule), "i8"),
    )
    hedge_horizon_decisions: int = param(
        5,
        "Decisions over which a requested hedge is split into child orders.",
        integer_in(1),
        Packed("hedge_horizon_decisions", dtype="i8"),
    )
    hedge_urgency: float = param(
        2.0,
        "kappa T of the Almgren-Chriss schedule (0 tends to TWAP).",
        NON_NEGATIVE,
        Packed("hedge_urgency"),
    )

    # --- agent --------------------------------------------------------------------------------
    max_inventory: float = param(
        10.0,
        "Inventory limit (base units); quote sizes are cut so a fill cannot breach it.",
        POSITIVE,
        Packed("max_inventory"),
    )
    max_quote_size: float = param(
        2.0,
        "Largest quote size (base units), at action size +1.",
        POSITIVE,
        Packed("max_quote_size"),
    )
    min_quote_size: float = param(
        0.01,
        "Quotes smaller than this are not placed.",
        NON_NEGATIVE,
        Packed("min_quote_size"),
    )
    max_half_spread_ticks: float = param(
        20.0,
        "Half-spread (ticks) at action half-spread +1.",
        POSITIVE,
        Packed("max_half_spread_ticks"),
    )
    max_skew_ticks: float = param(
        20.0,
        "Reservation-price offset (ticks) at action skew +/-1.",
        NON_NEGATIVE,
        Packed("max_skew_ticks"),
    )
    maker_fee: float = param(
        0.00015,
        "Fee rate on maker fills (negative for a rebate).",
        number_in(-0.01, 0.01, "()", noun="a rate"),
        Packed("maker_fee"),
    )
    taker_fee: float = param(
        0.00045,
        "Fee rate on taker fills.",
        number_in(0.0, 0.01, "[)", noun="a rate"),
        Packed("taker_fee"),
    )
    latency_seconds: float = param(
        0.05,
        "Fixed delay (s) between a decision and its orders reaching the book.",
        NON_NEGATIVE,
        Packed("latency_ticks", lambda p: p.latency_seconds / p.tick_seconds),
    )
    latency_jitter_seconds: Triple = param(
        (0.01, 0.05, 0.2),
        "Mean of the exponential random part of the delay (s), per regime: wider in stress.",
        NON_NEGATIVE_TRIPLE,
        Packed(
            "latency_jitter_ticks",
            lambda p: np.array(p.latency_jitter_seconds) / p.tick_seconds,
            shape=PER_REGIME,
        ),
    )
    latency_cap_seconds: float = param(
        0.5,
        "Largest total delay (s); must be below ``decision_interval``.",
        NON_NEGATIVE,
        Packed(
            "latency_cap_ticks",
            lambda p: min(p.latency_cap_seconds / p.tick_seconds, p.ticks_per_decision - 1.0),
        ),
    )

    # --- reward -------------------------------------------------------------------------------
    reward: str = param(
        "pnl",
        "``pnl`` (equity change) or ``inventory_penalty`` (equity change - phi q^2 dt, and "
        "``- alpha q_T^2`` at the end).",
        one_of(REWARDS),
        Packed("reward_mode", lambda p: REWARDS.index(p.reward), "i8"),
    )
    inventory_penalty: float = param(
        0.0,
        "phi: running penalty per unit of inventory squared per second.",
        NON_NEGATIVE,
        Packed("inventory_penalty_per_second"),
    )
    terminal_inventory_penalty: float = param(
        0.0,
        "alpha: penalty per unit of inventory squared at the episode's end.",
        NON_NEGATIVE,
        Packed("terminal_inventory_penalty"),
    )
    reward_scale: float = param(
        1.0,
        "Multiplier applied to the reward.",
        POSITIVE,
        Packed("reward_scale"),
    )

    # --- observation --------------------------------------------------------------------------
    horizons: Triple = param(
        (1.0, 10.0, 300.0),
        "Feature horizons (s): execution, order-flow aggregation and regime scales.",
        (POSITIVE_TRIPLE, INCREASING),
    )
    return_scale_bp: float = param(
        1.0,
        "Returns and volatilities are given in basis points per sqrt(second) over this scale.",
        POSITIVE,
    )
    obs_clip: float = param(
        10.0,
        "Observations are clipped to [-obs_clip, obs_clip].",
        POSITIVE,
    )

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
        """Raise ValueError naming the first invalid field; return self when all are valid.

        Each field's own rule is checked first (in declaration order), then the rules that relate
        several fields.
        """
        check_rules(self)
        _check_relations(self)
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


def _multiple(p: MarketParams, name: str, of: str) -> None:
    ratio = getattr(p, name) / getattr(p, of)
    if abs(ratio - round(ratio)) > 1e-9 or round(ratio) < 1:
        _fail(name, f"a positive whole multiple of {of} ({getattr(p, of)})", getattr(p, name))


def _check_relations(p: MarketParams) -> None:
    """The rules that relate several fields (each field's own rule already holds)."""
    _multiple(p, "decision_interval", "tick_seconds")
    _multiple(p, "episode_seconds", "decision_interval")
    _multiple(p, "premium_sample_seconds", "tick_seconds")
    _multiple(p, "funding_interval_seconds", "premium_sample_seconds")
    if p.hedge_latency_seconds >= p.decision_interval:
        _fail(
            "hedge_latency_seconds",
            f"< decision_interval ({p.decision_interval}): a child is sent once per decision",
            p.hedge_latency_seconds,
        )
    if p.arb_threshold_ticks > min(p.background_half_spread):
        _fail(
            "arb_threshold_ticks",
            f"<= the smallest background_half_spread ({min(p.background_half_spread)}), "
            "or a resting quote could sit through the background's opposite best price",
            p.arb_threshold_ticks,
        )
    if p.impact_permanent_share + sum(p.impact_memory_shares) > 1.0 + 1e-12:
        _fail(
            "impact_permanent_share + sum(impact_memory_shares)",
            "<= 1 (the fast, basis share on impact_decay_seconds is the rest)",
            p.impact_permanent_share + sum(p.impact_memory_shares),
        )
    if p.hawkes_self + p.hawkes_cross >= 1.0:
        _fail(
            "hawkes_self + hawkes_cross",
            "< 1 (the branching ratio of the Hawkes flow; >= 1 explodes)",
            p.hawkes_self + p.hawkes_cross,
        )
    if p.order_size_cap < p.order_size_min:
        _fail("order_size_cap", f">= order_size_min ({p.order_size_min})", p.order_size_cap)
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


def correlation_cholesky(k: int, correlations: Triple) -> NDArray[np.float64]:
    """Cholesky factors of the per-regime equicorrelation matrices of ``k`` assets, shape
    (regimes, k, k)."""
    out = np.zeros((NUM_REGIMES, k, k))
    for r, rho in enumerate(correlations):
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
