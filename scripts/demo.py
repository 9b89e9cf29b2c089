"""The main job (``make demo``): train PPO on the default scenario, evaluate it against the
baselines on held-out markets, write the comparison report, then vet the policy over the stress
suite (``conf/vet/demo.yaml``: every scenario, 4 seeds x 64 envs of two-minute episodes; 14 to
27 s on 2 shared cores) and export it as a bundle when it passes, or name the failed checks and
export nothing.

The agent is residual PPO on ``adaptive`` (``conf/agent/ppo_residual.yaml``), named
``ppo+adaptive`` in every report and in TensorBoard: plain PPO at this budget learns to stop
quoting (experiments/learn_perp), the residual agent starts at the best baseline and learns
corrections to it.

    python scripts/demo.py                          # a few minutes on 2 cores
    python scripts/demo.py agent=ppo                # plain PPO
    python scripts/demo.py train.total_steps=1e6    # any train-config override
    python scripts/demo.py vet.episode_seconds=60   # vet.* overrides go to the vetting

Everything lands in ``runs/demo/<time>/``: ``report.md`` (the compact tables, where the rest
is), ``train/`` (model, VecNormalize stats, TensorBoard, summary), ``evaluation/`` (episode
table, report, plots, TensorBoard), ``comparison/``, the vetting report in
``train/vetting/`` and, when the policy passed, the bundle in ``bundle/``.

The policy is measured on two market sets: the training's own held-out evaluation
(``train.eval_seed`` x ``train.eval_num_envs`` envs, in TensorBoard and the comparison) and
the demo's evaluation on more markets (:data:`EVALUATION_SEEDS` x :data:`EVALUATION_ENVS`
envs). Their numbers differ by market noise; each table names its set.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
from hydra import compose, initialize_config_dir

from agents.compare import compare
from agents.config import TrainJob, VetJob, to_job
from agents.deploy.export import export_bundle
from agents.deploy.vetting import VetResult, vet
from agents.deploy.vetting.report import verdict_rows
from agents.evaluation import (
    EvaluationConfig,
    compact_table,
    evaluate,
    evaluation_markets,
    market_set_line,
    summarise,
    write_outputs,
)
from agents.job_dir import discard_on_failure
from agents.learned import load_run
from agents.market import eval_market_set
from agents.policy_names import policy_name
from agents.sb3.train import train
from mmgym.markdown import table as markdown_table

ROOT = Path(__file__).resolve().parent.parent
BASELINES = ["linear_skew", "adaptive", "cartea_jaimungal"]
EVALUATION_SEEDS = [101, 102]
EVALUATION_ENVS = 32


def main(overrides: list[str]) -> None:
    """Train, evaluate, compare, write the demo's page and print its tables."""
    started = time.perf_counter()
    out = ROOT / "runs" / "demo" / time.strftime("%Y%m%d-%H%M%S")
    vet_overrides = [o for o in overrides if o.startswith(("vet.", "vet="))]
    train_overrides = [o for o in overrides if o not in vet_overrides]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        defaults = ["train=demo", "agent=ppo_residual"]
        job = to_job(
            compose(config_name="train", overrides=[*defaults, *train_overrides]), TrainJob
        )
        vetting = to_job(
            compose(
                config_name="vet",
                overrides=["vet=demo", f"policy=run:{out / 'train'}", *vet_overrides],
            ),
            VetJob,
        )
    name = policy_name(job.agent)
    with discard_on_failure(out):
        steps = int(job.train.total_steps)
        print(f"[1/4] training {name} on {job.env.scenario} for {steps} env steps")
        summary = train(job, out / "train")

        print("[2/4] evaluating it against the baselines on held-out markets")
        config = EvaluationConfig(
            policies=[name, *BASELINES],
            scenarios=[job.env.scenario],
            seeds=EVALUATION_SEEDS,
            num_envs=EVALUATION_ENVS,
            episode_seconds=job.train.episode_seconds,
            env_overrides=dict(job.env.overrides),
        )
        episodes, bands = evaluate(
            config, factories={name: lambda params: load_run(out / "train", params)}
        )
        table = summarise(episodes, config.cvar_alpha)
        evaluation = write_outputs(episodes, bands, table, config, out / "evaluation")

        print("[3/4] comparing runs")
        comparison = compare([out / "train"], out / "comparison")
        page = demo_page(job, summary, config, table, pd.read_csv(comparison["final"]), out)
        (out / "report.md").write_text(page)

        print("[4/4] vetting it over the stress suite (conf/vet/demo.yaml)")
        vetted_at = time.perf_counter()
        result = vet(vetting.policy, vetting.vet, vetting.risk.to_limits(), progress=False)
        vet_seconds = time.perf_counter() - vetted_at
        deployment = deploy(result, out / "bundle")
        page += vetting_section(result, deployment, out)
        (out / "report.md").write_text(page)

    print()
    print(page)
    rate = summary["steps_per_second"]
    print(f"Done in {time.perf_counter() - started:.0f} s "
          f"(training {summary['seconds']:.0f} s at {rate:.0f} steps/s).")  # fmt: skip
    print(f"Results: {out}")
    print(f"  this page           {out / 'report.md'}")
    print(f"  evaluation report   {evaluation['report']}")
    print(f"  comparison report   {comparison['report']}")
    print(f"TensorBoard (the policy and its baselines in one chart): tensorboard --logdir {out}")
    print(f"Vetting ({vet_seconds:.0f} s): {result.report}")
    print(deployment)


