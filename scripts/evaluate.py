"""Evaluate policies x scenarios x seeds on PerpMM-v0 and write the desk's report.

    python scripts/evaluate.py
    python scripts/evaluate.py evaluation.scenarios=[calm,liquidation_cascade] \\
        evaluation.policies=[linear_skew,adaptive] evaluation.seeds=[0,1,2,3]

Outputs (in the Hydra run directory, ``runs/evaluate/<time>/``): ``episodes.parquet`` and
``.csv`` (one row per episode), ``summary.csv``, ``report.md``, PNG plots and TensorBoard
scalars under ``tensorboard/<scenario>/`` (tags ``eval/<policy>/<metric>``).
"""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from tqdm import tqdm

from agents.config import EvaluateJob, to_job
from agents.evaluation import evaluate as run_evaluation
from agents.evaluation import iterate_jobs, summarise, write_outputs
from agents.job_dir import discard_on_failure


@hydra.main(version_base=None, config_path="../conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    """Run the evaluation and print where the results are."""
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    with discard_on_failure(out_dir):
        _run(cfg, out_dir)


def _run(cfg: DictConfig, out_dir: Path) -> None:
    job = to_job(cfg, EvaluateJob)
    config = job.evaluation
    jobs = list(iterate_jobs(config))
    with tqdm(total=len(jobs), desc="evaluate", unit="batch") as bar:

        def progress(label: str) -> None:
            bar.set_postfix_str(label)
            bar.update()

        episodes, bands = run_evaluation(config, progress=progress)
    summary = summarise(episodes, config.cvar_alpha)
    paths = write_outputs(episodes, bands, summary, config, out_dir, tensorboard=job.tensorboard)
    print(paths["report"].read_text())
    print(f"Results in {out_dir}:")
    for name, path in paths.items():
        print(f"  {name:20s} {path}")
    if job.tensorboard:
        print(f"TensorBoard: tensorboard --logdir {paths['tensorboard']}")


if __name__ == "__main__":
    main()
