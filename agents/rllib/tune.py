"""Ray Tune sweeps of RLlib training runs (``scripts/tune.py``).

A sweep (``conf/sweep/*.yaml``, schema :class:`~agents.config.SweepConfig`) is a grid over
dotted keys of the training job (``agent.lr``, ``env.scenario``, ``seed``, ...). Every trial is
one :func:`agents.rllib.train.train` run whose run directory is the trial's directory, so each
trial writes the same files and TensorBoard tags as ``scripts/train.py agent=rllib_ppo``; the
trial reports its metrics to Tune every iteration. Every trial's job is built and validated
before Ray starts, so a misspelt key or a wrong type fails at once, naming the key.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import OmegaConf

from agents.config import RLlibPPOConfig, SweepConfig, TrainJob, TuneJob
from mmgym.markdown import table as render_table

TABLE_METRICS = (
    "eval/learned/pnl",
    "eval/learned/sharpe",
    "eval/learned/max_drawdown",
    "eval/learned/inventory_abs_mean",
    "mm/pnl",
    "rllib/env_runners/episode_return_mean",
)
"""Reported metrics shown in the results table (plus the sweep's own metric and baselines)."""


PRIMARY_CONFIG: dict[str, Any] = {
    "defaults": [
        "/schema/job/tune@_here_",
        {"env": "calm"},
        {"agent": "rllib_ppo"},
        {"train": "default"},
        {"logger": "tensorboard"},
        {"sweep": "ppo_lr"},
        {"hydra": "default"},
        "_self_",
    ],
}
"""``scripts/tune.py``'s primary config ``tune``: conf/train.yaml's groups with the RLlib agent,
plus the ``sweep`` group (conf/sweep/)."""


def register_primary_config() -> None:
    """Register the ``tune`` primary config with Hydra's ConfigStore (idempotent)."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="tune", node=PRIMARY_CONFIG)


def base_job(job: TuneJob) -> TrainJob:
    """The training job every trial starts from."""
    return TrainJob(env=job.env, agent=job.agent, train=job.train, logger=job.logger, seed=job.seed)


def grid_points(sweep: SweepConfig) -> list[dict[str, Any]]:
    """The Cartesian product of the sweep's grid, in order (the last key varies fastest)."""
    keys = list(sweep.grid)
    values = [list(sweep.grid[k]) for k in keys]
    for key, options in zip(keys, values, strict=True):
        if not options:
            raise ValueError(f"sweep.grid.{key} has no values")
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*values)]


_MISSING = object()


def trial_job(base: TrainJob, settings: dict[str, Any]) -> TrainJob:
    """``base`` with the dotted ``settings`` applied, type-checked against the schemas."""
    cfg = OmegaConf.structured(base)
    for key, value in settings.items():
        if OmegaConf.select(cfg, key, default=_MISSING) is _MISSING:
            raise ValueError(f"sweep key {key!r} is not a setting of the training job")
        OmegaConf.update(cfg, key, value, merge=False)
    job = OmegaConf.to_object(cfg)
    assert isinstance(job, TrainJob)
    if not isinstance(job.agent, RLlibPPOConfig):
        raise ValueError(f"sweeps run RLlib agents; got agent {job.agent.algo!r}")
    return job


def trial_resources(job: TrainJob, cpus_per_trial: float | None) -> Any:
    """The trial's placement group: one bundle for the trial (sampler and learner when there
    are no EnvRunners) and one per EnvRunner, which RLlib starts inside the trial's group."""
    from ray.tune import PlacementGroupFactory

    agent: RLlibPPOConfig = job.agent
    if cpus_per_trial is not None:
        return PlacementGroupFactory([{"CPU": cpus_per_trial}])
    bundles = [{"CPU": 1.0}] + [{"CPU": agent.num_cpus_per_env_runner}] * agent.num_env_runners
    return PlacementGroupFactory(bundles)


