"""Named market scenarios: documented overrides of :class:`~mmgym.core.params.MarketParams`."""

from mmgym.scenarios.library import DEFAULT_SCENARIO, SCENARIOS, Scenario, make_params

__all__ = ["DEFAULT_SCENARIO", "SCENARIOS", "Scenario", "make_params"]
