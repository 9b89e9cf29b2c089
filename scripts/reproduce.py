"""Reproduce a published experiment and write its table into the run directory.

    python scripts/reproduce.py experiment=as2008                  # AS (2008), ~5 s
    python scripts/reproduce.py experiment=as2008 experiment.gammas=[0.1]
    python scripts/reproduce.py experiment=cj2015                  # CJ (2015), ~3 min
    python scripts/reproduce.py experiment=cj2015 experiment.num_paths=5000

The committed results live in ``experiments/<name>/``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # experiments/: not installed

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from agents.config import ReproduceJob, to_job
from agents.job_dir import discard_on_failure
from experiments.as2008 import run as as2008
from experiments.cj2015 import run as cj2015

ROOT = Path(__file__).resolve().parent.parent


@hydra.main(version_base=None, config_path="../conf", config_name="reproduce")
def main(cfg: DictConfig) -> None:
    """Run the experiment named by ``experiment=`` and save its table."""
    out = Path(HydraConfig.get().runtime.output_dir)
    with discard_on_failure(out):
        _run(cfg, out)


def _run(cfg: DictConfig, out: Path) -> None:
    job = to_job(cfg.experiment, ReproduceJob)
    out.mkdir(parents=True, exist_ok=True)
    if job.name == "as2008":
        table = as2008.markdown_table(tuple(job.gammas), seed=job.seed)
        (out / "results.md").write_text(table + "\n")
    elif job.name == "cj2015":
        overrides = {"seed": job.seed}
        if job.num_paths is not None:
            overrides["num_paths"] = job.num_paths
        config_file = ROOT / (job.config_file or "experiments/cj2015/config.json")
        results = cj2015.run(cj2015.Config.load(str(config_file), **overrides))
        table = cj2015.markdown(results)
        cj2015.write(results, out)
    else:
        raise ValueError(f"unknown experiment {job.name!r}; valid: as2008, cj2015")
    print(table)
    print(f"results: {out / 'results.md'}")


if __name__ == "__main__":
    main()
