"""Does PPO beat the best baseline on PerpMM? Trained policies against every registered baseline.

For each scenario, an agent (``agent``: plain ``ppo``, or ``ppo_residual``, PPO learning a
bounded correction to the ``adaptive`` baseline, see :mod:`agents.residual`) is trained with
the project's SB3 trainer (:func:`agents.sb3.train.train`, the job composed by Hydra from
``conf/train.yaml`` exactly as ``scripts/train.py`` would), once per seed. Then every
registered baseline and every trained policy is evaluated by
:func:`agents.evaluation.evaluate` on held-out seeds (``eval_seeds``, far from the training
seeds), with episodes as long as the training ones. The best baseline of a scenario is the one
with the highest mean episode PnL. Each trained policy is compared with it:

- **PnL**: the paired difference per episode. The same (seed, env) gives every policy the same
  initial market and random streams, so the episodes are paired; 95 % CI of the mean
  per-episode difference by Student's t (as every mean's CI on the page).
- **CVaR 5 %** of episode PnL (the mean of the worst 5 % of episodes; higher is less risk): each
  policy's value with a bootstrap 95 % CI, and the difference with a paired bootstrap CI
  (episodes resampled jointly).

The goal, per trained policy: PnL above the best baseline's (CI of the paired difference above
0) at equal or lower risk (CVaR at or above the best baseline's). Whether the CVaR is
significantly worse (CI of the difference entirely below 0) is reported too.

    python -m experiments.learn_perp.run [--out experiments/learn_perp] [--steps 1e6]
        [--agent ppo_residual] [--scenarios calm volatile liquidation_cascade] [--seeds 0 1 2]

The tables go to ``<out>/results.md`` and ``results.json`` (``results_<agent>.*`` for an agent
other than ``ppo``; ``--name`` sets the stem). ``--render`` rewrites ``<out>/<name>.md`` from
its JSON without training or evaluating anything.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from agents.baselines.registry import BASELINES, load_all
from agents.config import TrainJob, to_job
from agents.evaluation import EvaluationConfig, PolicyFactory, evaluate, summarise
from agents.learned import load_run
from agents.metrics import cvar, mean_confidence_interval
from agents.policy import Policy
from agents.sb3.train import train
from experiments.pages import interval
from mmgym.core.params import MarketParams
from mmgym.markdown import table

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"


@dataclass(frozen=True)
class PerpConfig:
    """The experiment's budget and evaluation."""

    agent: str = "ppo"
    """The agent config trained (``conf/agent/<agent>.yaml``), e.g. ``ppo`` or ``ppo_residual``."""
    scenarios: tuple[str, ...] = ("calm", "volatile", "liquidation_cascade")
    seeds: tuple[int, ...] = (0, 1, 2)
    total_steps: int = 1_000_000
    """Env steps per training run (summed over envs)."""
    num_envs: int = 256
    episode_seconds: float = 600.0
    """Training and evaluation episode length (market seconds)."""
    train_overrides: tuple[str, ...] = ()
    """Further Hydra overrides of every training job (e.g. ``agent.learning_rate=1e-4``)."""
    eval_seeds: tuple[int, ...] = (1000, 1001, 1002, 1003)
    eval_num_envs: int = 64
    baselines: tuple[str, ...] = ()
    """Baselines to evaluate (empty: every registered one)."""
    cvar_alpha: float = 0.05
    bootstrap: int = 2000
    bootstrap_seed: int = 7
    runs_dir: str = "runs/learn_perp"
    """Where the training runs (models, TensorBoard) go; not committed."""
    torch_threads: int = 0
    """0: torch's default."""
    reuse: bool = False
    """Reuse a finished training run whose directory holds exactly the same job's config."""

    def baseline_names(self) -> list[str]:
        """The baselines evaluated."""
        load_all()
        return list(self.baselines) if self.baselines else sorted(BASELINES)


def compose_job(cfg: PerpConfig, scenario: str, seed: int) -> TrainJob:
    """The training job, composed exactly as ``scripts/train.py`` composes it."""
    overrides = [
        f"env={scenario}",
        f"agent={cfg.agent}",
        f"train.total_steps={cfg.total_steps}",
        f"train.num_envs={cfg.num_envs}",
        f"train.episode_seconds={cfg.episode_seconds}",
        "train.eval_every_steps=0",
        "train.eval_num_envs=8",
        "train.eval_baselines=[]",
        "train.checkpoint_every_steps=0",
        "train.progress_bar=false",
        f"seed={seed}",
        *cfg.train_overrides,
    ]
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        return to_job(compose(config_name="train", overrides=overrides), TrainJob)


