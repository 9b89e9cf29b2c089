"""Ray Tune sweeps of RLlib training runs: a grid from ``conf/sweep/``.

    python scripts/tune.py sweep=ppo_lr                           # local Ray, every core
    python scripts/tune.py sweep=ppo_lr sweep.ray_address=auto    # an existing Ray cluster
    python scripts/tune.py sweep=smoke train=smoke env=volatile   # base job settings, as train.py

The base training job composes exactly as ``scripts/train.py``'s (groups ``env``, ``agent``,
``train``; the agent defaults to ``rllib_ppo``); the sweep's ``fixed`` settings and ``grid``
apply on top of it. The run directory (``runs/tune/<time>-<overrides>/``) holds the resolved config,
one directory per trial under ``<sweep>/`` (config.yaml, tensorboard/, policy/, checkpoint/,
summary.json, as a train.py run) and the results table (``results.csv``, ``results.md``).
See docs/ray.md.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from agents.config import TuneJob, to_job
from agents.job_dir import discard_on_failure
from agents.rllib.tune import register_primary_config, run_sweep

register_primary_config()


@hydra.main(version_base=None, config_path="../conf", config_name="tune")
def main(cfg: DictConfig) -> None:
    """Run the sweep and print its results table."""
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    with discard_on_failure(out_dir):
        table = run_sweep(to_job(cfg, TuneJob), out_dir)
    with_metrics = table.drop(columns=["path"], errors="ignore")
    print(with_metrics.to_string(index=False))
    print(f"results: {out_dir / 'results.md'} and {out_dir / 'results.csv'}")
    print(f"tensorboard --logdir {out_dir}")


if __name__ == "__main__":
    main()
