"""Time slicing: a replication's measured window cut into slices simulated apart, then stitched.

Slice j measures [cut_j, cut_(j+1)) of the window and is simulated from `begin_j`, with an empty
network, so that what it measures is as if the run had gone on from the start. Cuts fall on
interval boundaries (the per-interval series stitch end to end) where the expected legs of the
run (arrivals x legs per arrival, from the plan's rates) reach equal shares.

The overlap rule: slice j > 0 begins at

    begin_j = busy_j - warm-up - allowance   (not before 0)

  busy_j     the start of the fluid busy period under way at cut_j at any station
             (network/backlog.py): the start of an outage spanning the cut, or of a peak above
             a station's capacity whose backlog has not drained by the cut; the cut itself
             when no station carries a backlog across it. The backlog at the cut is then built
             in the slice as in the unsliced run;
  warm-up    the scenario's own (how long it gives an empty network to settle), so that the
             slice enters that busy period, or its cut, in the steady state;
  allowance  for random failures, whose times are not known in advance: 5 mean repair times
             (a repair outlasts it with probability e^-5), stretched by 1 / (1 - peak load) of
             the station for its backlog to drain; a station whose peak load reaches 1 makes
             every slice begin at 0.

Streams (the same seed and slicing give the same result bit for bit): every slice runs on the
replication's own streams, making what comes before its begin and dropping it (network/arrivals.py,
the random failures in network/model.py), so slice 0 is the unsliced run up to its cut, and
every slice sees the very arrivals, routes, service times, latencies, losses and random failures
of the unsliced run: each message's draws are its own, whoever serves it when (common random
numbers, network/journeys.py). What a slice may get wrong is then only what the empty network at
its begin changes, and the overlap below is there to wash that out before its cut: once the
slice's stations have been through the same idle moments as the unsliced run's, the two run
alike to the last bit.

Default slicing (`default_slices`): a function of the scenario alone, never of the machine, so
that the same command gives the same summary anywhere: one slice per SLICE_SPAN of window, at
least two for a window of LONG_WINDOW or more (a shorter one gains little over its overlaps),
else one. How many processes run the slices is the machine's business.

A slice follows the messages created in its window after its cut for as long as the whole run
would (up to the run's end plus its drain time), until every one is resolved: a backlog at the
cut is delivered in the slice that created it, late as in the unsliced run.

Stitching: counts add, latencies and per-interval series join end to end, station areas add
(utilisation is busy time over capacity time of the whole window, the queue its integral over
the window), the largest line is the largest of the slices'; losses by reason and the event log
come from each slice's own span (up to its cut, the slice before it reports them).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from network.backlog import busy_since, peak_load
from network.plan import Plan
from network.recorder import ReplicationResult
from network.series import utilisation

__all__ = [
    "LONG_WINDOW",
    "SLICE_SPAN",
    "Slice",
    "cut",
    "default_slices",
    "overlap",
    "slice_plan",
    "stitch",
]

REPAIRS = 5.0  # mean repair times a slice allows for a random failure under way at its cut
LONG_WINDOW = 4 * 3600.0  # a window at least this long is sliced by default ...
SLICE_SPAN = 12 * 3600.0  # ... in one slice per this much of it (at least two)


def default_slices(plan: Plan) -> int:
    """Slices per replication when none are asked for, from the window alone (see the module
    docstring): 1 below LONG_WINDOW, else one per SLICE_SPAN, at least 2."""
    if plan.duration < LONG_WINDOW:
        return 1
    return max(2, round(plan.duration / SLICE_SPAN))


@dataclasses.dataclass(frozen=True, slots=True)
class Slice:
    """Slice `index` of `count`: intervals [first, stop) of the window, simulated from `begin`."""

    index: int
    count: int
    begin: float
    first: int
    stop: int


def _legs_by(plan: Plan, times: np.ndarray) -> np.ndarray:
    """Expected legs (submits and deliveries) of arrivals before each of `times`."""
    out = np.zeros(len(times))
    for src in plan.sources:
        legs = src.copies * (1 + sum(len(r.deliveries) for r in src.routes) / len(src.routes))
        for t0, t1, rate in src.segments:
            out += legs * rate * np.clip(times - t0, 0.0, t1 - t0)
    return out


def _cut_intervals(plan: Plan, count: int) -> list[int]:
    """Interval indices of the cuts, at equal shares of the expected legs (strictly increasing)."""
    bounds = np.array([plan.warmup + k * plan.interval for k in range(plan.intervals)] + [plan.end])
    legs = _legs_by(plan, bounds)
    total = legs[-1] if legs[-1] > 0 else 1.0
    cuts: list[int] = []
    for j in range(1, count):
        k = int(np.argmin(np.abs(legs[1:-1] - total * j / count))) + 1 if plan.intervals > 1 else 0
        if k > (cuts[-1] if cuts else 0):
            cuts.append(k)
    return cuts


def overlap(plan: Plan, at: Sequence[float]) -> list[float]:
    """How long before each time in `at` a slice cut there must begin (the rule above)."""
    allowance = 0.0
    if plan.failures:
        load = peak_load(plan)
        for f in plan.failures:
            rho = float(load[f.station]) if f.station >= 0 else 0.0
            allowance = max(allowance, math.inf if rho >= 1 else REPAIRS * f.mttr / (1 - rho))
    busy = busy_since(plan, at)
    return [t - b + plan.warmup + allowance for t, b in zip(at, busy, strict=True)]


def cut(plan: Plan, count: int) -> list[Slice]:
    """The plan's window cut into at most `count` slices (fewer if it has fewer intervals)."""
    cuts = _cut_intervals(plan, count) if count > 1 else []
    if not cuts:
        return [Slice(0, 1, 0.0, 0, plan.intervals)]
    starts = [plan.warmup + k * plan.interval for k in cuts]
    begins = [0.0] + [max(0.0, t - lead) for t, lead in zip(starts, overlap(plan, starts), strict=True)]
    edges = [0, *cuts, plan.intervals]
    n = len(cuts) + 1
    return [Slice(j, n, begins[j], edges[j], edges[j + 1]) for j in range(n)]