def learned_name(seed: int, agent: str = "ppo") -> str:
    """The trained policy's name in the tables."""
    return f"{agent}_s{seed}"


@dataclass
class Comparison:
    """One trained policy against the scenario's best baseline (paired by episode)."""

    scenario: str
    policy: str
    best_baseline: str
    pnl: float
    pnl_ci: tuple[float, float]
    best_pnl: float
    best_pnl_ci: tuple[float, float]
    pnl_diff: float
    pnl_diff_ci: tuple[float, float]
    cvar: float
    cvar_ci: tuple[float, float]
    best_cvar: float
    best_cvar_ci: tuple[float, float]
    cvar_diff: float
    cvar_diff_ci: tuple[float, float]
    episodes: int

    @property
    def beats_pnl(self) -> bool:
        """Paired PnL difference significantly above 0."""
        return self.pnl_diff_ci[0] > 0.0

    @property
    def risk_no_worse(self) -> bool:
        """CVaR at or above the best baseline's (point estimates): equal or lower tail risk."""
        return self.cvar_diff >= 0.0

    @property
    def risk_not_significantly_worse(self) -> bool:
        """The CI of the CVaR difference reaches 0 or above."""
        return self.cvar_diff_ci[1] >= 0.0

    @property
    def met(self) -> bool:
        """The goal: significantly more PnL at equal or lower tail risk (CVaR point estimates)."""
        return self.beats_pnl and self.risk_no_worse

    @property
    def met_within_ci(self) -> bool:
        """The lenient reading: more PnL, and CVaR not significantly worse."""
        return self.beats_pnl and self.risk_not_significantly_worse


def _mean_ci(x: np.ndarray) -> tuple[float, tuple[float, float]]:
    mean, low, high = mean_confidence_interval(x)
    return mean, (low, high)


def _bootstrap_cvar(
    a: np.ndarray, b: np.ndarray | None, alpha: float, n: int, seed: int
) -> tuple[float, float]:
    """Percentile 95 % CI of CVaR(a), or of CVaR(a) - CVaR(b) with episodes paired."""
    rng = np.random.default_rng(seed)
    stats = np.empty(n)
    for i in range(n):
        idx = rng.integers(0, a.size, a.size)
        stats[i] = cvar(a[idx], alpha) - (cvar(b[idx], alpha) if b is not None else 0.0)
    lo, hi = np.quantile(stats, [0.025, 0.975])
    return float(lo), float(hi)


def compare(
    episodes: pd.DataFrame, scenario: str, policy: str, best: str, cfg: PerpConfig
) -> Comparison:
    """``policy`` against ``best`` on ``scenario``, episodes paired by (seed, env)."""
    block = episodes[episodes["scenario"] == scenario]
    mine = block[block["policy"] == policy].set_index(["seed", "env"])["pnl"]
    theirs = block[block["policy"] == best].set_index(["seed", "env"])["pnl"]
    mine, theirs = mine.align(theirs, join="inner")
    a, b = mine.to_numpy(np.float64), theirs.to_numpy(np.float64)
    pnl, pnl_ci = _mean_ci(a)
    best_pnl, best_pnl_ci = _mean_ci(b)
    diff, diff_ci = _mean_ci(a - b)
    alpha, n, seed = cfg.cvar_alpha, cfg.bootstrap, cfg.bootstrap_seed
    return Comparison(
        scenario=scenario,
        policy=policy,
        best_baseline=best,
        pnl=pnl,
        pnl_ci=pnl_ci,
        best_pnl=best_pnl,
        best_pnl_ci=best_pnl_ci,
        pnl_diff=diff,
        pnl_diff_ci=diff_ci,
        cvar=cvar(a, alpha),
        cvar_ci=_bootstrap_cvar(a, None, alpha, n, seed),
        best_cvar=cvar(b, alpha),
        best_cvar_ci=_bootstrap_cvar(b, None, alpha, n, seed),
        cvar_diff=cvar(a, alpha) - cvar(b, alpha),
        cvar_diff_ci=_bootstrap_cvar(a, b, alpha, n, seed),
        episodes=int(a.size),
    )


