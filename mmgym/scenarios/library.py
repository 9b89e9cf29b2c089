"""The scenario library: each scenario says what it stresses and which parameters it sets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mmgym.core.params import MarketParams, check_field_names


@dataclass(frozen=True)
class Scenario:
    """A named, documented set of parameter overrides."""

    name: str
    description: str
    overrides: dict[str, Any] = field(default_factory=dict)

    def params(self, **overrides: Any) -> MarketParams:
        """Market parameters of this scenario, with further ``overrides`` applied."""
        return MarketParams().replace(**{**self.overrides, **overrides})


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            name="calm",
            description=(
                "A liquid book that stays mostly in the calm regime: tight background spread, "
                "deep levels, rare jumps. The reference setting for learning to quote."
            ),
            overrides={
                "initial_regime": "calm",
                "regime_switch_per_hour": ((0.0, 0.5, 0.02), (4.0, 0.0, 0.2), (4.0, 4.0, 0.0)),
            },
        ),
        Scenario(
            name="volatile",
            description=(
                "Frequent switches into the volatile and stressed regimes: higher volatility, "
                "more jumps, more informed flow and a thinner book; stresses inventory control "
                "and adverse selection."
            ),
            overrides={
                "initial_regime": "volatile",
                "regime_switch_per_hour": ((0.0, 4.0, 0.5), (1.0, 0.0, 1.0), (1.0, 4.0, 0.0)),
                "informed_fraction": (0.15, 0.25, 0.35),
            },
        ),
        Scenario(
            name="liquidation_cascade",
            description=(
                "A crowded, highly leveraged market on a thin book: a 50x venue, large open "
                "interest at about 25x, frequent downward jumps. A jump pushes the mark through "
                "a cluster of long liquidation prices; the forced sells sweep a book whose "
                "makers withdraw in turn (depth near the mid falls by most of its size, the "
                "spread widens tenfold) and push the price into the next cluster, and the "
                "liquidations raise the odds of stress. Stresses inventory control while the "
                "agent's bids absorb forced flow."
            ),
            overrides={
                "initial_regime": "volatile",
                "margin_tiers": ((0.0, 50.0), (500_000.0, 20.0)),
                "crowd_leverage": 25.0,
                "crowd_entry_dispersion": 0.02,
                "crowd_open_interest": 3000.0,
                "crowd_large_position": 50.0,
                "depth_top": (3.0, 1.5, 0.4),
                "jump_rate_per_hour": (1.0, 4.0, 12.0),
                "jump_mean_size": (0.002, 0.004, 0.008),
                "jump_down_prob": 0.85,
            },
        ),
        Scenario(
            name="funding_squeeze",
            description=(
                "Persistent one-sided buying (crowded longs) with a weak arbitrage pull: the "
                "perp trades at a premium for long stretches and funding turns large and "
                "positive, with squeezes of the leverage premium (one every 10 h, 30 bp on "
                "average), so a short inventory earns carry while a long one bleeds. Stresses "
                "funding-aware inventory and the cost of hedging the carry."
            ),
            overrides={
                "initial_regime": "calm",
                "taker_imbalance": (0.5, 0.5, 0.5),
                "impact_coefficient": 1.0,
                "decoupling_per_hour": (6.0, 0.25),
                "decoupled_pull_seconds": 1800.0,
                "carry_squeeze_per_hour": (0.1, 0.1, 0.02),
                "carry_squeeze_size": 0.003,
            },
        ),
        Scenario(
            name="basis_decoupling",
            description=(
                "The perp decouples from spot for long stretches (hours): the arbitrage pull "
                "almost vanishes and one-sided flow carries the basis away from the oracle, so "
                "the mark and the hedge venue disagree. Stresses hedging against the oracle "
                "and models that assume the perp tracks spot."
            ),
            overrides={
                "initial_regime": "calm",
                "taker_imbalance": (0.15, 0.2, 0.2),
                "decoupling_per_hour": (1.0, 0.2),
                "decoupled_pull_seconds": 7200.0,
            },
        ),
        Scenario(
            name="flash_crash",
            description=(
                "Calm markets interrupted by short stress episodes in which large downward "
                "jumps hit a book that has thinned to a fraction of its depth: resting bids "
                "become liabilities. Stresses quote withdrawal and stale-quote risk."
            ),
            overrides={
                "initial_regime": "calm",
                "regime_switch_per_hour": ((0.0, 0.5, 2.0), (2.0, 0.0, 1.0), (30.0, 10.0, 0.0)),
                "jump_rate_per_hour": (0.2, 2.0, 40.0),
                "jump_mean_size": (0.001, 0.004, 0.015),
                "jump_down_prob": 0.9,
                "depth_top": (4.0, 1.5, 0.2),
            },
        ),
        Scenario(
            name="cross_margin_event",
            description=(
                "Three perps with correlated shocks whose correlation goes to 0.97 in stress, "
                "and a leveraged, cross-margined crowd on a 40x venue: a liquidation closes "
                "positions in every perp at once, so a shock in one asset forces flow in all. "
                "Stresses portfolio inventory and size rules keyed on a single asset's "
                "volatility."
            ),
            overrides={
                "num_assets": 3,
                "initial_regime": "volatile",
                "asset_correlation": (0.9, 0.93, 0.97),
                "margin_tiers": ((0.0, 40.0), (500_000.0, 20.0)),
                "crowd_leverage": 20.0,
                "crowd_entry_dispersion": 0.02,
                "crowd_open_interest": 1500.0,
                "crowd_large_position": 100.0,
                "jump_rate_per_hour": (0.5, 3.0, 10.0),
                "jump_mean_size": (0.002, 0.004, 0.008),
                "jump_down_prob": 0.85,
            },
        ),
    )
}
DEFAULT_SCENARIO = "calm"


def make_params(scenario: str = DEFAULT_SCENARIO, **overrides: Any) -> MarketParams:
    """Parameters of ``scenario`` with ``overrides``; unknown names are a clear error."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; valid scenarios are: {sorted(SCENARIOS)}")
    check_field_names(overrides)
    return SCENARIOS[scenario].params(**overrides)
