"""The evaluation harness: policies x scenarios x seeds on the PerpMM vector env.

``evaluate(config)`` runs one episode per env for every (scenario, policy, seed) and returns a
tidy table with one row per episode: the PnL and its decomposition, Sharpe and Sortino of step
PnL, max drawdown, mean |inventory| and time at the limit, fill rate, markouts at several
horizons (adverse selection), post-only rejections, hedge cost and liquidation. ``summarise``
aggregates it per (scenario, policy) with confidence intervals and CVaR 5 % of episode PnL;
``write_outputs`` saves parquet, CSV, a markdown report, PNG plots and TensorBoard scalars under
the tags training uses (``eval/<policy>/<metric>``), so baselines and learned runs share one
TensorBoard.

The same seed gives every policy the same initial markets and random streams (common random
numbers): differences between policies are paired, not drowned in market noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from agents import metrics
from agents.baselines.registry import make_baseline
from agents.policy import Policy
from mmgym.core.params import MarketParams
from mmgym.envs.perp_mm import PNL_COMPONENTS, PerpMMVectorEnv
from mmgym.scenarios import make_params

PolicyFactory = Callable[[MarketParams], Policy]

BAND_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
SUMMARY_METRICS = (
    "pnl",
    *PNL_COMPONENTS,
    "sharpe",
    "sortino",
    "max_drawdown",
    "inventory_abs_mean",
    "time_at_limit",
    "fill_rate",
    "volume",
    "rejected_post_only",
    "hedge_cost",
    "liquidated",
)


@dataclass
class EvaluationConfig:
    """What to evaluate. Every field has a documented default.

    ``policy_settings`` maps a policy name to its settings (e.g. ``{"linear_skew":
    {"skew_ticks_at_limit": 8}}``); ``env_overrides`` apply to every scenario.
    """

    policies: list[str] = field(default_factory=lambda: ["fixed_spread", "linear_skew"])
    """Registered baseline names (see ``agents.baselines.registry``)."""
    scenarios: list[str] = field(default_factory=lambda: ["calm", "volatile"])
    """Scenario names (see ``mmgym.scenarios``)."""
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    """Replicates; seed ``s`` resets the batch with ``s x num_envs`` (sub-env i: + i)."""
    num_envs: int = 64
    """Envs (episodes) per (scenario, policy, seed)."""
    episode_seconds: float = 3600.0
    """Episode length in market seconds."""
    markout_seconds: list[float] = field(default_factory=lambda: [1.0, 10.0, 60.0])
    """Markout horizons (rounded to whole decision intervals)."""
    cvar_alpha: float = 0.05
    """Tail share for CVaR of episode PnL."""
    policy_settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    env_overrides: dict[str, Any] = field(default_factory=dict)
    parallel: bool | None = None
    """Step the envs on all cores (None: automatic by batch size)."""


@dataclass
class EpisodeRecorder:
    """Per-step series of a batch of envs, kept until each env's first episode ends."""

    num_envs: int
    steps: int
    series: dict[str, NDArray[np.float64]] = field(default_factory=dict)
    active: NDArray[np.bool_] = field(init=False)
    length: NDArray[np.int64] = field(init=False)

    KEYS = (
        "pnl",
        *PNL_COMPONENTS,
        "inventory_abs",
        "volume",
        "fills",
        "rejected_post_only",
        "hedge_cost",
        "liquidated",
    )

    def __post_init__(self) -> None:
        for key in self.KEYS:
            self.series[key] = np.zeros((self.steps, self.num_envs))
        self.active = np.ones(self.num_envs, dtype=np.bool_)
        self.length = np.zeros(self.num_envs, dtype=np.int64)

    def record(self, t: int, info: dict[str, Any], done: NDArray[np.bool_]) -> None:
        """Store step ``t`` for envs still in their first episode."""
        a = self.active
        s = self.series
        s["pnl"][t] = np.where(a, info["pnl"], 0.0)
        for key in PNL_COMPONENTS:
            s[key][t] = np.where(a, _per_env(info[key]), 0.0)
        s["inventory_abs"][t] = np.where(a, _per_env(np.abs(info["inventory"])), 0.0)
        s["volume"][t] = np.where(a, _per_env(info["bid_filled"] + info["ask_filled"]), 0.0)
        s["fills"][t] = np.where(a, _per_env(info["fills"]), 0.0)
        s["rejected_post_only"][t] = np.where(a, _per_env(info["rejected_post_only"]), 0.0)
        s["hedge_cost"][t] = np.where(a, _per_env(info["hedge_cost"]), 0.0)
        s["liquidated"][t] = np.where(a, info["liquidated"], False)
        self.length += a
        self.active = a & ~done


