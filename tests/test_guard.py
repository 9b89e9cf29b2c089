"""GuardedPolicy: bad observations and model failures fail closed with a named reason and a state
change, good ones give exactly the shared decoder's and the RiskLimiter's orders."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.typing import NDArray
from omegaconf import OmegaConf
from risk_support import ASK, BID, make_inputs

from agents.baselines.registry import make_baseline
from agents.deploy import GuardedPolicy, RiskLimitedVectorEnv
from agents.deploy.bundle import load_bundle
from agents.deploy.fuzz import TIGHT
from agents.deploy.risk import Reason, RiskInputs, RiskLimiter, RiskLimits, TradingMode, VenueSpec
from agents.deploy.risk.simulator_inputs import read_decision_state
from mmgym.core.layout import pack_params
from mmgym.core.orders import QUOTE_DTYPE, decode_actions, encode_quotes
from mmgym.core.rng import seeds_from
from mmgym.envs.perp_mm import PerpMMVectorEnv
from mmgym.features.observation import observation_dim
from mmgym.scenarios import make_params

MARKET = make_params("calm")
LIMITS = RiskLimits(estimator_warmup=0)
DIM = observation_dim(1)
CLIP = MARKET.obs_clip
MAX_ORDER = LIMITS.max_order_size


class Scripted:
    """A policy that returns (or raises) whatever the test sets in ``next``, counting calls."""

    def __init__(self, next_output: Any = None) -> None:
        self.next: Any = next_output
        self.calls = 0

    def act(self, obs: NDArray[np.float32]) -> Any:
        self.calls += 1
        if isinstance(self.next, BaseException):
            raise self.next
        return self.next

    def reset(self, mask: NDArray[np.bool_] | None = None) -> None:
        pass


QUOTE = np.array([[0.0, -0.6, 0.0, 0.0, 0.0]], dtype=np.float32)
"""A quote a few ticks around the mid, size 1 each side, half hedged."""


def _guard(policy: Any = None, n: int = 1, limits: RiskLimits = LIMITS) -> GuardedPolicy:
    return GuardedPolicy(policy or Scripted(QUOTE), MARKET, limits, num_accounts=n)


def _obs(n: int = 1) -> NDArray[np.float32]:
    return np.zeros((n, DIM), dtype=np.float32)


def _sizes(quotes: NDArray[np.void]) -> list[tuple[float, float]]:
    return [(float(q["bid_size"]), float(q["ask_size"])) for q in quotes.ravel()]


def _same_quotes(a: NDArray[np.void], b: NDArray[np.void]) -> bool:
    return all(np.array_equal(a[f], b[f], equal_nan=True) for f in QUOTE_DTYPE.names or ())


# --- a good observation --------------------------------------------------------------------


def test_a_good_observation_gives_the_decoder_and_limiter_orders_by_hand() -> None:
    rng = np.random.default_rng(3)
    policy = make_baseline("fixed_spread", MARKET)
    guard = _guard(policy)
    limiter = RiskLimiter(LIMITS, VenueSpec.from_market(MARKET), 1, 1, seed=0)
    packed = pack_params(MARKET)
    for t in range(40):
        inputs = make_inputs(
            time_s=float(t),
            position=float(rng.uniform(-6, 6)),
            bid=BID + int(rng.integers(-3, 3)),
            ask=ASK + int(rng.integers(-3, 3)) + 4,
        )
        obs = rng.uniform(-1, 1, size=(1, DIM)).astype(np.float32)
        decision = guard.decide(obs, inputs)
        actions = policy.act(obs)
        expected = np.zeros((1, 1), dtype=QUOTE_DTYPE)
        decode_actions(
            actions, inputs.assets["best_bid"], inputs.assets["best_ask"], packed, expected
        )
        assert _same_quotes(decision.requested, expected)
        counts = limiter.limit(expected, inputs)
        assert _same_quotes(decision.quotes, expected)
        assert np.array_equal(decision.counts, counts)
        assert decision.untrusted[0] == 0 and guard.state.mode_of(0) == TradingMode.ACTIVE
    assert np.array_equal(guard.state.denials, limiter.state.denials)


# --- bad observations ----------------------------------------------------------------------

NAN_ROW = _obs()
NAN_ROW[0, 5] = np.nan
POS_INF = _obs()
POS_INF[0, 0] = np.inf
NEG_INF = _obs()
NEG_INF[0, DIM - 1] = -np.inf
BEYOND_CLIP = _obs()
BEYOND_CLIP[0, 2] = CLIP * 1.5

BAD_OBSERVATIONS: dict[str, tuple[Any, dict[str, Any], Reason]] = {
    "one feature short": (np.zeros((1, DIM - 1), np.float32), {}, Reason.INVALID_OBSERVATION),
    "one dimension": (np.zeros(DIM, np.float32), {}, Reason.INVALID_OBSERVATION),
    "two accounts' worth": (_obs(2), {}, Reason.INVALID_OBSERVATION),
    "float64": (_obs().astype(np.float64), {}, Reason.INVALID_OBSERVATION),
    "int": (np.zeros((1, DIM), np.int64), {}, Reason.INVALID_OBSERVATION),
    "a list": ([0.0] * DIM, {}, Reason.INVALID_OBSERVATION),
    "None": (None, {}, Reason.INVALID_OBSERVATION),
    "beyond obs_clip": (BEYOND_CLIP, {}, Reason.INVALID_OBSERVATION),
    "NaN": (NAN_ROW, {}, Reason.NON_FINITE_OBSERVATION),
    "+inf": (POS_INF, {}, Reason.NON_FINITE_OBSERVATION),
    "-inf": (NEG_INF, {}, Reason.NON_FINITE_OBSERVATION),
    "stale": (_obs(), {"observation_age_s": 5.5}, Reason.STALE_OBSERVATION),
    "age unknown": (_obs(), {"observation_age_s": math.nan}, Reason.STALE_OBSERVATION),
    "age not a number": (_obs(), {"observation_age_s": "soon"}, Reason.STALE_OBSERVATION),
}


@pytest.mark.parametrize("case", list(BAD_OBSERVATIONS))
@pytest.mark.parametrize("position", [0.0, 3.0, -1.5])
def test_a_bad_observation_sends_the_safe_action_names_the_reason_and_goes_reducing(
    case: str, position: float
) -> None:
    obs, kwargs, reason = BAD_OBSERVATIONS[case]
    policy = Scripted(QUOTE)
    guard = _guard(policy)
    guard.drain_transitions()
    decision = guard.decide(obs, make_inputs(time_s=7.0, position=position), **kwargs)
    assert policy.calls == 0  # the model never sees a bad observation
    assert decision.untrusted[0] == reason
    assert decision.reasons()[reason] == 2  # the decision, and the transition it caused
    assert np.isnan(decision.actions).all()
    q = decision.quotes[0, 0]
    # the safe action: nothing, or the reducing side at the touch (at most max_order_size)
    if position > 0:
        expected = [(0.0, min(position, MAX_ORDER))]
        assert q["ask_px"] == ASK
    elif position < 0:
        expected = [(min(-position, MAX_ORDER), 0.0)]
        assert q["bid_px"] == BID
    else:
        expected = [(0.0, 0.0)]
    assert _sizes(decision.quotes) == expected
    assert q["hedge_fraction"] == 1.0
    assert guard.state.mode_of(0) == TradingMode.REDUCING
    [t] = guard.drain_transitions()
    assert (t.time_s, t.previous, t.mode, t.reason) == (
        7.0,
        TradingMode.ACTIVE,
        TradingMode.REDUCING,
        reason,
    )


def test_stale_inputs_are_a_stale_observation_and_the_limiter_cancels_everything() -> None:
    guard = _guard()
    stale = LIMITS.stale_data_seconds + 1.0
    decision = guard.decide(_obs(), make_inputs(position=3.0, data_age=stale))
    assert decision.untrusted[0] == Reason.STALE_OBSERVATION
    assert _sizes(decision.quotes) == [(0.0, 0.0)]  # no order priced off a stale book
    assert decision.reasons()[Reason.STALE_MARKET_DATA] == 1  # the safe ask, denied
    fresh = guard.decide(_obs(), make_inputs(position=3.0, data_age=stale), observation_age_s=0.0)
    assert fresh.untrusted[0] == 0  # the observation's own age overrides the inputs' one


def test_one_bad_account_leaves_the_others_trading() -> None:
    guard = _guard(Scripted(np.tile(QUOTE, (3, 1))), n=3)
    obs = _obs(3)
    obs[1, 4] = np.nan
    inputs = RiskInputs.unknown(3, 1)
    one = make_inputs(position=2.0)
    inputs.accounts[:] = one.accounts[0]
    inputs.assets[:] = one.assets[0]
    decision = guard.decide(obs, inputs)
    assert decision.untrusted.tolist() == [0, Reason.NON_FINITE_OBSERVATION, 0]
    assert _sizes(decision.quotes) == [(1.0, 1.0), (0.0, 2.0), (1.0, 1.0)]
    assert [guard.state.mode_of(i) for i in range(3)] == [
        TradingMode.ACTIVE,
        TradingMode.REDUCING,
        TradingMode.ACTIVE,
    ]


# --- model failures ------------------------------------------------------------------------

NAN_ACTION = QUOTE.copy()
NAN_ACTION[0, 2] = np.nan
MODEL_FAILURES: dict[str, tuple[Any, Reason, str | None]] = {
    "raises": (RuntimeError("graph broke"), Reason.MODEL_ERROR, "RuntimeError: graph broke"),
    "wrong shape": (np.zeros((1, 4), np.float32), Reason.MODEL_ERROR, "(1, 4) float32"),
    "not floats": (np.zeros((1, 5), np.int64), Reason.MODEL_ERROR, "(1, 5) int64"),
    "None": (None, Reason.MODEL_ERROR, "returned NoneType"),
    "NaN": (NAN_ACTION, Reason.NON_FINITE_ACTION, None),
    "inf": (np.full((1, 5), np.inf, np.float32), Reason.NON_FINITE_ACTION, None),
}


@pytest.mark.parametrize("case", list(MODEL_FAILURES))
def test_a_failing_model_fails_closed(case: str) -> None:
    output, reason, message = MODEL_FAILURES[case]
    policy = Scripted(output)
    guard = _guard(policy)
    decision = guard.decide(_obs(), make_inputs(time_s=1.0, position=-4.0))
    assert policy.calls == 1
    assert decision.untrusted[0] == reason and decision.reasons()[reason] == 2
    assert _sizes(decision.quotes) == [(MAX_ORDER, 0.0)]  # buy back part of the short
    assert guard.state.mode_of(0) == TradingMode.REDUCING
    if message is None:
        assert guard.last_model_error is None
    else:
        assert guard.last_model_error is not None and message in guard.last_model_error
    policy.next = QUOTE  # the model works again: the guard uses it (still REDUCING)
    decision = guard.decide(_obs(), make_inputs(time_s=2.0, position=-4.0))
    assert decision.untrusted[0] == 0 and guard.last_model_error is None
    assert _sizes(decision.quotes) == [(1.0, 0.0)]  # the bid reduces; the ask would add


# --- the state machine ---------------------------------------------------------------------


def test_reducing_recovers_by_itself_but_persistent_failures_halt_until_an_operator_resets() -> (
    None
):
    limits = LIMITS.replace(reducing_hold_seconds=10.0, halt_stale_data_seconds=30.0)
    guard = _guard(limits=limits)
    good, bad = _obs(), NAN_ROW

    def at(t: float, obs: NDArray[np.float32]) -> TradingMode:
        guard.decide(obs, make_inputs(time_s=t, position=1.0))
        return guard.state.mode_of(0)

    assert at(0.0, bad) == TradingMode.REDUCING
    assert at(9.0, good) == TradingMode.REDUCING
    assert at(10.0, good) == TradingMode.ACTIVE  # RECOVERED after the hold, no operator
    # untrusted for more than halt_stale_data_seconds: HALTED; a good decision restarts it
    assert at(11.0, bad) == TradingMode.REDUCING
    assert at(12.0, good) == TradingMode.REDUCING
    for t in range(13, 44):  # 11 + 30 would have halted at 42
        assert at(float(t), bad) == TradingMode.REDUCING
    assert at(44.0, bad) == TradingMode.HALTED
    reasons = [(t.mode, t.reason) for t in guard.drain_transitions()]
    assert reasons[-2:] == [
        (TradingMode.HALTED, Reason.NON_FINITE_OBSERVATION),
        (TradingMode.HALTED, Reason.FLATTEN_REQUESTED),
    ]
    for t in range(45, 400, 7):  # good observations never leave HALTED
        assert at(float(t), good) == TradingMode.HALTED
        assert _sizes(guard.decide(good, make_inputs(time_s=t + 0.5, position=1.0)).quotes) == [
            (0.0, 1.0)  # only the flatten sequence's own reducing order
        ]
    with pytest.raises(ValueError, match="operator"):
        guard.reset("")
    guard.reset("desk", time_s=400.0)
    assert guard.drain_transitions()[-1].reason == Reason.OPERATOR_RESET
    assert at(401.0, good) == TradingMode.ACTIVE
    with pytest.raises(ValueError, match="not HALTED"):
        guard.reset("desk")
    assert guard.counts()[Reason.OPERATOR_RESET] == 1


def test_inputs_of_the_wrong_shape_are_a_programming_error() -> None:
    with pytest.raises(ValueError, match=r"RiskInputs\.assets"):
        _guard().decide(_obs(), RiskInputs.unknown(1, 2))


# --- garbage: a property over observations, model outputs and states ------------------------

FLOATS = st.one_of(
    st.floats(-CLIP, CLIP, width=32),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e30, -1e30, CLIP + 1.0]),
)
OBSERVATIONS = st.one_of(
    hnp.arrays(np.float32, (2, DIM), elements=st.floats(-CLIP, CLIP, width=32)),
    hnp.arrays(np.float32, (2, DIM), elements=FLOATS),
    hnp.arrays(np.float64, (2, DIM), elements=st.floats(-1, 1)),
    hnp.arrays(np.float32, st.sampled_from([(2,), (1, DIM), (2, DIM + 1), (0, DIM)])),
    st.sampled_from([None, "obs", [[0.0] * DIM] * 2, 3.0]),
)
OUTPUTS = st.one_of(
    hnp.arrays(np.float32, (2, 5), elements=st.floats(-1, 1, width=32)),
    hnp.arrays(
        np.float64,
        (2, 5),
        elements=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.just(1e300)),
    ),
    hnp.arrays(np.float32, st.sampled_from([(2, 4), (1, 5), (5,)])),
    st.sampled_from([None, RuntimeError("model"), MemoryError(), [[0.0] * 5] * 2]),
)
AGES = st.one_of(st.none(), st.floats(allow_nan=True), st.sampled_from(["x", [1.0, 2.0, 3.0]]))
STATE = st.fixed_dictionaries(
    {
        "position": st.one_of(st.floats(-12, 12), st.just(math.nan)),
        "bid_resting": st.sampled_from([0.0, 0.5, 3.0]),
        "ask_resting": st.sampled_from([0.0, 0.5, 3.0]),
        "data_age": st.sampled_from([0.0, 1.0, 6.0, math.nan]),
        "equity": st.sampled_from([10_000.0, 9_000.0, math.nan]),
        "bid": st.sampled_from([BID, BID - 40, math.nan]),
    }
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    modes=st.lists(st.sampled_from(list(TradingMode)), min_size=2, max_size=2),
    steps=st.lists(st.tuples(OBSERVATIONS, OUTPUTS, AGES, STATE, STATE), min_size=1, max_size=6),
)
def test_garbage_never_raises_and_never_adds_risk_outside_active(
    modes: list[TradingMode], steps: list[tuple[Any, ...]]
) -> None:
    policy = Scripted()
    guard = _guard(policy, n=2, limits=LIMITS.replace(reducing_hold_seconds=1e6))
    records = guard.state.records
    for i, mode in enumerate(modes):
        if mode == TradingMode.HALTED:
            guard.limiter.halt(i, "test", flatten=i == 0)
        records["mode"][i] = mode
        records["reducing_until"][i] = 1e9
    for t, (obs, output, age, *states) in enumerate(steps):
        inputs = RiskInputs.unknown(2, 1)
        for i, state in enumerate(states):
            one = make_inputs(
                time_s=float(t),
                **{k: v for k, v in state.items() if k != "bid"},
                bid=state["bid"],
            )
            inputs.accounts[i] = one.accounts[0]
            inputs.assets[i] = one.assets[0]
        policy.next = output
        before = records["mode"].copy()
        decision = guard.decide(obs, inputs, observation_age_s=age)
        after = records["mode"]
        assert ((after == TradingMode.HALTED) | (before != TradingMode.HALTED)).all()
        for i in range(2):
            q, a = decision.quotes[i, 0], inputs.assets[i, 0]
            bid, ask = float(q["bid_size"]), float(q["ask_size"])
            assert bid >= 0.0 and ask >= 0.0 and math.isfinite(bid + ask)
            if after[i] == TradingMode.ACTIVE and decision.untrusted[i] == 0:
                continue
            position = float(a["position"])
            if not math.isfinite(position):
                assert bid == ask == 0.0
                continue
            assert bid <= max(0.0, -position - a["bid_resting"]) + 1e-9
            assert ask <= max(0.0, position - a["ask_resting"]) + 1e-9
            if after[i] == TradingMode.HALTED and not guard.state.flattening[i]:
                assert bid == ask == 0.0


# --- the usage example of docs/deploy.md -----------------------------------------------------


def test_the_documented_usage_runs(residual_bundle: Path) -> None:
    env = PerpMMVectorEnv(num_envs=1, scenario="calm", episode_seconds=60.0)
    sim = env.sim
    obs, _ = env.reset(seed=0)
    inputs = RiskInputs.unknown(1, 1)
    read_decision_state(sim._packed, sim.accounts, sim.assets, inputs.accounts, inputs.assets)
    # as in docs/deploy.md
    guard = GuardedPolicy.from_bundle(residual_bundle, limits=RiskLimits(), num_accounts=1)
    decision = guard.decide(obs, inputs, observation_age_s=0.2)
    orders = decision.quotes  # (1, K) QUOTE_DTYPE: the orders to send
    why = decision.reasons(0)  # {Reason: count} of this decision
    journal = list(guard.drain_transitions())  # every change of mode, with reason and time
    if guard.state.mode_of(0) == TradingMode.HALTED:
        guard.reset("desk")  # only an operator leaves HALTED
    # end of the example
    assert guard.market == env.params and decision.untrusted[0] == 0
    assert orders.shape == (1, 1) and Reason.ACCOUNT_OPENED not in why
    assert [t.reason for t in journal] == [Reason.ACCOUNT_OPENED]


# --- one limiter, one decoder: the same orders as the limited env -----------------------------


def test_the_bundle_guarded_gives_the_limited_envs_orders_step_for_step(
    residual_run: Path, residual_bundle: Path
) -> None:
    config = OmegaConf.load(residual_run / "config.yaml")
    n, seed = 4, 11

    def make_env() -> PerpMMVectorEnv:
        return PerpMMVectorEnv(
            num_envs=n, scenario=config.env.scenario, episode_seconds=config.train.episode_seconds
        )

    limited, bare = RiskLimitedVectorEnv(make_env(), TIGHT), make_env()
    policy = load_bundle(residual_bundle).policy
    guard = GuardedPolicy.from_bundle(residual_bundle, limits=TIGHT, num_accounts=n)
    assert guard.market == bare.params
    obs_limited, _ = limited.reset(seed=seed)
    obs, _ = bare.reset(seed=seed)
    guard.open_accounts(seeds=seeds_from(seed, n))
    sim, inputs = bare.sim, RiskInputs.unknown(n, 1)
    actions = np.zeros((n, 5))
    cancelled = np.zeros(n, dtype=np.int64)
    denied = 0
    for _ in range(bare.params.decisions_per_episode):
        obs_limited, *_ = limited.step(policy.act(obs_limited))
        read_decision_state(sim._packed, sim.accounts, sim.assets, inputs.accounts, inputs.assets)
        decision = guard.decide(obs, inputs)
        assert decision.untrusted.sum() == 0
        assert _same_quotes(decision.quotes, limited.sim.quotes)
        denied += int(decision.counts[:, 1 : Reason.ACCOUNT_OPENED].sum())
        np.copyto(actions, decision.actions)
        encode_quotes(decision.quotes, sim.assets["best_bid"], sim.assets["best_ask"],
                      sim._packed, actions, cancelled)  # fmt: skip
        assert np.array_equal(actions, limited.sim.actions)
        obs, *_ = bare.step(actions)
        assert np.array_equal(obs, obs_limited)
    assert denied > 0  # the tight limits acted
    assert np.array_equal(guard.state.mode, limited.limiter.state.mode)
