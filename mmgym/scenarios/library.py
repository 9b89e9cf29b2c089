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
    )
}
DEFAULT_SCENARIO = "calm"


def make_params(scenario: str = DEFAULT_SCENARIO, **overrides: Any) -> MarketParams:
    """Parameters of ``scenario`` with ``overrides``; unknown names are a clear error."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; valid scenarios are: {sorted(SCENARIOS)}")
    check_field_names(overrides)
    return SCENARIOS[scenario].params(**overrides)
