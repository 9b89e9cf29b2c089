"""Vet a policy over the stress suite, through the RiskLimiter, against every baseline
(``mmgym-vet``; the checks and statistics: docs/deploy.md, "Vetting").

    mmgym-vet policy=run:runs/train/<time>           # writes <run>/vetting/
    mmgym-vet policy=baseline:adaptive vet=demo      # writes runs/vet/<time>/
    mmgym-vet policy=bundle:bundles/demo out=<dir>
    mmgym-vet policy=run:<dir> risk.limits.max_position=5 vet.episode_seconds=600

The settings are conf/vet.yaml with the suite and thresholds of conf/vet/<name>.yaml (schema
``agents.config.VetJob``); unknown keys are refused. Prints the verdict table and where the
report is. Exit codes: 0 the policy passed; 1 it failed (the failed checks are printed);
2 bad input (a missing directory, an unknown baseline, a tampered bundle, a bad config), with a
one-line message on stderr.
"""

from __future__ import annotations

import sys

from agents.cli import job_main
from agents.config import VetJob
from agents.deploy.vetting import VetResult, vet
from agents.deploy.vetting.report import label, verdict_rows
from mmgym.markdown import table


def run(job: VetJob) -> VetResult:
    """Vet what ``job`` names; ValueError for bad input."""
    return vet(
        job.policy,
        job.vet,
        job.risk.to_limits(),
        out=job.out,
        progress=job.progress,
        limits_source=_limits_source(job),
    )


def _limits_source(job: VetJob) -> str:
    changed = ", ".join(f"{k}={v}" for k, v in sorted(job.risk.limits.items()))
    return "the production limits of conf/risk/default.yaml" + (
        f" with {changed}" if changed else ""
    )


def describe(result: VetResult) -> str:
    """The verdict table, the failed checks and the report's path."""
    header = ["check", "scenario(s)", "value", "threshold", "unit", "result"]
    alpha = result.config.cvar_alpha
    lines = [
        f"{result.policy.name}: {result.verdict.upper()}",
        "",
        table(header, verdict_rows(result.checks, alpha), "llrrll"),
        "",
    ]
    if result.failed:
        failed = ", ".join(f"{label(c.name, alpha)} in {c.scenario}" for c in result.failed)
        lines.append(f"failed checks: {failed}")
    lines += [f"report: {result.report}", f"record: {result.record}", f"verdict: {result.verdict}"]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Run the vetting; return the exit code (0 pass, 1 fail, 2 bad input)."""

    def exit_code(job: VetJob) -> int:
        result = run(job)
        print(describe(result))
        return 0 if result.verdict == "pass" else 1

    return job_main("mmgym-vet", "vet", VetJob, argv, exit_code, __doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