def _per_env(x: NDArray[Any]) -> NDArray[np.float64]:
    """Sum a per-perp array over perps."""
    arr = np.asarray(x, dtype=np.float64)
    return arr.sum(axis=1) if arr.ndim == 2 else arr


@dataclass
class FillTape:
    """Per-step fills and mids of every perp, for markouts."""

    steps: int
    num_envs: int
    num_assets: int
    mid: NDArray[np.float64] = field(init=False)
    bid_qty: NDArray[np.float64] = field(init=False)
    bid_px: NDArray[np.float64] = field(init=False)
    ask_qty: NDArray[np.float64] = field(init=False)
    ask_px: NDArray[np.float64] = field(init=False)

    def __post_init__(self) -> None:
        shape = (self.steps, self.num_envs, self.num_assets)
        for name in ("mid", "bid_qty", "bid_px", "ask_qty", "ask_px"):
            setattr(self, name, np.zeros(shape))

    def record(self, t: int, info: dict[str, Any], active: NDArray[np.bool_]) -> None:
        """Store step ``t``'s fills (VWAP per side) and end-of-step mids."""
        shape = (self.num_envs, self.num_assets)
        bid = np.asarray(info["bid_filled"]).reshape(shape) * active[:, None]
        ask = np.asarray(info["ask_filled"]).reshape(shape) * active[:, None]
        self.mid[t] = np.asarray(info["mid"]).reshape(shape)
        self.bid_qty[t] = bid
        self.ask_qty[t] = ask
        self.bid_px[t] = np.divide(
            np.asarray(info["bid_notional"]).reshape(shape), bid, out=np.zeros(shape), where=bid > 0
        )
        self.ask_px[t] = np.divide(
            np.asarray(info["ask_notional"]).reshape(shape), ask, out=np.zeros(shape), where=ask > 0
        )

    def markouts(self, env: int, length: int, horizons: list[int]) -> dict[int, float]:
        """Markouts of env ``env``'s fills over its episode, summed over perps."""
        total = dict.fromkeys(horizons, 0.0)
        for k in range(self.num_assets):
            m = metrics.markouts(
                self.mid[:length, env, k],
                self.bid_qty[:length, env, k],
                self.bid_px[:length, env, k],
                self.ask_qty[:length, env, k],
                self.ask_px[:length, env, k],
                tuple(horizons),
            )
            for h in horizons:
                total[h] += m[h]
        return total


def run_batch(
    policy: Policy,
    params: MarketParams,
    num_envs: int,
    seed: int,
    markout_steps: list[int],
    parallel: bool | None = None,
    scenario: str = "calm",
    overrides: dict[str, Any] | None = None,
) -> tuple[list[dict[str, float]], pd.DataFrame]:
    """One episode on each of ``num_envs`` envs: one metrics row per episode, and quantiles over
    envs of the cumulative PnL at every step (``q05 .. q95``)."""
    env = PerpMMVectorEnv(
        num_envs=num_envs,
        scenario=scenario,
        copy=False,
        parallel=parallel,
        **(overrides or {}),
    )
    if env.params != params:
        raise ValueError("params do not match the scenario and overrides given")
    steps = params.decisions_per_episode
    recorder = EpisodeRecorder(num_envs, steps)
    tape = FillTape(steps, num_envs, params.num_assets)
    policy.reset()
    obs, _ = env.reset(seed=seed * num_envs)
    for t in range(steps):
        action = policy.act(obs)
        obs, _, terminated, truncated, info = env.step(action)
        tape.record(t, info, recorder.active)
        recorder.record(t, info, terminated | truncated)
        if not recorder.active.any():
            break
    env.close()
    rows = [_episode_row(recorder, tape, i, params, markout_steps) for i in range(num_envs)]
    equity = np.cumsum(recorder.series["pnl"], axis=0)
    q = np.quantile(equity, BAND_QUANTILES, axis=1)
    band = pd.DataFrame({f"q{round(100 * p):02d}": q[j] for j, p in enumerate(BAND_QUANTILES)})
    band.insert(0, "time", (np.arange(steps) + 1) * params.decision_interval)
    return rows, band


