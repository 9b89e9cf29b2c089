"""The adaptive baseline: one test per rule on handcrafted observations, then the real env."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import itertools
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.typing import NDArray

from agents.baselines.adaptive import AdaptivePolicy, AdaptiveSettings, expected_hedge_slippage_bp
from agents.baselines.registry import make_baseline, setting_types, settings_of
from agents.config import TrainJob, to_job
from agents.policy import Policy
from mmgym.core.params import MarketParams
from mmgym.envs.perp_mm import PerpMMVectorEnv
from mmgym.features.observation import (
    ACCOUNT_OBS_NAMES,
    ASSET_FEATURES,
    OBS_NAMES,
    observation_dim,
)
from mmgym.scenarios import SCENARIOS, make_params

CONF = str(Path(__file__).resolve().parents[1] / "conf")
P1 = MarketParams()
P3 = MarketParams(num_assets=3)
CALM_VOL = 1.5  # bp per sqrt(s): below vol_ref, as in the calm scenario


def make_obs(n: int = 1, K: int = 1, /, **features: float) -> NDArray[np.float32]:
    """A batch of ``n`` identical observations: calm volatility, mid-episode, then ``features``
    (a perp feature is set on every perp, an account feature on the account block)."""
    obs = np.zeros((n, observation_dim(K)), dtype=np.float32)
    values = {
        "volatility_fast": CALM_VOL,
        "volatility_medium": CALM_VOL,
        "volatility_slow": CALM_VOL,
        "time": 0.5,
        "funding_estimate": 0.125,
        "time_to_funding": 0.5,
        **features,
    }
    for name, value in values.items():
        if name in ACCOUNT_OBS_NAMES:
            obs[:, K * ASSET_FEATURES + ACCOUNT_OBS_NAMES.index(name)] = value
        else:
            for k in range(K):
                obs[:, k * ASSET_FEATURES + OBS_NAMES.index(name)] = value
    return obs


def decode(params: MarketParams, action: NDArray[np.float32], k: int = 0) -> dict[str, NDArray]:
    """Skew and half-spread (ticks), sizes (base units) and hedge fraction of perp ``k``."""
    a = action[:, 5 * k : 5 * k + 5].astype(np.float64)
    return {
        "skew": a[:, 0] * params.max_skew_ticks,
        "half": 0.5 + 0.5 * (a[:, 1] + 1.0) * (params.max_half_spread_ticks - 0.5),
        "bid": 0.5 * (a[:, 2] + 1.0) * params.max_quote_size,
        "ask": 0.5 * (a[:, 3] + 1.0) * params.max_quote_size,
        "hedge": 0.5 * (a[:, 4] + 1.0),
    }


def quotes(obs: NDArray[np.float32], params: MarketParams = P1, /, **kw: Any) -> dict[str, NDArray]:
    """Decoded quotes of a fresh policy on one batch."""
    return decode(params, AdaptivePolicy(params, **kw).act(obs))


# --- construction ---------------------------------------------------------------------------


def _field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of a dataclass, from its source."""
    body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0].body  # type: ignore[attr-defined]
    return {
        node.target.id: doc.value.value
        for node, doc in itertools.pairwise(body)
        if isinstance(node, ast.AnnAssign)
        and isinstance(node.target, ast.Name)
        and isinstance(doc, ast.Expr)
        and isinstance(doc.value, ast.Constant)
    }


def test_registry_builds_it_with_a_default_for_every_setting() -> None:
    policy = make_baseline("adaptive", P1)
    assert isinstance(policy, AdaptivePolicy)
    assert isinstance(policy, Policy)
    assert policy.settings == AdaptiveSettings()
    defaults = settings_of("adaptive")
    assert defaults == dataclasses.asdict(AdaptiveSettings())
    assert setting_types("adaptive")["flow_weights"] == tuple[float, float, float]
    missing = sorted(set(defaults) - set(_field_docs(AdaptiveSettings)))
    assert not missing, f"settings without a docstring: {missing}"


