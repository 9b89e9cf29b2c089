"""Closed-form market-making quotes: Avellaneda-Stoikov, GLFT and the Cartea-Jaimungal tables.

Three models, all with a mid that is a martingale with volatility ``sigma`` and fills of one
unit at Poisson intensity ``A exp(-k delta)`` for a quote ``delta`` away from the mid:

- **Avellaneda & Stoikov (2008)**, exponential utility with risk aversion ``gamma`` over a
  horizon ``T``: reservation price ``s - q gamma sigma^2 (T - t)`` and total spread
  ``gamma sigma^2 (T - t) + (2 / gamma) ln(1 + gamma / k)`` (eqs. 29-30). Reference:
  M. Avellaneda and S. Stoikov, "High-frequency trading in a limit order book", Quantitative
  Finance 8(3), 217-224, 2008.
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

The policies built on these forms live in :mod:`agents.baselines.as_env_policies` (for
``mmgym/AvellanedaStoikov-v0``) and :mod:`agents.baselines.model_baselines` (registered
baselines for ``mmgym/PerpMM-v0``).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numba as nb
import numpy as np
from numpy.typing import ArrayLike, NDArray

from agents.baselines.checks import check_non_negative, check_positive, require

F64 = NDArray[np.float64]
Depths = tuple[F64, F64]
"""Depths ``(delta_bid, delta_ask)`` from the mid."""

_EPS = float(np.finfo(np.float64).eps)
_RELATIVE_ACCURACY = 1e-8
"""Largest relative roundoff accepted from the eigendecomposition before recomputing."""


# --- Avellaneda-Stoikov and GLFT ---------------------------------------------------------------


def reservation_price(
    s: ArrayLike, q: ArrayLike, gamma: float, sigma: float, tau: ArrayLike
) -> F64:
    """Indifference price ``r = s - q gamma sigma^2 tau`` (AS 2008, eq. 29), ``tau = T - t``."""
    return np.asarray(s, dtype=np.float64) - _reservation_offset(q, gamma, sigma, tau)


def optimal_spread(gamma: float, sigma: float, tau: ArrayLike, k: float) -> F64:
    """Total bid-ask spread ``gamma sigma^2 tau + (2/gamma) ln(1 + gamma/k)`` (AS 2008, eq. 30)."""
    check_positive(gamma=gamma, sigma=sigma, k=k)
    return gamma * sigma**2 * np.asarray(tau, dtype=np.float64) + (2.0 / gamma) * math.log1p(
        gamma / k
    )


def avellaneda_stoikov_depths(
    q: ArrayLike, tau: ArrayLike, gamma: float, sigma: float, k: float
) -> Depths:
    """AS (2008) depths from the mid: the optimal spread centred on the reservation price,
    ``delta_bid = spread/2 + q gamma sigma^2 tau`` and ``delta_ask = spread/2 - q gamma sigma^2
    tau`` with ``tau = T - t``.
    """
    half = 0.5 * optimal_spread(gamma, sigma, tau, k)
    skew = _reservation_offset(q, gamma, sigma, tau)
    return half + skew, half - skew


def _reservation_offset(q: ArrayLike, gamma: float, sigma: float, tau: ArrayLike) -> F64:
    """``s - r = q gamma sigma^2 tau``."""
    q = np.asarray(q, dtype=np.float64)
    return q * gamma * sigma**2 * np.asarray(tau, dtype=np.float64)


def glft_constant(gamma: float, sigma: float, A: float, k: float) -> float:
    """``c = sqrt(sigma^2 gamma / (2 k A) (1 + gamma/k)^(1 + k/gamma))``: the GLFT inventory
    slope, the change of each depth per unit of inventory (price units)."""
    check_positive(gamma=gamma, sigma=sigma, A=A, k=k)
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
    check_non_negative(phi=phi, alpha=alpha)
    check_positive(A=A, k=k)
    require(isinstance(Q, int | np.integer) and Q >= 1, "Q", "an integer >= 1", Q)
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


@nb.njit(cache=True, error_model="numpy")
def _interpolate_grid(
    grid: F64, T: float, Q: int, t: F64, q: F64, out: NDArray[np.float64]
) -> None:
    """``out[i]``: ``grid`` at time ``t[i]`` (linear between the rows of ``linspace(0, T,
    rows)``) and inventory ``q[i]`` (the column of the nearest integer in ``[-Q, Q]``)."""
    steps = grid.shape[0] - 1
    for i in range(out.shape[0]):
        if np.isnan(t[i]) or np.isnan(q[i]):
            raise ValueError("the Cartea-Jaimungal table is read at a NaN time or inventory")
        x = min(max(t[i] / T, 0.0), 1.0) * steps
        n = min(math.floor(x), steps - 1)
        w = x - n
        j = int(min(max(np.rint(q[i]), -Q), Q) + Q)
        out[i] = (1.0 - w) * grid[n, j] + w * grid[n + 1, j]


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
        inventories ``q``, rounded to the nearest integer and held within ``[-Q, Q]`` (``t`` and
        ``q`` broadcast together). A NaN time or inventory raises a ``ValueError``."""
        shape = np.broadcast(t, q).shape
        points = np.empty((2, *shape))
        points[0], points[1] = t, q
        out = np.empty(shape)
        _interpolate_grid(
            grid, self.T, self.Q, points[0].reshape(-1), points[1].reshape(-1), out.reshape(-1)
        )
        return out[()]  # a number for number inputs

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
    check_positive(T=T)
    whole = isinstance(num_steps, int | np.integer) and num_steps >= 1
    require(whole, "num_steps", "an integer >= 1", num_steps)
    times = np.linspace(0.0, T, int(num_steps) + 1)
    tau = T * (1.0 - np.arange(int(num_steps) + 1) / int(num_steps))
    log_omega = cj_log_omega(phi, alpha, A, k, Q, tau)
    for array in (times, log_omega):
        array.flags.writeable = False
    return CJTable(float(phi), float(alpha), float(A), float(k), float(T), int(Q), times, log_omega)
