"""The path's delay in the testbed model: the latency no station explains, as a function of load.

A calibrated model (scenarios/calibrated.py) explains most of a request's latency by its stations
(CPU under locks, the group commit, the hosts); what is left is the path's delay: the kernel,
sockets and TLS, and the scheduling the stations do not model (threads woken from idle at low
load, threads waiting for a core or for the interpreter lock behind others at high load). The
delay is measured at each calibration level as its p50, p90 and p99 (ms): a load-dependent
demand, in queueing terms. Between two measured rates each quantile is interpolated linearly;
below the lowest it is the lowest's; above the highest it follows the line through the two
highest (never falling), so the contention that grows towards the knee keeps growing past it.

The delay a request draws goes through the three quantiles at the offered rate exactly
(`PiecewiseDelay`): its quantile function is a broken line in -ln(1 - q) from 0 through p50, p90
and p99, and past p99 goes on along its last piece (an exponential tail: each tenth of the
probability left adds what p90 to p99 did). Whatever the three quantiles are (a median of 0 as
often as not: the stations explain the typical request; a p99 ten times the p90), it neither
drops one of them nor grows a tail they do not show. Until 2026-12-08 it was a fixed part plus a
lognormal, which goes through three quantiles only when they are shaped like one; where they
were not, it fell back to a lognormal through p50 and p99: with a median near 0 a tail far
heavier than measured, with a median of 0 no delay at all (run s19's curve at 225/s, (0, 7.2,
30.0) ms, drew 0 ms; at 183.7/s, interpolated, a lognormal of cv 16).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scenarios.calibrated import Delay, at_rate

__all__ = ["LognormalDelay", "PathDelay", "PiecewiseDelay", "Quantiles", "delay_at", "quantiles_at"]

Quantiles = tuple[float, float, float]  # p50, p90, p99 in ms
_T50, _T90, _T99 = math.log(2), math.log(10), math.log(100)  # -ln(1 - q) at q = 0.5, 0.9, 0.99
_SQRT2 = math.sqrt(2)


def quantiles_at(curve: Sequence[tuple[float, float, float, float]], rate: float) -> Quantiles:
    """The delay's (p50, p90, p99) at `rate` from `curve`'s (rate, p50, p90, p99) points (sorted
    by rate, at least one): interpolated between points, the lowest's below them, the two
    highest's line (never falling) above them."""
    if not curve:
        raise ValueError("a delay curve needs at least one point")
    if len(curve) == 1 or rate <= curve[-1][0]:
        return _quantiles([math.nan, *at_rate(curve, rate)])
    (low, *lower), (high, *higher) = curve[-2], curve[-1]
    share = (rate - high) / (high - low)  # past the highest: the two highest's line
    return _quantiles([math.nan, *(h + max(0.0, h - lo) * share for lo, h in zip(lower, higher, strict=True))])


@dataclass(frozen=True)
class PiecewiseDelay:
    """A delay (ms) with these p50, p90 and p99 (rising): its quantile at q is a broken line in
    t = -ln(1 - q) through (0, 0), (ln 2, p50), (ln 10, p90) and (ln 100, p99), continued past
    ln 100 along its last piece. t of a uniform q is exponential(1): the delay is a piecewise
    linear function of one exponential draw."""

    p50: float
    p90: float
    p99: float

    def __post_init__(self) -> None:
        if not 0 <= self.p50 <= self.p90 <= self.p99:
            raise ValueError(f"a delay's quantiles must rise from 0, got {self.p50}, {self.p90}, {self.p99} ms")

    def at(self, q: float) -> float:
        """The delay's quantile at q (0 <= q < 1), ms."""
        return self._of_t(-math.log1p(-q))

    def of_normal(self, z: float) -> float:
        """The delay of a request whose standard normal draw is z (its quantile at Phi(z)), ms."""
        above = 0.5 * math.erfc(z / _SQRT2)  # 1 - Phi(z), exact far into the tail
        return self._of_t(-math.log(max(above, 5e-324)))

    @property
    def mean_ms(self) -> float:
        """The delay's mean: the sum over the pieces of their slope times the chance of getting past
        their start less that of getting past their end."""
        return 0.5 * self.p50 / _T50 + 0.4 * (self.p90 - self.p50) / (_T90 - _T50) + 0.1 * self._tail_slope

    @property
    def _tail_slope(self) -> float:
        return (self.p99 - self.p90) / (_T99 - _T90)

    def _of_t(self, t: float) -> float:
        if t <= _T50:
            return self.p50 * t / _T50
        if t <= _T90:
            return self.p50 + (self.p90 - self.p50) * (t - _T50) / (_T90 - _T50)
        return self.p90 + self._tail_slope * (t - _T90)


class LognormalDelay:
    """A delay the same at every load (a model without a curve): `fixed_ms` plus a lognormal of
    mean `mean_ms` and coefficient of variation `cv` (0, or no mean: the mean, always)."""

    def __init__(self, fixed_ms: float, mean_ms: float, cv: float) -> None:
        self.fixed_ms, self.mean_ms = fixed_ms, mean_ms
        sigma2 = math.log1p(cv**2)
        self.sigma = math.sqrt(sigma2)
        self.mu = math.log(max(mean_ms, 1e-9)) - sigma2 / 2

    def of_normal(self, z: float) -> float:
        """The delay of a request whose standard normal draw is z, ms."""
        if self.mean_ms <= 0 or self.sigma == 0:
            return self.fixed_ms + self.mean_ms
        return self.fixed_ms + math.exp(self.mu + self.sigma * z)


PathDelay = PiecewiseDelay | LognormalDelay


def delay_at(delay: Delay, rate: float) -> PathDelay:
    """A model's path delay at `rate`: through its curve's quantiles there, else its constant one."""
    if delay.curve:
        return PiecewiseDelay(*quantiles_at(delay.curve, rate))
    return LognormalDelay(delay.fixed_ms, delay.mean_ms, delay.cv)


def _quantiles(point: Sequence[float]) -> Quantiles:
    p50 = max(point[1], 0.0)
    p90 = max(point[2], p50)
    return p50, p90, max(point[3], p90)