def rllib_trial(config: dict[str, Any]) -> None:
    """Tune's function trainable: one RLlib training run in the trial's directory."""
    from ray import tune

    from agents.rllib.train import train

    schema = OmegaConf.structured(TrainJob(agent=RLlibPPOConfig()))
    base = OmegaConf.to_object(OmegaConf.merge(schema, config["base"]))
    assert isinstance(base, TrainJob)
    job = trial_job(base, {k: v for k, v in config.items() if k != "base"})
    train(job, Path(tune.get_context().get_trial_dir()), report=tune.report)


def run_sweep(job: TuneJob, out_dir: Path) -> pd.DataFrame:
    """Run every trial of the sweep on Ray (local or the sweep's cluster); return the results
    table (also written to ``results.csv`` and ``results.md`` in ``out_dir``)."""
    from ray import tune

    from agents.rllib.train import ray_session, register_env

    sweep = job.sweep
    base = base_job(job)
    fixed_base = trial_job(base, dict(sweep.fixed))
    points = grid_points(sweep)
    jobs = [trial_job(fixed_base, point) for point in points]  # validate before Ray starts
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.structured(job)))
    storage = sweep.storage_path or str(out_dir)
    if "://" not in storage:  # a local or shared path, not a cloud URI (s3://...)
        storage = str(Path(storage).expanduser().resolve())
    param_space: dict[str, Any] = {
        "base": OmegaConf.to_container(OmegaConf.structured(fixed_base)),
        **{key: tune.grid_search(list(values)) for key, values in sweep.grid.items()},
    }
    by_point = {_point_key(p): j for p, j in zip(points, jobs, strict=True)}

    def resources(config: dict[str, Any]) -> Any:
        point = {k: v for k, v in config.items() if k != "base"}
        return trial_resources(by_point[_point_key(point)], sweep.cpus_per_trial)

    with ray_session(sweep.ray_address, sweep.ray_num_cpus):
        register_env()
        tuner = tune.Tuner(
            tune.with_resources(rllib_trial, resources),
            param_space=param_space,
            tune_config=tune.TuneConfig(
                max_concurrent_trials=sweep.max_concurrent_trials or None,
            ),
            run_config=tune.RunConfig(
                name=sweep.name,
                storage_path=storage,
                verbose=1,
                sync_config=tune.SyncConfig(sync_artifacts=True),
            ),
        )
        grid = tuner.fit()
    table = results_table(grid, sweep)
    table.to_csv(out_dir / "results.csv", index=False)
    (out_dir / "results.md").write_text(markdown_table(table))
    return table


def _point_key(point: dict[str, Any]) -> str:
    return repr(sorted((k, repr(v)) for k, v in point.items()))


def results_table(grid: Any, sweep: SweepConfig) -> pd.DataFrame:
    """One row per trial: its grid values, status, steps and final metrics, best first."""
    rows = []
    for result in grid:
        config = result.config or {}
        metrics = result.metrics or {}
        row: dict[str, Any] = {"trial": Path(str(result.path)).name}
        row.update({key: config.get(key) for key in sweep.grid})
        row["status"] = "ERROR" if result.error is not None else "OK"
        row["steps"] = metrics.get("steps")
        names = [sweep.metric, *TABLE_METRICS]
        names += sorted(
            k for k in metrics if k.startswith("eval/") and k.endswith("/pnl") and k not in names
        )
        for name in dict.fromkeys(names):
            row[name] = metrics.get(name)
        row["path"] = str(result.path)
        rows.append(row)
    table = pd.DataFrame(rows)
    if sweep.metric in table and len(table):
        table = table.sort_values(
            sweep.metric, ascending=sweep.mode == "min", na_position="last", kind="stable"
        ).reset_index(drop=True)
    return table


def markdown_table(table: pd.DataFrame) -> str:
    """The table as GitHub markdown (without the trial paths)."""
    shown = table.drop(columns=["path"], errors="ignore")
    rows = [[_cell(v) for v in row] for _, row in shown.iterrows()]
    return render_table(list(shown.columns), rows) + "\n"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    return "" if value is None else str(value)
