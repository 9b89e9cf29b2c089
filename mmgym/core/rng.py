"""Per-environment random streams for the numba kernels.

Every environment owns its own 64-bit splitmix64 states, so an environment's trajectory depends
only on its own seed, never on the batch size or on its neighbours. Draws are ``@njit`` functions
that take a state array and an index and advance that one stream in place.

A PerpMM env owns two streams (rows of a ``(STREAMS, num_envs)`` array), both seeded from the
env's seed with different salts: the *market* stream, whose draws happen in the same number and
order whatever the agent does, and the *agent* stream, for the draws whose occurrence depends on
the agent's actions (its hedge children). Two policies run on one seed therefore share the
market's random path (common random numbers); their paths differ only through the effects of
their actions. A one-stream array (``(num_envs,)``) is seeded as the market stream.

splitmix64 (Steele, Lea & Flood 2014) passes BigCrush and costs a handful of integer operations.
Seeds are hashed before use, so the streams of seeds ``s`` and ``s + 1`` start at unrelated
points of the 2**64-long sequence.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from numpy.typing import NDArray

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_INV_2_53 = 1.0 / 9007199254740992.0
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_ONE = np.uint64(1)
_SEED_SALT = np.uint64(0x6D6D67796D2D7631)  # "mmgym-v1"
_AGENT_SALT = np.uint64(0x6D6D67796D2D6131)  # "mmgym-a1"

MARKET_STREAM = 0
"""Row of the market stream: draws that happen whatever the agent does."""
AGENT_STREAM = 1
"""Row of the agent stream: draws that happen only as the agent's actions make them happen."""
STREAMS = 2
"""Streams per PerpMM env."""
_STREAM_SALTS = np.array([_SEED_SALT, _AGENT_SALT], dtype=np.uint64)


@nb.njit(cache=True, error_model="numpy", inline="always")
def _mix(z: np.uint64) -> np.uint64:
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@nb.njit(cache=True, error_model="numpy", inline="always")
def next_u64(rng: NDArray[np.uint64], i: int) -> np.uint64:
    """Advance stream ``i`` and return 64 random bits."""
    s = rng[i] + _GOLDEN
    rng[i] = s
    return _mix(s)


@nb.njit(cache=True, error_model="numpy", inline="always")
def uniform(rng: NDArray[np.uint64], i: int) -> float:
    """Uniform on [0, 1) with 53 random bits."""
    return float(next_u64(rng, i) >> _S11) * _INV_2_53


@nb.njit(cache=True, error_model="numpy", inline="always")
def uniform_open(rng: NDArray[np.uint64], i: int) -> float:
    """Uniform on (0, 1): safe to take a logarithm of."""
    return (float(next_u64(rng, i) >> _S11) + 0.5) * _INV_2_53


@nb.njit(cache=True, error_model="numpy", inline="always")
def standard_normal(rng: NDArray[np.uint64], i: int) -> float:
    """Standard normal draw (Box-Muller, one of the pair)."""
    u1 = uniform_open(rng, i)
    u2 = uniform(rng, i)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


@nb.njit(cache=True, error_model="numpy", inline="always")
def standard_normal_pair(rng: NDArray[np.uint64], i: int) -> tuple[float, float]:
    """Two independent standard normal draws (Marsaglia's polar method: no trigonometry)."""
    while True:
        u = 2.0 * uniform(rng, i) - 1.0
        v = 2.0 * uniform(rng, i) - 1.0
        r2 = u * u + v * v
        if 0.0 < r2 < 1.0:
            scale = math.sqrt(-2.0 * math.log(r2) / r2)
            return u * scale, v * scale


@nb.njit(cache=True, error_model="numpy", inline="always")
def exponential(rng: NDArray[np.uint64], i: int) -> float:
    """Exponential draw with mean 1."""
    return -math.log(uniform_open(rng, i))


@nb.njit(cache=True, error_model="numpy", inline="always")
def keyed_u64(key: np.uint64, counter: np.uint64) -> np.uint64:
    """64 random bits at position ``counter`` of the splitmix64 sequence that starts at ``key``.

    A counter-based draw: it depends on ``key`` and ``counter`` alone, never on how many numbers
    were drawn before it, so a draw keyed by an event cannot be shifted by other draws."""
    return _mix(key + (counter + _ONE) * _GOLDEN)


