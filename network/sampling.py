"""Random draws: one at a time from a numpy Generator filled in batches (`draws`: the random
failures' up and down times), or many of many distributions at once (`Distributions`: the
draws of a batch of messages' journeys, journeys.py).

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

__all__ = ["Distributions", "Draw", "draws", "lognormal_parameters"]

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


_CONST, _EXPONENTIAL, _LOGNORMAL, _UNIFORM = 0, 1, 2, 3


class Distributions:
    """A table of distributions, one code each, drawn from many at once (`sample`)."""

    def __init__(self) -> None:
        self.codes: dict[Distribution, int] = {}
        self.rows: list[tuple[int, float, float]] = []
        self._arrays: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._families: tuple[int, ...] = ()

    def code(self, dist: Distribution) -> int:
        """The code of `dist` (the same for equal distributions)."""
        if dist not in self.codes:
            self.codes[dist] = len(self.rows)
            self.rows.append(_family(dist))
            self._arrays = None
        return self.codes[dist]

    def _table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._arrays is None:
            family, a, b = zip(*self.rows, strict=True)
            self._arrays = np.array(family, dtype=np.int8), np.array(a), np.array(b)
            self._families = tuple(sorted({f for f in family if f != _CONST}))
        return self._arrays

    def sample(self, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A draw of each distribution in `codes` (constants as they are), family by family."""
        family, a, b = self._table()
        fam, pa = family[codes], a[codes]
        out: np.ndarray = pa.copy()
        for f in self._families:
            mask = fam == f
            n = int(np.count_nonzero(mask))
            if not n:
                continue
            x, y = pa[mask], b[codes[mask]]
            if f == _LOGNORMAL:
                out[mask] = np.exp(x + y * rng.standard_normal(n))
            elif f == _EXPONENTIAL:
                out[mask] = x * rng.standard_exponential(n)
            else:
                out[mask] = x + (y - x) * rng.random(n)
        return out


def _family(dist: Distribution) -> tuple[int, float, float]:
    if isinstance(dist, Deterministic) or (isinstance(dist, Lognormal) and dist.cv == 0):
        return _CONST, float(dist.mean), 0.0
    if isinstance(dist, Exponential):
        return _EXPONENTIAL, dist.mean, 0.0
    if isinstance(dist, Lognormal):
        return (_LOGNORMAL, *lognormal_parameters(dist.mean, dist.cv))
    assert isinstance(dist, Uniform)
    return _UNIFORM, dist.low, dist.high
