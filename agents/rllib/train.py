"""One RLlib PPO training run (new API stack) on the native PerpMM vector env.

The run directory has the SB3 run's layout: the resolved config (``config.yaml``), TensorBoard
event files (``tensorboard/rllib/``: ``mm/*`` market scalars, ``eval/<policy>/<metric>``, RLlib's
own results under ``rllib/...``, an hparams entry), algorithm checkpoints (``checkpoints/``,
the final one in ``checkpoint/``), the trained policy (``policy/``, loadable with
:meth:`RLlibPolicy.load <agents.rllib.policy.RLlibPolicy.load>`) and ``summary.json`` with the
same keys as SB3's. The policy and checkpoint are saved before the final evaluation, so a
failure there loses no training.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from stable_baselines3.common.logger import Logger

from agents.baselines.registry import make_baseline
from agents.config import RLlibPPOConfig, TrainJob
from agents.evaluation import evaluate_policies, markout_steps
from agents.market import job_market
from agents.rllib.callbacks import MM_SUMS, MarketMetricsCallback, market_means
from agents.rllib.env import make_vector_env
from agents.rllib.policy import RLlibPolicy
from agents.run_logger import make_run_logger, record_hparams
from agents.training_run import (
    TrainingDivergedError,
    final_evaluation,
    run_summary,
    write_config,
    write_summary,
)

ENV_NAME = "mmgym_perp_mm_vector"
"""The Tune-registry name of :func:`~agents.rllib.env.make_vector_env`."""

Reporter = Callable[[dict[str, Any]], None]


@contextmanager
def ray_session(address: str | None, num_cpus: int | None = None) -> Iterator[None]:
    """Ray for the duration of the block: an already running session (e.g. inside a Tune
    trial) is reused; otherwise a local instance (``address=None``) or the cluster at
    ``address`` is joined, and shut down at the end."""
    import ray

    if ray.is_initialized():
        yield
        return
    if address:
        ray.init(address=address)
    else:
        ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False)
    try:
        yield
    finally:
        ray.shutdown()


def num_envs_per_runner(job: TrainJob) -> int:
    """Envs in each EnvRunner's vector env."""
    agent: RLlibPPOConfig = job.agent
    if agent.num_envs_per_env_runner is not None:
        return int(agent.num_envs_per_env_runner)
    return max(1, job.train.num_envs // max(1, agent.num_env_runners))


def build_config(job: TrainJob) -> Any:
    """The RLlib ``PPOConfig`` of a training job (new API stack, vector-entry-point envs)."""
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.connectors.env_to_module import MeanStdFilter
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    agent = job.agent
    if not isinstance(agent, RLlibPPOConfig):
        raise ValueError(f"agent {getattr(agent, 'algo', agent)!r} is not an RLlib algorithm")
    t = job.train
    market = job_market(job)
    params = market.params
    env_config = {
        "scenario": market.scenario,
        "overrides": market.overrides,
        "seed": job.seed,
        "num_env_runners": agent.num_env_runners,
        "normalize_reward": t.normalize_reward,
        "gamma": agent.gamma,
        "market_scalars": job.logger.market_scalars,
        "markout_steps": markout_steps(job.logger.markout_seconds, params),
    }
    runners: dict[str, Any] = {
        "num_env_runners": agent.num_env_runners,
        "num_envs_per_env_runner": num_envs_per_runner(job),
        "num_cpus_per_env_runner": agent.num_cpus_per_env_runner,
        # The env creator returns a gymnasium VectorEnv itself: RLlib must not wrap it in a
        # SyncVectorEnv of single envs.
        "gym_env_vectorize_mode": "vector_entry_point",
    }
    if agent.normalize_obs:
        runners["env_to_module_connector"] = lambda env, spaces, device: MeanStdFilter()
    return (
        PPOConfig()
        .api_stack(enable_rl_module_and_learner=True, enable_env_runner_and_connector_v2=True)
        .framework("torch")
        .environment(ENV_NAME, env_config=env_config)
        .env_runners(**runners)
        .learners(num_learners=0)
        .training(
            lr=agent.lr,
            gamma=agent.gamma,
            lambda_=agent.gae_lambda,
            clip_param=agent.clip_param,
            entropy_coeff=agent.entropy_coeff,
            vf_loss_coeff=agent.vf_loss_coeff,
            vf_clip_param=agent.vf_clip_param,
            grad_clip=agent.grad_clip,
            train_batch_size_per_learner=agent.train_batch_size,
            minibatch_size=agent.minibatch_size,
            num_epochs=agent.num_epochs,
        )
        .rl_module(
            model_config=DefaultModelConfig(
                fcnet_hiddens=list(agent.fcnet_hiddens),
                fcnet_activation=agent.fcnet_activation,
                vf_share_layers=agent.vf_share_layers,
            )
        )
        .callbacks(MarketMetricsCallback)
        .debugging(seed=job.seed, log_level="WARN")
    )


def register_env() -> None:
    """Register the env creator with Tune's registry (kept in the cluster's GCS, so every
    worker sees it)."""
    from ray.tune.registry import register_env as tune_register_env

    tune_register_env(ENV_NAME, make_vector_env)


def train(job: TrainJob, run_dir: Path, report: Reporter | None = None) -> dict[str, Any]:
    """Train, evaluate against the baselines, save everything; return the summary.

    ``report`` (Tune's) receives the flat metrics of every iteration.
    """
    agent = job.agent
    if not isinstance(agent, RLlibPPOConfig):
        raise ValueError(f"agent {getattr(agent, 'algo', agent)!r} is not an RLlib algorithm")
    write_config(job, run_dir)
    with ray_session(agent.ray_address, agent.ray_num_cpus), training_threads(agent):
        register_env()
        algo = build_config(job).build_algo()
        try:
            return _train(algo, job, run_dir, report)
        finally:
            stop_algorithm(algo)


def stop_algorithm(algo: Any) -> None:
    """Stop the algorithm and remove the empty log directory that every Algorithm built
    outside Tune creates under ``~/ray_results`` (this module writes its own run directory)."""
    algo.stop()
    logdir = Path(algo.logdir) if getattr(algo, "_storage", None) is None else None
    if logdir is not None and logdir.is_dir() and not any(logdir.iterdir()):
        logdir.rmdir()


@contextmanager
def training_threads(agent: RLlibPPOConfig) -> Iterator[None]:
    """``agent.torch_threads`` torch threads in this process while it trains (then restored).

    Measured on the 2-core VM of docs/benchmarks.md: a forward pass of the 64-64 MLP on 16
    observations takes 22 us with one thread and 2.6 ms with two (thread wake-ups dominate), so
    sampling in this process (``num_env_runners=0``) ran at 19,716 env steps/s with one thread
    and 587 with two. A PPO update of 8192 steps (minibatches of 1024) took 0.17 s with one
    thread and 0.15 s with two on an idle machine, but 13.7 s with two when another process
    kept a core busy. Ray already gives each EnvRunner actor one thread (``OMP_NUM_THREADS``).
    """
    import torch

    before = torch.get_num_threads()
    if agent.torch_threads > 0:
        torch.set_num_threads(agent.torch_threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _train(algo: Any, job: TrainJob, run_dir: Path, report: Reporter | None) -> dict[str, Any]:
    t = job.train
    logger = make_run_logger(run_dir, "rllib", job.logger)
    params = job_market(job).params
    baselines = {name: make_baseline(name, params) for name in t.eval_baselines}
    baseline_results = evaluate_policies(baselines, job, t.eval_num_envs, t.eval_seed)
    history: list[dict[str, Any]] = []

    def evaluate(steps: int) -> dict[str, dict[str, float]]:
        learned = RLlibPolicy.from_algorithm(algo)
        results = {
            **evaluate_policies({"learned": learned}, job, t.eval_num_envs, t.eval_seed),
            **baseline_results,
        }
        for policy, values in results.items():
            for metric, value in values.items():
                logger.record(f"eval/{policy}/{metric}", value)
        history.append({"steps": steps, **results})
        return results

    total = int(t.total_steps)
    eval_every = int(t.eval_every_steps)
    ckpt_every = int(t.checkpoint_every_steps)
    next_eval = eval_every if eval_every > 0 else math.inf
    next_ckpt = ckpt_every if ckpt_every > 0 else math.inf
    batch = max(1, int(job.agent.train_batch_size))
    bar = _progress(t.progress_bar and report is None, math.ceil(total / batch) * batch)
    steps = 0
    last: dict[str, float] = {}
    started = time.perf_counter()
    try:
        while steps < total:
            result = algo.train()
            new_steps = int(result["num_env_steps_sampled_lifetime"])
            if bar is not None:
                bar.total = max(bar.total, new_steps)  # an iteration can overshoot the budget
                bar.update(new_steps - steps)
            steps = new_steps
            flat = _log_result(logger, result)
            _check_finite(flat, steps, run_dir)
            metrics = {"steps": steps, **{k: v for k, v in flat.items() if _reported(k)}}
            if steps >= next_eval and steps < total:
                while next_eval <= steps:
                    next_eval += eval_every
                metrics.update(_flat_eval(evaluate(steps)))
            logger.dump(steps)
            if steps >= next_ckpt:
                while next_ckpt <= steps:
                    next_ckpt += ckpt_every
                algo.save_to_path(str((run_dir / "checkpoints" / f"step_{steps}").resolve()))
            if report is not None and steps < total:
                report(metrics)
            last.update(metrics)  # some results (episode returns) only come when episodes end
        elapsed = time.perf_counter() - started
    finally:
        if bar is not None:
            bar.close()
    RLlibPolicy.from_algorithm(algo).save(run_dir / "policy")
    algo.save_to_path(str((run_dir / "checkpoint").resolve()))
    summary = run_summary(job, run_dir, steps, elapsed, None, history)
    write_summary(run_dir, summary)
    try:
        final = final_evaluation(lambda: evaluate(steps), run_dir, ["policy", "checkpoint"])
        logger.dump(steps)
        record_hparams(logger, job, final, steps)
    finally:
        logger.close()
    summary["final_eval"] = final
    write_summary(run_dir, summary)
    if report is not None:
        report({**last, **_flat_eval(final)})
    return summary


def _progress(enabled: bool, total: int) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="step", desc="train", smoothing=0.1)


def _log_result(logger: Logger, result: dict[str, Any]) -> dict[str, float]:
    """Record ``mm/*`` and every numeric RLlib result (``rllib/<path>``, kept off stdout);
    return them flat."""
    flat: dict[str, float] = {}
    for tag, value in market_means(result.get("env_runners", {})).items():
        logger.record(tag, value)
        flat[tag] = value
    for path, value in _numeric_leaves(result, ()):
        tag = "rllib/" + "/".join(path)
        if not math.isfinite(value) and path[-1] not in GUARDED_LEARNER_KEYS:
            continue  # counters RLlib reports once, then as NaN
        logger.record(tag, value, exclude="stdout")
        flat[tag] = value
    return flat


SKIPPED_RESULT_KEYS = frozenset({"config", MM_SUMS, "fault_tolerance", "env_runner_group"})


def _numeric_leaves(node: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], float]]:
    if isinstance(node, dict):
        for key, value in node.items():
            name = str(key)
            if name in SKIPPED_RESULT_KEYS:
                continue
            yield from _numeric_leaves(value, (*path, name))
    elif isinstance(node, bool):
        return
    elif isinstance(node, int | float) and path and path[0] not in ("timestamp", "pid"):
        yield path, float(node)
    elif hasattr(node, "item") and getattr(node, "ndim", 1) == 0:  # numpy / torch scalars
        yield path, float(node.item())


