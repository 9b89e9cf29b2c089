"""The harness: run policies on batches of PerpMM episodes, one metrics row per episode.

``evaluate(config)`` runs one episode per env for every (scenario, policy, seed);
``evaluate_policies`` is the trainers' evaluation on the held-out markets of a training job.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from agents import metrics
from agents.baselines.registry import make_baseline
from agents.deploy.limited_env import limit_env
from agents.deploy.risk.limits import RiskLimits
from agents.evaluation.config import EvaluationConfig, PolicyFactory, validate_config
from agents.evaluation.episode import (
    EpisodeRecorder,
    FillTape,
    episode_row,
    markout_name,
    markout_steps,
)
from agents.evaluation.summary import cvar_name
from agents.market import job_market, market_of
from agents.policy import Policy
from agents.policy_names import baseline_name
from agents.seeds import check_seed
from mmgym.core.params import MarketParams
from mmgym.envs.perp_mm import PerpMMVectorEnv

if TYPE_CHECKING:
    from agents.config import TrainJob

StepObserver = Callable[[int, dict[str, Any], NDArray[np.bool_]], None]
"""Called after each step with the step index, its ``info`` and the envs still in their first
episode before the step."""

BAND_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
"""Quantiles over envs of the cumulative PnL path (``q05 .. q95`` of the bands)."""

EVAL_METRICS = ("pnl", "sharpe", "max_drawdown", "inventory_abs_mean", "fill_rate")
"""Episode metrics the trainers' evaluation reports (means over episodes), besides CVaR at
:data:`EVAL_CVAR_ALPHA` and the markout at :data:`EVAL_MARKOUT_SECONDS`: see
:func:`eval_metric_names`."""
EVAL_MARKOUT_SECONDS = 10.0
"""Markout horizon of the trainers' evaluation, before rounding to whole decisions."""
EVAL_CVAR_ALPHA = 0.05
"""Tail share of the CVaR of episode PnL in the trainers' evaluation."""


def eval_metric_names(params: MarketParams) -> tuple[str, ...]:
    """The metrics :func:`evaluate_policies` reports in the market of ``params``, named as the
    episode rows and the evaluation's summary name them (``markout_9s`` at 3 s decisions)."""
    steps = markout_steps(EVAL_MARKOUT_SECONDS, params)
    return (*EVAL_METRICS, cvar_name(EVAL_CVAR_ALPHA), markout_name(steps, params))


def run_batch(
    policy: Policy,
    params: MarketParams,
    num_envs: int,
    seed: int,
    markout_steps: list[int],
    parallel: bool | None = None,
    scenario: str = "calm",
    overrides: dict[str, Any] | None = None,
    limits: RiskLimits | None = None,
    observer: StepObserver | None = None,
) -> tuple[list[dict[str, float]], pd.DataFrame]:
    """One episode on each of ``num_envs`` envs: one metrics row per episode, and quantiles over
    envs of the cumulative PnL at every step (``q05 .. q95``). The envs are reset with
    ``seed x num_envs`` (sub-env i: + i).

    ``limits``: step behind the RiskLimiter with these limits
    (:class:`~agents.deploy.limited_env.RiskLimitedVectorEnv`; None: the bare env).
    ``observer(t, info, active)`` sees every step's ``info`` (arrays overwritten by the next
    step) and the envs still in their first episode before it, as vetting records its risk
    measures."""
    check_seed("seed", seed)
    bare = PerpMMVectorEnv(
        num_envs=num_envs,
        scenario=scenario,
        copy=False,
        parallel=parallel,
        **(overrides or {}),
    )
    if bare.params != params:
        raise ValueError("params do not match the scenario and overrides given")
    env = limit_env(bare, limits)
    steps = params.decisions_per_episode
    recorder = EpisodeRecorder(num_envs, steps)
    tape = FillTape(steps, num_envs, params.num_assets)
    policy.reset()
    obs, _ = env.reset(seed=seed * num_envs)
    for t in range(steps):
        action = policy.act(obs)
        obs, _, terminated, truncated, info = env.step(action)
        if observer is not None:
            observer(t, info, recorder.active)
        tape.record(t, info, recorder.active)
        recorder.record(t, info, terminated | truncated)
        if not recorder.active.any():
            break
    env.close()
    rows = [episode_row(recorder, tape, i, params, markout_steps) for i in range(num_envs)]
    equity = np.cumsum(recorder.series["pnl"], axis=0)
    q = np.quantile(equity, BAND_QUANTILES, axis=1)
    band = pd.DataFrame({f"q{round(100 * p):02d}": q[j] for j, p in enumerate(BAND_QUANTILES)})
    band.insert(0, "time", (np.arange(steps) + 1) * params.decision_interval)
    return rows, band


def iterate_jobs(config: EvaluationConfig) -> Iterator[tuple[str, str, int]]:
    """(scenario, policy, seed) in evaluation order."""
    for scenario in config.scenarios:
        for policy in config.policies:
            for seed in config.seeds:
                yield scenario, policy, seed


def evaluate(
    config: EvaluationConfig,
    factories: dict[str, PolicyFactory] | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run the whole evaluation: one row per episode, and equity-path quantile bands.

    ``factories`` can supply policies that are not registered baselines (e.g. a learned one,
    keyed by its display name: :mod:`agents.policy_names`). The ``policy`` column holds display
    names: a baseline with settings changed by ``config.policy_settings`` is
    ``linear_skew[skew_ticks_at_limit=4.0]``.
    """
    validate_config(config, factories)
    rows = []
    bands = []
    for scenario, key, seed in iterate_jobs(config):
        market = market_of(scenario, config.episode_seconds, config.env_overrides)
        params = market.params
        if factories and key in factories:
            policy = factories[key](params)
            name = key
        else:
            settings = config.policy_settings.get(key, {})
            policy = make_baseline(key, params, **settings)
            name = baseline_name(key, settings)
        horizons = [markout_steps(s, params) for s in config.markout_seconds]
        batch, band = run_batch(
            policy,
            params,
            config.num_envs,
            seed,
            horizons,
            parallel=config.parallel,
            scenario=scenario,
            overrides=market.overrides,
        )
        for row in batch:
            rows.append({"scenario": scenario, "policy": name, "seed": seed, **row})
        band.insert(0, "seed", seed)
        band.insert(0, "policy", name)
        band.insert(0, "scenario", scenario)
        bands.append(band)
        if progress is not None:
            progress(f"{scenario}/{name}/seed {seed}")
    return pd.DataFrame(rows), pd.concat(bands, ignore_index=True)


def evaluate_policies(
    policies: dict[str, Policy], job: TrainJob, num_envs: int, seed: int
) -> dict[str, dict[str, float]]:
    """Metrics (:func:`eval_metric_names`: means over episodes, and CVaR of episode PnL) of
    each policy on the same held-out markets: the job's market, ``num_envs`` episodes reset
    with ``seed``."""
    market = job_market(job)
    params = market.params
    *means, cvar_col, markout_col = eval_metric_names(params)
    out = {}
    for name, policy in policies.items():
        rows, _ = run_batch(
            policy,
            params,
            num_envs,
            seed,
            [markout_steps(EVAL_MARKOUT_SECONDS, params)],
            scenario=market.scenario,
            overrides=market.overrides,
        )
        values = {m: float(np.mean([r[m] for r in rows])) for m in means}
        values[cvar_col] = metrics.cvar([r["pnl"] for r in rows], EVAL_CVAR_ALPHA)
        values[markout_col] = float(np.mean([r[markout_col] for r in rows]))
        out[name] = values
    return out
