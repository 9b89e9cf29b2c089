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

The tables give the same bits on every machine: the eigendecomposition (cyclic Jacobi), the
matrix products (a fixed summation order) and ``exp``/``ln`` (fdlibm's algorithms) are compiled
code that uses only IEEE-754 additions, multiplications, divisions and square roots, with no
fused multiply-add. BLAS/LAPACK (whose kernels and summation order depend on the CPU), NumPy's
``exp``/``log`` (own SIMD code on AVX-512 machines) and the C library's (separate variants for
CPUs with FMA) would each move the last bits by machine, and the depths difference logarithms
of nearly equal ``omega``, so such bits reach the quotes (e.g. the skew at zero inventory, which
is zero in exact arithmetic).

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


# Machine-independent building blocks: only +, -, *, /, sqrt (correctly rounded by IEEE 754) in
# a fixed order, compiled without fastmath (numba then emits no fused multiply-add).

_LN2_HI = 6.93147180369123816490e-01  # fdlibm's split of ln 2: LN2_HI * k is exact for |k| < 2^20
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e00
_SQRT_HALF = 0.7071067811865476


@nb.njit(cache=True, error_model="numpy")
def _exp(x: float) -> float:
    """``e^x`` to within 1 ulp by fdlibm's algorithm (``e_exp.c``), the same bits everywhere."""
    if np.isnan(x):
        return x
    if x > 709.782712893383973096:
        return np.inf
    if x < -745.13321910194110842:
        return 0.0
    k = 0
    hi = x
    lo = 0.0
    if abs(x) > 0.5 * _LN2_HI:
        k = int(_INV_LN2 * x + (0.5 if x > 0.0 else -0.5))
        hi = x - k * _LN2_HI
        lo = k * _LN2_LO
        x = hi - lo
    elif abs(x) < 2.0**-28:
        return 1.0 + x
    xx = x * x
    c = x - xx * (
        1.66666666666666019037e-01
        + xx
        * (
            -2.77777777770155933842e-03
            + xx
            * (
                6.61375632143793436117e-05
                + xx * (-1.65339022054652515390e-06 + xx * 4.13813679705723846039e-08)
            )
        )
    )
    y = 1.0 + (x * c / (2.0 - c) - lo + hi)
    return y if k == 0 else math.ldexp(y, k)


@nb.njit(cache=True, error_model="numpy")
def _log(x: float) -> float:
    """``ln x`` to within 1 ulp by fdlibm's algorithm (``e_log.c``), the same bits everywhere:
    ``-inf`` at 0, NaN below 0 or at NaN."""
    if np.isnan(x) or x < 0.0:
        return np.nan
    if x == 0.0:
        return -np.inf
    if np.isinf(x):
        return x
    m, e = math.frexp(x)  # exact: x = m 2^e, 0.5 <= m < 1
    if m < _SQRT_HALF:
        m *= 2.0
        e -= 1
    f = m - 1.0  # exact (Sterbenz)
    hfsq = 0.5 * f * f
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (
        3.999999999940941908e-01 + w * (2.222219843214978396e-01 + w * 1.531383769920937332e-01)
    )
    t2 = z * (
        6.666666666666735130e-01
        + w
        * (2.857142874366239149e-01 + w * (1.818357216161805012e-01 + w * 1.479819860511658591e-01))
    )
    dk = float(e)
    return s * (hfsq + (t2 + t1)) + dk * _LN2_LO - hfsq + f + dk * _LN2_HI


@nb.njit(cache=True, error_model="numpy")
def _matmul(a: F64, b: F64) -> F64:
    """``a @ b`` (2-D), each entry summed over the inner index in increasing order."""
    out = np.zeros((a.shape[0], b.shape[1]))
    for i in range(a.shape[0]):
        for k in range(a.shape[1]):
            aik = a[i, k]
            for j in range(b.shape[1]):
                out[i, j] += aik * b[k, j]
    return out


@nb.njit(cache=True, error_model="numpy")
def _symmetric_eigen(M: F64) -> tuple[F64, F64]:
    """``M = V diag(mu) V^T`` for a symmetric ``M`` by cyclic Jacobi rotations (row by row,
    until a sweep finds every off-diagonal entry below ``1e-3 eps ||M||_F``)."""
    n = M.shape[0]
    A = M.copy()
    V = np.eye(n)
    frob = 0.0
    for i in range(n):
        for j in range(n):
            frob += A[i, j] * A[i, j]
    tol = 1e-3 * _EPS * math.sqrt(frob)
    for _ in range(100):
        rotated = False
        for p in range(n - 1):
            for q in range(p + 1, n):
                apq = A[p, q]
                if abs(apq) <= tol:
                    continue
                rotated = True
                theta = (A[q, q] - A[p, p]) / (2.0 * apq)
                if abs(theta) > 1e150:
                    t = 0.5 / theta
                else:
                    t = 1.0 / (abs(theta) + math.sqrt(theta * theta + 1.0))
                    if theta < 0.0:
                        t = -t
                c = 1.0 / math.sqrt(t * t + 1.0)
                s = t * c
                for r in range(n):
                    arp, arq = A[r, p], A[r, q]
                    A[r, p] = c * arp - s * arq
                    A[r, q] = s * arp + c * arq
                for r in range(n):
                    apr, aqr = A[p, r], A[q, r]
                    A[p, r] = c * apr - s * aqr
                    A[q, r] = s * apr + c * aqr
                for r in range(n):
                    vrp, vrq = V[r, p], V[r, q]
                    V[r, p] = c * vrp - s * vrq
                    V[r, q] = s * vrp + c * vrq
        if not rotated:
            break
    mu = np.empty(n)
    for i in range(n):
        mu[i] = A[i, i]
    return mu, V


