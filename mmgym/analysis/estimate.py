"""A point estimate with its standard error, as every stylized-fact estimator returns it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its standard error and the sample size behind it."""

    value: float
    se: float
    n: int

    def __format__(self, spec: str) -> str:
        spec = spec or ".3g"
        return f"{self.value:{spec}} ± {self.se:{spec}}"
