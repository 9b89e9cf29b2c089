"""The practitioner's adaptive quoting baseline for ``mmgym/PerpMM-v0``.

One rule per failure mode named in the design notes, each a few lines of numpy over the batch
(one loop over the few perps at most), evaluated in this order for every perp:

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
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from agents.baselines.checks import check_non_negative, check_positive, is_real, require
from agents.baselines.registry import register
from mmgym.core.orders import encode_action
from mmgym.core.params import SECONDS_PER_YEAR, MarketParams
from mmgym.features.observation import ACCOUNT_OBS_NAMES, ASSET_FEATURES, OBS_NAMES

_INVENTORY = OBS_NAMES.index("inventory")
_RETURN_FAST = OBS_NAMES.index("return_fast")
_VOL_FAST = OBS_NAMES.index("volatility_fast")
_VOL_MEDIUM = OBS_NAMES.index("volatility_medium")
_VOL_SLOW = OBS_NAMES.index("volatility_slow")
_FLOW = tuple(OBS_NAMES.index(f"flow_imbalance_{h}") for h in ("fast", "medium", "slow"))
_TIME = OBS_NAMES.index("time")
_FUNDING = OBS_NAMES.index("funding_estimate")
_LAST_FUNDING = OBS_NAMES.index("last_funding")
_MARGIN_RATIO = ACCOUNT_OBS_NAMES.index("margin_ratio")
_TIME_TO_FUNDING = ACCOUNT_OBS_NAMES.index("time_to_funding")
_SECONDS_PER_DAY = 86400.0
_VOLATILE = 1  # regime index of the volatile regime in MarketParams' triples


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
        self._num_envs = 0
        self._allocate(0)

    # --- state ------------------------------------------------------------------------------
    def _allocate(self, num_envs: int) -> None:
        K = self.num_assets
        self._num_envs = num_envs
        self.stressed = np.zeros(num_envs, dtype=np.bool_)
        self.corr_mean = np.zeros((num_envs, K))
        self.corr_cov = np.zeros((num_envs, K, K))
        self.corr_count = np.zeros(num_envs, dtype=np.int64)
        self.last_time = np.full(num_envs, -np.inf)

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

    # --- rules ------------------------------------------------------------------------------
    def _asset(self, obs: NDArray[np.float64], name: int) -> NDArray[np.float64]:
        """Feature ``name`` of every perp, shape (num_envs, K)."""
        return obs[:, name : self.num_assets * ASSET_FEATURES : ASSET_FEATURES]

    def flow_signal(self, obs: NDArray[np.float64]) -> NDArray[np.float64]:
        """Weighted multi-horizon taker-aggression signal per perp, in [-1, 1]."""
        signal = sum(
            w * self._asset(obs, j) for w, j in zip(self.settings.flow_weights, _FLOW, strict=True)
        )
        return np.clip(np.asarray(signal) / max(sum(self.settings.flow_weights), 1e-12), -1.0, 1.0)

    def size_volatility(self, obs: NDArray[np.float64]) -> NDArray[np.float64]:
        """Volatility the size rule uses: ``max(volatility_fast, volatility_medium)`` per perp."""
        return np.maximum(self._asset(obs, _VOL_FAST), self._asset(obs, _VOL_MEDIUM))

    def update_regime(self, obs: NDArray[np.float64]) -> NDArray[np.bool_]:
        """Advance the hysteresis detector; True where an env is (now) stressed."""
        medium = self._asset(obs, _VOL_MEDIUM).max(axis=1)
        slow = self._asset(obs, _VOL_SLOW).max(axis=1)
        enter = medium > self.settings.stress_enter
        leave = (medium < self.settings.stress_exit) & (slow < self.settings.stress_exit)
        self.stressed = (self.stressed | enter) & ~leave
        return self.stressed

    def update_correlation(self, obs: NDArray[np.float64]) -> NDArray[np.float64]:
        """Advance the EWMA of the perps' fast returns; average pairwise correlation per env
        (NaN with one perp or before ``corr_min_obs`` observations)."""
        K = self.num_assets
        x = self._asset(obs, _RETURN_FAST)
        first = self.corr_count == 0
        self.corr_mean[first] = x[first]
        a = self.corr_alpha
        d = x - self.corr_mean
        self.corr_mean += a * d
        self.corr_cov = (1.0 - a) * (self.corr_cov + a * d[:, :, None] * d[:, None, :])
        self.corr_count += 1
        if K < 2:
            return np.full(obs.shape[0], np.nan)
        var = np.einsum("nkk->nk", self.corr_cov)
        sd = np.sqrt(np.maximum(var, 0.0))
        denom = sd[:, :, None] * sd[:, None, :]
        corr = np.divide(self.corr_cov, denom, out=np.zeros_like(denom), where=denom > 1e-12)
        upper = np.triu_indices(K, k=1)
        average = corr[:, upper[0], upper[1]].mean(axis=1)
        return np.where(self.corr_count >= self.settings.corr_min_obs, average, np.nan)

    def funding_forecast(self, obs: NDArray[np.float64]) -> NDArray[np.float64]:
        """Funding forecast per perp (bp per interval): the running estimate weighted by the
        elapsed share of the interval, the last realised rate for the rest."""
        ttf = obs[:, self.num_assets * ASSET_FEATURES + _TIME_TO_FUNDING]
        elapsed = np.clip(1.0 - ttf, 0.0, 1.0)[:, None]
        return elapsed * self._asset(obs, _FUNDING) + (1.0 - elapsed) * self._asset(
            obs, _LAST_FUNDING
        )

    def carry_skew(self, funding_bp: NDArray[np.float64]) -> NDArray[np.float64]:
        """Skew (ticks) toward the side that receives funding, when it beats hedge slippage."""
        c = self.hedge_slippage_bp
        excess = np.abs(funding_bp) - c
        strength = np.clip(excess / max(c, 1e-12), 0.0, 1.0)
        return np.where(
            excess > 0.0, -self.settings.carry_skew_ticks * np.sign(funding_bp) * strength, 0.0
        )

    def hedge_fraction(self, inventory_fraction: NDArray[np.float64]) -> NDArray[np.float64]:
        """The ladder: hedge fraction for ``|q| / max_inventory``."""
        level = np.abs(inventory_fraction)
        out = np.zeros_like(level)
        for threshold, fraction in zip(
            self.settings.hedge_thresholds, self.settings.hedge_fractions, strict=True
        ):
            out = np.where(level >= threshold, fraction, out)
        return out

    # --- policy -----------------------------------------------------------------------------
    def act(self, obs: NDArray[np.float32]) -> NDArray[np.float32]:
        """Actions for a batch of PerpMM observations: one block of five per perp."""
        # The env clips features to +/- obs_clip; do the same to anything else (NaN -> 0).
        clip = self.params.obs_clip
        o = np.asarray(obs, dtype=np.float64)
        o = np.clip(np.nan_to_num(o, nan=0.0, posinf=clip, neginf=-clip), -clip, clip)
        if o.ndim != 2 or o.shape[1] < self.num_assets * ASSET_FEATURES + len(ACCOUNT_OBS_NAMES):
            raise ValueError(f"observations of shape {o.shape} do not fit {self.num_assets} perps")
        n = o.shape[0]
        if n != self._num_envs:
            self._allocate(n)
        # A time feature that goes backwards is a new episode (vector-env autoreset).
        time = o[:, _TIME]
        self.reset(time < self.last_time - 1e-9)
        self.last_time = time.copy()

        stressed = self.update_regime(o)[:, None]
        corr = self.update_correlation(o)
        margin = o[:, self.num_assets * ASSET_FEATURES + _MARGIN_RATIO]
        tail = (np.nan_to_num(corr, nan=-np.inf) > self.settings.corr_threshold) | (
            margin > self.settings.margin_ratio_limit
        )

        q = self._asset(o, _INVENTORY)
        flow = self.flow_signal(o)
        vol = np.maximum(self.size_volatility(o), 0.0)
        skew = (
            self.settings.flow_skew_ticks * flow
            - self.settings.inventory_skew_ticks * q
            + self.carry_skew(self.funding_forecast(o))
        )

        # Size: volatility-scaled, none above the cap, cut when stressed.
        size = self.settings.base_size * np.minimum(
            1.0, self.settings.vol_ref / np.maximum(vol, 1e-12)
        )
        size = np.where(vol > self.settings.vol_cap, 0.0, size)
        size = np.where(stressed, size * self.settings.stress_size_factor, size)
        bid = size * (1.0 - self.settings.flow_size_tilt * np.maximum(-flow, 0.0))
        ask = size * (1.0 - self.settings.flow_size_tilt * np.maximum(flow, 0.0))
        # Tail-risk override: only the side that reduces |q| keeps its size.
        cut = np.where(tail, self.settings.tail_size_factor, 1.0)[:, None]
        bid = np.where(q < 0.0, bid, bid * cut)
        ask = np.where(q > 0.0, ask, ask * cut)

        # Half-spread: post-only bias for volatility above the reference, wider when stressed,
        # and never less than |skew| plus a passive margin.
        excess_vol = np.maximum(vol - self.settings.vol_ref, 0.0)
        half = (
            self.settings.base_half_spread_ticks
            + self.settings.post_only_sigmas
            * excess_vol
            * math.sqrt(self.quote_life)
            / self.tick_bp
        )
        half = np.where(stressed, half * self.settings.stress_spread_factor, half)
        margin_ticks = (
            self.settings.post_only_margin_ticks
            + vol * math.sqrt(self.params.latency_cap_seconds) / self.tick_bp
        )
        # The skew may not push a quote past the mid: bound it by what the half-spread allows.
        max_skew = np.maximum(
            np.minimum(
                self.params.max_skew_ticks, self.params.max_half_spread_ticks - margin_ticks
            ),
            0.0,
        )
        skew = np.clip(skew, -max_skew, max_skew)
        half = np.maximum(half, np.abs(skew) + margin_ticks)

        hedge = self.hedge_fraction(q)
        blocks = [
            encode_action(self.params, skew[:, k], half[:, k], bid[:, k], ask[:, k], hedge[:, k])
            for k in range(self.num_assets)
        ]
        return np.concatenate(blocks, axis=1)
