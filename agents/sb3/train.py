"""One stable-baselines3 training run: native vector env, VecNormalize, callbacks, run directory.

A residual agent (``agent.residual_on`` names a baseline) steps the env through
:class:`~agents.residual.ResidualVecEnv`, between the native env and VecNormalize; its
periodic evaluation and saved run act as :class:`~agents.residual.ResidualPolicy`.

The run directory holds the resolved config (``config.yaml``), TensorBoard event files
(``tensorboard/sb3/``: SB3's losses and the ``mm/*`` market scalars; ``tensorboard/eval/<policy>/``:
``eval/<metric>`` of the learned policy and of each baseline, the learned one's with an hparams
entry), checkpoints, the final ``model.zip`` with its ``vecnormalize.pkl`` and ``summary.json``.
The learned policy is named by :func:`agents.policy_names.policy_name` (``ppo``,
``ppo+adaptive``) in TensorBoard and ``summary.json``.
The model is saved before the final evaluation, so a failure there loses no training
(:func:`agents.training_run.final_evaluation`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from stable_baselines3 import PPO, SAC
from stable_baselines3.common.callbacks import CallbackList, CheckpointCallback
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from agents.baselines.registry import make_baseline
from agents.config import PPOConfig, ResidualSettings, SACConfig, TrainJob
from agents.deploy.limited_env import limit_env
from agents.evaluation import evaluate_policies, markout_steps
from agents.learned import SB3Policy
from agents.market import job_market
from agents.policy_names import policy_name
from agents.residual import ResidualVecEnv, compose_policy, start_at_base
from agents.run_logger import EvalLog, make_run_logger
from agents.sb3.callbacks import (
    DomainMetricsCallback,
    NonFiniteStop,
    PeriodicEvaluation,
    ProgressBar,
    vecnormalize_of,
)
from agents.sb3.vec_env import NativeVecEnv
from agents.training_run import (
    TrainingDivergedError,
    final_evaluation,
    run_summary,
    write_config,
    write_summary,
)
from mmgym.envs.perp_mm import PerpMMVectorEnv
from mmgym.envs.shell import NonFiniteActionError


def make_model(job: TrainJob, venv: Any) -> Any:
    """The SB3 model named by ``job.agent`` (its logger is set by :func:`train`). A residual
    agent's network starts with a zero correction (:func:`agents.residual.start_at_base`):
    training starts at the baseline."""
    agent = job.agent
    common: dict[str, Any] = {"verbose": 0, "seed": job.seed, "device": "cpu"}
    if isinstance(agent, PPOConfig):
        settings: dict[str, Any] = _model_settings(agent)
        net_arch = settings.pop("net_arch")
        log_std = settings.pop("log_std_init")
        policy_kwargs = {"net_arch": net_arch, "log_std_init": log_std}
        model: Any = PPO("MlpPolicy", venv, policy_kwargs=policy_kwargs, **settings, **common)
    elif isinstance(agent, SACConfig):
        settings = _model_settings(agent)
        policy_kwargs = {"net_arch": settings.pop("net_arch")}
        model = SAC("MlpPolicy", venv, policy_kwargs=policy_kwargs, **settings, **common)
    else:
        raise ValueError(
            f"agent {getattr(agent, 'algo', agent)!r} is not an SB3 algorithm (ppo, sac)"
        )
    if agent.residual_on is not None:
        start_at_base(model)
    return model


def _model_settings(agent: PPOConfig | SACConfig) -> dict[str, Any]:
    """The agent's settings that are SB3 constructor arguments."""
    own = {"algo", *(f.name for f in fields(ResidualSettings))}
    return {key: value for key, value in asdict(agent).items() if key not in own}


