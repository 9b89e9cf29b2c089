"""``RiskLimitedVectorEnv``: the RiskLimiter around the native PerpMM vector env.

At each step, for every env: read the decision-time book, positions, resting and in-flight
orders, marks, equity and margin from the simulator's state; decode the action into quotes with
the shared decoder (:func:`mmgym.core.orders.decode_actions`, at the same mid the simulator
decodes at); limit them (:class:`~agents.deploy.risk.RiskLimiter`); encode the limited quotes
back into an action (:func:`mmgym.core.orders.encode_quotes`, exact); then step the simulator.
The four stages run in one compiled pass over the envs
(:mod:`agents.deploy.risk.simulator_step`), on the kernel's cores when it uses all of them. So
a policy trains and is evaluated under the production limits, and any action, NaN and infinity
included, is safe to send.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from agents.deploy.risk import Reason, RiskInputs, RiskLimiter, RiskLimits, VenueSpec, new_quotes
from agents.deploy.risk.simulator_step import (
    limit_simulated_actions,
    limit_simulated_actions_parallel,
)
from mmgym.core.kernel import ACTION_PER_ASSET
from mmgym.envs.perp_mm import PerpMMSimulator, PerpMMVectorEnv
from mmgym.envs.shell import BatchSimulator, KernelVectorEnv


class RiskLimitedSimulator(BatchSimulator):
    """A :class:`~mmgym.envs.perp_mm.PerpMMSimulator` whose every action passes the limiter.

    One limiter account per env; an env's new episode is a new account
    (:meth:`RiskLimiter.open_accounts`), so a HALTED env trades again only in its next episode.
    """

    def __init__(
        self, sim: PerpMMSimulator, limits: RiskLimits, parallel: bool | None = None
    ) -> None:
        super().__init__(sim.num_envs)
        self.inner = sim
        n, k = sim.num_envs, sim.params.num_assets
        self.single_observation_space = sim.single_observation_space
        self.single_action_space = sim.single_action_space
        self.action_names = sim.action_names
        self.obs = sim.obs
        self.reward = sim.reward
        self.terminated = sim.terminated
        self.truncated = sim.truncated
        if parallel is None:
            parallel = sim.parallel
        venue = VenueSpec.from_market(sim.params)
        self.limiter = RiskLimiter(limits, venue, n, k, parallel=parallel)
        self._limit_actions = (
            limit_simulated_actions_parallel if parallel else limit_simulated_actions
        )
        self.inputs = RiskInputs.unknown(n, k)
        self.quotes = new_quotes(n, k)
        self.actions = np.zeros((n, ACTION_PER_ASSET * k), dtype=np.float64)
        """The limited actions the simulator stepped with (float64: exact encoding)."""
        self.last_transitions: list[Any] = []
        """The limiter's transitions of the last step or reset."""
        self._best_bid = sim.assets["best_bid"]
        self._best_ask = sim.assets["best_ask"]

    def reset(self, mask: NDArray[np.bool_], seeds: NDArray[np.uint64] | None) -> None:
        """Start new episodes (new accounts) for envs in ``mask``."""
        self.inner.reset(mask, seeds)
        self.limiter.open_accounts(mask, seeds)
        self.limiter.state.last_denials[mask] = 0
        self.last_transitions = self.limiter.drain_transitions()

    def step(self, actions: NDArray[Any], autoreset: NDArray[np.bool_]) -> int:
        """Limit every env's action, then advance every env (never raises on bad values)."""
        sim = self.inner
        limiter = self.limiter
        state = limiter.state
        recorded, resets = self._limit_actions(
            sim._packed, sim.accounts, sim.assets, self._best_bid, self._best_ask, actions,
            autoreset, limiter.packed_limits, self.quotes, self.inputs.accounts,
            self.inputs.assets, state.records, state.rng, state.denials, state.last_denials,
            limiter.transition_rows, self.actions,
        )  # fmt: skip
        if recorded:
            limiter.log_transitions()
        bad = sim.step(self.actions, autoreset)
        if resets:
            limiter.open_accounts(autoreset)
        if state.transitions or self.last_transitions:
            self.last_transitions = limiter.drain_transitions()
        return bad

    def info(self, copy: bool) -> dict[str, Any]:
        """The simulator's info plus ``risk_mode`` (each env's TradingMode value) and
        ``risk_denials`` ((num_envs, len(Reason)) counts of the last decision)."""
        out = self.inner.info(copy)
        state = self.limiter.state
        out["risk_mode"] = state.mode.copy() if copy else state.mode
        out["risk_denials"] = state.last_denials.copy() if copy else state.last_denials
        return out


class RiskLimitedVectorEnv(KernelVectorEnv):
    """A PerpMM vector env whose actions pass the RiskLimiter first.

    ## Description
    Wraps :class:`~mmgym.envs.perp_mm.PerpMMVectorEnv` (use the returned env, not the wrapped
    one, from then on): each action is decoded into quotes, limited by a
    :class:`~agents.deploy.risk.RiskLimiter` with one account per env, and encoded back before
    the market steps. The kill switch acts on each env's equity path; a HALTED env keeps
    stepping with no orders (or flattens) until its episode ends; its next episode is a new
    account.

    ## Action Space and Observation Space
    Those of the wrapped env. Any action is accepted: NaN and infinite components are denied by
    the limiter (``NON_FINITE_ORDER``), never raised.

    ## Rewards, Starting State, Episode End
    Those of the wrapped env.

    ## Arguments
    ``env``: the PerpMMVectorEnv to wrap; ``limits``: the :class:`RiskLimits` (default: their
    defaults); ``parallel``: check the envs' decisions on all cores (identical results; default:
    as the wrapped env's kernel, so the check scales with the step instead of running as a
    serial tail).

    ``info`` adds ``risk_mode`` (num_envs,) (0 ACTIVE, 1 REDUCING, 2 HALTED) and
    ``risk_denials`` (num_envs, len(Reason)): the counts per :class:`Reason` of the last
    decision (``reason_names`` names the columns). ``limiter`` is the limiter itself (its
    ``state`` holds cumulative counts and measures); ``last_transitions`` the transitions of the
    last step.
    """

    sim: RiskLimitedSimulator

    def __init__(
        self,
        env: PerpMMVectorEnv,
        limits: RiskLimits | None = None,
        parallel: bool | None = None,
    ) -> None:
        if not isinstance(env, PerpMMVectorEnv):
            raise TypeError(f"RiskLimitedVectorEnv wraps a PerpMMVectorEnv, got {type(env)}")
        sim = RiskLimitedSimulator(env.sim, limits or RiskLimits(), parallel)
        super().__init__(sim, copy=env.copy)
        self.env = env
        self.params = env.params
        self.scenario = env.scenario
        self.limiter = self.sim.limiter
        self.reason_names: tuple[str, ...] = tuple(r.name for r in Reason)

    @property
    def last_transitions(self) -> list[Any]:
        """The limiter's transitions of the last step or reset."""
        return self.sim.last_transitions


def limit_env(env: PerpMMVectorEnv, limits: RiskLimits | None) -> KernelVectorEnv:
    """``env`` behind the RiskLimiter with ``limits``, or ``env`` itself when None (the
    training config's ``risk=none``)."""
    return env if limits is None else RiskLimitedVectorEnv(env, limits)
