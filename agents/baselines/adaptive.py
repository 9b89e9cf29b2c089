"""The practitioner's adaptive quoting baseline for ``mmgym/PerpMM-v0``.

One rule per failure mode named in the design notes, evaluated in this order for every perp:

1. **Skew** (ticks, reservation-price offset from the mid), the sum of
   - *flow*: ``flow_skew_ticks x s`` with the multi-horizon taker-aggression signal
     ``s = w_fast f_fast + w_medium f_medium + w_slow f_slow`` (``f_h`` the
     ``flow_imbalance_h`` features, weights ``flow_weights``). Buyers aggressing (``s > 0``)
     is partly informed flow that precedes a rise, so the quotes move up: the bid gets closer
     to the mid (tighter, it is the side we want filled) and the ask further (wider, it is the
     side the informed buyers would lift). ``flow_size_tilt`` also cuts the size of the side
     being hit (the ask when ``s > 0``) by ``tilt x |s|``;
   - *inventory*: ``-inventory_skew_ticks x q / max_inventory``, linear and against the
     position (the Avellaneda-Stoikov reservation price to first order);
   - *carry*: when the funding forecast beats the cost of hedging, a tilt toward the side
     that *receives* funding (see rule 6).
2. **Size** (base units, per side): ``base_size x min(1, vol_ref / vol)``, and no quotes at all
   when ``vol > vol_cap``. ``vol = max(volatility_fast, volatility_medium)`` (bp per sqrt(s)):
   a jump shows in the fast estimate first and the medium one remembers it for ~10 s, so the
   rule is not keyed on a single, lagging volatility measure.
3. **Post-only bias** (half-spread, ticks). Orders are post-only and reach the book up to
   ``latency_cap_seconds`` after the decision, then rest until the next one. The faster the
   mid moves, the likelier a quote priced at decision time crosses on arrival (rejected, the
   side is left empty) or ends up beyond fair value (picked off). So the half-spread widens by
   ``post_only_sigmas`` standard deviations of the mid's move over a quote's life
   (``decision_interval + latency_cap_seconds``) for the volatility *above* ``vol_ref``, and
   whatever the skew, each quote is kept at least ``post_only_margin_ticks`` plus one standard
   deviation of the move over the latency on its passive side of the mid (the half-spread is
   raised to ``|skew| + margin``): a large skew then widens the far side instead of pushing
   the near side through the book.
4. **Regime detector** (per env, hysteresis): ``x = max over perps of volatility_medium``.
   The env enters *stressed* when ``x > stress_enter``, and returns to *calm* only when ``x``
   and every perp's ``volatility_slow`` are below ``stress_exit``: the slow (regime-scale)
   estimate keeps the book cautious after a shock. Stressed quotes are
   ``stress_spread_factor`` times wider and ``stress_size_factor`` times smaller.
5. **Tail-risk override** (per env). An EWMA (half-life ``corr_halflife`` decisions) of the
   means and covariances of the perps' ``return_fast`` features, from consecutive
   observations, gives the average pairwise correlation. When it exceeds ``corr_threshold``
   (after ``corr_min_obs`` observations), or when the account's ``margin_ratio`` exceeds
   ``margin_ratio_limit``, the side that would *increase* each position's size (both sides of
   a flat position) is cut to ``tail_size_factor`` of its size: correlated liquidations push
   every perp the same way, and the size rule of a single asset would keep adding. The side
   that reduces the position keeps its size (a REDUCING state, as in a risk engine). With one
   perp the correlation is undefined and never triggers; the margin check still does.
6. **Carry tilt**: the funding forecast ``f`` (bp per funding interval, paid by longs when
   positive) blends the running interval's ``funding_estimate`` with the ``last_funding``
   paid, weighting the estimate by the elapsed share of the interval (``1 -
   time_to_funding``): early in an interval the running average rests on a few premium
   samples and overshoots. With the hedge slippage ``c`` (bp: ``hedge_fee`` plus the
   square-root impact of a ``base_size`` child at the volatile regime's volatility, unless
   ``hedge_slippage_bp`` is given), the skew gains ``-carry_skew_ticks x sign(f) x min(1,
   (|f| - c) / c)`` when ``|f| > c``, and nothing otherwise: positive funding lowers the
   quotes, so the book drifts short and receives the funding. Carry that does not pay for the
   hedge is ignored.
7. **Laddered hedge**: the hedge fraction is 0 while ``|q| / max_inventory`` is below
   ``hedge_thresholds[0]``, then ``hedge_fractions[j]`` once it reaches
   ``hedge_thresholds[j]``. Small inventories are worked off through the quotes (cheap);
   the hedge venue (taker fee plus impact) is only paid for the large ones.

State kept per env: the regime flag, the correlation EWMA (mean, covariance, count) and the last
``time`` feature. ``reset(mask)`` clears the masked envs; a ``time`` feature that goes
backwards (the vector env's autoreset started a new episode) also clears that env.

Each rule is one compiled (numba) function of one perp or one env. ``act`` runs them all over
the batch in a single compiled call that allocates only the returned actions, so a decision at
batch 1 costs microseconds (a deployed policy answers each decision on its own); the methods
of :class:`AdaptivePolicy` apply the same functions to numpy arrays, for inspection.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numba as nb
import numpy as np
from numpy.typing import NDArray

from agents.baselines.checks import check_non_negative, check_positive, is_real, require
from agents.baselines.registry import register
from mmgym.core.orders import ACTION_NAMES, encode_block
from mmgym.core.params import SECONDS_PER_YEAR, MarketParams
from mmgym.features.observation import ACCOUNT_OBS_NAMES, ASSET_FEATURES, OBS_NAMES

_INVENTORY = OBS_NAMES.index("inventory")
_RETURN_FAST = OBS_NAMES.index("return_fast")
_VOL_FAST = OBS_NAMES.index("volatility_fast")
_VOL_MEDIUM = OBS_NAMES.index("volatility_medium")
_VOL_SLOW = OBS_NAMES.index("volatility_slow")
_FLOW_FAST, _FLOW_MEDIUM, _FLOW_SLOW = (
    OBS_NAMES.index(f"flow_imbalance_{h}") for h in ("fast", "medium", "slow")
)
_TIME = OBS_NAMES.index("time")
_FUNDING = OBS_NAMES.index("funding_estimate")
_LAST_FUNDING = OBS_NAMES.index("last_funding")
_MARGIN_RATIO = ACCOUNT_OBS_NAMES.index("margin_ratio")
_TIME_TO_FUNDING = ACCOUNT_OBS_NAMES.index("time_to_funding")
_SECONDS_PER_DAY = 86400.0
_VOLATILE = 1  # regime index of the volatile regime in MarketParams' triples
_ACTION_SIZE = len(ACTION_NAMES)


def expected_hedge_slippage_bp(params: MarketParams, size: float) -> float:
    """Expected cost (bp) of a hedge child of ``size``: taker fee plus square-root impact
    ``Y sigma_day sqrt(size / V_day)`` at the volatile regime's volatility (as in
    :mod:`mmgym.core.hedge`)."""
    sigma_day = params.volatility[_VOLATILE] * math.sqrt(_SECONDS_PER_DAY / SECONDS_PER_YEAR)
    volume_day = params.hedge_volume_per_second * _SECONDS_PER_DAY
    impact = params.hedge_impact_y * sigma_day * math.sqrt(max(size, 0.0) / volume_day)
    return 1e4 * (params.hedge_fee + impact)


@dataclass(frozen=True)
class AdaptiveSettings:
    """Settings of :class:`AdaptivePolicy`, with units and defaults (see the module docstring
    for the rules). Validated on construction: a bad value raises a ``ValueError`` naming it."""

    base_half_spread_ticks: float = 2.0
    """Half-spread (ticks) in calm, low-volatility markets; at least 0.5."""
    base_size: float = 1.0
    """Quote size per side (base units) before any cut."""
    inventory_skew_ticks: float = 6.0
    """Skew (ticks) against inventory at ``|q| = max_inventory``."""
    flow_skew_ticks: float = 3.0
    """Skew (ticks) per unit of the combined flow signal (in [-1, 1])."""
    flow_weights: tuple[float, float, float] = (0.4, 0.45, 0.15)
    """Weights of the fast, medium and slow flow imbalance in the signal. The 1 s and 10 s
    imbalances predict the next 5-30 s moves about equally well in the simulator (correlation
    ~0.1); the 300 s one carries mostly persistent, uninformed one-sided flow, hence its small
    weight."""
    flow_size_tilt: float = 0.5
    """Fraction of its size the side hit by the aggression loses per unit of signal, in
    [0, 1]."""
    vol_ref: float = 2.0
    """Volatility (bp per sqrt(s)) up to which full size is quoted and the half-spread is not
    widened (about the volatile regime's level)."""
    vol_cap: float = 6.0
    """Volatility (bp per sqrt(s)) above which no quotes are placed; above ``vol_ref``."""
    post_only_sigmas: float = 1.0
    """Half-spread widening, in standard deviations of the mid's move over a quote's life, for
    volatility above ``vol_ref``."""
    post_only_margin_ticks: float = 1.0
    """Least distance (ticks) of each quote from the mid on its passive side, to which one
    standard deviation of the mid's move over ``latency_cap_seconds`` is added (about 1.4
    ticks at ``vol_ref``)."""
    stress_enter: float = 3.0
    """Medium volatility (bp per sqrt(s)) that switches the detector to stressed."""
    stress_exit: float = 2.4
    """Medium and slow volatility (bp per sqrt(s)) below which the detector returns to calm
    (hysteresis band: ``0 < stress_exit < stress_enter``)."""
    stress_spread_factor: float = 1.5
    """Half-spread multiplier when stressed; at least 1."""
    stress_size_factor: float = 0.5
    """Size multiplier when stressed, in [0, 1]."""
    corr_halflife: float = 20.0
    """Half-life (decisions) of the correlation EWMA."""
    corr_threshold: float = 0.75
    """Average pairwise correlation of the perps' fast returns above which the tail-risk
    override cuts size, in [-1, 1]."""
    corr_min_obs: int = 10
    """Observations (decisions) in the EWMA before it may trigger; an integer >= 2."""
    margin_ratio_limit: float = 0.5
    """Maintenance margin / margin equity above which the tail-risk override cuts size
    (liquidation at 1)."""
    tail_size_factor: float = 0.0
    """Size kept on the position-increasing side under the override, in [0, 1] (0: reduce
    only)."""
    carry_skew_ticks: float = 3.0
    """Largest carry tilt of the skew (ticks)."""
    hedge_slippage_bp: float | None = None
    """Hedge cost (bp) the funding forecast must beat; None derives it from the market
    (``hedge_fee`` + impact of a ``base_size`` child, :func:`expected_hedge_slippage_bp`)."""
    hedge_thresholds: tuple[float, ...] = (0.4, 0.7)
    """Inventory levels (fractions of ``max_inventory``, increasing, >= 0) at which the hedge
    ladder steps up."""
    hedge_fractions: tuple[float, ...] = (0.5, 1.0)
    """Hedge target (fraction of inventory, in [0, 1]) at each step of the ladder."""

    def __post_init__(self) -> None:
        for name in ("flow_weights", "hedge_thresholds", "hedge_fractions"):
            value = getattr(self, name)
            require(isinstance(value, Sequence), name, "a sequence of numbers", value)
            object.__setattr__(self, name, tuple(value))  # lists (Hydra's) become tuples
        require(
            is_real(self.base_half_spread_ticks) and self.base_half_spread_ticks >= 0.5,
            "base_half_spread_ticks",
            ">= 0.5",
            self.base_half_spread_ticks,
        )
        check_positive(
            base_size=self.base_size,
            vol_ref=self.vol_ref,
            vol_cap=self.vol_cap,
            corr_halflife=self.corr_halflife,
            stress_enter=self.stress_enter,
            margin_ratio_limit=self.margin_ratio_limit,
        )
        check_non_negative(
            inventory_skew_ticks=self.inventory_skew_ticks,
            flow_skew_ticks=self.flow_skew_ticks,
            post_only_sigmas=self.post_only_sigmas,
            post_only_margin_ticks=self.post_only_margin_ticks,
            carry_skew_ticks=self.carry_skew_ticks,
        )
        for name in ("flow_size_tilt", "stress_size_factor", "tail_size_factor"):
            value = getattr(self, name)
            require(is_real(value) and 0.0 <= value <= 1.0, name, "in [0, 1]", value)
        weights = self.flow_weights
        weights_ok = len(weights) == 3 and all(is_real(w) and w >= 0 for w in weights)
        require(weights_ok, "flow_weights", "three weights >= 0 (fast, medium, slow)", weights)
        require(self.vol_cap > self.vol_ref, "vol_cap", f"> vol_ref ({self.vol_ref})", self.vol_cap)
        band = f"in (0, stress_enter={self.stress_enter})"
        exit_ok = is_real(self.stress_exit) and 0 < self.stress_exit < self.stress_enter
        require(exit_ok, "stress_exit", band, self.stress_exit)
        factor = self.stress_spread_factor
        require(is_real(factor) and factor >= 1.0, "stress_spread_factor", ">= 1", factor)
        corr = self.corr_threshold
        require(is_real(corr) and -1.0 <= corr <= 1.0, "corr_threshold", "in [-1, 1]", corr)
        count = self.corr_min_obs
        count_ok = (
            isinstance(count, int | np.integer) and not isinstance(count, bool) and count >= 2
        )
        require(count_ok, "corr_min_obs", "an integer >= 2", count)
        slippage = self.hedge_slippage_bp
        slippage_ok = slippage is None or (is_real(slippage) and slippage >= 0)
        require(slippage_ok, "hedge_slippage_bp", ">= 0 or None", slippage)
        thresholds, fractions = self.hedge_thresholds, self.hedge_fractions
        require(
            len(thresholds) == len(fractions)
            and all(is_real(t) and t >= 0 for t in thresholds)
            and all(a < b for a, b in itertools.pairwise(thresholds))
            and all(is_real(f) and 0 <= f <= 1 for f in fractions),
            "hedge_thresholds/hedge_fractions",
            "increasing thresholds >= 0 with one fraction in [0, 1] each",
            (thresholds, fractions),
        )


# --- the rules, compiled ---------------------------------------------------------------------


@nb.njit(cache=True, error_model="numpy")
def _clip(x: float, low: float, high: float) -> float:
    """``x`` held within ``[low, high]`` (``np.clip``'s semantics, NaN kept)."""
    if x < low:
        return low
    if x > high:
        return high
    return x


@nb.njit(cache=True, error_model="numpy")
def _clean(x: float, obs_clip: float) -> float:
    """A feature as the env gives it: NaN to 0, held within ``+/- obs_clip`` (float64)."""
    v = np.float64(x)
    if v != v:
        return 0.0
    return _clip(v, -obs_clip, obs_clip)


@nb.njit(cache=True, error_model="numpy")
def _flow_signal(
    fast: float,
    medium: float,
    slow: float,
    w_fast: float,
    w_medium: float,
    w_slow: float,
    weight_sum: float,
) -> float:
    """Rule 1, flow: the weighted multi-horizon aggression signal of one perp, in [-1, 1]
    (``weight_sum``: the weights' sum, at least 1e-12)."""
    signal = 0.0 + w_fast * fast + w_medium * medium + w_slow * slow  # from +0: no -0 signal
    return _clip(signal / weight_sum, -1.0, 1.0)


@nb.njit(cache=True, error_model="numpy")
def _size_volatility(fast: float, medium: float) -> float:
    """Rule 2: the volatility the size rule keys on."""
    return max(fast, medium)


@nb.njit(cache=True, error_model="numpy")
def _regime(stressed: bool, medium: float, slow: float, enter: float, exit_: float) -> bool:
    """Rule 4: the detector's next state, from the largest medium and slow volatility of the
    env's perps."""
    return (stressed or medium > enter) and not (medium < exit_ and slow < exit_)


@nb.njit(cache=True, error_model="numpy")
def _funding_forecast(time_to_funding: float, estimate: float, last: float) -> float:
    """Rule 6: the funding forecast (bp per interval), the running estimate weighted by the
    elapsed share of the interval."""
    elapsed = _clip(1.0 - time_to_funding, 0.0, 1.0)
    return elapsed * estimate + (1.0 - elapsed) * last


@nb.njit(cache=True, error_model="numpy")
def _carry_skew(funding_bp: float, slippage_bp: float, carry_skew_ticks: float) -> float:
    """Rule 6: the carry tilt (ticks) for a funding forecast, when it beats the slippage."""
    excess = abs(funding_bp) - slippage_bp
    strength = _clip(excess / max(slippage_bp, 1e-12), 0.0, 1.0)
    return -carry_skew_ticks * np.sign(funding_bp) * strength if excess > 0.0 else 0.0


@nb.njit(cache=True, error_model="numpy")
def _hedge_ladder(
    level: float, thresholds: NDArray[np.float64], fractions: NDArray[np.float64]
) -> float:
    """Rule 7: the hedge fraction at inventory level ``|q| / max_inventory``."""
    out = 0.0
    for j in range(thresholds.shape[0]):
        if level >= thresholds[j]:
            out = fractions[j]
    return out


@nb.njit(cache=True, error_model="numpy")
def _hedge_ladders(
    levels: NDArray[np.float64], thresholds: NDArray[np.float64], fractions: NDArray[np.float64]
) -> NDArray[np.float64]:
    out = np.empty_like(levels)
    for i in range(levels.shape[0]):
        out[i] = _hedge_ladder(levels[i], thresholds, fractions)
    return out


@nb.njit(cache=True, error_model="numpy")
def _advance_correlation(
    x: NDArray[np.float64],
    d: NDArray[np.float64],
    mean: NDArray[np.float64],
    cov: NDArray[np.float64],
    count: NDArray[np.int64],
    i: int,
    alpha: float,
    min_obs: int,
) -> float:
    """Rule 5: advance env ``i``'s EWMA (``mean``, ``cov``, ``count[i]``) by its perps' fast
    returns ``x``; the average pairwise correlation (NaN with one perp or before ``min_obs``
    observations). ``d``: scratch of ``x``'s size."""
    K = x.shape[0]
    if count[i] == 0:
        mean[:] = x
    for k in range(K):
        d[k] = x[k] - mean[k]
        mean[k] = mean[k] + alpha * d[k]
    keep = 1.0 - alpha
    for j in range(K):
        for k in range(K):
            cov[j, k] = keep * (cov[j, k] + alpha * d[j] * d[k])
    count[i] += 1
    if K < 2 or count[i] < min_obs:
        return np.nan
    total = 0.0
    for j in range(K):
        for k in range(j + 1, K):
            denom = math.sqrt(max(cov[j, j], 0.0)) * math.sqrt(max(cov[k, k], 0.0))
            corr = cov[j, k] / denom if denom > 1e-12 else 0.0
            total = corr if j == 0 and k == 1 else total + corr
    return total / (K * (K - 1) // 2)


@nb.njit(cache=True, error_model="numpy")
def _advance_correlations(
    x: NDArray[np.float64],
    mean: NDArray[np.float64],
    cov: NDArray[np.float64],
    count: NDArray[np.int64],
    alpha: float,
    min_obs: int,
) -> NDArray[np.float64]:
    out = np.empty(x.shape[0])
    d = np.empty(x.shape[1])
    for i in range(x.shape[0]):
        out[i] = _advance_correlation(x[i], d, mean[i], cov[i], count, i, alpha, min_obs)
    return out


def _elementwise(rule: Any, otype: type = np.float64) -> Any:
    """A compiled rule of numbers applied elementwise to numpy arrays (broadcast together)."""
    return np.vectorize(rule, otypes=[otype])


_CONSTANTS = np.dtype(
    [
        ("num_assets", "i8"),
        ("obs_clip", "f8"),
        ("w_fast", "f8"),
        ("w_medium", "f8"),
        ("w_slow", "f8"),
        ("weight_sum", "f8"),
        ("flow_skew_ticks", "f8"),
        ("inventory_skew_ticks", "f8"),
        ("flow_size_tilt", "f8"),
        ("base_size", "f8"),
        ("vol_ref", "f8"),
        ("vol_cap", "f8"),
        ("base_half_spread_ticks", "f8"),
        ("post_only_sigmas", "f8"),
        ("post_only_margin_ticks", "f8"),
        ("sqrt_quote_life", "f8"),
        ("sqrt_latency", "f8"),
        ("tick_bp", "f8"),
        ("stress_enter", "f8"),
        ("stress_exit", "f8"),
        ("stress_spread_factor", "f8"),
        ("stress_size_factor", "f8"),
        ("corr_alpha", "f8"),
        ("corr_threshold", "f8"),
        ("corr_min_obs", "i8"),
        ("margin_ratio_limit", "f8"),
        ("tail_size_factor", "f8"),
        ("carry_skew_ticks", "f8"),
        ("hedge_slippage_bp", "f8"),
        ("max_skew_ticks", "f8"),
        ("max_half_spread_ticks", "f8"),
        ("max_quote_size", "f8"),
    ],
    align=True,
)
"""The numbers the compiled rules read: the settings and market parameters they need, and
values derived from them once (one dtype object, so numba types every policy's record alike)."""


@nb.njit(cache=True, error_model="numpy")
def _quote(
    obs: NDArray[np.floating],
    i: int,
    base: int,
    c: Any,
    stressed: bool,
    tail: bool,
    time_to_funding: float,
    thresholds: NDArray[np.float64],
    fractions: NDArray[np.float64],
) -> tuple[float, float, float, float, float]:
    """The action block of the perp whose features start at column ``base`` of env ``i``."""
    clip = c.obs_clip
    q = _clean(obs[i, base + _INVENTORY], clip)
    flow = _flow_signal(
        _clean(obs[i, base + _FLOW_FAST], clip),
        _clean(obs[i, base + _FLOW_MEDIUM], clip),
        _clean(obs[i, base + _FLOW_SLOW], clip),
        c.w_fast,
        c.w_medium,
        c.w_slow,
        c.weight_sum,
    )
    vol = _size_volatility(
        _clean(obs[i, base + _VOL_FAST], clip), _clean(obs[i, base + _VOL_MEDIUM], clip)
    )
    vol = max(vol, 0.0)
    funding = _funding_forecast(
        time_to_funding,
        _clean(obs[i, base + _FUNDING], clip),
        _clean(obs[i, base + _LAST_FUNDING], clip),
    )
    skew = (
        c.flow_skew_ticks * flow
        - c.inventory_skew_ticks * q
        + _carry_skew(funding, c.hedge_slippage_bp, c.carry_skew_ticks)
    )

    # Size: volatility-scaled, none above the cap, cut when stressed.
    size = c.base_size * min(1.0, c.vol_ref / max(vol, 1e-12))
    if vol > c.vol_cap:
        size = 0.0
    if stressed:
        size = size * c.stress_size_factor
    bid = size * (1.0 - c.flow_size_tilt * max(-flow, 0.0))
    ask = size * (1.0 - c.flow_size_tilt * max(flow, 0.0))
    # Tail-risk override: only the side that reduces |q| keeps its size.
    cut = c.tail_size_factor if tail else 1.0
    if not q < 0.0:
        bid = bid * cut
    if not q > 0.0:
        ask = ask * cut

    # Half-spread: post-only bias for volatility above the reference, wider when stressed,
    # and never less than |skew| plus a passive margin.
    excess_vol = max(vol - c.vol_ref, 0.0)
    half = (
        c.base_half_spread_ticks + c.post_only_sigmas * excess_vol * c.sqrt_quote_life / c.tick_bp
    )
    if stressed:
        half = half * c.stress_spread_factor
    margin_ticks = c.post_only_margin_ticks + vol * c.sqrt_latency / c.tick_bp
    # The skew may not push a quote past the mid: bound it by what the half-spread allows.
    max_skew = max(min(c.max_skew_ticks, c.max_half_spread_ticks - margin_ticks), 0.0)
    skew = _clip(skew, -max_skew, max_skew)
    half = max(half, abs(skew) + margin_ticks)

    hedge = _hedge_ladder(abs(q), thresholds, fractions)
    return encode_block(
        skew, half, bid, ask, hedge, c.max_skew_ticks, c.max_half_spread_ticks, c.max_quote_size
    )


@nb.njit(cache=True, error_model="numpy")
def _act(
    obs: NDArray[np.floating],
    constants: NDArray[np.void],
    thresholds: NDArray[np.float64],
    fractions: NDArray[np.float64],
    stressed: NDArray[np.bool_],
    corr_mean: NDArray[np.float64],
    corr_cov: NDArray[np.float64],
    corr_count: NDArray[np.int64],
    last_time: NDArray[np.float64],
    out: NDArray[np.float32],
) -> None:
    """Every rule over the batch: advance each env's state and write its actions to ``out``."""
    c = constants[0]
    K = c.num_assets
    clip = c.obs_clip
    account = K * ASSET_FEATURES
    returns = np.empty(K)
    scratch = np.empty(K)
    for i in range(obs.shape[0]):
        # A time feature that goes backwards is a new episode (vector-env autoreset).
        time = _clean(obs[i, _TIME], clip)
        if time < last_time[i] - 1e-9:
            stressed[i] = False
            corr_mean[i] = 0.0
            corr_cov[i] = 0.0
            corr_count[i] = 0
        last_time[i] = time

        medium = -np.inf
        slow = -np.inf
        for k in range(K):
            base = k * ASSET_FEATURES
            medium = max(medium, _clean(obs[i, base + _VOL_MEDIUM], clip))
            slow = max(slow, _clean(obs[i, base + _VOL_SLOW], clip))
            returns[k] = _clean(obs[i, base + _RETURN_FAST], clip)
        stressed[i] = _regime(stressed[i], medium, slow, c.stress_enter, c.stress_exit)
        corr = _advance_correlation(
            returns,
            scratch,
            corr_mean[i],
            corr_cov[i],
            corr_count,
            i,
            c.corr_alpha,
            c.corr_min_obs,
        )
        margin = _clean(obs[i, account + _MARGIN_RATIO], clip)
        tail = corr > c.corr_threshold or margin > c.margin_ratio_limit  # False for NaN
        time_to_funding = _clean(obs[i, account + _TIME_TO_FUNDING], clip)
        for k in range(K):
            block = _quote(
                obs,
                i,
                k * ASSET_FEATURES,
                c,
                stressed[i],
                tail,
                time_to_funding,
                thresholds,
                fractions,
            )
            col = k * _ACTION_SIZE
            for j in range(_ACTION_SIZE):
                out[i, col + j] = block[j]


@register("adaptive")
class AdaptivePolicy:
    """Adaptive market maker: flow and inventory skew, volatility-scaled size, post-only
    bias, a calm/stressed regime detector, a correlation and margin tail-risk override, a
    funding carry tilt and a laddered hedge (see the module docstring for the rules).

    ``settings`` (default :class:`AdaptiveSettings`) with ``changes`` applied on top:
    ``AdaptivePolicy(params, base_size=2.0)`` and
    ``AdaptivePolicy(params, AdaptiveSettings(base_size=2.0))`` are the same policy.
    """

    settings_type = AdaptiveSettings
    """The registry reads the settings (names, defaults, types) from this dataclass."""

    def __init__(
        self, params: MarketParams, settings: AdaptiveSettings | None = None, **changes: Any
    ) -> None:
        base = AdaptiveSettings() if settings is None else settings
        self.settings = dataclasses.replace(base, **changes) if changes else base
        s = self.settings
        self.params = params
        self.hedge_slippage_bp = (
            expected_hedge_slippage_bp(params, s.base_size)
            if s.hedge_slippage_bp is None
            else float(s.hedge_slippage_bp)
        )
        self.num_assets = params.num_assets
        # One tick in bp of the initial price: converts bp moves into ticks.
        self.tick_bp = 1e4 * params.tick_size / params.initial_price
        self.quote_life = params.decision_interval + params.latency_cap_seconds
        self.corr_alpha = 1.0 - 0.5 ** (1.0 / self.settings.corr_halflife)
        self._thresholds = np.array(s.hedge_thresholds, dtype=np.float64)
        self._fractions = np.array(s.hedge_fractions, dtype=np.float64)
        self._constants = self._pack_constants()
        self._num_envs = 0
        self._allocate(0)

    def _pack_constants(self) -> NDArray[np.void]:
        """The record of :data:`_CONSTANTS`: settings by name, and the derived values."""
        s, P = self.settings, self.params
        w_fast, w_medium, w_slow = s.flow_weights
        derived = {
            "num_assets": self.num_assets,
            "obs_clip": P.obs_clip,
            "w_fast": w_fast,
            "w_medium": w_medium,
            "w_slow": w_slow,
            "weight_sum": max(sum(s.flow_weights), 1e-12),
            "sqrt_quote_life": math.sqrt(self.quote_life),
            "sqrt_latency": math.sqrt(P.latency_cap_seconds),
            "tick_bp": self.tick_bp,
            "corr_alpha": self.corr_alpha,
            "hedge_slippage_bp": self.hedge_slippage_bp,
            "max_skew_ticks": P.max_skew_ticks,
            "max_half_spread_ticks": P.max_half_spread_ticks,
            "max_quote_size": P.max_quote_size,
        }
        c = np.zeros(1, dtype=_CONSTANTS)
        for name in _CONSTANTS.fields or {}:
            c[name] = derived[name] if name in derived else getattr(s, name)
        return c

    # --- state ------------------------------------------------------------------------------
    def _allocate(self, num_envs: int) -> None:
        K = self.num_assets
        self._num_envs = num_envs
        self.stressed = np.zeros(num_envs, dtype=np.bool_)
        self.corr_mean = np.zeros((num_envs, K))
        self.corr_cov = np.zeros((num_envs, K, K))
        self.corr_count = np.zeros(num_envs, dtype=np.int64)
        self.last_time = np.full(num_envs, -np.inf)

    def _fit_batch(self, num_envs: int) -> None:
        """Fresh state when the batch size changes."""
        if num_envs != self._num_envs:
            self._allocate(num_envs)

    def reset(self, mask: NDArray[np.bool_] | None = None) -> None:
        """Clear the regime flag and the correlation EWMA of every env (or of those in ``mask``)."""
        if mask is None:
            self._allocate(self._num_envs)
            return
        m = np.asarray(mask, dtype=np.bool_)
        if m.shape != (self._num_envs,):
            if self._num_envs == 0:
                return  # nothing seen yet: nothing to clear
            raise ValueError(f"mask has shape {m.shape}, expected ({self._num_envs},)")
        self.stressed[m] = False
        self.corr_mean[m] = 0.0
        self.corr_cov[m] = 0.0
        self.corr_count[m] = 0
        self.last_time[m] = -np.inf

    # --- rules, over numpy arrays (for inspection: act runs them compiled) --------------------
    def _asset(self, obs: NDArray[np.float64], name: int) -> NDArray[np.float64]:
        """Feature ``name`` of every perp, shape (num_envs, K)."""
        return obs[:, name : self.num_assets * ASSET_FEATURES : ASSET_FEATURES]

    def flow_signal(self, obs: NDArray[np.float64]) -> NDArray[np.float64]:
        """Weighted multi-horizon taker-aggression signal per perp, in [-1, 1]."""
        w = self.settings.flow_weights
        features = (self._asset(obs, j) for j in (_FLOW_FAST, _FLOW_MEDIUM, _FLOW_SLOW))
        return _elementwise(_flow_signal)(*features, *w, max(sum(w), 1e-12))

    def size_volatility(self, obs: NDArray[np.float64]) -> NDArray[np.float64]:
        """Volatility the size rule uses: ``max(volatility_fast, volatility_medium)`` per perp."""
        fast, medium = self._asset(obs, _VOL_FAST), self._asset(obs, _VOL_MEDIUM)
        return _elementwise(_size_volatility)(fast, medium)

    def update_regime(self, obs: NDArray[np.float64]) -> NDArray[np.bool_]:
        """Advance the hysteresis detector; True where an env is (now) stressed."""
        self._fit_batch(obs.shape[0])
        medium = self._asset(obs, _VOL_MEDIUM).max(axis=1)
        slow = self._asset(obs, _VOL_SLOW).max(axis=1)
        s = self.settings
        regime = _elementwise(_regime, np.bool_)
        self.stressed[:] = regime(self.stressed, medium, slow, s.stress_enter, s.stress_exit)
        return self.stressed

    def update_correlation(self, obs: NDArray[np.float64]) -> NDArray[np.float64]:
        """Advance the EWMA of the perps' fast returns; average pairwise correlation per env
        (NaN with one perp or before ``corr_min_obs`` observations)."""
        self._fit_batch(obs.shape[0])
        returns = np.ascontiguousarray(self._asset(obs, _RETURN_FAST), dtype=np.float64)
        return _advance_correlations(
            returns,
            self.corr_mean,
            self.corr_cov,
            self.corr_count,
            self.corr_alpha,
            self.settings.corr_min_obs,
        )

    def funding_forecast(self, obs: NDArray[np.float64]) -> NDArray[np.float64]:
        """Funding forecast per perp (bp per interval): the running estimate weighted by the
        elapsed share of the interval, the last realised rate for the rest."""
        ttf = obs[:, self.num_assets * ASSET_FEATURES + _TIME_TO_FUNDING]
        estimate, last = self._asset(obs, _FUNDING), self._asset(obs, _LAST_FUNDING)
        return _elementwise(_funding_forecast)(ttf[:, None], estimate, last)

    def carry_skew(self, funding_bp: NDArray[np.float64]) -> NDArray[np.float64]:
        """Skew (ticks) toward the side that receives funding, when it beats hedge slippage."""
        carry = _elementwise(_carry_skew)
        return carry(funding_bp, self.hedge_slippage_bp, self.settings.carry_skew_ticks)

    def hedge_fraction(self, inventory_fraction: NDArray[np.float64]) -> NDArray[np.float64]:
        """The ladder: hedge fraction for ``|q| / max_inventory``."""
        level = np.abs(np.asarray(inventory_fraction, dtype=np.float64))
        out = _hedge_ladders(level.ravel(), self._thresholds, self._fractions)
        return out.reshape(level.shape)

    # --- policy -----------------------------------------------------------------------------
    def act(self, obs: NDArray[np.float32]) -> NDArray[np.float32]:
        """Actions for a batch of PerpMM observations: one block of five per perp.

        Features are read as the env gives them (NaN as 0, clipped to ``+/- obs_clip``)."""
        o = np.asarray(obs)
        if o.dtype != np.float32 and o.dtype != np.float64:
            o = np.asarray(o, dtype=np.float64)
        if o.ndim != 2 or o.shape[1] < self.num_assets * ASSET_FEATURES + len(ACCOUNT_OBS_NAMES):
            raise ValueError(f"observations of shape {o.shape} do not fit {self.num_assets} perps")
        if not o.flags.c_contiguous:
            o = np.ascontiguousarray(o)
        self._fit_batch(o.shape[0])
        out = np.empty((o.shape[0], self.num_assets * _ACTION_SIZE), dtype=np.float32)
        _act(
            o,
            self._constants,
            self._thresholds,
            self._fractions,
            self.stressed,
            self.corr_mean,
            self.corr_cov,
            self.corr_count,
            self.last_time,
            out,
        )
        return out
