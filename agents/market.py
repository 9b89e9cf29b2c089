"""The market of a job: its scenario, the keyword overrides of the env (episode length
included) and the :class:`~mmgym.core.params.MarketParams` they make.

Trainers, the evaluation harness and :func:`agents.learned.load_run` build a job's market here,
so the env a policy trains on and the markets it is evaluated on cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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


@dataclass(frozen=True)
class MarketSet:
    """The markets a set of numbers was measured on: ``num_envs`` episodes of ``scenario``
    (with its parameter ``overrides``) for each of ``seeds``; env ``i`` of seed ``s`` is reset
    with ``s x num_envs + i``. Numbers measured on different market sets differ by market noise
    too, so every table says which set it holds."""

    scenario: str
    seeds: tuple[int, ...]
    num_envs: int
    episode_seconds: float
    overrides: tuple[tuple[str, Any], ...] = ()
    """Parameter overrides besides ``episode_seconds``, sorted by name."""

    @classmethod
    def of(
        cls,
        scenario: str,
        seeds: Sequence[int],
        num_envs: int,
        episode_seconds: float,
        overrides: Mapping[str, Any] | None = None,
    ) -> MarketSet:
        """A market set from plain values (``episode_seconds`` in ``overrides`` wins)."""
        extra = dict(overrides or {})
        seconds = float(extra.pop("episode_seconds", episode_seconds))
        return cls(
            scenario,
            tuple(int(s) for s in seeds),
            int(num_envs),
            seconds,
            tuple(sorted(extra.items())),
        )

    @property
    def episodes(self) -> int:
        """Episodes per policy."""
        return len(self.seeds) * self.num_envs

    def describe(self) -> str:
        """``calm, seeds 101, 102 x 32 envs (64 episodes of 600 s)``, with any overrides."""
        seeds = ", ".join(map(str, self.seeds))
        text = (
            f"{self.scenario}, seed{'s' if len(self.seeds) > 1 else ''} {seeds} x "
            f"{self.num_envs} envs ({self.episodes} episode{'s' if self.episodes > 1 else ''} "
            f"of {self.episode_seconds:g} s)"
        )
        if self.overrides:
            text += ", overrides " + ", ".join(f"{k}={v}" for k, v in self.overrides)
        return text

    def to_dict(self) -> dict[str, Any]:
        """For ``summary.json``."""
        return {
            "scenario": self.scenario,
            "seeds": list(self.seeds),
            "num_envs": self.num_envs,
            "episode_seconds": self.episode_seconds,
            "overrides": dict(self.overrides),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MarketSet:
        """The inverse of :meth:`to_dict`."""
        return cls.of(
            data["scenario"],
            data["seeds"],
            data["num_envs"],
            data["episode_seconds"],
            data.get("overrides"),
        )


def eval_market_set(job: TrainJob) -> MarketSet:
    """The held-out markets a training job's policy and its baselines are evaluated on
    (``train.eval_seed`` x ``train.eval_num_envs``)."""
    t = job.train
    return MarketSet.of(
        job.env.scenario, [t.eval_seed], t.eval_num_envs, t.episode_seconds, job.env.overrides
    )