def test_settings_object_and_keyword_changes_build_the_same_policy() -> None:
    changed = AdaptiveSettings(base_size=2.0, hedge_thresholds=[0.3, 0.6])  # a list, as Hydra's
    assert changed.hedge_thresholds == (0.3, 0.6)
    by_object = AdaptivePolicy(P1, changed)
    by_keyword = AdaptivePolicy(P1, base_size=2.0, hedge_thresholds=(0.3, 0.6))
    assert by_object.settings == by_keyword.settings == changed
    on_top = AdaptivePolicy(P1, changed, base_size=3.0)  # keywords apply over the object
    assert on_top.settings == dataclasses.replace(changed, base_size=3.0)
    obs = make_obs(4, inventory=0.5)
    np.testing.assert_array_equal(by_object.act(obs), by_keyword.act(obs))
    with pytest.raises(dataclasses.FrozenInstanceError):
        changed.base_size = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError, match="vol_cp"):
        AdaptivePolicy(P1, vol_cp=7.0)


def test_hydra_overrides_reach_the_settings() -> None:
    overrides = [
        "agent=adaptive",
        "agent.base_size=2",
        "agent.flow_weights=[0.2,0.3,0.5]",
        "agent.hedge_slippage_bp=1.5",
        "agent.corr_min_obs=12",
    ]
    with initialize_config_dir(config_dir=CONF, version_base=None):
        job = to_job(compose(config_name="train", overrides=overrides), TrainJob)
    policy = make_baseline("adaptive", P1, **job.agent.settings())
    assert isinstance(policy, AdaptivePolicy)
    assert policy.settings == AdaptiveSettings(
        base_size=2.0, flow_weights=(0.2, 0.3, 0.5), hedge_slippage_bp=1.5, corr_min_obs=12
    )
    assert policy.hedge_slippage_bp == 1.5
    for bad, key in (("agent.corr_min_obs=1.5", "corr_min_obs"), ("agent.flow_weights=x", "flow")):
        with (
            initialize_config_dir(config_dir=CONF, version_base=None),
            pytest.raises(ConfigCompositionException) as err,
        ):
            compose(config_name="train", overrides=["agent=adaptive", bad])
        assert key in str(err.value) + str(err.value.__cause__)


@pytest.mark.parametrize(
    "bad",
    [
        {"base_size": 0.0},
        {"vol_cap": 1.0},
        {"stress_exit": 5.0},
        {"tail_size_factor": 2.0},
        {"hedge_thresholds": (0.7, 0.4)},
        {"hedge_fractions": (0.5,)},
        {"flow_weights": (1.0, 1.0)},
        {"corr_min_obs": 2.5},
        {"base_size": "1"},
        {"stress_enter": True},
    ],
)
def test_bad_settings_are_named(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad)).split("_")[0]):
        make_baseline("adaptive", P1, **bad)


# --- skew -----------------------------------------------------------------------------------


def test_buy_aggression_raises_skew_widens_the_ask_and_tightens_the_bid() -> None:
    flat = quotes(make_obs())
    buy = quotes(make_obs(**{f"flow_imbalance_{h}": 0.6 for h in ("fast", "medium", "slow")}))
    sell = quotes(make_obs(**{f"flow_imbalance_{h}": -0.6 for h in ("fast", "medium", "slow")}))
    assert flat["skew"][0] == pytest.approx(0.0, abs=1e-6)
    assert buy["skew"][0] > 0.0 > sell["skew"][0]
    # Relative to the symmetric quote: the ask moves away from the mid, the bid toward it.
    assert buy["skew"][0] + buy["half"][0] > flat["half"][0]  # ask distance
    assert buy["half"][0] - buy["skew"][0] < flat["half"][0]  # bid distance
    # The side the aggression hits (the ask) is also quoted smaller.
    assert buy["ask"][0] < buy["bid"][0] and sell["bid"][0] < sell["ask"][0]