@nb.njit(cache=True, error_model="numpy", inline="always")
def keyed_uniform_open(key: np.uint64, counter: np.uint64) -> float:
    """Uniform on (0, 1) at position ``counter`` of the sequence of ``key`` (:func:`keyed_u64`)."""
    return (float(keyed_u64(key, counter) >> _S11) + 0.5) * _INV_2_53


@nb.njit(cache=True, error_model="numpy", inline="always")
def normal_cdf(x: float) -> float:
    """Standard normal distribution function (``erfc``: accurate in the lower tail)."""
    return 0.5 * math.erfc(-x * _INV_SQRT2)


# Wichura's AS241 (PPND16): numerator and denominator coefficients, highest degree first, of the
# central region (|p - 0.5| <= 0.425), the tail to r = sqrt(-log(min(p, 1 - p))) <= 5, and beyond.
_AS241 = np.array(
    [
        [2.5090809287301226727e3, 3.3430575583588128105e4, 6.7265770927008700853e4,
         4.5921953931549871457e4, 1.3731693765509461125e4, 1.9715909503065514427e3,
         1.3314166789178437745e2, 3.3871328727963666080e0],
        [5.2264952788528545610e3, 2.8729085735721942674e4, 3.9307895800092710610e4,
         2.1213794301586595867e4, 5.3941960214247511077e3, 6.8718700749205790830e2,
         4.2313330701600911252e1, 1.0],
        [7.74545014278341407640e-4, 2.27238449892691845833e-2, 2.41780725177450611770e-1,
         1.27045825245236838258e0, 3.64784832476320460504e0, 5.76949722146069140550e0,
         4.63033784615654529590e0, 1.42343711074968357734e0],
        [1.05075007164441684324e-9, 5.47593808499534494600e-4, 1.51986665636164571966e-2,
         1.48103976427480074590e-1, 6.89767334985100004550e-1, 1.67638483018380384940e0,
         2.05319162663775882187e0, 1.0],
        [2.01033439929228813265e-7, 2.71155556874348757815e-5, 1.24266094738807843860e-3,
         2.65321895265761230930e-2, 2.96560571828504891230e-1, 1.78482653991729133580e0,
         5.46378491116411436990e0, 6.65790464350110377720e0],
        [2.04426310338993978564e-15, 1.42151175831644588870e-7, 1.84631831751005468180e-5,
         7.86869131145613259100e-4, 1.48753612908506148525e-2, 1.36929880922735805310e-1,
         5.99832206555887937690e-1, 1.0],
    ]
)  # fmt: skip


@nb.njit(cache=True, error_model="numpy", inline="always")
def _ratio(region: int, r: float) -> float:
    """Rational function of AS241's ``region`` (0 central, 1 near tail, 2 far tail) at ``r``."""
    num = _AS241[2 * region, 0]
    den = _AS241[2 * region + 1, 0]
    for k in range(1, _AS241.shape[1]):
        num = num * r + _AS241[2 * region, k]
        den = den * r + _AS241[2 * region + 1, k]
    return num / den


@nb.njit(cache=True, error_model="numpy")
def normal_quantile(p: float) -> float:
    """Standard normal quantile for ``p`` in (0, 1): Wichura's AS241 (PPND16), relative error
    about 1e-16, the algorithm of Python's ``statistics.NormalDist.inv_cdf``."""
    q = p - 0.5
    if abs(q) <= 0.425:
        return q * _ratio(0, 0.180625 - q * q)
    r = math.sqrt(-math.log(p if q <= 0.0 else 1.0 - p))
    x = _ratio(1, r - 1.6) if r <= 5.0 else _ratio(2, r - 5.0)
    return -x if q < 0.0 else x


