"""The display name of a policy, the one name it has in every report and in TensorBoard.

- a learned policy is named by its algorithm: ``ppo``, ``sac``, ``rllib_ppo``;
- a residual one adds the baseline it corrects: ``ppo+adaptive``;
- a baseline is its registered name, with the settings that differ from its defaults in
  brackets: ``adaptive``, ``adaptive[base_half_spread_ticks=3.0]``.

The evaluation (episode tables, reports, plots), the comparison, the trainers' TensorBoard runs
and ``summary.json``, baseline runs, RLlib and the demo all name policies here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def learned_name(algo: str, residual_on: str | None = None) -> str:
    """``algo``, or ``algo+<baseline>`` for a residual policy on that baseline."""
    return algo if residual_on is None else f"{algo}+{residual_on}"


def baseline_name(name: str, settings: Mapping[str, Any] | None = None) -> str:
    """Baseline ``name`` with the ``settings`` that differ from its defaults:
    ``adaptive[base_half_spread_ticks=3.0]``. An integer given for a float setting is shown as
    the float the baseline uses (``3`` as ``3.0``), a list or tuple without blanks
    (``hedge_thresholds=(0.4,0.8)``), so the name is also a folder name without blanks."""
    from agents.baselines.registry import settings_of

    defaults = settings_of(name)
    changed = []
    for key, value in (settings or {}).items():
        default = defaults.get(key)
        shown = _as_typed(value, default)
        if shown != default:
            changed.append(f"{key}={_text(shown)}")
    return f"{name}[{','.join(changed)}]" if changed else name


def policy_name(agent: Any) -> str:
    """The display name of a training job's agent config (``job.agent``): a baseline's
    (:class:`~agents.config.BaselineAgentConfig`) with its changed settings, a learned one's by
    its algorithm and residual base."""
    from agents.config import BaselineAgentConfig

    if isinstance(agent, BaselineAgentConfig):
        return baseline_name(agent.algo, agent.settings())
    return learned_name(str(agent.algo), getattr(agent, "residual_on", None))


def _text(value: Any) -> str:
    if isinstance(value, tuple):
        return "(" + ",".join(_text(v) for v in value) + ")"
    return str(value)


def _as_typed(value: Any, default: Any) -> Any:
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, list):
        return tuple(value)
    return value
