"""The fluid backlog of every station over time: where a queue can be carried across a time.

A plan's offered work at a station is piecewise constant in time: each source's rate (its
segments) x the mean service time its routes bring to the station per arrival. The station's
capacity is its servers (none while a timed change has it down). The fluid model integrates
work in minus capacity, never below zero: a positive backlog at time t is work that arrived
before t and is still waiting at t (a hub down for two hours, a peak above capacity), and it
has been building since the start of the station's busy period, the last time its backlog was
zero. That start is what a slice of the run must simulate from for its queues at its cut to be
right (network/slicing.py). Random failures are not in the fluid model (their times are not
known in advance); slicing allows for them apart (`peak_load`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from network.plan import Plan

__all__ = ["busy_since", "peak_load", "work_per_arrival"]

_EMPTY = 1e-9  # seconds of work below which a backlog counts as none (rounding)


def work_per_arrival(plan: Plan) -> np.ndarray:
    """[source, station]: mean seconds of service one arrival of the source brings to the station."""
    means = np.array([[d.mean for d in sp.times] for sp in plan.stations], dtype=float).reshape(
        len(plan.stations), len(plan.classes)
    )
    out = np.zeros((len(plan.sources), len(plan.stations)))
    for s, src in enumerate(plan.sources):
        served = [i for r in src.routes for _, i in r.submit if i >= 0]
        served += [i for r in src.routes for path in r.deliveries for _, i in path[1:] if i >= 0]
        visits = np.bincount(np.asarray(served, dtype=np.int64), minlength=len(plan.stations)) / len(src.routes)
        weights = np.asarray(src.class_weights, dtype=float) / sum(src.class_weights)
        per_class = means[:, list(src.classes)] @ weights
        out[s] = src.copies * visits * per_class
    return out


def _times(plan: Plan, at: Sequence[float]) -> np.ndarray:
    cuts = {0.0, plan.end, *at, *(a.at for a in plan.actions)}
    cuts.update(t for src in plan.sources for seg in src.segments for t in seg[:2])
    return np.array(sorted(t for t in cuts if 0.0 <= t <= plan.end))


def _rates(plan: Plan, t: float) -> np.ndarray:
    """Each source's arrival rate at time t."""
    out = np.zeros(len(plan.sources))
    for s, src in enumerate(plan.sources):
        for t0, t1, rate in src.segments:
            if t0 <= t < t1:
                out[s] = rate
                break
    return out


def _capacity(plan: Plan, t: float) -> np.ndarray:
    """Each station's servers at time t after the timed changes before it (0 while down)."""
    servers = np.array([sp.servers for sp in plan.stations], dtype=float)
    down = np.zeros(len(plan.stations), dtype=bool)
    for a in plan.actions:
        if a.at > t:
            break
        for i in a.stations:
            if a.op == "capacity":
                servers[i] = a.servers
            else:
                down[i] = a.op == "fail"
    return np.where(down, 0.0, servers)


def busy_since(plan: Plan, at: Sequence[float]) -> list[float]:
    """For each time in `at`: the earliest start of a fluid busy period still under way there at
    any station (the time itself where every station's backlog is zero)."""
    work = work_per_arrival(plan)
    times = _times(plan, at)
    backlog = np.zeros(len(plan.stations))
    since = np.zeros(len(plan.stations))
    found: dict[float, float] = {}
    for a, b in itertools.pairwise(times):
        found[float(a)] = _earliest(since, backlog, a)
        net = _rates(plan, a) @ work - _capacity(plan, a)
        since = np.where((backlog <= _EMPTY) & (net > 0), a, since)
        backlog = np.maximum(backlog + net * (b - a), 0.0)
    found[float(times[-1])] = _earliest(since, backlog, times[-1])
    return [found.get(float(t), float(t)) for t in at]


def _earliest(since: np.ndarray, backlog: np.ndarray, now: float) -> float:
    busy = backlog > _EMPTY
    return float(since[busy].min()) if busy.any() else float(now)


def peak_load(plan: Plan) -> np.ndarray:
    """[station]: the highest offered load (work per second over servers) over the run."""
    work = work_per_arrival(plan)
    times = _times(plan, ())
    servers = np.array([max(sp.servers, 1) for sp in plan.stations], dtype=float)
    peak: np.ndarray = np.max([_rates(plan, t) @ work for t in times], axis=0) / servers
    return peak