@pytest.mark.parametrize("horizon", ["fast", "medium", "slow"])
def test_every_flow_horizon_contributes_with_its_weight(horizon: str) -> None:
    policy = AdaptivePolicy(P1, flow_weights=(0.2, 0.3, 0.5))
    signal = policy.flow_signal(make_obs(**{f"flow_imbalance_{horizon}": 0.5}).astype(np.float64))
    weight = {"fast": 0.2, "medium": 0.3, "slow": 0.5}[horizon]
    assert signal[0, 0] == pytest.approx(0.5 * weight)


def test_inventory_skew_is_linear_and_against_the_position() -> None:
    skews = [quotes(make_obs(inventory=q))["skew"][0] for q in (-0.2, 0.0, 0.1, 0.2)]
    assert skews[0] > skews[1] > skews[2] > skews[3]
    assert skews[3] == pytest.approx(-0.2 * 6.0, abs=0.05)  # inventory_skew_ticks = 6
    assert skews[3] - skews[2] == pytest.approx(skews[2] - skews[1], abs=0.05)


# --- size, post-only bias, regime -------------------------------------------------------------


def _vol(v: float) -> dict[str, float]:
    return {"volatility_fast": v, "volatility_medium": v, "volatility_slow": 1.0}


def test_higher_volatility_lowers_size_as_vol_ref_over_vol() -> None:
    sizes = [
        quotes(make_obs(**_vol(v)), stress_enter=9.0, stress_exit=8.0)["bid"][0]
        for v in (1.0, 2.0, 2.5, 4.0, 5.5)
    ]
    assert sizes[0] == pytest.approx(1.0, abs=1e-3) and sizes[1] == pytest.approx(1.0, abs=1e-3)
    assert sizes[2] == pytest.approx(2.0 / 2.5, abs=1e-3)
    assert sizes[3] == pytest.approx(0.5, abs=1e-3)
    assert all(a > b for a, b in itertools.pairwise(sizes[1:]))


def test_size_keys_on_the_larger_of_fast_and_medium_volatility() -> None:
    obs = make_obs(volatility_fast=4.0, volatility_medium=1.0)
    jump = quotes(obs, stress_enter=9.0, stress_exit=8.0)
    assert jump["bid"][0] == pytest.approx(0.5, abs=1e-3)


def test_no_quotes_above_the_volatility_cap() -> None:
    q = quotes(make_obs(**_vol(6.5)))  # vol_cap = 6
    assert q["bid"][0] == 0.0 and q["ask"][0] == 0.0


def test_post_only_bias_widens_the_half_spread_in_high_volatility() -> None:
    kw = {"stress_enter": 9.0, "stress_exit": 8.0}  # regime detector off
    halves = [quotes(make_obs(**_vol(v)), **kw)["half"][0] for v in (1.0, 2.0, 3.0, 5.0)]
    assert halves[0] == pytest.approx(2.0, abs=0.01)  # base half-spread
    # At vol_ref the passive margin binds: 1 tick + one sigma of the move over the latency cap.
    assert halves[1] == pytest.approx(1.0 + 2.0 * np.sqrt(P1.latency_cap_seconds), abs=0.01)
    # Above vol_ref: + one sigma of the move over the quote's life (1 s + latency cap).
    assert halves[3] == pytest.approx(2.0 + 3.0 * np.sqrt(1.5), abs=0.01)
    assert halves[0] < halves[1] < halves[2] < halves[3]


def test_each_quote_stays_on_its_passive_side_whatever_the_skew() -> None:
    for q in (-1.0, -0.5, 0.5, 1.0):
        for v in (1.0, 3.0):
            d = quotes(make_obs(inventory=q, **_vol(v)))
            assert d["skew"][0] - d["half"][0] <= -1.0 + 1e-4  # bid below the mid
            assert d["skew"][0] + d["half"][0] >= 1.0 - 1e-4  # ask above the mid