@dataclass
class ScenarioResult:
    """Training runs, the league and the comparisons of one scenario."""

    scenario: str
    training: list[dict[str, Any]]
    league: list[dict[str, Any]]
    best_baseline: str
    comparisons: list[Comparison]
    eval_seconds: float


@dataclass
class Results:
    """Everything the README reports."""

    config: dict[str, Any]
    scenarios: list[ScenarioResult]
    seconds: float
    machine: dict[str, Any] = field(default_factory=dict)
    agent_settings: dict[str, Any] = field(default_factory=dict)
    """The trained agent's resolved settings (``conf/agent/<agent>.yaml`` with the overrides)."""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Results:
        """The results as :func:`write` stored them (:func:`to_json`; verdicts are recomputed)."""
        names = {f.name for f in fields(Comparison)}
        scenarios = []
        for s in data["scenarios"]:
            comparisons = []
            for c in s["comparisons"]:
                stored: dict[str, Any] = {k: v for k, v in c.items() if k in names}
                cis = {k: tuple(v) for k, v in stored.items() if k.endswith("_ci")}
                comparisons.append(Comparison(**{**stored, **cis}))
            scenarios.append(ScenarioResult(**{**s, "comparisons": comparisons}))
        return cls(**{**data, "scenarios": scenarios})


LEAGUE_COLUMNS = (
    "pnl",
    "pnl_ci_low",
    "pnl_ci_high",
    "cvar_5",
    "sharpe",
    "max_drawdown",
    "inventory_abs_mean",
    "fill_rate",
    "pnl_spread",
    "pnl_inventory",
    "pnl_fees",
    "liquidated",
)


def run_scenario(cfg: PerpConfig, scenario: str, runs: Path) -> ScenarioResult:
    """Train every seed on ``scenario``, evaluate everything, compare with the best baseline."""
    training = []
    factories: dict[str, PolicyFactory] = {}
    for seed in cfg.seeds:
        run_dir = runs / f"{scenario}-{cfg.agent}-s{seed}"
        job = compose_job(cfg, scenario, seed)
        summary = _finished_run(job, run_dir) if cfg.reuse else None
        if summary is None:
            summary = train(job, run_dir)
        training.append(
            {
                "seed": seed,
                "steps": summary["steps"],
                "seconds": summary["seconds"],
                "steps_per_second": summary["steps_per_second"],
                "run_dir": str(run_dir),
            }
        )
        factories[learned_name(seed, cfg.agent)] = _loader(run_dir)
    baselines = cfg.baseline_names()
    config = EvaluationConfig(
        policies=[*baselines, *factories],
        scenarios=[scenario],
        seeds=list(cfg.eval_seeds),
        num_envs=cfg.eval_num_envs,
        episode_seconds=cfg.episode_seconds,
        cvar_alpha=cfg.cvar_alpha,
    )
    start = time.perf_counter()
    episodes, _ = evaluate(config, factories)
    eval_seconds = time.perf_counter() - start
    summary_table = summarise(episodes, cfg.cvar_alpha)
    league = [
        {"policy": str(r["policy"]), **{c: float(r[c]) for c in LEAGUE_COLUMNS if c in r}}
        for _, r in summary_table.iterrows()
    ]
    best = max(baselines, key=lambda name: _mean_pnl(league, name))
    comparisons = [compare(episodes, scenario, name, best, cfg) for name in factories]
    return ScenarioResult(scenario, training, league, best, comparisons, eval_seconds)


def _finished_run(job: TrainJob, run_dir: Path) -> dict[str, Any] | None:
    """The summary of a finished run of exactly ``job`` in ``run_dir``, if there is one."""
    paths = [run_dir / name for name in ("config.yaml", "summary.json", "model.zip")]
    if not all(path.is_file() for path in paths):
        return None
    if paths[0].read_text() != OmegaConf.to_yaml(OmegaConf.structured(job)):
        return None
    summary: dict[str, Any] = json.loads(paths[1].read_text())
    return summary


def _mean_pnl(league: list[dict[str, Any]], policy: str) -> float:
    return float(next(row["pnl"] for row in league if row["policy"] == policy))


