"""One display name per policy, built from its config (agents.policy_names)."""

from __future__ import annotations

from agents.config import PPOConfig, RLlibPPOConfig, SACConfig, baseline_schema
from agents.policy_names import baseline_name, policy_name


def test_learned_policies_are_named_by_algorithm_and_residual_base() -> None:
    assert policy_name(PPOConfig()) == "ppo"
    assert policy_name(PPOConfig(residual_on="adaptive")) == "ppo+adaptive"
    assert policy_name(SACConfig(residual_on="linear_skew")) == "sac+linear_skew"
    assert policy_name(RLlibPPOConfig()) == "rllib_ppo"


def test_baselines_are_named_with_the_settings_changed_from_their_defaults() -> None:
    adaptive = baseline_schema("adaptive")
    assert policy_name(adaptive()) == "adaptive"
    assert policy_name(adaptive(base_half_spread_ticks=3)) == "adaptive[base_half_spread_ticks=3.0]"
    changed = adaptive(base_half_spread_ticks=3.0, hedge_thresholds=[0.4, 0.8])
    assert policy_name(changed) == "adaptive[base_half_spread_ticks=3.0,hedge_thresholds=(0.4,0.8)]"
    # The evaluation's policy_settings name a baseline the same way.
    assert baseline_name("adaptive", {"base_half_spread_ticks": 3}) == policy_name(
        adaptive(base_half_spread_ticks=3)
    )
    assert baseline_name("adaptive", {"hedge_thresholds": [0.4, 0.7]}) == "adaptive"  # default
    assert baseline_name("linear_skew", {}) == "linear_skew"
