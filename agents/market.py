"""The market of a job: its scenario, the keyword overrides of the env (episode length
included) and the :class:`~mmgym.core.params.MarketParams` they make.

Trainers, the evaluation harness and :func:`agents.learned.load_run` build a job's market here,
so the env a policy trains on and the markets it is evaluated on cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mmgym.core.params import MarketParams
from mmgym.scenarios import make_params

if TYPE_CHECKING:
    from agents.config import TrainJob


@dataclass(frozen=True)
class Market:
    """A scenario with its overrides, and the parameters they make."""

    scenario: str
    overrides: dict[str, Any]
    """Keyword arguments of the PerpMM env besides ``scenario`` (``episode_seconds`` included)."""
    params: MarketParams


def market_of(scenario: str, episode_seconds: float, overrides: Mapping[str, Any]) -> Market:
    """The market of ``scenario`` with episodes of ``episode_seconds`` market seconds and the
    parameter ``overrides`` (an ``episode_seconds`` among them wins)."""
    kwargs = {"episode_seconds": float(episode_seconds), **overrides}
    return Market(scenario, kwargs, make_params(scenario, **kwargs))


def job_market(job: TrainJob) -> Market:
    """The market a training job trains and evaluates on."""
    return market_of(job.env.scenario, job.train.episode_seconds, job.env.overrides)
