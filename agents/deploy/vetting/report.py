"""``vetting.md``: the verdict table first (one row per check), then the statistics used, then
each scenario's checks, comparisons, policies and limiter counts, then the plots. Every table
goes through :func:`mmgym.markdown.table`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from agents.deploy.risk.reasons import Reason
from agents.deploy.vetting.checks import CHECKS, MEASURED, CheckResult, measure
from agents.deploy.vetting.config import VetConfig
from agents.deploy.vetting.policies import VettedPolicy
from agents.deploy.vetting.runner import SuiteResult
from agents.evaluation import compact_table, market_set_line, summarise
from agents.market import MarketSet
from mmgym.markdown import table

PLOTS = {"paired": "paired_differences.png", "equity": "equity_bands.png"}
"""The report's PNG plots, in its folder."""


@dataclass(frozen=True)
class ReportContext:
    """What the report says besides the numbers."""

    vetted: VettedPolicy
    config: VetConfig
    result: SuiteResult
    checks: list[CheckResult]
    verdict: str
    commit: str
    version: str
    limits_source: str


def fmt(x: float, spec: str = ".4g") -> str:
    """A number for a table; ``n/a`` when it is not finite."""
    return format(x, spec) if math.isfinite(x) else "n/a"


def result_text(passed: bool | None) -> str:
    """``pass``, ``FAIL`` or ``reported`` (the check does not apply there)."""
    return "reported" if passed is None else ("pass" if passed else "FAIL")


def threshold_text(check: CheckResult) -> str:
    """The threshold as a condition on the value."""
    spec = CHECKS[check.name]
    if spec.comparison == "paired":
        level = check.detail["test"]["confidence"] * 100
        return f"not significantly < {fmt(check.threshold)} (one-sided {level:g} %)"
    return f"{spec.comparison} {fmt(check.threshold)}"


def label(name: str, alpha: float) -> str:
    """A check's label, with the CVaR's tail share (``CVaR 5 %``)."""
    return CHECKS[name].label.replace("CVaR", f"CVaR {alpha * 100:g} %")


def verdict_rows(checks: list[CheckResult], alpha: float) -> list[list[object]]:
    """One row per check: the scenarios it failed in (or how many it passed), the value of the
    worst one, its threshold, unit and result."""
    rows: list[list[object]] = []
    for name, spec in CHECKS.items():
        mine = [c for c in checks if c.name == name]
        applied = [c for c in mine if c.passed is not None]
        failed = [c for c in applied if c.passed is False]
        worst = _worst(failed or applied or mine, spec.comparison)
        if failed:
            where = f"{', '.join(c.scenario for c in failed)} ({len(failed)} of {len(applied)})"
        elif len(applied) == len(mine):
            where = f"all {len(applied)} (worst: {worst.scenario})"
        else:
            where = f"{', '.join(c.scenario for c in applied)} (worst: {worst.scenario})"
        rows.append(
            [label(name, alpha), where, fmt(worst.value), threshold_text(worst), spec.unit,
             result_text(None if not applied else not failed)]
        )  # fmt: skip
    return rows


def _worst(checks: Sequence[CheckResult], comparison: str) -> CheckResult:
    def badness(c: CheckResult) -> float:
        if comparison == "paired":
            bound = c.detail["test"]["upper_bound"]
            return -(bound if bound is not None else math.inf)
        v = c.value if math.isfinite(c.value) else math.inf
        return v if comparison == "<=" else -v

    return max(checks, key=badness)


def markdown(ctx: ReportContext) -> str:
    """The whole ``vetting.md``."""
    c, r, v = ctx.config, ctx.result, ctx.vetted
    alpha = f"{c.cvar_alpha * 100:g} %"
    header = ["check", "scenario(s)", "value", "threshold", "unit", "result"]
    lines = [
        f"# Vetting: {v.name}: {ctx.verdict.upper()}",
        "",
        f"Policy `{v.kind}:{v.path}` ({v.name}), through the RiskLimiter ({ctx.limits_source}), "
        f"over {len(c.scenarios)} scenarios x {len(c.seeds)} seeds x {c.num_envs} envs "
        f"(episodes of {c.episode_seconds:g} s), with the baselines {', '.join(c.baselines)} on "
        f"the same markets (common random numbers). mmgym {ctx.version}, commit {ctx.commit}; "
        f"{r.seconds:.0f} s.",
        "",
        table(header, verdict_rows(ctx.checks, c.cvar_alpha), "llrrll"),
        "",
        _failures(ctx.checks),
        "",
        "## Statistics",
        "",
        f"CVaR {alpha} is the mean PnL of the worst {alpha} of a scenario's episodes (all seeds "
        "pooled). Drawdown is the largest fall of cumulative PnL from its running peak within an "
        "episode; the time at the inventory limit counts decisions with some perp's |inventory| "
        "at the RiskLimiter's soft position limit (`soft_limit_fraction` x `max_position`), "
        "where it admits only reducing orders; a kill-switch trip is an episode whose account the "
        "kill switch HALTed; limiter denials count every order the RiskLimiter denied or clipped "
        f"(reasons {', '.join(c.thresholds.denials_ignored) or 'none'} left out) per account and "
        "hour of market time.",
        "",
        "Against the best baseline of each scenario (highest mean episode PnL, or highest CVaR): "
        "per seed, the policy's mean episode PnL (or CVaR of that seed's episodes) minus the "
        "baseline's, on the same markets. Student's t on these paired differences, one-sided: the "
        "policy fails only when the upper confidence bound of the mean difference is below "
        "minus the margin (significantly worse). With fewer than two seeds the test cannot be "
        "computed and the report says so.",
        "",
        _crn_line(r),
    ]
    for scenario in c.scenarios:
        lines += _scenario_section(ctx, scenario)
    lines += ["", "## Plots", ""]
    lines += [f"![{name}]({file})" for name, file in PLOTS.items()]
    return "\n".join(lines) + "\n"


