"""The scalar loggers of a training run, shared by the SB3 and RLlib trainers and baseline runs.

- The trainer's own scalars (``mm/*``, ``train/*`` or ``rllib/...``) go through one
  stable-baselines3 :class:`~stable_baselines3.common.logger.Logger` built from the ``logger``
  config group: TensorBoard event files in ``<run>/tensorboard/<trainer>/`` and, on request,
  ``progress.csv`` / ``progress.json`` in the run directory and a table on stdout.
- The evaluations (:class:`EvalLog`) go to one TensorBoard run per evaluated policy,
  ``<run>/tensorboard/eval/<policy name>/`` with tags ``eval/<metric>``, so TensorBoard draws
  the learned policy and its baselines in one chart; the other outputs get them as
  ``eval/<policy name>/<metric>`` columns. The hparams entry (the job's settings against the
  final evaluation of the run's own policy) is in that policy's run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmgym.extras import extra_needed

with extra_needed("agents.run_logger"):
    from stable_baselines3.common.logger import HumanOutputFormat, Logger, make_output_format

    from agents.evaluation.tensorboard import EVAL_PREFIX, EVAL_RUNS, PolicyRuns

if TYPE_CHECKING:
    from agents.config import LoggerConfig, TrainJob

NOT_IN_TENSORBOARD = ("tensorboard",)
"""``exclude`` of the evaluation's flat keys: TensorBoard has them in the policies' runs."""
KEY_WIDTH = 120
"""Longest key the stdout and log tables show whole (SB3 cuts at 36 and refuses two keys cut
to the same text: ``eval/adaptive[base_half_spread_ticks=3.0]/pnl`` and ``.../sharpe``)."""


def make_run_logger(run_dir: Path, trainer: str | None, config: LoggerConfig) -> Logger:
    """A logger writing what ``config`` asks for; event files go to ``tensorboard/<trainer>``
    (none for ``trainer=None``: a baseline's run has no trainer scalars)."""
    outputs = []
    if config.tensorboard and trainer is not None:
        outputs.append(make_output_format("tensorboard", str(run_dir / "tensorboard" / trainer)))
    for fmt in config.formats:
        output = make_output_format(fmt, str(run_dir))
        if isinstance(output, HumanOutputFormat):
            output.max_length = KEY_WIDTH
        outputs.append(output)
    return Logger(folder=str(run_dir), output_formats=outputs)


class EvalLog:
    """Where a training run's evaluations go: TensorBoard (one run per policy, shared tags
    ``eval/<metric>``) and the trainer ``logger``'s other outputs (``eval/<policy>/<metric>``,
    written at the logger's next ``dump``)."""

    def __init__(self, run_dir: Path, logger: Logger, config: LoggerConfig) -> None:
        self.logger = logger
        self.runs = PolicyRuns(run_dir / "tensorboard" / EVAL_RUNS) if config.tensorboard else None
        self.hparams = config.hparams

    def record(self, results: Mapping[str, Mapping[str, float]], step: int) -> None:
        """Log every policy's metrics at env step ``step``: baselines at every step the
        learned policy is evaluated at, so they draw as reference lines next to its curve."""
        if self.runs is not None:
            self.runs.log(results, step)
        for policy, values in results.items():
            for metric, value in values.items():
                self.logger.record(
                    f"{EVAL_PREFIX}/{policy}/{metric}", value, exclude=NOT_IN_TENSORBOARD
                )

    def record_hparams(
        self, job: TrainJob, final: Mapping[str, Mapping[str, float]], policy: str
    ) -> None:
        """The hparams entry: the job's settings against ``policy``'s final evaluation."""
        if self.runs is not None and self.hparams and policy in final:
            self.runs.log_hparams(policy, hparams_of(job), final[policy])

    def close(self) -> None:
        """Close the policies' event files."""
        if self.runs is not None:
            self.runs.close()


def hparams_of(job: TrainJob) -> dict[str, Any]:
    """The job's scalar settings, as shown in TensorBoard's HPARAMS tab."""
    values: dict[str, Any] = {
        "algo": job.agent.algo,
        "scenario": job.env.scenario,
        "seed": job.seed,
        "num_envs": job.train.num_envs,
    }
    for key, value in asdict(job.agent).items():
        if isinstance(value, bool | int | float | str):
            values[f"agent/{key}"] = value
    return values