def _episode_row(
    rec: EpisodeRecorder,
    tape: FillTape,
    i: int,
    params: MarketParams,
    markout_steps: list[int],
) -> dict[str, float]:
    n = int(rec.length[i])
    s = {key: series[:n, i] for key, series in rec.series.items()}
    volume = float(s["volume"].sum())
    row: dict[str, float] = {
        "env": i,
        "steps": n,
        "pnl": float(s["pnl"].sum()),
        **{key: float(s[key].sum()) for key in PNL_COMPONENTS},
        "sharpe": metrics.sharpe(s["pnl"]),
        "sortino": metrics.sortino(s["pnl"]),
        "max_drawdown": metrics.max_drawdown(s["pnl"]),
        "inventory_abs_mean": float(s["inventory_abs"].mean()) if n else 0.0,
        "time_at_limit": metrics.time_at_limit(
            s["inventory_abs"] / params.num_assets, params.max_inventory
        ),
        "fill_rate": float(np.mean(s["fills"] > 0)) if n else 0.0,
        "volume": volume,
        "rejected_post_only": float(s["rejected_post_only"].sum()),
        "hedge_cost": float(s["hedge_cost"].sum()),
        "liquidated": float(s["liquidated"].any()),
    }
    for steps, value in tape.markouts(i, n, markout_steps).items():
        seconds = steps * params.decision_interval
        row[f"markout_{seconds:g}s"] = value / volume if volume > 0 else 0.0
    return row


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

    ``factories`` can supply policies that are not registered baselines (e.g. a learned one).
    """
    validate_config(config, factories)
    rows = []
    bands = []
    for scenario, name, seed in iterate_jobs(config):
        params = make_params(
            scenario, episode_seconds=config.episode_seconds, **config.env_overrides
        )
        if factories and name in factories:
            policy = factories[name](params)
        else:
            policy = make_baseline(name, params, **config.policy_settings.get(name, {}))
        markout_steps = [
            max(1, round(s / params.decision_interval)) for s in config.markout_seconds
        ]
        batch, band = run_batch(
            policy,
            params,
            config.num_envs,
            seed,
            markout_steps,
            parallel=config.parallel,
            scenario=scenario,
            overrides={"episode_seconds": config.episode_seconds, **config.env_overrides},
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


def validate_config(
    config: EvaluationConfig, factories: dict[str, PolicyFactory] | None = None
) -> None:
    """Fail before any compute, naming what is wrong."""
    from agents.baselines.registry import BASELINES, load_all
    from mmgym.scenarios import SCENARIOS

    load_all()
    for name in config.policies:
        if name not in BASELINES and not (factories and name in factories):
            raise ValueError(f"unknown policy {name!r}; registered baselines: {sorted(BASELINES)}")
    for name in config.scenarios:
        if name not in SCENARIOS:
            raise ValueError(f"unknown scenario {name!r}; valid: {sorted(SCENARIOS)}")
    for key in config.policy_settings:
        if key not in config.policies:
            raise ValueError(f"policy_settings names {key!r}, which is not in policies")
    if config.num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {config.num_envs}")
    if not config.seeds:
        raise ValueError("seeds must name at least one seed")
    if not 0.0 < config.cvar_alpha <= 1.0:
        raise ValueError(f"cvar_alpha must be in (0, 1], got {config.cvar_alpha}")


def summarise(episodes: pd.DataFrame, cvar_alpha: float = 0.05) -> pd.DataFrame:
    """Mean and 95 % confidence interval of every metric per (scenario, policy), plus CVaR."""
    markout_cols = [c for c in episodes.columns if c.startswith("markout_")]
    rows = []
    for (scenario, policy), group in episodes.groupby(["scenario", "policy"], sort=False):
        row: dict[str, Any] = {"scenario": scenario, "policy": policy, "episodes": len(group)}
        for col in (*SUMMARY_METRICS, *markout_cols):
            mean, lo, hi = metrics.mean_confidence_interval(group[col].to_numpy())
            row[col] = mean
            row[f"{col}_ci_low"] = lo
            row[f"{col}_ci_high"] = hi
        row[f"cvar_{round(cvar_alpha * 100)}"] = metrics.cvar(group["pnl"].to_numpy(), cvar_alpha)
        rows.append(row)
    return pd.DataFrame(rows)


def markdown_report(summary: pd.DataFrame, config: EvaluationConfig) -> str:
    """The desk's table: one block per scenario, one row per policy, mean [95 % CI]."""
    cvar_col = next(c for c in summary.columns if c.startswith("cvar_"))
    markout_cols = [
        c
        for c in summary.columns
        if c.startswith("markout_") and not c.endswith(("_ci_low", "_ci_high"))
    ]
    shown = [
        ("pnl", "PnL"),
        ("pnl_spread", "spread"),
        ("pnl_inventory", "inventory"),
        ("pnl_fees", "fees"),
        ("pnl_funding", "funding"),
        ("pnl_liquidation", "liquidation"),
        ("sharpe", "Sharpe/step"),
        ("max_drawdown", "max DD"),
        ("inventory_abs_mean", "mean |q|"),
        ("fill_rate", "fill rate"),
        *[(c, c.replace("markout_", "markout ")) for c in markout_cols],
        ("liquidated", "liquidated"),
    ]
    lines = [
        "# Evaluation report",
        "",
        f"{len(config.seeds)} seeds x {config.num_envs} envs per cell, episodes of "
        f"{config.episode_seconds:g} s. Mean [95 % CI]; CVaR at {config.cvar_alpha:.0%} of "
        "episode PnL; markouts are per unit filled (negative: adverse selection).",
    ]
    for scenario, block in summary.groupby("scenario", sort=False):
        lines += ["", f"## {scenario}", ""]
        header = ["policy", *[label for _, label in shown], cvar_col.replace("_", " ") + " %"]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|---|" + "---:|" * (len(header) - 1))
        for _, r in block.iterrows():
            cells = [str(r["policy"])]
            for col, _ in shown:
                cells.append(
                    f"{_fmt(r[col])} [{_fmt(r[col + '_ci_low'])}, {_fmt(r[col + '_ci_high'])}]"
                )
            cells.append(_fmt(r[cvar_col]))
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _fmt(x: float) -> str:
    if not math.isfinite(x):
        return str(x)
    return f"{x:.3g}"