def _duration(plan: Plan, part: Slice) -> float:
    """The slice's window length: whole intervals, or up to the run's end for the last slice;
    nudged below rounding so that it counts exactly its intervals."""
    if part.stop >= plan.intervals:
        duration = plan.duration - part.first * plan.interval
    else:
        duration = (part.stop - part.first) * plan.interval
    while -int(-duration // plan.interval) > part.stop - part.first:
        duration = math.nextafter(duration, 0.0)
    return duration


def slice_plan(plan: Plan, part: Slice) -> Plan:
    """The plan of one slice (the plan itself for a single slice)."""
    if part.count == 1:
        return plan
    lo = plan.warmup + part.first * plan.interval
    duration = _duration(plan, part)
    span = (0.0 if part.index == 0 else lo, math.inf if part.index == part.count - 1 else lo + duration)
    drain = plan.end + plan.drain - (lo + duration)  # its messages are followed as long as the run's
    return dataclasses.replace(plan, begin=part.begin, warmup=lo, duration=duration, drain=drain, span=span)


def _cat(parts: Sequence[ReplicationResult], attr: str) -> np.ndarray:
    return np.concatenate([getattr(r, attr) for r in parts], axis=0)


def _sum(parts: Sequence[ReplicationResult], attr: str) -> np.ndarray:
    total: np.ndarray = np.sum([getattr(r, attr) for r in parts], axis=0)
    return total


def _events(plan: Plan, pieces: Sequence[tuple[Slice, ReplicationResult]]) -> list[tuple[float, str]]:
    """Each slice's log (already limited to its span) in the whole window's time."""
    return [(t + part.first * plan.interval, what) for part, r in pieces for t, what in r.events]


def stitch(plan: Plan, pieces: Sequence[tuple[Slice, ReplicationResult]]) -> ReplicationResult:
    """One replication's result from its slices' results (in slice order)."""
    if len(pieces) == 1:
        return pieces[0][1]
    parts = [r for _, r in pieces]
    busy, capacity = _sum(parts, "station_busy"), _sum(parts, "station_capacity")
    queue = np.sum([r.station_queue * slice_plan(plan, p).duration for p, r in pieces], axis=0) / plan.duration
    reasons: dict[str, int] = {}
    for r in parts:
        for k, v in r.lost_reasons.items():
            reasons[k] = reasons.get(k, 0) + v
    summed = {
        name: _sum(parts, name)
        for name in (
            "created", "expected", "delivered", "on_time", "lost", "source_arrivals", "source_functional",
            "source_declarations", "station_served", "station_lost", "group_expected", "group_on_time",
        )
    }  # fmt: skip
    series = {
        name: _cat(parts, name)
        for name in (
            "series_done", "series_latency", "series_lost", "series_queue", "series_utilisation",
            "series_class_queue", "series_class_utilisation",
        )
    }  # fmt: skip
    return ReplicationResult(
        index=parts[0].index,
        latencies=[np.concatenate(k) for k in zip(*(r.latencies for r in parts), strict=True)],
        lost_reasons=dict(sorted(reasons.items())),
        station_utilisation=utilisation(busy, capacity),
        station_queue=queue,
        station_max_queue=np.max([r.station_max_queue for r in parts], axis=0),
        station_busy=busy,
        station_capacity=capacity,
        link_lost=sum(r.link_lost for r in parts),
        unresolved=sum(r.unresolved for r in parts),
        events=_events(plan, pieces),
        messages=sum(r.messages for r in parts),
        wall_seconds=sum(r.wall_seconds for r in parts),
        **summed,
        **series,
    )
