"""The RiskLimiter's batch over all cores against the serial batch: the accounts share nothing,
so the parallel build must give the same decisions bit for bit, whatever the number of accounts
per thread."""

from __future__ import annotations

import numpy as np
import pytest
from risk_support import BID, MARK, VENUE

from agents.deploy.risk import RiskInputs, RiskLimiter, RiskLimits, new_quotes


def _decision(
    rng: np.random.Generator, n: int, k: int, time_s: float
) -> tuple[np.ndarray, RiskInputs, np.ndarray]:
    """Random quotes and inputs for ``n`` accounts: wide enough to trip sizes, collars,
    exposure, margin and staleness, with NaNs among them."""
    inputs = RiskInputs.unknown(n, k)
    v, a = inputs.accounts, inputs.assets
    v["time_s"] = time_s
    v["equity"] = rng.uniform(-1_000.0, 20_000.0, n)
    v["margin_equity"] = v["equity"]
    v["maintenance_margin"] = rng.uniform(0.0, 2_000.0, n)
    v["data_age_s"] = rng.exponential(2.0, n)
    v["rejects"] = rng.poisson(0.5, n)
    v["stale"] = rng.random(n) < 0.05
    a["mark"] = MARK * np.exp(rng.normal(0.0, 0.02, (n, k)))
    a["best_bid"] = BID + rng.integers(-20, 20, (n, k))
    a["best_ask"] = a["best_bid"] + rng.integers(1, 10, (n, k))
    a["position"] = rng.normal(0.0, 30.0, (n, k))
    a["bid_resting"] = rng.exponential(2.0, (n, k))
    a["ask_resting"] = rng.exponential(2.0, (n, k))
    a["bid_resting_px"] = a["best_bid"] - 5
    a["ask_resting_px"] = a["best_ask"] + 5
    a["stale"] = rng.random((n, k)) < 0.02
    q = new_quotes(n, k)
    q["bid_px"] = a["best_bid"] - rng.integers(-3, 200, (n, k))
    q["ask_px"] = a["best_ask"] + rng.integers(-3, 200, (n, k))
    q["bid_size"] = rng.exponential(5.0, (n, k))
    q["ask_size"] = rng.exponential(5.0, (n, k))
    q["bid_size"][rng.random((n, k)) < 0.02] = np.nan
    q["hedge_fraction"] = rng.uniform(-0.5, 1.5, (n, k))
    mask = rng.random(n) < 0.9
    return q, inputs, mask


@pytest.mark.parametrize("num_accounts", [1, 15, 53])
def test_the_parallel_batch_decides_as_the_serial_one(num_accounts: int) -> None:
    k = 2
    limits = RiskLimits(estimator_warmup=0)
    limiters = [
        RiskLimiter(limits, VENUE, num_accounts, k, parallel=parallel) for parallel in (False, True)
    ]
    for limiter in limiters:
        limiter.open_accounts(np.ones(num_accounts, dtype=bool), np.arange(num_accounts))
    rng = np.random.default_rng(17)
    denied = 0
    for step in range(60):
        q, inputs, mask = _decision(rng, num_accounts, k, time_s=float(step))
        quotes = [q.copy(), q.copy()]
        counts = [lim.limit(quotes[j], inputs, mask).copy() for j, lim in enumerate(limiters)]
        assert quotes[0].tobytes() == quotes[1].tobytes(), f"step {step}"
        np.testing.assert_array_equal(counts[0], counts[1])
        denied += int(counts[0].sum())
        serial_log, parallel_log = (lim.drain_transitions() for lim in limiters)
        assert repr(serial_log) == repr(parallel_log)  # repr: a NaN time equals itself
    serial, parallel = (lim.state.records for lim in limiters)
    assert serial.tobytes() == parallel.tobytes()
    np.testing.assert_array_equal(limiters[0].state.denials, limiters[1].state.denials)
    assert denied > 0  # the decisions exercised the checks, not only the pass-through
