"""The path's delay in the testbed model: the latency no station explains, as a function of load.

A calibrated model (scenarios/calibrated.py) explains most of a request's latency by its stations
(CPU under locks, the group commit, the hosts); what is left is the path's delay: the kernel,
sockets and TLS, and the scheduling the stations do not model (threads woken from idle at low
load, threads waiting for a core or for the interpreter lock behind others at high load). The
delay is measured at each calibration level as its p50, p90 and p99 (ms): a load-dependent
demand, in queueing terms. Between two measured rates each quantile is interpolated linearly;
below the lowest it is the lowest's; above the highest it follows the line through the two
highest (never falling), so the contention that grows towards the knee keeps growing past it.

The delay a request draws is a fixed part plus a lognormal (`shifted_lognormal`) through the
three quantiles at the offered rate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from scenarios.calibrated import at_rate

__all__ = ["Quantiles", "quantiles_at", "shifted_lognormal"]

Quantiles = tuple[float, float, float]  # p50, p90, p99 in ms
_Z90, _Z99 = 1.2815516, 2.3263479  # the standard normal's 90th and 99th percentiles


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


def _quantiles(point: Sequence[float]) -> Quantiles:
    p50 = max(point[1], 0.0)
    p90 = max(point[2], p50)
    return p50, p90, max(point[3], p90)


def shifted_lognormal(p50: float, p90: float, p99: float) -> tuple[float, float, float]:
    """(fixed, mean, cv) of fixed + lognormal with these quantiles (ms). Where none goes through
    all three, a plain lognormal through p50 and p99 (fixed 0): when the quantiles allow no
    shift, or when they are lighter-tailed than any lognormal (p90 nearer p99 than a lognormal's
    ever is); the p99 is kept, as the goals read it. (p50, 0, 0), a constant, when p99 is p50."""
    a, c, d = p50, max(p90, p50 + 1e-6), max(p99, p90 + 2e-6)
    target = (d - a) / (c - a)

    def ratio(sigma: float) -> float:
        return math.expm1(_Z99 * sigma) / math.expm1(_Z90 * sigma)

    if target <= ratio(1e-6):
        return _through_p50_and_p99(p50, p99)
    lo, hi = 1e-6, 10.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if ratio(mid) < target else (lo, mid)
    sigma = (lo + hi) / 2
    scale = (c - a) / math.expm1(_Z90 * sigma)  # the lognormal's median
    fixed = a - scale
    if fixed < 0:
        return _through_p50_and_p99(p50, p99)
    return fixed, scale * math.exp(sigma**2 / 2), math.sqrt(math.expm1(sigma**2))


def _through_p50_and_p99(p50: float, p99: float) -> tuple[float, float, float]:
    """(0, mean, cv) of the lognormal with this median and p99; (p50, 0, 0) when p99 is no higher."""
    if not p99 > p50 > 0:
        return max(p50, 0.0), 0.0, 0.0
    sigma = math.log(p99 / p50) / _Z99
    return 0.0, p50 * math.exp(sigma**2 / 2), math.sqrt(math.expm1(sigma**2))