def _failures(checks: list[CheckResult]) -> str:
    failed = [c for c in checks if c.passed is False]
    if not failed:
        return "Every check passed."
    names = dict.fromkeys(f"{c.name} ({c.scenario})" for c in failed)
    return "Failed: " + ", ".join(names) + "."


def _crn_line(r: SuiteResult) -> str:
    envs = sum(e["envs"] for s in r.crn.values() for e in s.values())
    bad = sum(e["mismatched_envs"] for s in r.crn.values() for e in s.values())
    if not envs:
        return "Common random numbers: no baseline other than the policy itself was run."
    if not bad:
        return (
            "Common random numbers: every baseline's fair-price path equals the policy's in all "
            f"{envs} baseline episodes compared (while both are in their first episode)."
        )
    return (
        f"Common random numbers: the same seeds and markets for every policy; the fair-price "
        f"path of {bad} of {envs} baseline episodes departs from the policy's, although no "
        "action shifts the market's random stream; the pairing by seed stays valid. Per "
        "scenario below."
    )


def _scenario_section(ctx: ReportContext, scenario: str) -> list[str]:
    c, r = ctx.config, ctx.result
    market = r.markets[scenario]
    markets = MarketSet.of(scenario, c.seeds, c.num_envs, c.episode_seconds, market.overrides)
    block = r.episodes[r.episodes["scenario"] == scenario]
    mine = [x for x in ctx.checks if x.scenario == scenario]
    lines = ["", f"## {scenario}", "", market_set_line(markets), ""]
    rows = [
        [
            label(x.name, c.cvar_alpha),
            fmt(x.value),
            threshold_text(x),
            x.unit,
            result_text(x.passed),
        ]
        for x in mine
    ]
    lines += [table(["check", "value", "threshold", "unit", "result"], rows, "lrlll"), ""]
    lines += [_comparison_table(mine, c.cvar_alpha), "", _crn_scenario(r, scenario), ""]
    lines += ["Policies (mean [95 % CI], Student's t over episodes; CVaR's over seeds):", ""]
    lines += [compact_table(summarise(block, c.cvar_alpha)), ""]
    lines += [
        "Every policy's values of the checks (max drawdown and max |inventory|: the worst "
        "episode; the others over all episodes):",
        "",
        _risk_table(block, r, c, scenario),
        "",
        _reasons_table(block, r, scenario),
    ]
    return lines


def _comparison_table(checks: list[CheckResult], alpha: float) -> str:
    header = [
        "comparison", "best baseline", "mean difference (quote/episode)",
        "one-sided upper bound (quote/episode)", "t", "df", "p (one-sided)",
        "per-seed differences (quote/episode)", "result",
    ]  # fmt: skip
    rows = []
    for x in checks:
        if CHECKS[x.name].comparison != "paired":
            continue
        t = x.detail["test"]
        diffs = ", ".join(fmt(d) if d is not None else "n/a" for d in t["differences"])
        rows.append(
            [label(x.name, alpha), x.detail["best_baseline"], fmt(_num(t["mean"])),
             fmt(_num(t["upper_bound"])), fmt(_num(t["t"]), ".3g"), t["df"],
             fmt(_num(t["p_value"]), ".3g"), diffs, result_text(x.passed) + f" ({t['note']})"]
        )  # fmt: skip
    return table(header, rows, "llrrrrrll")


def _crn_scenario(r: SuiteResult, scenario: str) -> str:
    parts = [
        f"{name} {e['envs'] - e['mismatched_envs']} of {e['envs']}"
        for name, e in r.crn.get(scenario, {}).items()
    ]
    if not parts:
        return "Fair-price paths: no other policy to compare."
    return "Fair-price paths equal to the policy's (episodes): " + ", ".join(parts) + "."


def _risk_table(block: pd.DataFrame, r: SuiteResult, c: VetConfig, scenario: str) -> str:
    interval = r.markets[scenario].params.decision_interval
    header = ["policy", *(f"{label(n, c.cvar_alpha)} ({CHECKS[n].unit})" for n in MEASURED)]
    rows = []
    for policy, episodes in block.groupby("policy", sort=False):
        rows.append(
            [policy, *(fmt(measure(n, episodes, interval, c.cvar_alpha)) for n in MEASURED)]
        )
    return table(header, rows, "l" + "r" * len(MEASURED))


def _reasons_table(block: pd.DataFrame, r: SuiteResult, scenario: str) -> str:
    columns = [col for col in block.columns if col.startswith("denials_")]
    mine = block[block["policy"] == r.policy]
    interval = r.markets[scenario].params.decision_interval
    hours = float(mine["steps"].sum()) * interval / 3600.0
    rows = []
    for col in columns:
        total = float(mine[col].sum())
        if total:
            name = col.removeprefix("denials_")
            rate = fmt(total / hours) if hours else "n/a"
            rows.append([name, f"{total:.0f}", rate, Reason[name].description])
    if not rows:
        return f"The RiskLimiter denied or clipped nothing of {r.policy}'s."
    header = ["reason", "count", "per account-hour", "meaning"]
    return f"{r.policy}'s limiter counts:\n\n" + table(header, rows, "lrrl")


def _num(x: float | None) -> float:
    return math.nan if x is None else float(x)
