"""Confidence intervals over independent replications (Student t), and Welch's comparison.

The 97.5% quantiles of Student's t come from a table (exact to 3 decimals; scipy is not a
dependency) with linear interpolation in 1/df between entries.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Difference", "Estimate", "compare", "estimate", "t975"]

# df -> 97.5% quantile of Student's t (two-sided 95%)
_T975: tuple[tuple[int, float], ...] = (
    (1, 12.706), (2, 4.303), (3, 3.182), (4, 2.776), (5, 2.571), (6, 2.447), (7, 2.365), (8, 2.306),
    (9, 2.262), (10, 2.228), (11, 2.201), (12, 2.179), (13, 2.160), (14, 2.145), (15, 2.131),
    (16, 2.120), (17, 2.110), (18, 2.101), (19, 2.093), (20, 2.086), (21, 2.080), (22, 2.074),
    (23, 2.069), (24, 2.064), (25, 2.060), (26, 2.056), (27, 2.052), (28, 2.048), (29, 2.045),
    (30, 2.042), (40, 2.021), (60, 2.000), (120, 1.980),
)  # fmt: skip
_Z975 = 1.959964


def t975(df: float) -> float:
    """The 97.5% quantile of Student's t with `df` degrees of freedom (df >= 1; may be fractional)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    prev_df, prev_q = _T975[0]
    for d, q in _T975:
        if df == d:
            return q
        if df < d:
            # linear in 1/df, which is how the quantile approaches the normal one
            w = (1 / prev_df - 1 / df) / (1 / prev_df - 1 / d)
            return prev_q + w * (q - prev_q)
        prev_df, prev_q = d, q
    w = 1 - prev_df / df  # between the last entry and the normal limit (1/df -> 0)
    return prev_q + w * (_Z975 - prev_q)


@dataclass(frozen=True, slots=True)
class Estimate:
    """A mean over replications with the half-width of its 95% confidence interval.

    `half_width` is NaN with fewer than two replications (no interval can be given).
    """

    mean: float
    half_width: float
    n: int
    sd: float

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    def covers(self, value: float) -> bool:
        return self.low <= value <= self.high

    def as_dict(self) -> dict[str, float | int]:
        return {"mean": self.mean, "ci95": self.half_width, "n": self.n, "sd": self.sd}


def estimate(values: Sequence[float]) -> Estimate:
    """The mean of `values` (one per replication) with its t-based 95% confidence interval."""
    n = len(values)
    if n == 0:
        return Estimate(math.nan, math.nan, 0, math.nan)
    mean = math.fsum(values) / n
    if n < 2:
        return Estimate(mean, math.nan, 1, math.nan)
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    return Estimate(mean, t975(n - 1) * sd / math.sqrt(n), n, sd)


@dataclass(frozen=True, slots=True)
class Difference:
    """B minus A with the half-width of its Welch 95% interval; significant if it excludes 0."""

    a: float
    b: float
    diff: float
    half_width: float

    @property
    def significant(self) -> bool:
        return not math.isnan(self.half_width) and abs(self.diff) > self.half_width

    @property
    def relative(self) -> float:
        return self.diff / self.a if self.a else math.nan


def compare(a: Estimate, b: Estimate) -> Difference:
    """Welch's two-sample comparison of two estimates from independent replications."""
    diff = b.mean - a.mean
    if a.n < 2 or b.n < 2:
        return Difference(a.mean, b.mean, diff, math.nan)
    va, vb = a.sd**2 / a.n, b.sd**2 / b.n
    if va + vb == 0:
        return Difference(a.mean, b.mean, diff, 0.0)
    df = (va + vb) ** 2 / (va**2 / (a.n - 1) + vb**2 / (b.n - 1))
    return Difference(a.mean, b.mean, diff, t975(max(df, 1.0)) * math.sqrt(va + vb))