def write_outputs(
    episodes: pd.DataFrame,
    bands: pd.DataFrame,
    summary: pd.DataFrame,
    config: EvaluationConfig,
    out_dir: Path,
    tensorboard: bool = True,
) -> dict[str, Path]:
    """Save the episode table (parquet, CSV), the summary, the report, plots and TensorBoard."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "episodes_parquet": out_dir / "episodes.parquet",
        "episodes_csv": out_dir / "episodes.csv",
        "summary_csv": out_dir / "summary.csv",
        "report": out_dir / "report.md",
    }
    episodes.to_parquet(paths["episodes_parquet"], index=False)
    episodes.to_csv(paths["episodes_csv"], index=False)
    summary.to_csv(paths["summary_csv"], index=False)
    paths["report"].write_text(markdown_report(summary, config))
    from agents.evaluation_plots import plot_all

    bands.to_parquet(out_dir / "equity_bands.parquet", index=False)
    paths.update(plot_all(episodes, bands, out_dir))
    if tensorboard:
        paths["tensorboard"] = write_tensorboard(summary, out_dir / "tensorboard")
    return paths


def write_tensorboard(summary: pd.DataFrame, log_dir: Path) -> Path:
    """Scalars ``eval/<policy>/<metric>`` per scenario run directory (training uses the tags)."""
    from torch.utils.tensorboard import SummaryWriter

    for scenario, block in summary.groupby("scenario", sort=False):
        writer = SummaryWriter(log_dir=str(log_dir / str(scenario)))
        for _, r in block.iterrows():
            for col in (*SUMMARY_METRICS, *[c for c in summary.columns if c.startswith("cvar_")]):
                writer.add_scalar(f"eval/{r['policy']}/{col}", float(r[col]), global_step=0)
        writer.close()
    return log_dir
