"""Service demands estimated from measurements of a live system at a few load levels.

The operational laws (Denning and Buzen) give a resource's service demand from what can be
measured without looking inside it: the utilisation law U = X * D says that a resource busy a
share U of the time while the system completes X requests per second spends D = U / X seconds
on each. One level is enough when U is all the requests' doing; in a real process part of U
does not grow with the load (timers, polling, a background thread), so across levels the
estimate is the least-squares line U = U0 + D * X (`demand`), whose slope is the demand per
request and whose intercept the background; with a single level the intercept is taken as 0.
A group commit's cost is a line in the batch's size, time = fixed + per_record * n
(`batch_cost`), fitted over the levels' mean batches and mean commit times.

Every estimate says where it came from (`Estimate.source`: which levels, which law, how well
the line fits), so that the calibrated scenario written from them can say it beside each number.
Pure arithmetic: the measuring is testbed/calibration/, the model network/.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Estimate", "Line", "batch_cost", "demand", "fit_line", "levels_text"]


@dataclass(frozen=True, slots=True)
class Line:
    """y = intercept + slope * x, fitted by least squares over `n` points; `r2` its coefficient of
    determination (NaN when the points do not vary)."""

    intercept: float
    slope: float
    r2: float
    n: int


@dataclass(frozen=True, slots=True)
class Estimate:
    """A service demand (seconds per request, or per batch and per record), and where it came from."""

    value: float
    source: str
    background: float = 0.0  # the utilisation that does not grow with the load (U0)


def fit_line(x: Sequence[float], y: Sequence[float], *, through_origin: bool = False) -> Line:
    """The least-squares line through the points (x, y); through the origin when asked, or when
    there is one point only. ValueError for no points, or x that do not vary where a slope and an
    intercept are both wanted."""
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if xs.size == 0 or xs.size != ys.size:
        raise ValueError(f"a line needs as many x as y, and at least one point: got {xs.size} and {ys.size}")
    if through_origin or xs.size == 1:
        slope = float(xs @ ys / (xs @ xs)) if xs @ xs > 0 else 0.0
        intercept = 0.0
    else:
        if np.ptp(xs) == 0:
            raise ValueError("the points' x do not vary: no line through them")
        slope, intercept = (float(v) for v in np.polyfit(xs, ys, 1))
    fitted = intercept + slope * xs
    total = float(((ys - ys.mean()) ** 2).sum())
    r2 = 1.0 - float(((ys - fitted) ** 2).sum()) / total if total > 0 else math.nan
    return Line(intercept, slope, r2, int(xs.size))


def levels_text(throughputs: Sequence[float]) -> str:
    """The levels as a reader reads them: "100/s, 150/s"."""
    return ", ".join(f"{x:,.0f}/s" for x in throughputs)


def demand(throughputs: Sequence[float], utilisations: Sequence[float], what: str) -> Estimate:
    """The demand per request of one resource from its utilisation (a share of one core, or of
    its servers) at levels of throughput X (requests/s): the slope of U = U0 + D X (see the
    module doc). A negative background (a line that curves) is refused: the line is then fitted
    through the origin instead, D = sum(U X) / sum(X X)."""
    line = fit_line(throughputs, utilisations)
    law = f"U = U0 + D X over {line.n} level(s) ({levels_text(throughputs)}), R2 {line.r2:.3f}"
    if line.intercept < 0 or line.n == 1:
        line = fit_line(throughputs, utilisations, through_origin=True)
        law = f"U = D X through the origin over {line.n} level(s) ({levels_text(throughputs)})"
    if line.slope <= 0:
        raise ValueError(f"{what}: its utilisation does not grow with the load ({law}): no demand to estimate")
    return Estimate(line.slope, f"{what}: {law}", max(line.intercept, 0.0))


def batch_cost(batches: Sequence[float], seconds: Sequence[float], what: str) -> tuple[Estimate, Estimate]:
    """A batch's fixed cost and its cost per record, from the mean batch size and the mean time of
    a batch at each level (time = fixed + per_record * n). With batches that hardly vary the
    per-record cost cannot be told from the fixed one: all of it is taken as fixed."""
    if len(batches) > 1 and np.ptp(np.asarray(batches, dtype=float)) > 0.05:
        line = fit_line(batches, seconds)
        if line.intercept > 0 and line.slope >= 0:
            source = f"{what}: time = fixed + per_record n over {line.n} level(s), R2 {line.r2:.3f}"
            return Estimate(line.intercept, source), Estimate(line.slope, source)
    mean = float(np.mean(np.asarray(seconds, dtype=float)))
    source = f"{what}: mean time of a batch over {len(batches)} level(s), batches of {np.mean(batches):.2f} records"
    return Estimate(mean, source), Estimate(0.0, source)