def vetting_section(result: VetResult, deployment: str, out: Path) -> str:
    """The demo page's vetting section: the verdict table and what was exported."""
    header = ["check", "scenario(s)", "value", "threshold", "unit", "result"]
    rows = verdict_rows(result.checks, result.config.cvar_alpha)
    lines = [
        "",
        f"## Vetting: {result.verdict}",
        "",
        f"{result.policy.name} through the RiskLimiter over {len(result.config.scenarios)} "
        f"scenarios x {len(result.config.seeds)} seeds x {result.config.num_envs} envs "
        f"(conf/vet/demo.yaml), against the baselines on the same markets; the details are in "
        f"`{result.report.relative_to(out)}`.",
        "",
        markdown_table(header, rows, "llrrll"),
        "",
        *(f"{line}  " for line in deployment.splitlines()),
    ]
    return "\n".join(lines) + "\n"


def deploy(result: VetResult, bundle_dir: Path) -> str:
    """Export the vetted run as a bundle when it passed; the lines saying what happened."""
    if result.verdict != "pass":
        failed = ", ".join(dict.fromkeys(f"{c.name} ({c.scenario})" for c in result.failed))
        return f"verdict: fail: failed checks: {failed}\nnothing exported"
    bundle = export_bundle(result.policy.path, bundle_dir)
    return f"verdict: pass\nbundle: {bundle.path}"


def demo_page(
    job: TrainJob,
    summary: dict[str, Any],
    config: EvaluationConfig,
    evaluation: pd.DataFrame,
    comparison: pd.DataFrame,
    out: Path,
) -> str:
    """The demo's page: the evaluation's compact table, the training's own evaluation on its
    market set, what the two sets are, and where everything else is."""
    name = summary["policy"]
    scenario = job.env.scenario
    training_markets = eval_market_set(job)
    lines = [
        f"# Demo: {name} on {scenario}",
        "",
        f"{name} trained for {summary['steps']:,} env steps in {summary['seconds']:.0f} s, "
        f"then evaluated with the baselines {', '.join(BASELINES)}. Every table measures all "
        "its policies on the same markets; numbers of different tables come from different "
        "markets and differ by market noise too.",
        "",
        "## Evaluation",
        "",
        market_set_line(evaluation_markets(config, scenario)),
        "Mean [95 % CI, Student's t over episodes; CVaR's over seeds]:",
        "",
        compact_table(evaluation[evaluation["scenario"] == scenario]),
        "",
        "## The training's own evaluation",
        "",
        f"{market_set_line(training_markets)} These are the held-out markets the trainer "
        "evaluates on every `train.eval_every_steps` (`train.eval_seed` x "
        "`train.eval_num_envs`): TensorBoard's `eval/*` charts and the comparison report. "
        f"Fewer episodes ({training_markets.episodes} against "
        f"{evaluation_markets(config, scenario).episodes}) from other seeds than the "
        "evaluation above, so the same policy scores differently; one training seed, so no "
        "CI (n/a):",
        "",
        compact_table(comparison[comparison["markets"] == training_markets.describe()], "seeds"),
        "",
        "## Where the rest is",
        "",
        "- `evaluation/report.md`: every metric, the PnL decomposition, the plots "
        "(`evaluation/*.png`); `evaluation/episodes.parquet`: one row per episode",
        "- `comparison/comparison.md` and `comparison/learning_curves.png`: the training's "
        "evaluations against env steps, baselines as reference lines",
        f"- `train/`: `model.zip`, `vecnormalize.pkl`, `summary.json`, `config.yaml`; load with "
        f"`agents.learned.load_run('{out / 'train'}')`",
        f"- TensorBoard: `tensorboard --logdir {out}`: `eval/*` draws {name} and its baselines "
        "in one chart per metric (one run per policy under `train/tensorboard/eval/`)",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main(sys.argv[1:])
