"""Avellaneda-Stoikov (2008) market-making kernel, batched over environments.

The model of Avellaneda & Stoikov, "High-frequency trading in a limit order book", Quantitative
Finance 8(3), 2008, section 4, taken literally: the mid follows a binomial walk
``s += +/- sigma sqrt(dt)``; a bid (ask) quoted ``delta`` below (above) the mid is hit (lifted)
within ``dt`` with probability ``min(1, A exp(-k delta) dt)``, one unit at a time.

State is a struct of arrays: one ``(NUM_FIELDS, num_envs)`` float64 array whose rows are the
mid, inventory, cash, mark-to-market wealth, step index and last reward, plus one splitmix64
stream per env (:mod:`mmgym.core.rng`). Parameters are declared like the PerpMM market's
(:mod:`mmgym.core.param_spec`) and packed into a one-row record. The step is built serially and
over all cores (:mod:`mmgym.core.batch`), with identical results.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numba as nb
import numpy as np
from numpy.typing import NDArray

from mmgym.core.batch import compile_serial_and_parallel, first_non_finite
from mmgym.core.codes import ASReward, names
from mmgym.core.param_spec import Packed, Rule, check_rules, one_of, pack, param
from mmgym.core.rng import uniform

# Rows of the float state array.
MID, INVENTORY, CASH, WEALTH, STEP, REWARD = range(6)
NUM_FIELDS = 6
# Rows of the bool flag array.
TERMINATED, TRUNCATED, BID_FILL, ASK_FILL = range(4)
NUM_FLAGS = 4

REWARDS: tuple[str, ...] = names(ASReward)


def _is_real(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, int | float | np.integer | np.floating)


REAL = Rule("a real number", _is_real)
ABOVE_ZERO = Rule("> 0", lambda v: math.isfinite(v) and v > 0)
AT_LEAST_ZERO = Rule(">= 0", lambda v: math.isfinite(v) and v >= 0)
INTEGER = Rule("an integer", lambda v: not isinstance(v, bool) and isinstance(v, int | np.integer))


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

    s0: float = param(
        100.0, "Mid price at the start of an episode.", (REAL, ABOVE_ZERO), Packed("s0")
    )
    T: float = param(
        1.0, "Episode length (time units).", (REAL, ABOVE_ZERO), Packed("horizon", lambda p: p.T)
    )
    sigma: float = param(
        2.0,
        "Volatility of the mid (price per sqrt(time unit)).",
        (REAL, ABOVE_ZERO),
        Packed("mid_move_per_step", lambda p: p.sigma * math.sqrt(p.dt)),
    )
    dt: float = param(
        0.005,
        "Time step; T / dt steps per episode.",
        (REAL, ABOVE_ZERO),
        Packed("steps_per_episode", lambda p: p.num_steps, "i8"),
    )
    A: float = param(
        140.0,
        "Fill intensity of a quote at the mid (fills per time unit).",
        (REAL, ABOVE_ZERO),
        Packed("fill_intensity_per_step", lambda p: p.A * p.dt),
    )
    k: float = param(
        1.5,
        "Decay of the fill intensity with depth (per price unit).",
        (REAL, ABOVE_ZERO),
        Packed("fill_decay_per_price", lambda p: p.k),
    )
    q0: int = param(0, "Inventory at the start of an episode.", INTEGER, Packed("q0"))
    max_depth: float = param(
        10.0,
        "Largest quoted depth (price units): the action box.",
        (REAL, ABOVE_ZERO),
        Packed("max_depth"),
    )
    reward: str = param(
        "wealth",
        "``wealth`` or ``inventory_penalty`` (see above).",
        one_of(REWARDS),
        Packed("reward_mode", lambda p: REWARDS.index(p.reward), "i8"),
    )
    phi: float = param(
        0.0,
        "Running inventory penalty per unit squared per time unit.",
        (REAL, AT_LEAST_ZERO),
        Packed("inventory_penalty_per_step", lambda p: p.phi * p.dt),
    )
    alpha: float = param(
        0.0,
        "Terminal inventory penalty per unit squared.",
        (REAL, AT_LEAST_ZERO),
        Packed("terminal_inventory_penalty", lambda p: p.alpha),
    )

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
        check_rules(self)
        if self.dt > self.T:
            raise ValueError(f"dt must be <= T, got dt={self.dt!r} and T={self.T!r}")
        n = self.T / self.dt
        if abs(n - round(n)) > 1e-9 * max(1.0, n):
            raise ValueError(f"T / dt must be an integer number of steps, got T/dt = {n!r}")
        for name in ("phi", "alpha"):
            value = getattr(self, name)
            if value != 0 and self.reward != "inventory_penalty":
                raise ValueError(
                    f"{name} applies only with reward='inventory_penalty', got {name}={value!r} "
                    f"with reward={self.reward!r}"
                )
        return self

    def packed(self) -> NDArray[np.void]:
        """The one-row parameter record the kernels read."""
        return pack(self.validate(), {})

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
    s0: float,
    q0: float,
) -> None:
    state[MID, i] = s0
    state[INVENTORY, i] = q0
    state[CASH, i] = 0.0
    state[WEALTH, i] = q0 * s0
    state[STEP, i] = 0.0
    state[REWARD, i] = 0.0
    obs[i, 0] = q0
    obs[i, 1] = 0.0
    for flag in range(NUM_FLAGS):
        flags[flag, i] = False


@nb.njit(cache=True, error_model="numpy")
def reset_kernel(
    state: NDArray[np.float64],
    obs: NDArray[np.float32],
    flags: NDArray[np.bool_],
    Pa: NDArray[np.void],
    mask: NDArray[np.bool_],
) -> None:
    """Start a new episode in every env where ``mask`` is set (streams are left as they are)."""
    P = Pa[0]
    for i in range(mask.shape[0]):
        if mask[i]:
            _reset_one(i, state, obs, flags, P.s0, P.q0)


def _step_kernel(loop: Any) -> Any:
    def step_kernel(
        state: NDArray[np.float64],
        rng: NDArray[np.uint64],
        actions: NDArray[np.floating],
        autoreset: NDArray[np.bool_],
        obs: NDArray[np.float32],
        flags: NDArray[np.bool_],
        Pa: NDArray[np.void],
    ) -> int:
        """Advance every env by one step of ``dt``; envs flagged in ``autoreset`` are reset.

        ``actions[i] = (delta_b, delta_a)``: the bid is quoted at ``s - delta_b`` and the ask at
        ``s + delta_a`` (depths clipped to ``[-max_depth, max_depth]``). Event order within a
        step: bid fill (one uniform), ask fill (one uniform), then the mid's move (one uniform).
        The reward is the change in wealth; with the inventory penalty it is reduced by
        ``phi dt q^2`` (``q`` after the step's fills) and, at the last step, by ``alpha q^2``.
        Returns -1, or the flat index of the first non-finite action, in which case nothing
        changed.

        The body is written inline (no call per env): at about 13 ns per env-step, passing the
        arrays to a function per env would cost more than the step.
        """
        bad = first_non_finite(actions)
        if bad >= 0:
            return bad
        P = Pa[0]
        ds = P.mid_move_per_step
        a_dt = P.fill_intensity_per_step
        k = P.fill_decay_per_price
        max_depth = P.max_depth
        horizon = P.horizon
        num_steps = float(P.steps_per_episode)
        penalised = P.reward_mode == ASReward.INVENTORY_PENALTY
        phi_dt = P.inventory_penalty_per_step
        alpha = P.terminal_inventory_penalty
        s0 = P.s0
        q0 = P.q0
        for i in loop(actions.shape[0]):
            if autoreset[i]:
                _reset_one(i, state, obs, flags, s0, q0)
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
            if penalised:
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

    return step_kernel


step_kernel, step_kernel_parallel = compile_serial_and_parallel(_step_kernel)
"""Every env by one step: serially, or over all cores (identical results)."""