def train(job: TrainJob, run_dir: Path) -> dict[str, Any]:
    """Train, evaluate against the baselines, save everything; return the summary."""
    write_config(job, run_dir)
    t = job.train
    if t.torch_threads > 0:
        import torch

        torch.set_num_threads(t.torch_threads)
    market = job_market(job)
    params = market.params
    env = PerpMMVectorEnv(num_envs=t.num_envs, scenario=market.scenario, **market.overrides)
    native = NativeVecEnv(limit_env(env, job.risk.to_limits()))  # risk=none: env itself
    native.seed(job.seed * t.num_envs)
    agent = job.agent
    inner: VecEnv = native
    if agent.residual_on is not None:
        base = make_baseline(agent.residual_on, params)
        inner = ResidualVecEnv(native, base, agent.residual_scale)
    venv = VecNormalize(inner, norm_obs=True, norm_reward=t.normalize_reward, gamma=_gamma(job))
    model = make_model(job, venv)
    model.set_logger(make_run_logger(run_dir, "sb3", job.logger))
    name = policy_name(agent)
    log = EvalLog(run_dir, model.logger, job.logger)

    baselines = {b: make_baseline(b, params) for b in t.eval_baselines}
    baseline_results = evaluate_policies(baselines, job, t.eval_num_envs, t.eval_seed)

    def run_eval(steps: int) -> dict[str, dict[str, float]]:
        stats = vecnormalize_of(model.get_env())
        assert stats is not None
        rms: Any = stats.obs_rms
        network = SB3Policy(model, rms.mean, rms.var, stats.clip_obs, stats.epsilon)
        learned = compose_policy(network, agent.residual_on, agent.residual_scale, params)
        results = evaluate_policies({name: learned}, job, t.eval_num_envs, t.eval_seed)
        return {**results, **baseline_results}

    total_steps = int(t.total_steps)
    guard = NonFiniteStop()
    evaluation = PeriodicEvaluation(int(t.eval_every_steps), run_eval, total_steps, log)
    callbacks: list[Any] = [guard, evaluation]
    if job.logger.market_scalars:
        callbacks.insert(
            0, DomainMetricsCallback(markout_steps(job.logger.markout_seconds, params))
        )
    if t.checkpoint_every_steps > 0:
        every_call = max(1, int(t.checkpoint_every_steps) // t.num_envs)
        callbacks.append(
            CheckpointCallback(every_call, str(run_dir / "checkpoints"), save_vecnormalize=True)
        )
    if t.progress_bar:
        callbacks.append(ProgressBar(total_steps))

    try:
        elapsed = _learn(model, total_steps, callbacks, guard, run_dir)
        model.save(run_dir / "model.zip")
        venv.save(str(run_dir / "vecnormalize.pkl"))
        history = evaluation.history
        summary = run_summary(job, run_dir, model.num_timesteps, elapsed, None, history)
        write_summary(run_dir, summary)
        saved = ["model.zip", "vecnormalize.pkl"]
        final = final_evaluation(evaluation.evaluate_now, run_dir, saved)
        log.record_hparams(job, final, name)
    finally:
        log.close()
    summary["final_eval"] = final
    write_summary(run_dir, summary)
    return summary


def _learn(
    model: Any, total: int, callbacks: list[Any], guard: NonFiniteStop, run_dir: Path
) -> float:
    """Run ``model.learn``; the seconds it took. A divergence raises
    :class:`TrainingDivergedError` naming it and the last losses."""
    started = time.perf_counter()
    try:
        model.learn(total_timesteps=total, callback=CallbackList(callbacks))
    except ValueError as err:
        reason = _divergence(model, err)
        if reason is None:
            raise
        losses = {k: v for k, v in model.logger.name_to_value.items() if k.startswith("train/")}
        raise TrainingDivergedError(
            f"training stopped after {model.num_timesteps} steps: {reason} "
            f"({str(err).splitlines()[0]}); "
            f"last losses {losses}; run directory: {run_dir}"
        ) from err
    if guard.reason is not None:
        raise TrainingDivergedError(f"training stopped: {guard.reason} (run directory: {run_dir})")
    return time.perf_counter() - started


def _divergence(model: Any, err: ValueError) -> str | None:
    """Why training diverged, or None if ``err`` is not a divergence."""
    import torch

    if isinstance(err, NonFiniteActionError):
        return "the policy produced a non-finite action"
    if any(not bool(torch.isfinite(p).all()) for p in model.policy.parameters()):
        return "the network's parameters became non-finite"
    if "invalid values" in str(err):  # torch.distributions argument validation
        return "the policy's action distribution became invalid (non-finite scale or mean)"
    return None


def _gamma(job: TrainJob) -> float:
    return float(getattr(job.agent, "gamma", 0.99))
