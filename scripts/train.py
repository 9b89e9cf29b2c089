"""Train an RL market maker on PerpMM-v0: stable-baselines3 on one machine, RLlib on Ray.

    python scripts/train.py env=volatile agent=ppo train.total_steps=2e6 seed=3
    python scripts/train.py -m seed=0,1,2 env=calm,volatile        # multirun, locally
    python scripts/train.py agent=rllib_ppo                         # RLlib (docs/ray.md)
    python scripts/train.py agent=adaptive env=volatile             # a baseline, as a run

Each run directory (``runs/train/<time>-<overrides>/``) holds the resolved config, TensorBoard
logs, checkpoints, ``model.zip``, ``vecnormalize.pkl`` and ``summary.json``; a baseline's run
holds its evaluation in the same layout (:mod:`agents.baseline_run`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from agents.baseline_run import run_baseline
from agents.config import BaselineAgentConfig, RLlibPPOConfig, TrainJob, to_job
from agents.job_dir import discard_on_failure
from agents.sb3.train import train
from agents.training_run import TrainingDivergedError


@hydra.main(version_base=None, config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> None:
    """Run one training job and print where its results are."""
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    with discard_on_failure(run_dir):
        _run(cfg, run_dir)


def _run(cfg: DictConfig, run_dir: Path) -> None:
    job = to_job(cfg, TrainJob)
    if isinstance(job.agent, BaselineAgentConfig):
        summary = run_baseline(job, run_dir)
        print(f"evaluated {job.agent.algo} in {summary['seconds']:.0f} s: "
              f"{summary['final_eval'][job.agent.label()]}")  # fmt: skip
        print(f"run directory: {run_dir}")
        print(f"tensorboard --logdir {run_dir / 'tensorboard'}")
        return
    try:
        if isinstance(job.agent, RLlibPPOConfig):  # RLlib on Ray: agents/rllib, docs/ray.md
            from agents.rllib.train import train as train_rllib

            summary = train_rllib(job, run_dir)
        else:
            summary = train(job, run_dir)
    except TrainingDivergedError as stop:
        print(stop, file=sys.stderr)
        raise SystemExit(2) from stop
    learned = summary["final_eval"].get("learned", {})
    print(
        f"trained {summary['steps']} steps in {summary['seconds']:.0f} s "
        f"({summary['steps_per_second']:.0f} steps/s); final eval: {learned}"
    )
    print(f"run directory: {run_dir}")
    print(f"tensorboard --logdir {run_dir / 'tensorboard'}")


if __name__ == "__main__":
    main()