@nb.njit(cache=True, error_model="numpy")
def _eigen_log_omega(
    M: F64, log_z: F64, tau: F64, relative_accuracy: float
) -> tuple[F64, NDArray[np.bool_]]:
    """``ln omega`` (times, states) from the eigendecomposition, and the times where some entry's
    roundoff bound exceeds ``relative_accuracy`` (or ``omega <= 0``)."""
    n = M.shape[0]
    mu, V = _symmetric_eigen(M)
    top, z_top = mu.max(), log_z.max()
    coef = np.zeros(n)
    for i in range(n):
        zi = _exp(log_z[i] - z_top)
        for j in range(n):
            coef[j] += V[i, j] * zi
    out = np.empty((tau.shape[0], n))
    bad = np.zeros(tau.shape[0], dtype=np.bool_)
    weight = np.empty(n)
    abs_weight = np.empty(n)
    for t in range(tau.shape[0]):
        for j in range(n):
            growth = _exp((mu[j] - top) * tau[t])  # in (0, 1]
            weight[j] = coef[j] * growth
            abs_weight[j] = abs(coef[j]) * growth
        for i in range(n):
            omega = 0.0
            bound = 0.0
            for j in range(n):
                omega += V[i, j] * weight[j]
                bound += abs(V[i, j]) * abs_weight[j]
            out[t, i] = _log(omega) + top * tau[t] + z_top
            if not omega > 0.0 or bound * (4 * n) * _EPS > relative_accuracy * omega:
                bad[t] = True
    return out, bad


def _positive_propagator(M: F64, dt: float) -> tuple[F64, float]:
    """``exp(M dt) = exp(log_scale) P`` with ``max P = 1``, from non-negative terms only.

    ``M + c I >= 0`` entrywise (``M`` is a generator plus a non-positive diagonal), so the Taylor
    series of ``exp((M + c I) dt / 2^s)`` and the ``s`` squarings never subtract: each entry is
    accurate to a few ulps relative to itself, however small.
    """
    c = float(max(0.0, -np.min(np.diag(M))))
    B = M + c * np.eye(M.shape[0])
    norm = max(math.fsum(row) for row in np.abs(B)) * dt  # fsum: correctly rounded
    squarings = 0
    while norm > 0.25:  # the least s with norm / 2^s <= 0.25 (exact halvings)
        norm /= 2.0
        squarings += 1
    X = B * (dt / 2.0**squarings)
    P = np.eye(M.shape[0])
    term = np.eye(M.shape[0])
    size = M.shape[0]
    for n in range(1, size + 60):
        term = _matmul(term, X) / n
        P = P + term
        # Every entry to full relative precision: an entry |i - j| off the diagonal first
        # appears at order |i - j|, so go at least that far.
        if n >= size and np.all(term <= 1e-3 * _EPS * P):
            break
    log_scale = -c * dt / 2.0**squarings
    for _ in range(squarings):
        top = float(P.max())
        P = _matmul(P / top, P / top)
        log_scale = 2.0 * (log_scale + _log(top))
    top = float(P.max())
    return P / top, log_scale + _log(top)


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
    flat = np.ascontiguousarray(tau.reshape(-1))
    M = cj_matrix(phi, A, k, int(Q))
    q = np.arange(-Q, Q + 1, dtype=np.float64)
    log_z = -alpha * k * q**2
    log_omega, bad = _eigen_log_omega(M, log_z, flat, _RELATIVE_ACCURACY)
    bad_times = np.flatnonzero(bad)
    if bad_times.size:
        log_omega[bad_times] = _log_omega_by_recursion(M, log_z, flat, bad_times)
    return log_omega.reshape((*tau.shape, M.shape[0]))


@nb.njit(cache=True, error_model="numpy")
def _recursion(P: F64, log_scale: float, log_z: F64, steps: int) -> F64:
    """``ln omega`` at ``tau = 0, dt, ..., steps dt`` from ``omega <- P omega exp(log_scale)``."""
    n = log_z.shape[0]
    out = np.empty((steps + 1, n))
    offset = log_z.max()
    w = np.empty(n)
    for i in range(n):
        w[i] = _exp(log_z[i] - offset)
        out[0, i] = _log(w[i]) + offset
    nxt = np.empty(n)
    for step in range(1, steps + 1):
        for i in range(n):
            acc = 0.0
            for j in range(n):
                acc += P[i, j] * w[j]
            nxt[i] = acc
        top = nxt.max()
        for i in range(n):
            w[i] = nxt[i] / top
        offset += log_scale + _log(top)
        for i in range(n):
            out[step, i] = _log(w[i]) + offset
    return out


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
    P, log_scale = np.eye(M.shape[0]), 0.0
    if last > 0:
        dt = float(grid[last] - grid[0]) / last  # the mean step
        if grid[0] != 0.0 or np.abs(steps - dt).max() > 1e-9 * max(1.0, dt):
            raise ValueError("the recursion needs a uniform time grid starting at 0")
        P, log_scale = _positive_propagator(M, dt)
    elif grid[0] != 0.0:
        raise ValueError("the recursion needs a uniform time grid starting at 0")
    out = _recursion(P, log_scale, np.ascontiguousarray(log_z, dtype=np.float64), last)
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
