"""An evaluation's summary as TensorBoard scalars, under the tags training uses."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from agents.evaluation.summary import SUMMARY_METRICS


def write_tensorboard(summary: pd.DataFrame, log_dir: Path) -> Path:
    """Scalars ``eval/<policy>/<metric>`` per scenario run directory (training uses the tags)."""
    from torch.utils.tensorboard import SummaryWriter

    for scenario, block in summary.groupby("scenario", sort=False):
        writer = SummaryWriter(log_dir=str(log_dir / str(scenario)))
        for _, r in block.iterrows():
            for col in (*SUMMARY_METRICS, *[c for c in summary.columns if c.startswith("cvar_")]):
                writer.add_scalar(f"eval/{r['policy']}/{col}", float(r[col]), global_step=0)
        writer.close()
    return log_dir