@nb.njit(cache=True, error_model="numpy")
def poisson(rng: NDArray[np.uint64], i: int, lam: float) -> int:
    """Poisson draw: inversion for small means, PTRS (Hormann 1993) for large ones."""
    if lam <= 0.0:
        return 0
    if lam < 30.0:
        u = uniform(rng, i)
        p = math.exp(-lam)
        cdf = p
        k = 0
        while u > cdf and k < 1000:
            k += 1
            p *= lam / k
            cdf += p
        return k
    slam = math.sqrt(lam)
    loglam = math.log(lam)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    inv_alpha = 1.1239 + 1.1328 / (b - 3.4)
    v_r = 0.9277 - 3.6224 / (b - 2.0)
    while True:
        u = uniform(rng, i) - 0.5
        v = uniform_open(rng, i)
        us = 0.5 - abs(u)
        k = math.floor((2.0 * a / us + b) * u + lam + 0.43)
        if us >= 0.07 and v <= v_r:
            return int(k)
        if k < 0.0 or (us < 0.013 and v > us):
            continue
        if math.log(v) + math.log(inv_alpha) - math.log(a / (us * us) + b) <= (
            -lam + k * loglam - math.lgamma(k + 1.0)
        ):
            return int(k)


@nb.njit(cache=True, error_model="numpy")
def seed_streams(
    rng: NDArray[np.uint64], seeds: NDArray[np.uint64], mask: NDArray[np.bool_]
) -> None:
    """Set env ``i``'s streams from ``seeds[i]`` wherever ``mask[i]``.

    ``rng`` is ``(num_envs,)`` (one stream per env) or ``(STREAMS, num_envs)`` (the market and
    the agent stream per env); row ``s`` is salted with its own constant, so the two streams of
    one seed start at unrelated points. Row 0 is seeded alike in both shapes.
    """
    n = seeds.shape[0]
    rows = rng.reshape((rng.size // n, n))
    for s in range(rows.shape[0]):
        salt = _STREAM_SALTS[s]
        for i in range(n):
            if mask[i]:
                rows[s, i] = _mix(seeds[i] ^ salt)


def new_streams(num_envs: int, streams: int = 1) -> NDArray[np.uint64]:
    """Unseeded stream states (call :func:`seed_streams`): ``(num_envs,)`` for one stream per
    env, ``(streams, num_envs)`` for several (:data:`STREAMS` for a PerpMM env)."""
    if not 1 <= streams <= STREAMS:
        raise ValueError(f"streams must be between 1 and {STREAMS}, got {streams}")
    if streams == 1:
        return np.zeros(num_envs, dtype=np.uint64)
    return np.zeros((streams, num_envs), dtype=np.uint64)


_U64 = 2**64


def check_seed(seed: object) -> int | None:
    """``seed`` as a Python int (None passes): any integer >= 0, as Gymnasium accepts.

    NumPy integers are accepted too. Anything else is an error that names the value as typed.
    """
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(
            f"seed must be a non-negative integer or None, got {seed!r} ({type(seed).__name__})"
        )
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
    return int(seed)


def _mix_int(z: int) -> int:
    """:func:`_mix` on Python ints (modulo 2**64)."""
    z = ((z ^ (z >> 30)) * int(_MIX1)) % _U64
    z = ((z ^ (z >> 27)) * int(_MIX2)) % _U64
    return z ^ (z >> 31)


def stream_seed(seed: int) -> int:
    """The 64-bit seed of a stream: ``seed`` itself below 2**64; a larger seed is hashed, one
    64-bit limb at a time, so that distinct large seeds give unrelated streams."""
    if seed < _U64:
        return seed
    z = 0
    while seed:
        z = _mix_int((z ^ (seed % _U64)) + int(_GOLDEN)) % _U64
        seed //= _U64
    return z


def seeds_from(seed: object, num_envs: int) -> NDArray[np.uint64]:
    """Seeds ``seed + i`` for sub-env ``i``, as in SyncVectorEnv; fresh entropy if None.

    ``seed`` is any non-negative integer (:func:`check_seed`); a sub-env seed of 2**64 or more
    is hashed into 64 bits (:func:`stream_seed`), so sub-env ``i`` still matches a single env
    seeded ``seed + i``.
    """
    value = check_seed(seed)
    if value is None:
        value = int(np.random.SeedSequence().generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))
    if value + num_envs <= _U64:
        return np.arange(num_envs, dtype=np.uint64) + np.uint64(value)
    return np.array([stream_seed(value + i) for i in range(num_envs)], dtype=np.uint64)
