"""Everything an evaluation writes: tables, the report, plots and TensorBoard scalars."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from agents.evaluation.config import EvaluationConfig
from agents.evaluation.report import markdown_report
from agents.evaluation.tensorboard import write_tensorboard


def write_outputs(
    episodes: pd.DataFrame,
    bands: pd.DataFrame,
    summary: pd.DataFrame,
    config: EvaluationConfig,
    out_dir: Path,
    tensorboard: bool = True,
) -> dict[str, Path]:
    """Save the episode table (parquet, CSV), the summary, the report, plots and TensorBoard."""
    from agents.evaluation.plots import plot_all

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "episodes_parquet": out_dir / "episodes.parquet",
        "episodes_csv": out_dir / "episodes.csv",
        "summary_csv": out_dir / "summary.csv",
        "report": out_dir / "report.md",
    }
    episodes.to_parquet(paths["episodes_parquet"], index=False)
    episodes.to_csv(paths["episodes_csv"], index=False)
    summary.to_csv(paths["summary_csv"], index=False)
    paths["report"].write_text(markdown_report(summary, config))
    bands.to_parquet(out_dir / "equity_bands.parquet", index=False)
    paths.update(plot_all(episodes, bands, out_dir))
    if tensorboard:
        paths["tensorboard"] = write_tensorboard(summary, out_dir / "tensorboard")
    return paths
