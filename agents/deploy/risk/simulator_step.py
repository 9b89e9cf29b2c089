"""The limiter's side of one simulator step, fused: for each env in one compiled pass, read its
decision-time state, decode its action, limit the quotes and encode them back into the action
the simulator steps with.

The same functions as the separate passes (:func:`~agents.deploy.risk.simulator_inputs.
read_decision_state`, :func:`~mmgym.core.orders.decode_actions`, :meth:`RiskLimiter.limit
<agents.deploy.risk.limiter.RiskLimiter.limit>`, :func:`~mmgym.core.orders.encode_quotes`),
per env: each env touches only its own rows, so the result is the same bit for bit, serial or
over all cores. The gain is one pass over the envs' memory and one call instead of five, and
the parallel build runs on the kernel's cores instead of as a serial tail.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from agents.deploy.risk.engine import limit_account
from agents.deploy.risk.jit import JIT
from agents.deploy.risk.reasons import Reason
from agents.deploy.risk.simulator_inputs import read_env_state
from mmgym.core.batch import compile_serial_and_parallel
from mmgym.core.orders import decode_env, encode_env

_UNREPRESENTABLE = int(Reason.UNREPRESENTABLE_QUOTE)


def _limit_simulated_actions(loop: Any) -> Any:
    def limit_simulated_actions(
        Pa: NDArray[np.void],
        sim_accounts: NDArray[np.void],
        sim_assets: NDArray[np.void],
        best_bid: NDArray[np.int64],
        best_ask: NDArray[np.int64],
        actions: NDArray[np.floating],
        autoreset: NDArray[np.bool_],
        La: NDArray[np.void],
        quotes: NDArray[np.void],
        account_inputs: NDArray[np.void],
        asset_inputs: NDArray[np.void],
        state: NDArray[np.void],
        rng: NDArray[np.uint64],
        totals: NDArray[np.int64],
        counts: NDArray[np.int64],
        trans: NDArray[np.void],
        out: NDArray[np.float64],
    ) -> tuple[int, int]:
        """Limit every env's action into ``out`` (float64, the action the simulator steps
        with); envs in ``autoreset`` are not checked (their episode restarts). Sides whose
        limited quote the action cannot represent are cancelled and counted
        (``UNREPRESENTABLE_QUOTE``). Returns (accounts that recorded transitions, envs in
        ``autoreset``)."""
        recorded = 0
        resets = 0
        for i in loop(actions.shape[0]):
            P = Pa[0]
            read_env_state(P, sim_accounts[i], sim_assets[i], account_inputs[i], asset_inputs[i])
            decode_env(actions[i], best_bid[i], best_ask[i], P, quotes[i])
            # untrusted 0: the simulator's own orders, no guard in between
            limit_account(
                La, quotes, account_inputs, asset_inputs, state, rng, totals, counts, trans,
                not autoreset[i], 0, i,
            )  # fmt: skip
            row = out[i]
            for j in range(row.shape[0]):  # a warm start: where nothing changed, the same action
                row[j] = actions[i, j]
            dropped = encode_env(quotes[i], best_bid[i], best_ask[i], P, row)
            if dropped > 0:
                counts[i, _UNREPRESENTABLE] += dropped
                totals[i, _UNREPRESENTABLE] += dropped
                state[i].counted = True
            if state[i].transitions > 0:
                recorded += 1
            if autoreset[i]:
                resets += 1
        return recorded, resets

    return limit_simulated_actions


limit_simulated_actions, limit_simulated_actions_parallel = compile_serial_and_parallel(
    _limit_simulated_actions, serial_options=JIT
)
"""Every env's limited action: serially, or over all cores (identical results). The serial
build counts no references (:mod:`~agents.deploy.risk.jit`); numba's parallel loop needs them,
the limiter's functions it calls do without."""
