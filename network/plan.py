"""The compiled model: plain, picklable data the SimPy model runs from.

A scenario (and, for the world network, the synthetic world and the routing decisions) is
compiled once into a `Plan`: stations and links by index, and per traffic source its
piecewise arrival rate and a pool of `Route`s. A replication, in this process or in a worker,
needs nothing but the plan and its own random streams.

A `Route` is what one arrival does: the `submit` path from the sender to the point where the
routing decision is taken (the crossroads core; for an explicit network, the whole path), then
one `delivery` path per destination, starting at that point. Each path is a tuple of hops
(link index or -1 for none, station index); a path's first hop is where it starts. A station
index below zero, `passing(i)`, means the message passes node i without being served there
(an agency's own outgoing request, or the answer it gets back, is not work of its station).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Literal

from scenarios.schema import KINDS, Distribution, LinkSpec, Provenance

__all__ = [
    "NO_LINK",
    "Action",
    "FailurePlan",
    "Hop",
    "LinkPlan",
    "Plan",
    "Route",
    "SourcePlan",
    "StationPlan",
    "passing",
]

Hop = tuple[int, int]  # (link index or NO_LINK, station index or passing(station index))
NO_LINK = -1


def passing(station: int) -> int:
    """The hop code for "at `station`, not served there" (its own inverse)."""
    return -1 - station


@dataclass(frozen=True, slots=True)
class StationPlan:
    name: str
    node_class: str
    servers: int
    times: tuple[Distribution, ...]  # service time per message class
    queue_limit: int | None = None
    tracked: bool = True  # keep its own per-interval series (else only its class's totals)


@dataclass(frozen=True, slots=True)
class LinkPlan:
    ends: tuple[int, int]
    link_class: str
    spec: LinkSpec


@dataclass(frozen=True, slots=True)
class Route:
    """One arrival's journey. Terminals: each delivery, or the submit path when there are none."""

    submit: tuple[Hop, ...]
    deliveries: tuple[tuple[Hop, ...], ...] = ()
    groups: tuple[int, ...] = (0,)  # the availability group of each terminal
    functional: bool = True  # passed the checks (each delivery is a functional message)
    terminals: int = field(init=False, compare=False)  # deliveries, or 1 when there are none

    def __post_init__(self) -> None:
        object.__setattr__(self, "terminals", max(1, len(self.deliveries)))


@dataclass(frozen=True, slots=True)
class SourcePlan:
    name: str
    kind: int  # index in KINDS
    classes: tuple[int, ...]  # message classes this source emits ...
    class_weights: tuple[float, ...]  # ... drawn with these weights
    segments: tuple[tuple[float, float, float], ...]  # (from, to, arrivals/s)
    routes: tuple[Route, ...]
    size: int = 0  # bytes per message
    copies: int = 1
    headings: int = 0
    window_expected: float = 0.0  # expected arrivals in the measured window
    year_expected: float = 0.0  # expected arrivals in a calendar year (no one-off surges)


@dataclass(frozen=True, slots=True)
class Action:
    """A timed change at simulated time `at` (fail, restore, capacity), with its label."""

    at: float
    op: Literal["fail", "restore", "capacity"]
    label: str
    stations: tuple[int, ...] = ()
    links: tuple[int, ...] = ()
    servers: int = 0


@dataclass(frozen=True, slots=True)
class FailurePlan:
    """Random failures of one station or one link: up Exp(mtbf), down Exp(mttr), repeatedly."""

    mtbf: float
    mttr: float
    station: int = -1
    link: int = -1


@dataclass(frozen=True, slots=True)
class Plan:
    name: str
    seed: int
    replications: int
    warmup: float
    duration: float
    interval: float
    drain: float  # the longest the run goes on after the window for messages created in it
    start: dt.datetime
    classes: tuple[tuple[int, str], ...]  # message class -> (kind index, authentication key or "")
    stations: tuple[StationPlan, ...]
    links: tuple[LinkPlan, ...]
    sources: tuple[SourcePlan, ...]
    deadlines: tuple[float | None, ...]  # per kind
    groups: tuple[str, ...]  # availability groups (sectors; stations for an explicit network)
    actions: tuple[Action, ...] = ()
    failures: tuple[FailurePlan, ...] = ()
    surges: tuple[tuple[float, float | None, str], ...] = ()  # (from, until, label): for the report
    heading_seconds: float = 0.0
    description: str = ""
    kinds: tuple[str, ...] = KINDS
    drawing: dict[str, object] = field(default_factory=dict)  # what the report needs to draw the network
    provenance: tuple[Provenance, ...] = ()  # the scenario's service times and latencies, assumed or calibrated
    # a slice of a longer run (network/slicing.py) starts at `begin` with an empty network and
    # reports the counts that are not tied to its window (every loss, the event log) for `span` only
    begin: float = 0.0
    span: tuple[float, float] = (0.0, math.inf)

    @property
    def end(self) -> float:
        return self.warmup + self.duration

    @property
    def intervals(self) -> int:
        return max(1, -int(-self.duration // self.interval))