GUARDED_LEARNER_KEYS = ("total_loss", "policy_loss", "vf_loss", "entropy", "mean_kl_loss")
"""Learner results that must stay finite (RLlib reports some counters as NaN on purpose)."""


REPORTED_RLLIB = frozenset(
    {
        "rllib/env_runners/episode_return_mean",
        "rllib/env_runners/episode_len_mean",
        "rllib/learners/default_policy/total_loss",
        "rllib/learners/default_policy/policy_loss",
        "rllib/learners/default_policy/vf_loss",
        "rllib/learners/default_policy/entropy",
        "rllib/learners/default_policy/mean_kl_loss",
        "rllib/learners/default_policy/vf_explained_var",
        "rllib/time_this_iter_s",
    }
)
"""RLlib results passed to ``report`` (Tune) besides ``mm/*``; TensorBoard gets them all."""


def _reported(tag: str) -> bool:
    return tag.startswith("mm/") or tag in REPORTED_RLLIB


def _check_finite(flat: dict[str, float], steps: int, run_dir: Path) -> None:
    """Stop with a clear message when a loss (or the PPO entropy) is not finite."""
    losses = {
        tag: value
        for tag, value in flat.items()
        if tag.startswith("rllib/learners/") and tag.rsplit("/", 1)[-1] in GUARDED_LEARNER_KEYS
    }
    for tag, value in losses.items():
        if not math.isfinite(value):
            raise TrainingDivergedError(
                f"training stopped after {steps} steps: non-finite {tag} = {value}; "
                f"last losses {losses}; run directory: {run_dir}"
            )


def _flat_eval(results: dict[str, dict[str, float]]) -> dict[str, float]:
    return {f"eval/{p}/{m}": v for p, values in results.items() for m, v in values.items()}
