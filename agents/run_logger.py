"""The scalar logger of a training run, shared by the SB3 and RLlib trainers.

Both trainers record their scalars (``mm/*``, ``eval/<policy>/<metric>``, losses) through one
stable-baselines3 :class:`~stable_baselines3.common.logger.Logger` built from the ``logger``
config group: TensorBoard event files in ``<run>/tensorboard/<trainer>/`` and, on request,
``progress.csv`` / ``progress.json`` in the run directory and a table on stdout. The hparams
entry (the job's settings against its final evaluation) is the same for both trainers.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmgym.extras import extra_needed

with extra_needed("agents.run_logger"):
    from stable_baselines3.common.logger import HParam, Logger, make_output_format

if TYPE_CHECKING:
    from agents.config import LoggerConfig, TrainJob

NOT_IN_TENSORBOARD = ("stdout", "log", "json", "csv")
"""``exclude`` of entries meant for TensorBoard only (hparams)."""


def make_run_logger(run_dir: Path, trainer: str, config: LoggerConfig) -> Logger:
    """A logger writing what ``config`` asks for; event files go to ``tensorboard/<trainer>``."""
    outputs = []
    if config.tensorboard:
        outputs.append(make_output_format("tensorboard", str(run_dir / "tensorboard" / trainer)))
    for fmt in config.formats:
        outputs.append(make_output_format(fmt, str(run_dir)))
    return Logger(folder=str(run_dir), output_formats=outputs)


def hparams_of(job: TrainJob) -> dict[str, bool | str | float | None]:
    """The job's scalar settings, as shown in TensorBoard's HPARAMS tab."""
    values: dict[str, bool | str | float | None] = {
        "algo": job.agent.algo,
        "scenario": job.env.scenario,
        "seed": job.seed,
        "num_envs": job.train.num_envs,
    }
    for key, value in asdict(job.agent).items():
        if isinstance(value, bool | int | float | str):
            values[f"agent/{key}"] = value
    return values


def record_hparams(
    logger: Logger,
    job: TrainJob,
    final: dict[str, dict[str, float]],
    steps: int,
    policy: str = "learned",
) -> None:
    """Write the hparams entry: the job's settings against the final evaluation of its own
    policy (``learned``, or a baseline agent's name)."""
    if not job.logger.hparams:
        return
    metrics: dict[str, Any] = {f"eval/{policy}/{k}": v for k, v in final.get(policy, {}).items()}
    logger.record("hparams", HParam(hparams_of(job), metrics), exclude=NOT_IN_TENSORBOARD)
    logger.dump(steps)
