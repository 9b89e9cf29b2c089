"""Evaluations in TensorBoard: one run per policy, the same tags in every run.

TensorBoard overlays the runs that log a tag in one chart. So every evaluated policy (learned
or baseline) writes to its own run directory, ``<log_dir>/<policy name>/``, under tags shared by
all policies: a training run's ``tensorboard/eval/<policy>/`` with ``eval/<metric>`` at every
evaluation step, so the learned policy's curve and its baselines' reference lines share one
chart; an evaluation's ``tensorboard/<policy>/`` with ``evaluation/<scenario>/<metric>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

EVAL_RUNS = "eval"
"""The folder, under a training run's ``tensorboard/``, of its evaluated policies' runs."""
EVAL_PREFIX = "eval"
"""Tag prefix of a training run's evaluations (``eval/pnl``)."""
EVALUATION_PREFIX = "evaluation"
"""Tag prefix of a standalone evaluation (``evaluation/calm/pnl``): other markets than a
training run's held-out ones, so other charts."""


class PolicyRuns:
    """One TensorBoard run per policy under ``log_dir``, each logging ``<prefix>/<metric>``."""

    def __init__(self, log_dir: Path, prefix: str = EVAL_PREFIX) -> None:
        self.log_dir = Path(log_dir)
        self.prefix = prefix
        self._writers: dict[str, Any] = {}

    def log(self, results: Mapping[str, Mapping[str, float]], step: int) -> None:
        """Log each policy's metrics at ``step`` in its own run."""
        for policy, values in results.items():
            writer = self._writer(policy)
            for metric, value in values.items():
                writer.add_scalar(f"{self.prefix}/{metric}", float(value), global_step=step)
            writer.flush()

    def log_hparams(
        self, policy: str, hparams: Mapping[str, Any], final: Mapping[str, float]
    ) -> None:
        """An hparams entry in ``policy``'s run: ``hparams`` against its ``final`` metrics
        (TensorBoard's HPARAMS tab reads their values from the run's ``<prefix>/<metric>``)."""
        from torch.utils.tensorboard.summary import hparams as hparams_summaries

        metrics = {f"{self.prefix}/{k}": float(v) for k, v in final.items()}
        writer = self._writer(policy)
        for summary in hparams_summaries(dict(hparams), metrics):
            writer.file_writer.add_summary(summary)
        writer.flush()

    def close(self) -> None:
        """Close every run's event file."""
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()

    def _writer(self, policy: str) -> Any:
        if policy not in self._writers:
            from torch.utils.tensorboard import SummaryWriter

            self._writers[policy] = SummaryWriter(log_dir=str(self.log_dir / policy))
        return self._writers[policy]


def write_tensorboard(summary: pd.DataFrame, log_dir: Path) -> Path:
    """An evaluation's summary: one run per policy (``log_dir/<policy>/``), scalars
    ``evaluation/<scenario>/<metric>`` at step 0 (the metric's mean over episodes, CVaR)."""
    from agents.evaluation.summary import SUMMARY_METRICS

    metrics = [
        *SUMMARY_METRICS,
        *[c for c in summary.columns if c.startswith(("markout_", "cvar_")) and "_ci_" not in c],
    ]
    runs = PolicyRuns(log_dir, EVALUATION_PREFIX)
    try:
        for _, r in summary.iterrows():
            values = {f"{r['scenario']}/{m}": float(r[m]) for m in metrics}
            runs.log({str(r["policy"]): values}, step=0)
    finally:
        runs.close()
    return log_dir
