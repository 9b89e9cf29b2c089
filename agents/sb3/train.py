"""One stable-baselines3 training run: native vector env, VecNormalize, callbacks, run directory.

A residual agent (``agent.residual_on`` names a baseline) steps the env through
:class:`~agents.residual.ResidualVecEnv`, between the native env and VecNormalize; its
periodic evaluation and saved run act as :class:`~agents.residual.ResidualPolicy`.

The run directory holds the resolved config (``config.yaml``), TensorBoard event files
(``tensorboard/``: SB3's losses, ``mm/*`` market scalars, ``eval/<policy>/<metric>``, an hparams
entry), checkpoints, the final ``model.zip`` with its ``vecnormalize.pkl`` and ``summary.json``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.callbacks import CallbackList, CheckpointCallback
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from agents.baselines.registry import make_baseline
from agents.config import PPOConfig, ResidualSettings, SACConfig, TrainJob
from agents.deploy.limited_env import limit_env
from agents.evaluation import run_batch
from agents.learned import SB3Policy
from agents.policy import Policy
from agents.residual import ResidualVecEnv, compose_policy, start_at_base
from agents.run_logger import make_run_logger, record_hparams
from agents.sb3.callbacks import (
    DomainMetricsCallback,
    NonFiniteStop,
    PeriodicEvaluation,
    ProgressBar,
    vecnormalize_of,
)
from agents.sb3.vec_env import NativeVecEnv
from mmgym.core.params import MarketParams
from mmgym.envs.perp_mm import PerpMMVectorEnv
from mmgym.envs.shell import NonFiniteActionError
from mmgym.scenarios import make_params

EVAL_METRICS = ("pnl", "sharpe", "max_drawdown", "inventory_abs_mean", "markout_10s")


class TrainingDivergedError(RuntimeError):
    """Training stopped early on a non-finite number; the message says which."""


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


def evaluate_policies(
    policies: dict[str, Policy], job: TrainJob, num_envs: int, seed: int
) -> dict[str, dict[str, float]]:
    """Mean metrics of each policy on the same held-out markets."""
    overrides = {"episode_seconds": job.train.episode_seconds, **job.env.overrides}
    params = make_params(job.env.scenario, **overrides)
    out = {}
    for name, policy in policies.items():
        rows, _ = run_batch(
            policy,
            params,
            num_envs,
            seed,
            [markout_steps(10.0, params)],
            scenario=job.env.scenario,
            overrides=overrides,
        )
        out[name] = {m: float(np.mean([r[m] for r in rows])) for m in EVAL_METRICS}
    return out


def train(job: TrainJob, run_dir: Path) -> dict[str, Any]:
    """Train, evaluate against the baselines, save everything; return the summary."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.structured(job)))
    t = job.train
    if t.torch_threads > 0:
        import torch

        torch.set_num_threads(t.torch_threads)
    overrides = {"episode_seconds": t.episode_seconds, **job.env.overrides}
    params = make_params(job.env.scenario, **overrides)
    env = PerpMMVectorEnv(num_envs=t.num_envs, scenario=job.env.scenario, **overrides)
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

    baselines = {name: make_baseline(name, params) for name in t.eval_baselines}
    baseline_results = evaluate_policies(baselines, job, t.eval_num_envs, t.eval_seed)

    def run_eval(steps: int) -> dict[str, dict[str, float]]:
        stats = vecnormalize_of(model.get_env())
        assert stats is not None
        rms: Any = stats.obs_rms
        network = SB3Policy(model, rms.mean, rms.var, stats.clip_obs, stats.epsilon)
        learned = compose_policy(network, agent.residual_on, agent.residual_scale, params)
        results = evaluate_policies({"learned": learned}, job, t.eval_num_envs, t.eval_seed)
        return {**results, **baseline_results}

    total_steps = int(t.total_steps)
    guard = NonFiniteStop()
    evaluation = PeriodicEvaluation(int(t.eval_every_steps), run_eval, total_steps)
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

    started = time.perf_counter()
    try:
        model.learn(total_timesteps=total_steps, callback=CallbackList(callbacks))
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
    elapsed = time.perf_counter() - started
    if guard.reason is not None:
        raise TrainingDivergedError(f"training stopped: {guard.reason} (run directory: {run_dir})")
    final = evaluation.evaluate_now()
    record_hparams(model.logger, job, final, model.num_timesteps)
    model.save(run_dir / "model.zip")
    venv.save(str(run_dir / "vecnormalize.pkl"))
    summary = {
        "scenario": job.env.scenario,
        "algo": job.agent.algo,
        "residual_on": job.agent.residual_on,
        "seed": job.seed,
        "steps": int(model.num_timesteps),
        "seconds": elapsed,
        "steps_per_second": model.num_timesteps / elapsed if elapsed > 0 else math.nan,
        "final_eval": final,
        "eval_history": evaluation.history,
        "run_dir": str(run_dir),
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


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


def markout_steps(seconds: float, params: MarketParams) -> int:
    """Decisions in ``seconds`` of market time (at least one)."""
    return max(1, round(seconds / params.decision_interval))


def _gamma(job: TrainJob) -> float:
    return float(getattr(job.agent, "gamma", 0.99))
