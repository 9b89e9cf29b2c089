"""What every training run shares, whatever trains it (SB3, RLlib, a baseline's run): its
config and summary files, the errors that stop it, and a final evaluation that cannot lose the
trained model.

``summary.json`` is written twice by a learner: once right after the model is saved, with
``final_eval`` null, and again with the final evaluation. A run whose summary has no final
evaluation did not finish (its model is usable; :mod:`agents.compare` leaves it out).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from omegaconf import OmegaConf

if TYPE_CHECKING:
    from agents.config import TrainJob

T = TypeVar("T")


class TrainingDivergedError(RuntimeError):
    """Training stopped early on a non-finite number; the message says which."""


class FinalEvaluationError(RuntimeError):
    """The evaluation after training failed; the trained model was saved first (the message
    names its files)."""


def write_config(job: TrainJob, run_dir: Path) -> None:
    """Create the run directory and write the resolved job to ``config.yaml``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.structured(job)))


def run_summary(
    job: TrainJob,
    run_dir: Path,
    steps: int,
    seconds: float,
    final_eval: dict[str, dict[str, float]] | None,
    eval_history: list[dict[str, Any]],
    **extra: Any,
) -> dict[str, Any]:
    """The keys every trainer's ``summary.json`` holds (``extra`` adds the trainer's own),
    with the sizes of the observations and actions of the job's market."""
    from agents.market import job_market
    from mmgym.envs.perp_mm import PerpMMVectorEnv

    market = job_market(job)
    env = PerpMMVectorEnv(num_envs=1, scenario=market.scenario, **market.overrides)
    dims = {
        "observation_dim": int(np.prod(env.single_observation_space.shape or ())),
        "action_dim": int(np.prod(env.single_action_space.shape or ())),
    }
    env.close()
    return {
        "scenario": job.env.scenario,
        "algo": job.agent.algo,
        "residual_on": getattr(job.agent, "residual_on", None),
        **dims,
        "seed": job.seed,
        "steps": int(steps),
        "seconds": seconds,
        "steps_per_second": steps / seconds if seconds > 0 else math.nan,
        **extra,
        "final_eval": final_eval,
        "eval_history": eval_history,
        "run_dir": str(run_dir),
    }


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    """Write ``summary.json``."""
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))


def final_evaluation(evaluate: Callable[[], T], run_dir: Path, saved: Sequence[str]) -> T:
    """Run the final evaluation of a run whose model is already saved (the files ``saved`` in
    ``run_dir``); if it fails, the error says where the model is."""
    try:
        return evaluate()
    except Exception as err:
        files = ", ".join(str(run_dir / name) for name in saved)
        raise FinalEvaluationError(
            f"the final evaluation failed ({type(err).__name__}: {err}); the trained model is "
            f"saved: {files} (summary.json has final_eval null)"
        ) from err