def _loader(run_dir: Path) -> PolicyFactory:
    def load(params: MarketParams) -> Policy:
        return load_run(run_dir, params)

    return load


def run(cfg: PerpConfig) -> Results:
    """The whole experiment."""
    start = time.perf_counter()
    if cfg.torch_threads > 0:
        torch.set_num_threads(cfg.torch_threads)
    runs = Path(cfg.runs_dir)
    scenarios = [run_scenario(cfg, name, runs) for name in cfg.scenarios]
    machine = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    agent = asdict(compose_job(cfg, cfg.scenarios[0], cfg.seeds[0]).agent)
    return Results(asdict(cfg), scenarios, time.perf_counter() - start, machine, agent)


def _ci(pair: tuple[float, float] | list[float]) -> str:
    return interval(pair[0], pair[1])


def markdown(r: Results) -> str:
    """The results tables."""
    cfg = r.config
    train_seconds = sum(t["seconds"] for s in r.scenarios for t in s.training)
    overrides = list(cfg.get("train_overrides") or [])
    lines = [
        f"Agent: `{cfg.get('agent', 'ppo')}`"
        + (f" with overrides `{' '.join(overrides)}`" if overrides else "")
        + ". "
        f"Budget: {cfg['total_steps']:,} env steps per run, {cfg['num_envs']} envs, "
        f"{len(cfg['seeds'])} seeds per scenario, episodes of {cfg['episode_seconds']:g} s; "
        f"evaluation on seeds {list(cfg['eval_seeds'])} x {cfg['eval_num_envs']} envs "
        f"= {len(cfg['eval_seeds']) * cfg['eval_num_envs']} episodes per policy. "
        f"Training {train_seconds:.0f} s (sum over runs), evaluation "
        f"{sum(s.eval_seconds for s in r.scenarios):.0f} s; this invocation {r.seconds:.0f} s"
        + (" (finished runs reused)." if cfg.get("reuse") else "."),
    ]
    if r.agent_settings:
        settings = ", ".join(f"{k}={v}" for k, v in r.agent_settings.items())
        lines += ["", f"Agent settings: {settings}."]
    for s in r.scenarios:
        lines += [
            "",
            f"### {s.scenario}",
            "",
            "Training: "
            + ", ".join(
                f"seed {t['seed']} {t['steps']:,} steps in {t['seconds']:.0f} s "
                f"({t['steps_per_second'] / 1e3:.0f} k/s)"
                for t in s.training
            )
            + f"; evaluation {s.eval_seconds:.0f} s.",
            "",
        ]
        league = []
        for row in sorted(s.league, key=lambda x: -x["pnl"]):
            mark = " (best baseline)" if row["policy"] == s.best_baseline else ""
            league.append([
                f"{row['policy']}{mark}",
                f"{row['pnl']:.3g} {_ci((row['pnl_ci_low'], row['pnl_ci_high']))}",
                *(f"{row[k]:.3g}" for k in ("cvar_5", "pnl_spread", "pnl_inventory", "pnl_fees",
                                            "sharpe", "max_drawdown", "inventory_abs_mean",
                                            "fill_rate", "liquidated")),
            ])  # fmt: skip
        league_header = [
            "policy", "PnL [95 % CI]", "CVaR 5 %", "spread", "inventory", "fees", "Sharpe/step",
            "max DD", "mean abs(q)", "fill rate", "liquidated",
        ]  # fmt: skip
        lines.append(table(league_header, league, align="l" + "r" * 10))
        lines += [
            "",
            f"Against the best baseline ({s.best_baseline}), paired by episode:",
            "",
        ]
        comparisons = [
            [
                c.policy, f"{c.pnl_diff:.3g} {_ci(c.pnl_diff_ci)}",
                f"{c.cvar:.3g} {_ci(c.cvar_ci)}", f"{c.best_cvar:.3g} {_ci(c.best_cvar_ci)}",
                f"{c.cvar_diff:.3g} {_ci(c.cvar_diff_ci)}",
                _yes(c.beats_pnl), _yes(c.risk_no_worse), _yes(c.risk_not_significantly_worse),
                _yes(c.met),
            ]
            for c in s.comparisons
        ]  # fmt: skip
        comparison_header = [
            "policy", "PnL - best [95 % CI]", "CVaR 5 % [95 % CI]", "best's CVaR 5 % [95 % CI]",
            "CVaR - best's [95 % CI]", "more PnL", "CVaR no worse", "CVaR not signif. worse",
            "goal met",
        ]  # fmt: skip
        lines.append(table(comparison_header, comparisons, align="lrrrrllll"))
    return "\n".join(lines)


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def to_json(r: Results) -> dict[str, Any]:
    """JSON-ready results (comparisons with their verdicts)."""
    out = asdict(r)
    for s_out, s in zip(out["scenarios"], r.scenarios, strict=True):
        for c_out, c in zip(s_out["comparisons"], s.comparisons, strict=True):
            c_out.update(
                beats_pnl=c.beats_pnl,
                risk_no_worse=c.risk_no_worse,
                risk_not_significantly_worse=c.risk_not_significantly_worse,
                met=c.met,
                met_within_ci=c.met_within_ci,
            )
    return out


