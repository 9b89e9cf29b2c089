"""Avellaneda-Stoikov (2008) market-making kernel, batched over environments.

The model of Avellaneda & Stoikov, "High-frequency trading in a limit order book", Quantitative
Finance 8(3), 2008, section 4, taken literally: the mid follows a binomial walk
``s += +/- sigma sqrt(dt)``; a bid (ask) quoted ``delta`` below (above) the mid is hit (lifted)
within ``dt`` with probability ``min(1, A exp(-k delta) dt)``, one unit at a time.

State is a struct of arrays: one ``(NUM_FIELDS, num_envs)`` float64 array whose rows are the
mid, inventory, cash, mark-to-market wealth, step index and last reward, plus one splitmix64
stream per env (:mod:`mmgym.core.rng`). Parameters are packed in one float64 array so that a
kernel call carries few arguments (numba's dispatch cost grows with their number).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numba as nb
import numpy as np
from numpy.typing import NDArray

from mmgym.core.rng import uniform

# Rows of the float state array.
MID, INVENTORY, CASH, WEALTH, STEP, REWARD = range(6)
NUM_FIELDS = 6
# Rows of the bool flag array.
TERMINATED, TRUNCATED, BID_FILL, ASK_FILL = range(4)
NUM_FLAGS = 4
# Slots of the packed float parameter array.
(
    P_S0,
    P_Q0,
    P_SIGMA_SQRT_DT,
    P_A_DT,
    P_K,
    P_MAX_DEPTH,
    P_T,
    P_NUM_STEPS,
    P_PENALTY,
    P_PHI_DT,
    P_ALPHA,
) = range(11)
NUM_PACKED = 11

REWARDS = ("wealth", "inventory_penalty")


@dataclass(frozen=True)
class ASParams:
    """Parameters of the Avellaneda-Stoikov market (defaults: the paper's experiment).

    ``max_depth`` bounds the quoted depths (the action box). ``reward="wealth"`` pays the change
    in mark-to-market wealth ``x + q s`` each step. ``reward="inventory_penalty"`` pays that
    change minus ``phi q^2 dt``, with ``q`` the inventory held over the step (after its fills),
    and at the last step also minus ``alpha q_T^2``: an episode's return is then the criterion
    ``x_T + q_T (s_T - alpha q_T) - phi sum q^2 dt`` of Cartea, Jaimungal & Penalva (2015,
    ch. 10) less the initial wealth. ``phi`` and ``alpha`` must be 0 with ``reward="wealth"``.
    """

    s0: float = 100.0
    T: float = 1.0
    sigma: float = 2.0
    dt: float = 0.005
    A: float = 140.0
    k: float = 1.5
    q0: int = 0
    max_depth: float = 10.0
    reward: str = "wealth"
    phi: float = 0.0
    alpha: float = 0.0

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """Names of the parameters, in declaration order."""
        return tuple(f.name for f in fields(cls))

    @property
    def num_steps(self) -> int:
        """Steps per episode, ``T / dt``."""
        return round(self.T / self.dt)

    def validate(self) -> ASParams:
        """Raise ValueError naming the first invalid field; return self when all are valid."""
        for name in ("s0", "T", "sigma", "dt", "A", "k", "max_depth"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float | np.number):
                raise ValueError(f"{name} must be a real number, got {value!r}")
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be > 0, got {value!r}")
        if isinstance(self.q0, bool) or not isinstance(self.q0, int | np.integer):
            raise ValueError(f"q0 must be an integer, got {self.q0!r}")
        if self.dt > self.T:
            raise ValueError(f"dt must be <= T, got dt={self.dt!r} and T={self.T!r}")
        n = self.T / self.dt
        if abs(n - round(n)) > 1e-9 * max(1.0, n):
            raise ValueError(f"T / dt must be an integer number of steps, got T/dt = {n!r}")
        if self.reward not in REWARDS:
            raise ValueError(f"reward must be one of {REWARDS}, got {self.reward!r}")
        for name in ("phi", "alpha"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float | np.number):
                raise ValueError(f"{name} must be a real number, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")
            if value != 0 and self.reward != "inventory_penalty":
                raise ValueError(
                    f"{name} applies only with reward='inventory_penalty', got {name}={value!r} "
                    f"with reward={self.reward!r}"
                )
        return self

    def packed(self) -> NDArray[np.float64]:
        """The float64 parameter array the kernels read (slots ``P_*``)."""
        p = np.zeros(NUM_PACKED, dtype=np.float64)
        p[P_S0] = self.s0
        p[P_Q0] = self.q0
        p[P_SIGMA_SQRT_DT] = self.sigma * math.sqrt(self.dt)
        p[P_A_DT] = self.A * self.dt
        p[P_K] = self.k
        p[P_MAX_DEPTH] = self.max_depth
        p[P_T] = self.T
        p[P_NUM_STEPS] = self.num_steps
        p[P_PENALTY] = 1.0 if self.reward == "inventory_penalty" else 0.0
        p[P_PHI_DT] = self.phi * self.dt
        p[P_ALPHA] = self.alpha
        return p

    def as_dict(self) -> dict[str, object]:
        """The parameters as a plain dict."""
        return asdict(self)


def new_state(num_envs: int) -> tuple[NDArray[np.float64], NDArray[np.float32], NDArray[np.bool_]]:
    """Zeroed ``(state, obs, flags)`` buffers for ``num_envs`` environments."""
    state = np.zeros((NUM_FIELDS, num_envs), dtype=np.float64)
    obs = np.zeros((num_envs, 2), dtype=np.float32)
    flags = np.zeros((NUM_FLAGS, num_envs), dtype=np.bool_)
    return state, obs, flags


@nb.njit(cache=True, error_model="numpy", inline="always")
def _reset_one(
    i: int,
    state: NDArray[np.float64],
    obs: NDArray[np.float32],
    flags: NDArray[np.bool_],
    params: NDArray[np.float64],
) -> None:
    s0 = params[P_S0]
    q0 = params[P_Q0]
    state[MID, i] = s0
    state[INVENTORY, i] = q0
    state[CASH, i] = 0.0
    state[WEALTH, i] = q0 * s0
    state[STEP, i] = 0.0
    state[REWARD, i] = 0.0
    obs[i, 0] = q0
    obs[i, 1] = 0.0
    flags[TERMINATED, i] = False
    flags[TRUNCATED, i] = False
    flags[BID_FILL, i] = False
    flags[ASK_FILL, i] = False


@nb.njit(cache=True, error_model="numpy")
def reset_kernel(
    state: NDArray[np.float64],
    obs: NDArray[np.float32],
    flags: NDArray[np.bool_],
    params: NDArray[np.float64],
    mask: NDArray[np.bool_],
) -> None:
    """Start a new episode in every env where ``mask`` is set (streams are left as they are)."""
    for i in range(mask.shape[0]):
        if mask[i]:
            _reset_one(i, state, obs, flags, params)


@nb.njit(cache=True, error_model="numpy")
def step_kernel(
    state: NDArray[np.float64],
    rng: NDArray[np.uint64],
    actions: NDArray[np.floating],
    autoreset: NDArray[np.bool_],
    obs: NDArray[np.float32],
    flags: NDArray[np.bool_],
    params: NDArray[np.float64],
) -> int:
    """Advance every env by one step of ``dt``; envs flagged in ``autoreset`` are reset instead.

    ``actions[i] = (delta_b, delta_a)``: the bid is quoted at ``s - delta_b`` and the ask at
    ``s + delta_a`` (depths clipped to ``[-max_depth, max_depth]``). Event order within a step:
    bid fill (one uniform), ask fill (one uniform), then the mid move (one uniform).

    The reward is the change in wealth; with the inventory penalty (``params[P_PENALTY]``) it
    is reduced by ``phi dt q^2`` (``q`` after the step's fills) and, at the last step, by
    ``alpha q^2``.

    Returns -1, or the flat index of the first non-finite action, in which case nothing changed.
    """
    n = actions.shape[0]
    for i in range(n):
        for j in range(actions.shape[1]):
            if not math.isfinite(actions[i, j]):
                return i * actions.shape[1] + j
    ds = params[P_SIGMA_SQRT_DT]
    a_dt = params[P_A_DT]
    k = params[P_K]
    max_depth = params[P_MAX_DEPTH]
    horizon = params[P_T]
    num_steps = params[P_NUM_STEPS]
    penalty = params[P_PENALTY] != 0.0
    phi_dt = params[P_PHI_DT]
    alpha = params[P_ALPHA]
    for i in range(n):
        if autoreset[i]:
            _reset_one(i, state, obs, flags, params)
            continue
        s = state[MID, i]
        q = state[INVENTORY, i]
        x = state[CASH, i]
        db = min(max(float(actions[i, 0]), -max_depth), max_depth)
        da = min(max(float(actions[i, 1]), -max_depth), max_depth)
        # min(1, p) is implicit: a uniform on [0, 1) is always below p >= 1.
        bid_fill = uniform(rng, i) < a_dt * math.exp(-k * db)
        ask_fill = uniform(rng, i) < a_dt * math.exp(-k * da)
        if bid_fill:
            q += 1.0
            x -= s - db
        if ask_fill:
            q -= 1.0
            x += s + da
        if uniform(rng, i) < 0.5:
            s += ds
        else:
            s -= ds
        wealth = x + q * s
        step = state[STEP, i] + 1.0
        state[MID, i] = s
        state[INVENTORY, i] = q
        state[CASH, i] = x
        reward = wealth - state[WEALTH, i]
        if penalty:
            reward -= phi_dt * q * q
            if step >= num_steps:
                reward -= alpha * q * q
        state[REWARD, i] = reward
        state[WEALTH, i] = wealth
        state[STEP, i] = step
        obs[i, 0] = q
        obs[i, 1] = horizon * (step / num_steps)
        flags[TERMINATED, i] = False
        flags[TRUNCATED, i] = step >= num_steps
        flags[BID_FILL, i] = bid_fill
        flags[ASK_FILL, i] = ask_fill
    return -1
