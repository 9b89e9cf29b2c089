"""The paired one-sided test of vetting: is the policy significantly worse than a baseline?

On common random numbers, seed ``s`` gives the policy and the baseline the same markets, so
the per-seed differences ``d_s = policy_s - baseline_s`` (of mean episode PnL, or of CVaR) are
paired. With ``m`` seeds, ``mean(d)`` has standard error ``sd(d) / sqrt(m)`` (``ddof=1``) and
``(mean(d) - delta) / se`` follows Student's t with ``m - 1`` degrees of freedom. The policy is
significantly worse at level ``confidence`` (one-sided) when the upper confidence bound
``mean(d) + t_{confidence, m-1} x se`` is below ``-margin``; equivalently when the one-sided
p-value of ``H0: mean >= -margin`` is below ``1 - confidence``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike


@dataclass(frozen=True)
class PairedTest:
    """The result of :func:`paired_one_sided` (differences are policy minus baseline)."""

    differences: tuple[float, ...]
    mean: float
    se: float
    """Standard error of the mean difference (NaN with one seed)."""
    df: int
    t: float
    """``(mean + margin) / se``; NaN when it cannot be computed."""
    p_value: float
    """One-sided p-value of ``H0: mean >= -margin`` (NaN when it cannot be computed)."""
    upper_bound: float
    """One-sided upper confidence bound of the mean difference (NaN with one seed)."""
    confidence: float
    margin: float
    computable: bool
    """False with fewer than two seeds: no test, said in :attr:`note`."""
    note: str

    @property
    def worse(self) -> bool:
        """Significantly worse than the baseline (False when no test could be made)."""
        return self.computable and self.upper_bound < -self.margin

    def to_dict(self) -> dict[str, Any]:
        """JSON values (NaN as None)."""
        return {
            "differences": [_json(d) for d in self.differences],
            "mean": _json(self.mean),
            "se": _json(self.se),
            "df": self.df,
            "t": _json(self.t),
            "p_value": _json(self.p_value),
            "upper_bound": _json(self.upper_bound),
            "confidence": self.confidence,
            "margin": self.margin,
            "computable": self.computable,
            "significantly_worse": self.worse,
            "note": self.note,
        }


def one_sided_quantile(df: int, confidence: float) -> float:
    """Student's t quantile ``t_{confidence, df}`` (NaN for ``df < 1``)."""
    if df < 1:
        return math.nan
    from scipy.stats import t

    return float(t.ppf(confidence, df))


def paired_one_sided(
    policy: ArrayLike, baseline: ArrayLike, confidence: float = 0.95, margin: float = 0.0
) -> PairedTest:
    """Test whether ``policy`` is significantly below ``baseline`` (paired per seed, one-sided
    at ``confidence``, Student's t on the per-seed differences; see the module docstring)."""
    a = np.asarray(policy, dtype=np.float64)
    b = np.asarray(baseline, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"paired values need equal 1-d shapes, got {a.shape} and {b.shape}")
    d = a - b
    m = int(d.size)
    mean = float(d.mean())
    diffs = tuple(float(x) for x in d)
    if m < 2:
        return PairedTest(
            diffs, mean, math.nan, 0, math.nan, math.nan, math.nan, confidence, margin, False,
            "cannot be computed: one seed gives no variance of the differences (needs 2 or more)",
        )  # fmt: skip
    se = float(d.std(ddof=1)) / math.sqrt(m)
    df = m - 1
    shifted = mean + margin
    upper = mean + one_sided_quantile(df, confidence) * se
    if se == 0.0:  # every seed gave the same difference: no sampling variance left
        t_stat = math.copysign(math.inf, shifted) if shifted else math.nan
        p = 0.0 if shifted < 0 else 1.0
        note = "every seed gave the same difference (zero variance): decided by its sign"
    else:
        from scipy.stats import t

        t_stat = shifted / se
        p = float(t.cdf(t_stat, df))
        note = f"Student's t, {df} degrees of freedom, over {m} seeds"
    return PairedTest(diffs, mean, se, df, t_stat, p, upper, confidence, margin, True, note)


def _json(x: float) -> float | None:
    return x if math.isfinite(x) else None