def test_regime_detector_has_hysteresis_and_stress_widens_and_cuts() -> None:
    policy = AdaptivePolicy(P1)  # enter 3.0, exit 2.4
    calm_twin = AdaptivePolicy(P1)
    between = make_obs(volatility_medium=2.7, volatility_slow=2.0, volatility_fast=1.0)
    policy.act(make_obs(volatility_medium=3.5, volatility_slow=2.0))
    assert policy.stressed.tolist() == [True]
    stressed, calm = decode(P1, policy.act(between)), decode(P1, calm_twin.act(between))
    assert policy.stressed.tolist() == [True] and calm_twin.stressed.tolist() == [False]
    assert stressed["half"][0] > calm["half"][0]
    assert stressed["bid"][0] == pytest.approx(0.5 * calm["bid"][0], abs=1e-3)
    # Medium volatility is low again but the slow (regime) estimate is not: still stressed.
    policy.act(make_obs(volatility_medium=2.0, volatility_slow=2.6))
    assert policy.stressed.tolist() == [True]
    policy.act(make_obs(volatility_medium=2.0, volatility_slow=2.0))
    assert policy.stressed.tolist() == [False]


# --- tail-risk override -----------------------------------------------------------------------


def _feed_returns(policy: AdaptivePolicy, returns: NDArray[np.float64], **features: float) -> dict:
    """Feed a (T, n, K) path of return_fast features; decoded quotes of perp 0 at the end."""
    T, n, K = returns.shape
    out: NDArray[np.float32] | None = None
    for t in range(T):
        obs = make_obs(n, K, **features)
        for k in range(K):
            obs[:, k * ASSET_FEATURES + OBS_NAMES.index("return_fast")] = returns[t, :, k]
        obs[:, OBS_NAMES.index("time")] = t / T  # increasing: one episode
        out = policy.act(obs)
    assert out is not None
    return decode(policy.params, out)


def test_correlation_spike_across_three_perps_cuts_size() -> None:
    rng = np.random.default_rng(0)
    common = rng.standard_normal((40, 2, 1))
    idio = rng.standard_normal((40, 2, 3))
    # Env 0: the perps move together (correlation ~0.97); env 1: independently.
    returns = np.concatenate([common[:, :1] + 0.2 * idio[:, :1], idio[:, 1:]], axis=1)
    policy = AdaptivePolicy(P3)
    d = _feed_returns(policy, returns)
    assert d["bid"][0] == 0.0 and d["ask"][0] == 0.0  # flat: both sides add risk
    np.testing.assert_allclose([d["bid"][1], d["ask"][1]], 1.0, atol=1e-3)  # independent


def test_correlation_override_keeps_the_side_that_reduces_the_position() -> None:
    rng = np.random.default_rng(1)
    returns = np.repeat(rng.standard_normal((40, 1, 1)), 3, axis=2)
    d = _feed_returns(AdaptivePolicy(P3, tail_size_factor=0.25), returns, inventory=0.2)
    assert d["ask"][0] > 0.9  # selling reduces a long position: kept
    assert d["bid"][0] == pytest.approx(0.25 * d["ask"][0], rel=0.05)


def test_correlation_needs_min_observations_and_never_triggers_with_one_perp() -> None:
    rng = np.random.default_rng(2)
    returns = np.repeat(rng.standard_normal((40, 1, 1)), 3, axis=2)
    early = _feed_returns(AdaptivePolicy(P3, corr_min_obs=50), returns)
    assert early["bid"][0] == pytest.approx(1.0, abs=1e-3)
    one = AdaptivePolicy(P1)
    single = _feed_returns(one, returns[:, :, :1])
    assert single["bid"][0] == pytest.approx(1.0, abs=1e-3)
    assert np.isnan(one.update_correlation(make_obs().astype(np.float64))).all()


