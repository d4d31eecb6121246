"""The statistics vocabulary of the project: one percentile, one mean, one confidence interval.

Every figure that compares the simulation with the live testbed (the simulation summary, the
load-test metrics, the load generator, the benchmarks) takes its percentiles, means and 95%
confidence intervals from here, so that "p99" means the same thing on both sides of a comparison.

THE percentile is the nearest rank: the q-th percentile of n values is the smallest observed
value with at least q% of the values at or below it, i.e. the value of rank ceil(q/100 * n) in
ascending order (rank 1 for q = 0). Why nearest rank:
- it is always an observed value: "p99 = 48.2 ms" names a latency that some request had, never
  a point interpolated between two requests that nobody saw;
- it is what service-level objectives are stated in ("99% of requests within 50 ms" holds
  exactly when the nearest-rank p99 is <= 50 ms) and what HdrHistogram-style recorders and
  most load generators report, so our figures read like theirs;
- it needs no assumption about the distribution between observations, which matters in the
  tail, where latencies are few and far apart.
It is numpy's `method="inverted_cdf"`, computed exactly: numpy multiplies n by q/100 in binary
floating point and lands one rank high where that product should be a whole number and is not
(q = 7 of 1..100 gives 8, q = 99.9 of 1,000 values their maximum); here the rank is computed
with exact fractions from q as written (`str(q)`), so q = 7 of 1..100 is 7.

Functions take any sequence (or numpy array) of floats; no values give NaN (a figure that does
not exist), never 0. NaN among the values is the caller's business: filter first.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "Difference",
    "Estimate",
    "compare",
    "estimate",
    "mean",
    "nearest_rank",
    "percentile",
    "percentiles",
    "t975",
]


def nearest_rank(n: int, q: float) -> int:
    """The 1-based rank of the q-th percentile (0 <= q <= 100) among `n` >= 1 sorted values.

    ValueError for q outside 0..100 (or NaN) or n < 1.
    """
    if n < 1:
        raise ValueError(f"a rank needs at least one value, got n = {n}")
    if not 0 <= q <= 100:
        raise ValueError(f"a percentile is between 0 and 100, got q = {q}")
    return max(1, math.ceil(Fraction(str(q)) * n / 100))


def _sorted(values: ArrayLike) -> NDArray[np.float64]:
    return np.sort(np.asarray(values, dtype=np.float64).ravel())


def percentiles(values: ArrayLike, qs: Iterable[float]) -> tuple[float, ...]:
    """The q-th percentile (nearest rank, see the module doc) of `values` for each q of `qs`, in
    the order of `qs`; NaN for each when there are no values. Sorts once.

    ValueError for a q outside 0..100.
    """
    ordered = _sorted(values)
    wanted = tuple(float(q) for q in qs)
    if ordered.size == 0:
        for q in wanted:
            nearest_rank(1, q)  # a q out of range is still an error
        return tuple(math.nan for _ in wanted)
    return tuple(float(ordered[nearest_rank(ordered.size, q) - 1]) for q in wanted)


def percentile(values: ArrayLike, q: float) -> float:
    """The q-th percentile (0 <= q <= 100, nearest rank) of `values`; NaN for no values."""
    return percentiles(values, (q,))[0]


def mean(values: ArrayLike) -> float:
    """The arithmetic mean of `values`; NaN for no values."""
    array = np.asarray(values, dtype=np.float64)
    return float(array.mean()) if array.size else math.nan


# ------------------------------------------------------------------ confidence intervals
# Over independent replications: Student t intervals and Welch's comparison. The 97.5%
# quantiles of Student's t come from a table (exact to 3 decimals; scipy is not a dependency)
# with linear interpolation in 1/df between entries.

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
