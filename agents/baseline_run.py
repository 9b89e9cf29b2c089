"""A baseline as a training run (``scripts/train.py agent=adaptive``): evaluated, not trained.

The run directory has a learner's layout, so TensorBoard, ``scripts/compare.py`` and Tune read
baselines and learned policies alike: ``config.yaml``, TensorBoard event files
(``tensorboard/baseline/``: ``eval/<label>/<metric>`` at step 0 and at ``train.total_steps``, a
flat reference line across a learner's curves, plus the reference baselines of
``train.eval_baselines`` with their default settings), an hparams entry and ``summary.json``.
The label is the baseline's name, with any settings changed from their defaults
(``adaptive[base_half_spread_ticks=3.0]``).
The evaluation is the learner's: ``train.eval_num_envs`` episodes on the held-out markets of
``train.eval_seed``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from mmgym.extras import extra_needed

with extra_needed("agents.baseline_run"):
    from agents.baselines.registry import make_baseline
    from agents.config import BaselineAgentConfig, TrainJob
    from agents.evaluation import evaluate_policies
    from agents.market import job_market
    from agents.run_logger import make_run_logger, record_hparams
    from agents.training_run import run_summary, write_config, write_summary


def run_baseline(job: TrainJob, run_dir: Path) -> dict[str, Any]:
    """Evaluate the job's baseline with its settings; save and return the summary."""
    agent = job.agent
    if not isinstance(agent, BaselineAgentConfig):
        raise ValueError(f"agent {getattr(agent, 'algo', agent)!r} is not a baseline")
    write_config(job, run_dir)
    t = job.train
    params = job_market(job).params
    label = agent.label()
    policies = {label: make_baseline(agent.algo, params, **agent.settings())}
    for name in t.eval_baselines:
        policies.setdefault(name, make_baseline(name, params))
    started = time.perf_counter()
    final = evaluate_policies(policies, job, t.eval_num_envs, t.eval_seed)
    elapsed = time.perf_counter() - started
    logger = make_run_logger(run_dir, "baseline", job.logger)
    total = int(t.total_steps)
    for step in sorted({0, total}):
        for policy, values in final.items():
            for metric, value in values.items():
                logger.record(f"eval/{policy}/{metric}", value)
        logger.dump(step)
    record_hparams(logger, job, final, total, policy=label)
    logger.close()
    history = [{"steps": step, **final} for step in sorted({0, total})]
    summary = run_summary(job, run_dir, 0, elapsed, final, history)
    write_summary(run_dir, summary)
    return summary
