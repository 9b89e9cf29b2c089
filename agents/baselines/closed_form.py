"""Closed-form market-making quotes and the policies built on them, for both mmgym envs.

Three models, all with a mid that is a martingale with volatility ``sigma`` and fills of one
unit at Poisson intensity ``A exp(-k delta)`` for a quote ``delta`` away from the mid:

- **Avellaneda & Stoikov (2008)**, exponential utility with risk aversion ``gamma`` over a
  horizon ``T``: reservation price ``s - q gamma sigma^2 (T - t)`` and total spread
  ``gamma sigma^2 (T - t) + (2 / gamma) ln(1 + gamma / k)`` (eqs. 29-30), see
  :mod:`agents.baselines.avellaneda_stoikov`.
- **Gueant, Lehalle & Fernandez-Tapia (2013)**, the asymptotic (long-horizon) approximation of
  the same problem: with ``c = sqrt(sigma^2 gamma / (2 k A) (1 + gamma/k)^(1 + k/gamma))``,
  ``delta_bid = (1/gamma) ln(1 + gamma/k) + (2q + 1)/2 c`` and
  ``delta_ask = (1/gamma) ln(1 + gamma/k) - (2q - 1)/2 c`` (time-independent).
- **Cartea, Jaimungal & Penalva (2015, ch. 10)**, the exact optimum of
  ``E[X_T + q_T (S_T - alpha q_T) - phi int q_t^2 dt]`` with inventory limits ``|q| <= Q``.
  The value is ``x + q s + h(t, q)`` with ``h = (1/k) ln omega`` and
  ``omega(t) = exp(M (T - t)) z``, ``z_q = exp(-alpha k q^2)``; ``M`` is tridiagonal over
  ``q = -Q..Q`` with diagonal ``-phi k q^2`` and off-diagonals ``A / e`` (the bid term couples
  ``q`` to ``q + 1``, the ask term to ``q - 1``; both vanish beyond the limits). The depths are
  ``delta_bid = 1/k + (1/k) ln(omega_q / omega_{q+1})`` (no bid at ``q = Q``) and
  ``delta_ask = 1/k + (1/k) ln(omega_q / omega_{q-1})`` (no ask at ``q = -Q``).

:func:`cartea_jaimungal_table` tabulates ``h`` and the depths once per parameter set over a
uniform time grid from the eigendecomposition of ``M`` (symmetric here, since both sides have
the same intensity), in one matrix product for all times. Where that loses relative accuracy
(``omega`` spans more than about 1e-8 of float64 precision, e.g. a large ``alpha k Q^2`` close to
``T``), the affected times are recomputed by a backward recursion with a one-step propagator
``exp(M dt)`` built from non-negative terms only (``M + c I >= 0``: series and squarings without
cancellation), which keeps every component to full relative precision.

Policies for ``mmgym/AvellanedaStoikov-v0`` (observation ``(q, t)``, action the depths
``(delta_bid, delta_ask)``): :class:`GLFTPolicy` and :class:`CarteaJaimungalPolicy`.
Registered baselines for ``mmgym/PerpMM-v0``: ``"avellaneda_stoikov"``, ``"glft"`` and
``"cartea_jaimungal"`` (:class:`PerpAvellanedaStoikov`, :class:`PerpGLFT`,
:class:`PerpCarteaJaimungal`). These read each perp's inventory and elapsed-time features,
compute the model's depths in price units from the mid and turn them into one action block per
perp (see :class:`ModelQuoting`). Their model parameters default to
:func:`agents.baselines.calibration.calibrate`. The closed forms are optimal only under the
models' dynamics. PerpMM departs from them: queues, tick rounding, latency, Hawkes flow, partial
fills, informed takers, jumps and regimes. In PerpMM they are reasonable, interpretable
baselines, not optima.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from agents.baselines.calibration import calibrate, default_lot
from agents.baselines.registry import register
from mmgym.core.orders import encode_action
from mmgym.core.params import MarketParams
from mmgym.features.observation import ASSET_FEATURES, OBS_NAMES

F64 = NDArray[np.float64]
Depths = tuple[F64, F64]
"""Depths ``(delta_bid, delta_ask)`` from the mid."""

_INVENTORY = OBS_NAMES.index("inventory")
_TIME = OBS_NAMES.index("time")
_EPS = float(np.finfo(np.float64).eps)
_RELATIVE_ACCURACY = 1e-8
"""Largest relative roundoff accepted from the eigendecomposition before recomputing."""


def _check_positive(**values: float) -> None:
    _check_numbers(values, lambda v: v > 0, "> 0")


def _check_non_negative(**values: float) -> None:
    _check_numbers(values, lambda v: v >= 0, ">= 0")


def _check_numbers(values: dict[str, float], holds: Callable[[float], bool], bound: str) -> None:
    """Raise unless every value is a finite real number (numpy scalars included, booleans not)
    for which ``holds`` is true; the message names the first that is not."""
    for name, value in values.items():
        real = isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)
        if not (real and math.isfinite(value) and holds(value)):
            raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")


# --- Avellaneda-Stoikov and GLFT ---------------------------------------------------------------


def avellaneda_stoikov_depths(
    q: ArrayLike, tau: ArrayLike, gamma: float, sigma: float, k: float
) -> Depths:
    """AS (2008) depths from the mid: ``delta_bid = half + q gamma sigma^2 tau``,
    ``delta_ask = half - q gamma sigma^2 tau`` with ``half = gamma sigma^2 tau / 2 +
    (1/gamma) ln(1 + gamma/k)`` and ``tau = T - t``.
    """
    _check_positive(gamma=gamma, sigma=sigma, k=k)
    q = np.asarray(q, dtype=np.float64)
    tau = np.asarray(tau, dtype=np.float64)
    skew = q * gamma * sigma**2 * tau
    half = 0.5 * gamma * sigma**2 * tau + math.log1p(gamma / k) / gamma
    return half + skew, half - skew


def glft_constant(gamma: float, sigma: float, A: float, k: float) -> float:
    """``c = sqrt(sigma^2 gamma / (2 k A) (1 + gamma/k)^(1 + k/gamma))``: the GLFT inventory
    slope, the change of each depth per unit of inventory (price units)."""
    _check_positive(gamma=gamma, sigma=sigma, A=A, k=k)
    log_power = (1.0 + k / gamma) * math.log1p(gamma / k)
    return math.sqrt(sigma**2 * gamma / (2.0 * k * A) * math.exp(log_power))


def glft_depths(q: ArrayLike, gamma: float, sigma: float, A: float, k: float) -> Depths:
    """GLFT (2013) asymptotic depths from the mid:
    ``delta_bid = (1/gamma) ln(1 + gamma/k) + (2q + 1)/2 c`` and
    ``delta_ask = (1/gamma) ln(1 + gamma/k) - (2q - 1)/2 c``.
    """
    c = glft_constant(gamma, sigma, A, k)
    q = np.asarray(q, dtype=np.float64)
    base = math.log1p(gamma / k) / gamma
    return base + 0.5 * (2.0 * q + 1.0) * c, base - 0.5 * (2.0 * q - 1.0) * c


# --- Cartea-Jaimungal(-Penalva) ----------------------------------------------------------------


def cj_matrix(phi: float, A: float, k: float, Q: int) -> F64:
    """The tridiagonal ``M`` over ``q = -Q..Q``: diagonal ``-phi k q^2``, off-diagonals ``A/e``.

    Row ``q`` couples to ``q + 1`` through the bid (a bid fill raises the inventory) and to
    ``q - 1`` through the ask; the rows at ``+Q`` and ``-Q`` lack the term beyond the limit.
    """
    q = np.arange(-Q, Q + 1, dtype=np.float64)
    M = np.diag(-phi * k * q**2)
    off = A / math.e
    idx = np.arange(2 * Q)
    M[idx, idx + 1] = off
    M[idx + 1, idx] = off
    return M


def _positive_propagator(M: F64, dt: float) -> tuple[F64, float]:
    """``exp(M dt) = exp(log_scale) P`` with ``max P = 1``, from non-negative terms only.

    ``M + c I >= 0`` entrywise (``M`` is a generator plus a non-positive diagonal), so the Taylor
    series of ``exp((M + c I) dt / 2^s)`` and the ``s`` squarings never subtract: each entry is
    accurate to a few ulps relative to itself, however small.
    """
    c = float(max(0.0, -np.min(np.diag(M))))
    B = M + c * np.eye(M.shape[0])
    norm = float(np.abs(B).sum(axis=1).max()) * dt
    squarings = max(0, math.ceil(math.log2(max(norm, 1e-300) / 0.25))) if norm > 0.25 else 0
    X = B * (dt / 2.0**squarings)
    P = np.eye(M.shape[0])
    term = np.eye(M.shape[0])
    size = M.shape[0]
    for n in range(1, size + 60):
        term = term @ X / n
        P = P + term
        # Every entry to full relative precision: an entry |i - j| off the diagonal first
        # appears at order |i - j|, so go at least that far.
        if n >= size and np.all(term <= 1e-3 * _EPS * P):
            break
    log_scale = -c * dt / 2.0**squarings
    for _ in range(squarings):
        top = float(P.max())
        P = (P / top) @ (P / top)
        log_scale = 2.0 * (log_scale + math.log(top))
    top = float(P.max())
    return P / top, log_scale + math.log(top)


def cj_log_omega(phi: float, alpha: float, A: float, k: float, Q: int, tau: ArrayLike) -> F64:
    """``ln omega`` at times to maturity ``tau`` (shape ``tau.shape + (2Q + 1,)``).

    ``omega(tau) = V diag(exp(mu tau)) V^T z`` from the eigendecomposition ``M = V diag(mu) V^T``,
    with ``exp(mu_max tau)`` factored out so that long horizons do not overflow. Entries whose
    roundoff bound exceeds 1e-8 relative are recomputed by :func:`_positive_propagator`
    (which requires ``tau`` to be a uniform grid starting at 0, as in the tables).
    """
    _check_non_negative(phi=phi, alpha=alpha)
    _check_positive(A=A, k=k)
    if not (isinstance(Q, int | np.integer) and Q >= 1):
        raise ValueError(f"Q must be an integer >= 1, got {Q!r}")
    tau = np.asarray(tau, dtype=np.float64)
    flat = tau.reshape(-1)
    M = cj_matrix(phi, A, k, int(Q))
    q = np.arange(-Q, Q + 1, dtype=np.float64)
    log_z = -alpha * k * q**2
    z = np.exp(log_z - log_z.max())
    mu, V = np.linalg.eigh(M)
    coef = V.T @ z
    growth = np.exp(np.outer(mu - mu.max(), flat))  # (modes, times), in (0, 1]
    omega = V @ (coef[:, None] * growth)  # (states, times)
    bound = np.abs(V) @ (np.abs(coef)[:, None] * growth)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_omega = np.log(omega) + mu.max() * flat[None, :] + log_z.max()
        bad = ~(omega > 0) | (bound * (4 * M.shape[0]) * _EPS > _RELATIVE_ACCURACY * omega)
    log_omega = log_omega.T  # (times, states)
    bad_times = np.flatnonzero(bad.any(axis=0))
    if bad_times.size:
        log_omega[bad_times] = _log_omega_by_recursion(M, log_z, flat, bad_times)
    return log_omega.reshape((*tau.shape, M.shape[0]))


def _log_omega_by_recursion(
    M: F64,
    log_z: F64,
    tau: F64,
    wanted: NDArray[np.intp],
) -> F64:
    """``ln omega`` at ``tau[wanted]`` stepping ``omega <- exp(M dt) omega`` from ``tau = 0``.

    Needs ``tau`` to be ``0, dt, 2 dt, ...`` up to the largest wanted index (in any order).
    """
    order = np.argsort(tau)
    grid = tau[order]
    last = int(np.max(np.searchsorted(grid, tau[wanted])))
    steps = np.diff(grid[: last + 1])
    if last > 0:
        dt = float(steps.mean())
        if grid[0] != 0.0 or np.abs(steps - dt).max() > 1e-9 * max(1.0, dt):
            raise ValueError("the recursion needs a uniform time grid starting at 0")
        P, log_scale = _positive_propagator(M, dt)
    elif grid[0] != 0.0:
        raise ValueError("the recursion needs a uniform time grid starting at 0")
    out = np.empty((last + 1, M.shape[0]))
    w = np.exp(log_z - log_z.max())
    offset = float(log_z.max())
    out[0] = np.log(w) + offset
    for n in range(1, last + 1):
        w = P @ w
        top = float(w.max())
        w /= top
        offset += log_scale + math.log(top)
        with np.errstate(divide="ignore"):
            out[n] = np.log(w) + offset
    position = np.empty_like(order)
    position[order] = np.arange(order.size)
    return out[position[wanted]]


@dataclass(frozen=True, eq=False)
class CJTable:
    """The Cartea-Jaimungal strategy tabulated on ``times = linspace(0, T, num_steps + 1)``.

    ``value[n, j] = h(times[n], q_j)`` with ``q_j = j - Q``; ``bid_depth`` is NaN at ``q = Q``
    and ``ask_depth`` at ``q = -Q`` (no quote on the side that would breach the limit).
    """

    phi: float
    alpha: float
    A: float
    k: float
    T: float
    Q: int
    times: F64
    log_omega: F64

    @property
    def inventories(self) -> F64:
        """``-Q..Q``."""
        return np.arange(-self.Q, self.Q + 1, dtype=np.float64)

    @property
    def value(self) -> F64:
        """``h(t, q) = (1/k) ln omega(t, q)``: expected criterion beyond ``x + q s``."""
        return self.log_omega / self.k

    @functools.cached_property
    def bid_depth(self) -> F64:
        """``1/k + (1/k) ln(omega_q / omega_{q+1})``; NaN at ``q = Q``."""
        out = np.full_like(self.log_omega, np.nan)
        out[:, :-1] = (1.0 + self.log_omega[:, :-1] - self.log_omega[:, 1:]) / self.k
        return out

    @functools.cached_property
    def ask_depth(self) -> F64:
        """``1/k + (1/k) ln(omega_q / omega_{q-1})``; NaN at ``q = -Q``."""
        out = np.full_like(self.log_omega, np.nan)
        out[:, 1:] = (1.0 + self.log_omega[:, 1:] - self.log_omega[:, :-1]) / self.k
        return out

    def _interpolate(self, grid: F64, t: ArrayLike, q: ArrayLike) -> F64:
        """``grid`` (times x inventories) at times ``t``, linearly interpolated in time, and
        inventories ``q``, rounded to the nearest integer and held within ``[-Q, Q]``."""
        t = np.asarray(t, dtype=np.float64)
        q = np.asarray(q, dtype=np.float64)
        steps = self.times.size - 1
        x = np.clip(t / self.T, 0.0, 1.0) * steps
        n = np.minimum(np.floor(x).astype(np.intp), steps - 1)
        w = x - n
        j = (np.clip(np.rint(q), -self.Q, self.Q) + self.Q).astype(np.intp)
        return (1.0 - w) * grid[n, j] + w * grid[n + 1, j]

    def depths(self, t: ArrayLike, q: ArrayLike) -> Depths:
        """Depths at times ``t`` (linear interpolation on the grid) and inventories ``q``.

        ``q`` is rounded to the nearest integer and held within ``[-Q, Q]``; NaN means no quote.
        """
        return self._interpolate(self.bid_depth, t, q), self._interpolate(self.ask_depth, t, q)

    def value_at(self, t: ArrayLike, q: ArrayLike) -> F64:
        """``h(t, q)``, linearly interpolated in time."""
        return self._interpolate(self.value, t, q)


@functools.lru_cache(maxsize=64)
def cartea_jaimungal_table(
    phi: float, alpha: float, A: float, k: float, T: float, Q: int, num_steps: int = 2000
) -> CJTable:
    """The CJ strategy and value on ``num_steps + 1`` times over ``[0, T]`` (cached).

    ``phi``: running penalty per unit of inventory squared per unit of time; ``alpha``: terminal
    penalty per unit of inventory squared; ``A``, ``k``: fill intensity ``A exp(-k delta)``;
    ``T``: horizon; ``Q``: inventory limit (units). Wealth is in price x units.
    """
    _check_positive(T=T)
    if not (isinstance(num_steps, int | np.integer) and num_steps >= 1):
        raise ValueError(f"num_steps must be an integer >= 1, got {num_steps!r}")
    times = np.linspace(0.0, T, int(num_steps) + 1)
    tau = T * (1.0 - np.arange(int(num_steps) + 1) / int(num_steps))
    log_omega = cj_log_omega(phi, alpha, A, k, Q, tau)
    for array in (times, log_omega):
        array.flags.writeable = False
    return CJTable(float(phi), float(alpha), float(A), float(k), float(T), int(Q), times, log_omega)


# --- policies for mmgym/AvellanedaStoikov-v0 ---------------------------------------------------


def _depth_actions(bid: F64, ask: F64, no_quote_depth: float) -> NDArray[np.float32]:
    out = np.empty((bid.shape[0], 2), dtype=np.float32)
    out[:, 0] = np.where(np.isnan(bid), no_quote_depth, bid)
    out[:, 1] = np.where(np.isnan(ask), no_quote_depth, ask)
    return out


class GLFTPolicy:
    """GLFT (2013) asymptotic depths for observations ``(q, t)``; they do not depend on ``t``.

    ``gamma``: risk aversion (per unit of wealth); ``sigma``: volatility of the mid (price per
    sqrt(time)); ``A``, ``k``: fill intensity ``A exp(-k delta)``.
    """

    def __init__(self, gamma: float, sigma: float, A: float, k: float) -> None:
        self.c = glft_constant(gamma, sigma, A, k)
        self.gamma, self.sigma, self.A, self.k = float(gamma), float(sigma), float(A), float(k)

    def act(self, obs: NDArray[np.float32]) -> NDArray[np.float32]:
        """Depths ``(delta_bid, delta_ask)`` for a batch of observations ``(q, t)``."""
        q = np.asarray(obs)[:, 0].astype(np.float64)
        bid, ask = glft_depths(q, self.gamma, self.sigma, self.A, self.k)
        return _depth_actions(bid, ask, 0.0)

    def reset(self, mask: NDArray[np.bool_] | None = None) -> None:
        """Stateless: nothing to clear."""


class CarteaJaimungalPolicy:
    """The exact Cartea-Jaimungal-Penalva (2015, ch. 10) strategy for observations ``(q, t)``.

    ``phi``: running inventory penalty; ``alpha``: terminal penalty; ``A``, ``k``: fill
    intensity; ``T``: horizon; ``Q``: inventory limit; ``num_steps``: time grid of the table
    (depths are interpolated linearly between its points, exact on them: choose a multiple of
    the env's ``T / dt``). A side that must not be quoted (``q = Q`` for the bid, ``q = -Q`` for
    the ask) gets ``no_quote_depth``, which the env clips to its ``max_depth``; its fill
    probability ``A exp(-k max_depth) dt`` is then what remains of that side, so give the env a
    ``max_depth`` large enough to make it negligible.
    """

    def __init__(
        self,
        phi: float,
        alpha: float,
        A: float,
        k: float,
        T: float,
        Q: int,
        num_steps: int = 2000,
        no_quote_depth: float = 1e3,
    ) -> None:
        self.table = cartea_jaimungal_table(
            float(phi), float(alpha), float(A), float(k), float(T), int(Q), int(num_steps)
        )
        self.no_quote_depth = float(no_quote_depth)

    def act(self, obs: NDArray[np.float32]) -> NDArray[np.float32]:
        """Depths ``(delta_bid, delta_ask)`` for a batch of observations ``(q, t)``."""
        obs = np.asarray(obs)
        bid, ask = self.table.depths(obs[:, 1].astype(np.float64), obs[:, 0].astype(np.float64))
        return _depth_actions(bid, ask, self.no_quote_depth)

    def reset(self, mask: NDArray[np.bool_] | None = None) -> None:
        """Stateless: nothing to clear."""


# --- registered baselines for mmgym/PerpMM-v0 --------------------------------------------------


def _unquoted_depth(model: F64, quoted: F64, P: MarketParams) -> F64:
    """The depth (price units) to encode for a side that places no order, given the depth
    ``quoted`` of the side that does.

    The action holds the half-spread ``(delta_bid + delta_ask) / 2`` and the skew
    ``(delta_ask - delta_bid) / 2``, each clipped to its range, so the free side's depth can move
    the quoted side. It is the model's own depth (the quoted side's where the model has none),
    moved just enough to keep both in range; the quoted side then sits at its depth. Where no
    value can (a quoted depth above ``max_half_spread_ticks + max_skew_ticks`` ticks or below
    ``0.5 - max_skew_ticks``), it is the bound that brings the quoted side closest.
    """
    tick = P.tick_size
    reach = 2.0 * P.max_skew_ticks * tick
    lo = np.maximum(tick - quoted, quoted - reach)
    hi = np.minimum(2.0 * P.max_half_spread_ticks * tick - quoted, quoted + reach)
    return np.minimum(np.maximum(np.where(np.isnan(model), quoted, model), lo), hi)


class ModelQuoting:
    """Base of the model baselines on PerpMM: the model's depths, one action block per perp.

    Per perp, the inventory in lots is ``obs inventory x max_inventory / lot`` and the time is
    ``obs time x episode_seconds`` (the model's horizon is the episode). The model gives depths
    ``delta_bid``, ``delta_ask`` in price units from the mid; the action quotes
    ``skew = (delta_ask - delta_bid) / 2`` and ``half_spread = (delta_ask + delta_bid) / 2``
    (in ticks), so the bid sits at ``mid - delta_bid`` and the ask at ``mid + delta_ask`` before
    the decoder rounds them outward to the tick grid. Values beyond the action's range
    (half-spread in ``[0.5, max_half_spread_ticks]``, ``|skew| <= max_skew_ticks``) are clipped
    to it. Each side quotes one ``lot`` (base units), or nothing when the rounded inventory is
    at the limit ``Q`` lots on that side (``Q = floor(max_inventory / lot)`` unless given) or
    the model has no depth for it; the depth encoded for a side that quotes nothing leaves the
    other side where its depth puts it (:func:`_unquoted_depth`). Nothing is hedged.

    Fees (``fees=True``): the models have none, but a maker fee ``f = maker_fee x
    initial_price`` per unit (price units) enters them exactly. A fill at depth ``delta`` earns
    ``delta - f`` at intensity ``A exp(-k delta) = A_net exp(-k (delta - f))`` with
    ``A_net = A exp(-k f)``, so the optimal depths are the fee-free model's, computed with
    ``A_net``, plus ``f`` on each side. Without this, quotes at the fee-free ``1/k`` may earn less
    than the fee they pay (with the default market, 0.8 tick of spread against a 1.5-tick fee).

    ``sigma`` (price per sqrt(second)), ``A`` (lots per second) and ``k`` (per price unit)
    default to :func:`agents.baselines.calibration.calibrate` for these market parameters and
    this lot; ``lot`` defaults to a tenth of ``max_inventory``, at most ``max_quote_size``.
    """

    def __init__(
        self,
        params: MarketParams,
        *,
        sigma: float | None,
        A: float | None,
        k: float | None,
        lot: float | None,
        max_lots: int | None,
        fees: bool,
    ) -> None:
        self.params = params
        self.lot = float(lot) if lot is not None else default_lot(params)
        _check_positive(lot=self.lot)
        if self.lot > params.max_quote_size:
            raise ValueError(
                f"lot must be <= max_quote_size ({params.max_quote_size}), got {self.lot}"
            )
        if sigma is None or A is None or k is None:
            fit = calibrate(params, lot=self.lot)
            sigma = fit.sigma if sigma is None else sigma
            A = fit.A if A is None else A
            k = fit.k if k is None else k
        _check_positive(sigma=sigma, A=A, k=k)
        self.sigma, self.A, self.k = float(sigma), float(A), float(k)
        self.fee = params.maker_fee * params.initial_price if fees else 0.0
        self.A_net = self.A * math.exp(-self.k * self.fee)
        whole_lots = math.floor(params.max_inventory / self.lot + 1e-9)
        self.Q = int(max_lots) if max_lots is not None else whole_lots
        if self.Q < 1:
            raise ValueError(f"the inventory limit must be at least one lot, got Q={self.Q}")
        self.T = float(params.episode_seconds)

    def depths(self, q: F64, t: F64) -> Depths:
        """Model depths net of the fee (price units) at inventories ``q`` (lots) and times
        ``t`` (seconds), with intensity ``A_net``; NaN for no quote."""
        raise NotImplementedError

    def quoted_depths(self, q: F64, t: F64) -> Depths:
        """Depths from the mid that the action asks for: the model's plus the fee."""
        bid, ask = self.depths(q, t)
        return bid + self.fee, ask + self.fee

    def act(self, obs: NDArray[np.float32]) -> NDArray[np.float32]:
        """Actions for a batch of PerpMM observations: one block per perp."""
        obs = np.asarray(obs)
        P = self.params
        blocks = []
        for a in range(P.num_assets):
            base = a * ASSET_FEATURES
            q = obs[:, base + _INVENTORY].astype(np.float64) * P.max_inventory / self.lot
            t = obs[:, base + _TIME].astype(np.float64) * P.episode_seconds
            q_round = np.rint(q)
            bid, ask = self.quoted_depths(q, t)
            bid_on = (q_round < self.Q) & ~np.isnan(bid)
            ask_on = (q_round > -self.Q) & ~np.isnan(ask)
            bid = np.where(bid_on, bid, _unquoted_depth(bid, ask, P))
            ask = np.where(ask_on, ask, _unquoted_depth(ask, bid, P))
            bid = np.nan_to_num(bid, nan=0.0)  # neither side has a depth: nothing is quoted
            ask = np.nan_to_num(ask, nan=0.0)
            blocks.append(
                encode_action(
                    P,
                    0.5 * (ask - bid) / P.tick_size,
                    0.5 * (ask + bid) / P.tick_size,
                    np.where(bid_on, self.lot, 0.0),
                    np.where(ask_on, self.lot, 0.0),
                )
            )
        return np.concatenate(blocks, axis=1)

    def reset(self, mask: NDArray[np.bool_] | None = None) -> None:
        """Stateless: nothing to clear."""


@register("avellaneda_stoikov")
class PerpAvellanedaStoikov(ModelQuoting):
    """Avellaneda & Stoikov (2008) on PerpMM: reservation price and optimal spread.

    ``gamma``: risk aversion per unit of the model's wealth (price x lots). The skew per lot
    at the start is ``gamma sigma^2 T``: 0.29 tick with the defaults and the calibrated calm
    market. ``sigma``, ``k``, ``lot``, ``max_lots``, ``fees``: see :class:`ModelQuoting`
    (``A`` plays no part). Horizon: the episode.
    """

    def __init__(
        self,
        params: MarketParams,
        gamma: float = 0.01,
        sigma: float | None = None,
        k: float | None = None,
        lot: float | None = None,
        max_lots: int | None = None,
        fees: bool = True,
    ) -> None:
        _check_positive(gamma=gamma)
        super().__init__(params, sigma=sigma, A=1.0, k=k, lot=lot, max_lots=max_lots, fees=fees)
        self.gamma = float(gamma)

    def depths(self, q: F64, t: F64) -> Depths:
        """AS depths with ``tau = T - t``."""
        tau = np.clip(self.T - t, 0.0, self.T)
        return avellaneda_stoikov_depths(q, tau, self.gamma, self.sigma, self.k)


@register("glft")
class PerpGLFT(ModelQuoting):
    """Gueant-Lehalle-Fernandez-Tapia (2013) asymptotic quotes on PerpMM (time-independent).

    ``gamma``: risk aversion per unit of the model's wealth (price x lots). ``sigma``, ``A``,
    ``k``, ``lot``, ``max_lots``, ``fees``: see :class:`ModelQuoting`.
    """

    def __init__(
        self,
        params: MarketParams,
        gamma: float = 0.01,
        sigma: float | None = None,
        A: float | None = None,
        k: float | None = None,
        lot: float | None = None,
        max_lots: int | None = None,
        fees: bool = True,
    ) -> None:
        _check_positive(gamma=gamma)
        super().__init__(params, sigma=sigma, A=A, k=k, lot=lot, max_lots=max_lots, fees=fees)
        self.gamma = float(gamma)

    def depths(self, q: F64, t: F64) -> Depths:
        """GLFT depths (``t`` unused)."""
        return glft_depths(q, self.gamma, self.sigma, self.A_net, self.k)


@register("cartea_jaimungal")
class PerpCarteaJaimungal(ModelQuoting):
    """The exact Cartea-Jaimungal-Penalva strategy on PerpMM, over the episode as horizon.

    ``phi`` (per lot squared per second) and ``alpha`` (per lot squared), in units of price x
    lots: ``None`` takes the env's own criterion, ``inventory_penalty x lot`` and
    ``terminal_inventory_penalty x lot`` when ``reward="inventory_penalty"`` (the env's
    penalties are per base unit squared in quote currency), and 0 otherwise (then only the
    inventory limit moves the quotes away from ``1/k``). ``sigma`` plays no part (the criterion
    has no variance term). ``A``, ``k``, ``lot``, ``max_lots``, ``fees``: see
    :class:`ModelQuoting`; the inventory is rounded to whole lots to read the table.
    """

    def __init__(
        self,
        params: MarketParams,
        phi: float | None = None,
        alpha: float | None = None,
        A: float | None = None,
        k: float | None = None,
        lot: float | None = None,
        max_lots: int | None = None,
        fees: bool = True,
    ) -> None:
        super().__init__(params, sigma=1.0, A=A, k=k, lot=lot, max_lots=max_lots, fees=fees)
        penalised = params.reward == "inventory_penalty"
        if phi is None:
            phi = params.inventory_penalty * self.lot if penalised else 0.0
        if alpha is None:
            alpha = params.terminal_inventory_penalty * self.lot if penalised else 0.0
        _check_non_negative(phi=phi, alpha=alpha)
        self.phi, self.alpha = float(phi), float(alpha)
        self.table = cartea_jaimungal_table(
            self.phi, self.alpha, self.A_net, self.k, self.T, self.Q, params.decisions_per_episode
        )

    def depths(self, q: F64, t: F64) -> Depths:
        """Table depths at the nearest whole lot; NaN on a side at the limit."""
        return self.table.depths(t, q)
