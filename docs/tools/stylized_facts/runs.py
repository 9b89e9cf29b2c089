"""The runs of the stylized-facts page: every scenario, plus a fixed-regime control.

The control is ``calm`` with one fixed regime (all switching rates 0) and no informed flow, so
the Hawkes fit can be checked against the configured branching ratio.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mmgym.analysis.market_record import MarketRecord, simulate
from mmgym.scenarios import SCENARIOS, make_params

CONTROL = "control"
"""Label of the fixed-regime control run."""

CONTROL_OVERRIDES: dict[str, Any] = {
    "initial_regime": "calm",
    "regime_switch_per_hour": ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
    "informed_fraction": (0.0, 0.0, 0.0),
}
"""Market parameters of the control on top of ``calm``."""


@dataclass(frozen=True)
class FactsRun:
    """One simulated run of the page: a scenario with parameter overrides, named ``label``."""

    label: str
    scenario: str
    overrides: Mapping[str, Any] = field(default_factory=dict)

    def ticks(self, hours: float) -> int:
        """Market ticks one env of this run simulates in ``hours``."""
        return round(hours * 3600 / make_params(self.scenario, **self.overrides).tick_seconds)

    def record(
        self,
        envs: int,
        hours: float,
        seed: int,
        progress: Callable[[int], object] | None = None,
    ) -> MarketRecord:
        """Simulate and record the run (see :func:`mmgym.analysis.market_record.simulate`)."""
        return simulate(
            self.scenario,
            num_envs=envs,
            hours=hours,
            seed=seed,
            progress=progress,
            label=self.label,
            **self.overrides,
        )


FACTS_RUNS: tuple[FactsRun, ...] = (
    *(FactsRun(name, name) for name in SCENARIOS),
    FactsRun(CONTROL, "calm", CONTROL_OVERRIDES),
)
"""Every scenario under its own name, then the control."""
