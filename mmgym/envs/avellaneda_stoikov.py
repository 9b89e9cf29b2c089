"""``mmgym/AvellanedaStoikov-v0``: the Avellaneda-Stoikov (2008) market as a Gymnasium env."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray

from mmgym.core import avellaneda_stoikov as k
from mmgym.core.rng import new_streams, seed_streams
from mmgym.envs.recycled import Recycled
from mmgym.envs.shell import BatchSimulator, KernelEnv, KernelVectorEnv, StepOutputs

_ACTION_NAMES = ("bid_depth", "ask_depth")


def _params(params: dict[str, Any]) -> k.ASParams:
    valid = k.ASParams.field_names()
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {unknown} for AvellanedaStoikov; valid ones are {list(valid)}"
        )
    return k.ASParams(**params).validate()


PARALLEL_MIN_ENVS = 1000
"""Batches at least this large step on all cores. An env-step costs about 13 ns, so smaller
batches would spend more on starting threads than they save. Results do not depend on it."""

_INFO_ROWS = {"wealth": k.WEALTH, "inventory": k.INVENTORY, "mid": k.MID}
_INFO_FLAGS = {"bid_fill": k.BID_FILL, "ask_fill": k.ASK_FILL}


class AvellanedaStoikovSimulator(BatchSimulator):
    """``num_envs`` Avellaneda-Stoikov markets advanced by one numba call per step."""

    def __init__(
        self, num_envs: int = 1, params: k.ASParams | None = None, parallel: bool | None = None
    ) -> None:
        super().__init__(num_envs)
        if parallel is None:
            parallel = self.num_envs >= PARALLEL_MIN_ENVS
        self._step_kernel = k.step_kernel_parallel if parallel else k.step_kernel
        self.params = (params or k.ASParams()).validate()
        self._packed = self.params.packed()
        p = self.params
        self.single_action_space = spaces.Box(
            low=-p.max_depth, high=p.max_depth, shape=(2,), dtype=np.float32
        )
        self.single_observation_space = spaces.Box(
            low=np.array([-np.inf, 0.0], dtype=np.float32),
            high=np.array([np.inf, p.T], dtype=np.float32),
            dtype=np.float32,
        )
        self.state, self.obs, self.flags = k.new_state(self.num_envs)
        self.rng = new_streams(self.num_envs)
        self.reward = self.state[k.REWARD]
        self.terminated = self.flags[k.TERMINATED]
        self.truncated = self.flags[k.TRUNCATED]
        self._info_views = _outputs(self.obs, self.state, self.flags)[4]
        self._copies = Recycled(self._new_copy)

    def reset(self, mask: NDArray[np.bool_], seeds: NDArray[np.uint64] | None) -> None:
        """Start new episodes for envs in ``mask``; reseed their streams from ``seeds`` if given."""
        if seeds is not None:
            seed_streams(self.rng, seeds, mask)
        k.reset_kernel(self.state, self.obs, self.flags, self._packed, mask)

    def step(self, actions: NDArray[Any], autoreset: NDArray[np.bool_]) -> int:
        """Advance every env (envs in ``autoreset`` restart); -1 or the first bad action index."""
        return int(
            self._step_kernel(
                self.state, self.rng, actions, autoreset, self.obs, self.flags, self._packed
            )
        )

    def info(self, copy: bool) -> dict[str, Any]:
        """``wealth``, ``inventory``, ``mid``, ``bid_fill``, ``ask_fill`` per env."""
        return self.outputs(copy)[4]

    def outputs(self, copy: bool) -> StepOutputs:
        """The last step's outputs; with ``copy``, views of a recycled copy of the whole state
        (three array copies: the state is small, its rows are the outputs)."""
        if not copy:
            return self.obs, self.reward, self.terminated, self.truncated, dict(self._info_views)
        (obs, state, flags), outputs = self._copies.acquire()
        obs[...] = self.obs
        state[...] = self.state
        flags[...] = self.flags
        return *outputs[:4], dict(outputs[4])

    def _new_copy(self) -> tuple[Any, list[NDArray[Any]]]:
        buffers = (np.empty_like(self.obs), np.empty_like(self.state), np.empty_like(self.flags))
        outputs = _outputs(*buffers)
        return (buffers, outputs), [*buffers, *outputs[:4], *outputs[4].values()]


def _outputs(
    obs: NDArray[np.float32], state: NDArray[np.float64], flags: NDArray[np.bool_]
) -> StepOutputs:
    """(obs, reward, terminated, truncated, info) as views of the state arrays."""
    info = {name: state[row] for name, row in _INFO_ROWS.items()}
    info.update({name: flags[row] for name, row in _INFO_FLAGS.items()})
    return obs, state[k.REWARD], flags[k.TERMINATED], flags[k.TRUNCATED], info


class AvellanedaStoikovVectorEnv(KernelVectorEnv):
    """Native vector env of ``num_envs`` Avellaneda-Stoikov markets (autoreset NEXT_STEP).

    ## Description

    `num_envs` independent copies of :class:`AvellanedaStoikovEnv`, advanced by one numba call.
    `reset(seed=s)` seeds sub-env `i` with `s + i`, so sub-env `i` matches a single env reset
    with seed `s + i` bit for bit. With `copy=False` the returned arrays are views of buffers
    that the next call overwrites.

    ## Action Space

    `(num_envs, 2)` array of `(bid_depth, ask_depth)`, as in the single env.

    ## Observation Space

    `(num_envs, 2)` float32 array of `(inventory, time elapsed)`.

    ## Rewards

    Per-env change in mark-to-market wealth `x + q s` (`reward="wealth"`), or that change minus
    `phi q^2 dt` and, at the last step, `alpha q_T^2` (`reward="inventory_penalty"`).

    ## Starting State

    Mid `s0`, inventory `q0`, cash 0, time 0 in every sub-env.

    ## Episode End

    Sub-envs truncate after `T / dt` steps; the next step returns the reset observation with
    reward 0 (autoreset mode NEXT_STEP).

    ## Arguments

    `num_envs=1`, `copy=True`, `parallel=None` (step on all cores; default: when `num_envs >=
    1000`; results are identical either way, pass `False` when other processes share the
    cores), and the single env's parameters (`s0, T, sigma, dt, A, k, q0, max_depth, reward,
    phi, alpha`).
    """

    action_names = _ACTION_NAMES

    def __init__(
        self, num_envs: int = 1, copy: bool = True, parallel: bool | None = None, **params: Any
    ) -> None:
        sim = AvellanedaStoikovSimulator(num_envs, _params(params), parallel=parallel)
        super().__init__(sim, copy=copy)


class AvellanedaStoikovEnv(KernelEnv):
    """Single Avellaneda-Stoikov market (the vector env's kernel with ``num_envs=1``).

    ## Description

    The market-making model of Avellaneda & Stoikov, "High-frequency trading in a limit order
    book", Quantitative Finance 8(3), 2008. A dealer quotes a bid and an ask around a mid price
    that moves by `+/- sigma sqrt(dt)` with probability 1/2 each per step. A quote at distance
    `delta` from the mid is filled (one unit) within a step with probability
    `min(1, A exp(-k delta) dt)`, the bid and the ask independently. Within a step the fills are
    drawn at the current mid, then the mid moves.

    ## Action Space

    `ndarray` of shape `(2,)`: depths in price units, quoted at `s - bid_depth` and
    `s + ask_depth`. Values outside `[-max_depth, max_depth]` are clipped; a negative depth
    crosses the mid (fill probability capped at 1). Non-finite actions raise ValueError.

    | Num | Action    | Min        | Max       |
    |-----|-----------|------------|-----------|
    | 0   | bid_depth | -max_depth | max_depth |
    | 1   | ask_depth | -max_depth | max_depth |

    ## Observation Space

    `ndarray` of shape `(2,)`, float32.

    | Num | Observation           | Min  | Max |
    |-----|-----------------------|------|-----|
    | 0   | inventory `q`         | -Inf | Inf |
    | 1   | time elapsed `t`      | 0    | T   |

    ## Rewards

    `reward="wealth"` (default): the change in mark-to-market wealth `x + q s` (cash plus
    inventory at the mid) over the step, so an episode's return is its profit
    `x_T + q_T s_T - q0 s0`.

    `reward="inventory_penalty"`: that change minus `phi q^2 dt`, with `q` the inventory held
    over the step (after its fills), and at the last step also minus `alpha q_T^2`. An episode's
    return is then the criterion of Cartea, Jaimungal & Penalva (2015, ch. 10),
    `x_T + q_T (s_T - alpha q_T) - phi sum q^2 dt`, less the initial wealth `q0 s0`.

    ## Starting State

    Mid `s0`, inventory `q0`, cash 0, time 0.

    ## Episode End

    The episode never terminates; it is truncated after `T / dt` steps (200 by default).

    ## Arguments

    `s0=100.0, T=1.0, sigma=2.0, dt=0.005, A=140.0, k=1.5, q0=0, max_depth=10.0,
    reward="wealth"` (the paper's experiment), and `phi=0.0, alpha=0.0` (the running and
    terminal inventory penalties, only with `reward="inventory_penalty"`); an unknown name
    raises ValueError.

    ```python
    >>> import gymnasium as gym, mmgym
    >>> env = gym.make("mmgym/AvellanedaStoikov-v0", sigma=1.0)
    >>> venv = gym.make_vec("mmgym/AvellanedaStoikov-v0", num_envs=1000,
    ...                     vectorization_mode="vector_entry_point")
    ```
    """

    action_names = _ACTION_NAMES

    def __init__(self, **params: Any) -> None:
        super().__init__(AvellanedaStoikovSimulator(1, _params(params)))