def test_high_margin_ratio_cuts_size() -> None:
    ok = quotes(make_obs(margin_ratio=0.1))
    high = quotes(make_obs(inventory=-0.1, margin_ratio=0.8))
    assert ok["bid"][0] == pytest.approx(1.0, abs=1e-3)
    assert high["ask"][0] == 0.0 and high["bid"][0] > 0.9  # short: only buying back


# --- carry tilt and hedge ladder ----------------------------------------------------------------


def test_funding_tilt_only_when_funding_beats_hedge_slippage() -> None:
    slip = expected_hedge_slippage_bp(P1, 1.0)
    assert 4.0 < slip < 5.0  # 4 bp hedge fee plus impact
    settled = {"time_to_funding": 0.0}  # the running estimate is complete
    base = quotes(make_obs(**settled))["skew"][0]
    below = quotes(make_obs(funding_estimate=0.9 * slip, **settled))["skew"][0]
    above = quotes(make_obs(funding_estimate=1.8 * slip, **settled))["skew"][0]
    negative = quotes(make_obs(funding_estimate=-1.8 * slip, **settled))["skew"][0]
    assert below == pytest.approx(base, abs=1e-6)
    # Longs pay positive funding: lower the quotes so the book drifts short and receives it.
    assert above == pytest.approx(-0.8 * 3.0, abs=0.01)
    assert negative == pytest.approx(0.8 * 3.0, abs=0.01)
    cheap = quotes(make_obs(funding_estimate=0.9 * slip, **settled), hedge_slippage_bp=2.0)
    assert cheap["skew"][0] < 0.0


def test_funding_forecast_leans_on_the_last_rate_early_in_the_interval() -> None:
    policy = AdaptivePolicy(P1)
    obs = make_obs(funding_estimate=10.0, last_funding=2.0, time_to_funding=0.75)
    forecast = policy.funding_forecast(obs.astype(np.float64))[0, 0]
    assert forecast == pytest.approx(0.25 * 10.0 + 0.75 * 2.0)


def test_hedge_ladder_steps_at_its_thresholds() -> None:
    policy = AdaptivePolicy(P1)  # thresholds (0.4, 0.7), fractions (0.5, 1.0)
    q = np.array([0.0, 0.39, 0.4, 0.69, 0.7, 1.0, -0.39, -0.5, -0.8])
    np.testing.assert_allclose(
        policy.hedge_fraction(q), [0, 0, 0.5, 0.5, 1.0, 1.0, 0, 0.5, 1.0], atol=1e-12
    )
    # Through act (float32 observations, off the float boundaries):
    q = np.array([0.0, 0.39, 0.41, 0.69, 0.71, 1.0, -0.39, -0.5, -0.8])
    obs = np.repeat(make_obs(), len(q), axis=0)
    obs[:, OBS_NAMES.index("inventory")] = q
    np.testing.assert_allclose(
        decode(P1, policy.act(obs))["hedge"], [0, 0, 0.5, 0.5, 1.0, 1.0, 0, 0.5, 1.0], atol=1e-6
    )


# --- state -----------------------------------------------------------------------------------


def test_reset_mask_clears_only_the_masked_envs() -> None:
    policy = AdaptivePolicy(P3)
    rng = np.random.default_rng(3)
    returns = np.repeat(rng.standard_normal((30, 2, 1)), 3, axis=2)
    _feed_returns(policy, returns, volatility_medium=3.5)
    assert policy.stressed.all() and (policy.corr_count == 30).all()
    policy.reset(np.array([True, False]))
    assert policy.stressed.tolist() == [False, True]
    assert policy.corr_count.tolist() == [0, 30]
    assert not policy.corr_cov[0].any() and policy.corr_cov[1].any()
    policy.reset()
    assert not policy.stressed.any() and not policy.corr_count.any()


def test_a_new_episode_in_one_env_clears_that_env_only() -> None:
    policy = AdaptivePolicy(P1)
    obs = make_obs(2, volatility_medium=3.5)
    policy.act(obs)
    later = make_obs(2, volatility_medium=2.7, volatility_slow=2.0)
    later[0, OBS_NAMES.index("time")] = 0.0  # env 0 was autoreset
    policy.act(later)
    assert policy.stressed.tolist() == [False, True]


