"""Random draws one at a time, from a numpy Generator filled in batches (the random failures'
up and down times; a message's draws are made a batch of exchanges at a time, journeys.py).

Drawing one value at a time from numpy costs about a microsecond of call overhead, so each
draw function pulls numbers from a batch that numpy filled at once. Batches start small and
double (16 .. 8,192) so that rarely used draws do not hold a large buffer. The sequence of
values is fixed by the generator's seed alone, so the same seed gives the same run bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np

from scenarios.schema import Deterministic, Distribution, Exponential, Lognormal, Uniform

__all__ = ["Draw", "draws", "lognormal_parameters"]

Draw = Callable[[], float]
_FIRST_BATCH = 16
_LAST_BATCH = 8192


def lognormal_parameters(mean: float, cv: float) -> tuple[float, float]:
    """(mu, sigma) of the underlying normal for a lognormal with this mean and coefficient of variation."""
    sigma2 = math.log1p(cv * cv)
    return math.log(mean) - sigma2 / 2, math.sqrt(sigma2)


def _batches(fill: Callable[[int], np.ndarray]) -> Iterator[float]:
    size = _FIRST_BATCH
    while True:
        yield from fill(size).tolist()
        size = min(size * 2, _LAST_BATCH)


def draws(dist: Distribution, rng: np.random.Generator) -> Draw:
    """A function returning successive draws of `dist` from `rng` (in seconds)."""
    if isinstance(dist, Deterministic) or (isinstance(dist, Lognormal) and dist.cv == 0):
        value = float(dist.mean)
        return lambda: value
    if isinstance(dist, Exponential):
        mean = dist.mean
        return _batches(lambda n: rng.exponential(mean, n)).__next__
    if isinstance(dist, Lognormal):
        mu, sigma = lognormal_parameters(dist.mean, dist.cv)
        return _batches(lambda n: rng.lognormal(mu, sigma, n)).__next__
    assert isinstance(dist, Uniform)
    low, high = dist.low, dist.high
    return _batches(lambda n: rng.uniform(low, high, n)).__next__
