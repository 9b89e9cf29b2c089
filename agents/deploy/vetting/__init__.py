"""Vetting: a policy through the RiskLimiter over the stress suite, against every baseline on
common random numbers, with named checks and thresholds (docs/deploy.md, "Vetting").

Modules: ``config`` (the suite and thresholds), ``policies`` (``run:``, ``baseline:``,
``bundle:`` and the suite's markets), ``runner`` (the episodes), ``stats`` (the paired one-sided
t test), ``checks``, ``report`` (``vetting.md``), ``plots``, ``record`` (``vetting.json``) and
``vet`` (all of it).
"""

from agents.deploy.vetting.checks import CHECKS, CheckResult
from agents.deploy.vetting.config import Thresholds, VetConfig
from agents.deploy.vetting.policies import VettingInputError
from agents.deploy.vetting.stats import PairedTest, paired_one_sided
from agents.deploy.vetting.vet import VetResult, vet

__all__ = [
    "CHECKS",
    "CheckResult",
    "PairedTest",
    "Thresholds",
    "VetConfig",
    "VetResult",
    "VettingInputError",
    "paired_one_sided",
    "vet",
]