@settings(max_examples=60, deadline=None)
@given(
    K=st.sampled_from([1, 3]),
    data=st.data(),
)
def test_actions_are_finite_and_in_range_for_any_observation(K: int, data: st.DataObject) -> None:
    params = P1 if K == 1 else P3
    policy = AdaptivePolicy(params)
    elements = st.floats(-10.0, 10.0, allow_nan=False, width=32) | st.sampled_from(
        [np.nan, np.inf, -np.inf, 1e30]
    )
    for _ in range(3):  # a few steps, so the stateful rules run too
        obs = data.draw(arrays(np.float32, (4, observation_dim(K)), elements=elements))
        action = policy.act(obs)
        assert action.shape == (4, 5 * K) and action.dtype == np.float32
        assert np.isfinite(action).all() and (np.abs(action) <= 1.0).all()


# --- the real env ----------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_smoke_run_in_every_scenario(scenario: str) -> None:
    env = PerpMMVectorEnv(num_envs=8, scenario=scenario, episode_seconds=60.0, copy=False)
    policy = make_baseline("adaptive", env.params)
    obs, _ = env.reset(seed=0)
    for _ in range(70):  # past the end of the episode: the autoreset is exercised
        action = policy.act(obs)
        assert env.action_space.contains(action)
        obs, _, _, _, info = env.step(action)
        assert np.isfinite(info["pnl"]).all()
    env.close()


def _run(name: str, scenario: str, num_envs: int, seconds: float, seed: int) -> dict[str, NDArray]:
    """One seeded episode per env (envs seeded ``seed x num_envs + i``, as the evaluation
    harness does): its PnL and its mean |inventory| summed over perps."""
    params = make_params(scenario, episode_seconds=seconds)
    env = PerpMMVectorEnv(num_envs=num_envs, scenario=scenario, episode_seconds=seconds)
    policy = make_baseline(name, params)
    obs, _ = env.reset(seed=seed * num_envs)
    pnl = np.zeros(num_envs)
    inventory = np.zeros(num_envs)
    active = np.ones(num_envs, dtype=np.bool_)
    steps = params.decisions_per_episode
    for _ in range(steps):
        obs, _, terminated, truncated, info = env.step(policy.act(obs))
        pnl += np.where(active, info["pnl"], 0.0)
        q = np.abs(np.asarray(info["inventory"])).reshape(num_envs, -1).sum(axis=1)
        inventory += np.where(active, q, 0.0)
        active &= ~(terminated | truncated)
    env.close()
    return {"pnl": pnl, "inventory": inventory / steps}


def test_beats_linear_skew_in_the_volatile_scenario() -> None:
    """Same seeds, so the same markets for both (paired): more PnL, less inventory.

    Measured (32 envs x 30 min, seed 7): PnL 4.37 (sd 2.33) against -3.43 (sd 1.74), paired
    difference 7.80 +/- 0.53; mean |q| 0.80 against 1.08. Most of the gain comes from quoting
    wider and smaller (the post-only margin and the volatility rules), not from the flow skew.
    """
    adaptive = _run("adaptive", "volatile", 32, 1800.0, seed=7)
    linear = _run("linear_skew", "volatile", 32, 1800.0, seed=7)
    diff = adaptive["pnl"] - linear["pnl"]
    se = diff.std(ddof=1) / np.sqrt(diff.size)
    report = (
        f"pnl adaptive {adaptive['pnl'].mean():.2f} vs linear_skew {linear['pnl'].mean():.2f} "
        f"(paired diff {diff.mean():.2f} +/- {se:.2f}); mean |q| "
        f"{adaptive['inventory'].mean():.3f} vs {linear['inventory'].mean():.3f}"
    )
    assert diff.mean() > 3.0 * se, report
    assert adaptive["inventory"].mean() < linear["inventory"].mean(), report
