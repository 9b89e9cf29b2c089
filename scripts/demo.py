"""The main job (``make demo``): train PPO on the default scenario, evaluate it against the
baselines on held-out markets, and write the comparison report.

The agent is residual PPO on ``adaptive`` (``conf/agent/ppo_residual.yaml``): plain PPO at this
budget learns to stop quoting (experiments/learn_perp), the residual agent starts at the best
baseline and learns corrections to it.

    python scripts/demo.py                          # about 1.5 minutes on 2 cores
    python scripts/demo.py agent=ppo                # plain PPO
    python scripts/demo.py train.total_steps=1e6    # any train-config override

Everything lands in ``runs/demo/<time>/``: ``train/`` (model, VecNormalize stats, TensorBoard,
summary), ``evaluation/`` (episode table, report, plots, TensorBoard) and ``comparison/``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from hydra import compose, initialize_config_dir

from agents.compare import compare
from agents.config import TrainJob, to_job
from agents.evaluation import EvaluationConfig, evaluate, summarise, write_outputs
from agents.job_dir import discard_on_failure
from agents.learned import load_run
from agents.sb3.train import train

ROOT = Path(__file__).resolve().parent.parent
BASELINES = ["linear_skew", "adaptive", "cartea_jaimungal"]


def main(overrides: list[str]) -> None:
    """Train, evaluate, compare, and print where the results are."""
    started = time.perf_counter()
    out = ROOT / "runs" / "demo" / time.strftime("%Y%m%d-%H%M%S")
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        defaults = ["train=demo", "agent=ppo_residual"]
        job = to_job(compose(config_name="train", overrides=[*defaults, *overrides]), TrainJob)
    with discard_on_failure(out):
        steps = int(job.train.total_steps)
        print(f"[1/3] training {job.agent.algo} on {job.env.scenario} for {steps} env steps")
        summary = train(job, out / "train")

        print("[2/3] evaluating it against the baselines on held-out markets")
        name = job.agent.algo if job.agent.residual_on is None else f"{job.agent.algo}_residual"
        config = EvaluationConfig(
            policies=[name, *BASELINES],
            scenarios=[job.env.scenario],
            seeds=[101, 102],
            num_envs=32,
            episode_seconds=job.train.episode_seconds,
            env_overrides=dict(job.env.overrides),
        )
        episodes, bands = evaluate(
            config, factories={name: lambda params: load_run(out / "train", params)}
        )
        table = summarise(episodes, config.cvar_alpha)
        evaluation = write_outputs(episodes, bands, table, config, out / "evaluation")

        print("[3/3] comparing runs")
        comparison = compare([out / "train"], out / "comparison")

    print()
    print(evaluation["report"].read_text())
    rate = summary["steps_per_second"]
    print(f"Done in {time.perf_counter() - started:.0f} s "
          f"(training {summary['seconds']:.0f} s at {rate:.0f} steps/s).")  # fmt: skip
    print(f"Results: {out}")
    print(f"  evaluation report   {evaluation['report']}")
    print(f"  plots               {out / 'evaluation'}/*.png")
    print(f"  comparison report   {comparison['report']}")
    print(f"  trained model       {out / 'train' / 'model.zip'}")
    print(f"TensorBoard (training and baselines together): tensorboard --logdir {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