def results_name(agent: str) -> str:
    """The default stem of the output files: ``results`` for ``ppo``, else ``results_<agent>``."""
    return "results" if agent == "ppo" else f"results_{agent}"


def write(r: Results, out: Path, name: str = "results") -> None:
    """``<name>.md`` and ``<name>.json`` under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.md").write_text(markdown(r) + "\n")
    (out / f"{name}.json").write_text(json.dumps(to_json(r), indent=2) + "\n")


def render(out: Path, name: str = "results") -> str:
    """Rewrite ``<name>.md`` under ``out`` from ``<name>.json`` (nothing is trained or run)."""
    text = markdown(Results.from_json(json.loads((out / f"{name}.json").read_text())))
    (out / f"{name}.md").write_text(text + "\n")
    return text


def main(argv: list[str] | None = None) -> Results:
    """Run, print the tables, write the outputs."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", default="experiments/learn_perp")
    parser.add_argument(
        "--agent", default=None, help="agent config to train (conf/agent/<agent>.yaml)"
    )
    parser.add_argument(
        "--name", default=None, help="output file stem (default: results[_<agent>])"
    )
    parser.add_argument("--steps", type=float, default=None, help="env steps per run")
    parser.add_argument("--envs", type=int, default=None, help="training envs")
    parser.add_argument("--scenarios", nargs="+", default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--episode-seconds", type=float, default=None)
    parser.add_argument("--eval-seeds", type=int, nargs="+", default=None)
    parser.add_argument("--eval-envs", type=int, default=None)
    parser.add_argument("--baselines", nargs="+", default=None)
    parser.add_argument("--runs-dir", default=None)
    parser.add_argument("--torch-threads", type=int, default=None)
    parser.add_argument(
        "--reuse", action="store_true", help="reuse finished runs with the same config"
    )
    parser.add_argument(
        "--override", action="append", default=[], help="Hydra override of the training jobs"
    )
    parser.add_argument(
        "--render", action="store_true", help="only rewrite <out>/<name>.md from its JSON"
    )
    args = parser.parse_args(argv)
    if args.render:
        name = args.name or results_name(args.agent or "ppo")
        print(render(Path(args.out), name))
        return Results.from_json(json.loads((Path(args.out) / f"{name}.json").read_text()))
    values: dict[str, Any] = {
        "agent": args.agent,
        "total_steps": None if args.steps is None else int(args.steps),
        "num_envs": args.envs,
        "scenarios": None if args.scenarios is None else tuple(args.scenarios),
        "seeds": None if args.seeds is None else tuple(args.seeds),
        "episode_seconds": args.episode_seconds,
        "eval_seeds": None if args.eval_seeds is None else tuple(args.eval_seeds),
        "eval_num_envs": args.eval_envs,
        "baselines": None if args.baselines is None else tuple(args.baselines),
        "runs_dir": args.runs_dir,
        "torch_threads": args.torch_threads,
        "train_overrides": tuple(args.override) if args.override else None,
        "reuse": args.reuse or None,
    }
    cfg = PerpConfig(**{k: v for k, v in values.items() if v is not None})
    results = run(cfg)
    print(markdown(results))
    write(results, Path(args.out), args.name or results_name(cfg.agent))
    return results


if __name__ == "__main__":
    main()
