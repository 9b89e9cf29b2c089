"""``vet``: run the stress suite, evaluate the checks, write ``vetting.md``, ``vetting.json``
and the plots."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import mmgym
from agents.deploy.bundle import VETTING_JSON, VETTING_MD
from agents.deploy.risk import RiskLimits
from agents.deploy.vetting.checks import CheckResult, evaluate_checks, verdict
from agents.deploy.vetting.config import VetConfig
from agents.deploy.vetting.policies import VettedPolicy, resolve_policy
from agents.deploy.vetting.record import to_json, vetting_record
from agents.deploy.vetting.report import PLOTS, ReportContext, markdown
from agents.deploy.vetting.runner import SuiteResult, run_suite
from mmgym.provenance import commit

VETTING_SUBDIR = "vetting"
"""A run's report folder: ``<run>/vetting/`` (where ``mmgym-export`` looks)."""


@dataclass(frozen=True)
class VetResult:
    """What :func:`vet` found and wrote."""

    verdict: str
    """``pass`` or ``fail``."""
    checks: list[CheckResult]
    policy: VettedPolicy
    config: VetConfig
    suite: SuiteResult
    out_dir: Path
    report: Path
    """``vetting.md``."""
    record: Path
    """``vetting.json``."""

    @property
    def failed(self) -> list[CheckResult]:
        """The checks that failed (empty on a pass)."""
        return [c for c in self.checks if c.passed is False]


def default_out(vetted: VettedPolicy) -> Path:
    """``<run>/vetting/`` for a run, else ``runs/vet/<time>/`` (under the working directory)."""
    if vetted.kind == "run":
        return Path(vetted.path) / VETTING_SUBDIR
    return Path("runs") / "vet" / time.strftime("%Y%m%d-%H%M%S")


def vet(
    policy: str,
    config: VetConfig | None = None,
    limits: RiskLimits | None = None,
    out: str | Path | None = None,
    progress: bool = True,
    limits_source: str = "the RiskLimits defaults, conf/risk/default.yaml",
) -> VetResult:
    """Vet ``policy`` (``run:<dir>``, ``baseline:<name>`` or ``bundle:<dir>``) over the stress
    suite of ``config`` (default: :class:`VetConfig`'s), behind a RiskLimiter with ``limits``
    (default: the production limits, ``RiskLimits()``), and write the report to ``out``
    (default: :func:`default_out`). Raises ValueError (:class:`VettingInputError`,
    ``BundleError``) for bad input before any compute."""
    from agents.deploy.vetting.plots import plot_bands, plot_paired  # matplotlib: when needed

    vetted = resolve_policy(policy)
    config = config or VetConfig()
    limits = limits or RiskLimits()
    out_dir = Path(out) if out is not None else default_out(vetted)
    suite = run_suite(vetted, config, limits, progress=progress)
    checks = evaluate_checks(suite, config)
    result = verdict(checks)
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_paired(checks, out_dir / PLOTS["paired"])
    plot_bands(suite, checks, out_dir / PLOTS["equity"])
    version, revision = mmgym.__version__, commit()
    context = ReportContext(vetted, config, suite, checks, result, revision, version, limits_source)
    report = out_dir / VETTING_MD
    report.write_text(markdown(context))
    record = out_dir / VETTING_JSON
    record.write_text(
        to_json(vetting_record(vetted, config, limits, suite, checks, result, revision, version))
    )
    return VetResult(result, checks, vetted, config, suite, out_dir, report, record)
