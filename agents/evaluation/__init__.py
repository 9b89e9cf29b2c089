"""The evaluation harness: policies x scenarios x seeds on the PerpMM vector env.

``evaluate(config)`` runs one episode per env for every (scenario, policy, seed) and returns a
tidy table with one row per episode: the PnL and its decomposition, Sharpe and Sortino of step
PnL, max drawdown, mean |inventory| and time at the limit, fill rate, markouts at several
horizons (adverse selection), post-only rejections, hedge cost and liquidation. ``summarise``
aggregates it per (scenario, policy) with confidence intervals and CVaR 5 % of episode PnL;
``write_outputs`` saves parquet, CSV, a markdown report, PNG plots and TensorBoard scalars under
the tags training uses (``eval/<policy>/<metric>``), so baselines and learned runs share one
TensorBoard. ``evaluate_policies`` is the trainers' evaluation on a job's held-out markets.

The same seed gives every policy the same initial markets and random streams (common random
numbers): differences between policies are paired, not drowned in market noise.

Modules: ``config`` (what to evaluate), ``episode`` (per-episode recording and metrics),
``harness`` (running batches), ``summary``, ``report`` (markdown), ``tensorboard``, ``plots``
and ``outputs`` (writing everything).
"""

from mmgym.extras import extra_needed

with extra_needed("agents.evaluation"):
    from agents.evaluation.config import EvaluationConfig, PolicyFactory, validate_config
    from agents.evaluation.episode import (
        EpisodeRecorder,
        FillTape,
        episode_row,
        markout_name,
        markout_steps,
    )
    from agents.evaluation.harness import (
        BAND_QUANTILES,
        EVAL_MARKOUT_SECONDS,
        EVAL_METRICS,
        eval_metric_names,
        evaluate,
        evaluate_policies,
        iterate_jobs,
        run_batch,
    )
    from agents.evaluation.outputs import write_outputs
    from agents.evaluation.report import markdown_report, mean_ci_text, metric_label
    from agents.evaluation.summary import SUMMARY_METRICS, summarise
    from agents.evaluation.tensorboard import write_tensorboard

__all__ = [
    "BAND_QUANTILES",
    "EVAL_MARKOUT_SECONDS",
    "EVAL_METRICS",
    "SUMMARY_METRICS",
    "EpisodeRecorder",
    "EvaluationConfig",
    "FillTape",
    "PolicyFactory",
    "episode_row",
    "eval_metric_names",
    "evaluate",
    "evaluate_policies",
    "iterate_jobs",
    "markdown_report",
    "markout_name",
    "markout_steps",
    "mean_ci_text",
    "metric_label",
    "run_batch",
    "summarise",
    "validate_config",
    "write_outputs",
    "write_tensorboard",
]
