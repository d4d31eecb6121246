"""The statistics vocabulary of the project: one percentile, one mean (and, later, one interval).

Every figure that compares the simulation with the live testbed (the simulation summary, the
load-test metrics, the load generator, the benchmarks) takes its percentiles from here, so that
"p99" means the same thing on both sides of a comparison.

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
from collections.abc import Iterable
from fractions import Fraction

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["mean", "nearest_rank", "percentile", "percentiles"]


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
# The simulation summary's estimates over replications (Student t intervals, Welch's
# comparison: network/confidence.py today) move here once the simulation engine's rewrite has
# landed, so that the simulation and the live figures share this one module.
