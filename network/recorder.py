"""What one replication measures, and the plain result it hands back.

Only exchanges created inside the measured window [warmup, warmup + duration) count towards
the per-kind figures (latency, availability, losses); their messages are followed after the
window ends until all are resolved or the drain time is up, and any still under way by then
count as not delivered in time ("unresolved"). Per-interval series count every completion in
the interval, whenever its exchange was created.

The recorder is built for the model's hot path: arrivals are counted a batch at a time
(`arrivals`), and a terminal message is filed by appending its time, its exchange's creation
time and its code (group x kinds + kind) to three arrays (`done_at`, `done_created`,
`done_code`), which `flush` turns into the figures with numpy now and then.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

import numpy as np

from network.itineraries import FanOut
from network.plan import Plan, SourcePlan

__all__ = ["Recorder", "ReplicationResult", "RouteFigures"]


@dataclass(frozen=True)
class RouteFigures:
    """What each route of a source brings to the counts when an exchange takes it."""

    terminals: np.ndarray  # [route] terminal messages
    functional: np.ndarray  # [route] functional messages at creation (a routed decision without destinations)
    groups: np.ndarray  # [route, group] terminal messages per availability group

    @classmethod
    def of_source(cls, source: SourcePlan, groups_in_plan: int) -> RouteFigures:
        routes = source.routes
        groups = np.zeros((len(routes), groups_in_plan), dtype=np.int64)
        for r, route in enumerate(routes):
            for g in route.groups:
                groups[r, g] += 1
        return cls(
            terminals=np.array([r.terminals for r in routes], dtype=np.int64),
            functional=np.array([r.functional and not r.deliveries for r in routes], dtype=np.int64),
            groups=groups,
        )


@dataclass
class ReplicationResult:
    """The measurements of one replication: plain arrays, indexed as in the plan."""

    index: int
    created: np.ndarray  # [kind] exchanges created in the window
    expected: np.ndarray  # [kind] terminal messages those exchanges were to produce
    delivered: np.ndarray  # [kind]
    on_time: np.ndarray  # [kind] delivered within the kind's deadline
    lost: np.ndarray  # [kind]
    latencies: list[np.ndarray]  # [kind] seconds from creation to delivery, window exchanges
    lost_reasons: dict[str, int]
    source_arrivals: np.ndarray  # [source] arrivals (events) in the window
    source_functional: np.ndarray  # [source] functional messages of window exchanges
    source_declarations: np.ndarray  # [source] declarations filed (arrivals x copies)
    station_utilisation: np.ndarray  # [station]
    station_queue: np.ndarray  # [station] time-average length of the line
    station_max_queue: np.ndarray
    station_served: np.ndarray
    station_lost: np.ndarray
    link_lost: int
    group_expected: np.ndarray  # [group]
    group_on_time: np.ndarray
    series_done: np.ndarray  # [interval, kind] completions in the interval
    series_latency: np.ndarray  # [interval, kind] sum of their latencies
    series_lost: np.ndarray  # [interval]
    series_queue: np.ndarray  # [interval, tracked station] time-average line length
    series_utilisation: np.ndarray  # [interval, tracked station]
    series_class_queue: np.ndarray  # [interval, node class] summed over the class
    series_class_utilisation: np.ndarray  # [interval, node class]
    unresolved: int
    events: list[tuple[float, str]] = field(default_factory=list)  # (seconds into the window, what)
    messages: int = 0  # messages simulated in all (every leg, warm-up and drain included)
    wall_seconds: float = 0.0
    station_busy: np.ndarray = field(default_factory=lambda: np.zeros(0))  # [station] busy seconds
    station_capacity: np.ndarray = field(default_factory=lambda: np.zeros(0))  # [station] server seconds


class Recorder:
    """Counts for one replication; the model files arrivals, fan-outs, terminal messages and losses."""

    def __init__(self, plan: Plan) -> None:
        k, g, s = len(plan.kinds), len(plan.groups), len(plan.sources)
        self.kinds = k
        self.warmup, self.end, self.interval = plan.warmup, plan.end, plan.interval
        self.span = plan.span
        self.deadlines = np.array([d if d is not None else np.inf for d in plan.deadlines], dtype=float)
        self.created = np.zeros(k, dtype=np.int64)
        self.expected = np.zeros(k, dtype=np.int64)
        self.delivered = np.zeros(k, dtype=np.int64)
        self.on_time = np.zeros(k, dtype=np.int64)
        self.lost = np.zeros(k, dtype=np.int64)
        self.latencies: list[list[np.ndarray]] = [[] for _ in range(k)]
        self.lost_reasons: dict[str, int] = {}
        self.source_arrivals = np.zeros(s, dtype=np.int64)
        self.source_functional = np.zeros(s, dtype=np.int64)
        self.fanned = [0] * s  # functional messages of window exchanges fanned out, per source
        self.source_declarations = np.zeros(s, dtype=np.int64)
        self.group_expected = np.zeros(g, dtype=np.int64)
        self.group_on_time = np.zeros(g, dtype=np.int64)
        n = plan.intervals
        self.series_done = np.zeros((n, k), dtype=np.int64)
        self.series_latency = np.zeros((n, k))
        self.series_lost = np.zeros(n, dtype=np.int64)
        self.done_at = array("d")  # terminal messages not flushed yet: when, ...
        self.done_created = array("d")  # ... their exchange's creation, ...
        self.done_code = array("q")  # ... and group * kinds + kind
        self.outstanding = 0  # terminal messages of window exchanges not yet resolved (as of the last flush)
        self.messages = 0

    def _slot(self, now: float) -> int:
        return int((now - self.warmup) // self.interval) if self.warmup <= now < self.end else -1

    def counted(self, created: float) -> bool:
        """Whether an exchange created at `created` counts (it was created in the window)."""
        return self.warmup <= created < self.end

    # ---------------------------------------------------------------- arrivals

    def arrivals(
        self, source: int, kind: int, copies: int, created: np.ndarray, routes: np.ndarray, figures: RouteFigures
    ) -> None:
        """A batch of arrivals of `source` at times `created`, each `copies` exchanges on `routes`."""
        self.messages += len(created) * copies
        counted = (created >= self.warmup) & (created < self.end)
        n = int(counted.sum())
        if not n:
            return
        taken = np.bincount(routes[counted], minlength=len(figures.terminals))
        self.source_arrivals[source] += n
        self.source_declarations[source] += n * copies
        self.created[kind] += n * copies
        expected = int(taken @ figures.terminals) * copies
        self.expected[kind] += expected
        self.outstanding += expected
        self.group_expected += (taken @ figures.groups) * copies
        self.source_functional[source] += int(taken @ figures.functional) * copies

    def forwarded(self, fan: FanOut, created: float) -> None:
        """The submit leg of an exchange created at `created` reached the routing point and fans out."""
        self.messages += fan.deliveries
        if fan.functional and self.warmup <= created < self.end:
            self.fanned[fan.source] += fan.deliveries

    # ---------------------------------------------------------------- terminal messages and losses

    def flush(self) -> None:
        """File the terminal messages appended since the last flush."""
        if not self.done_at:
            return
        at = np.frombuffer(self.done_at, dtype=float).copy()
        created = np.frombuffer(self.done_created, dtype=float).copy()
        code = np.frombuffer(self.done_code, dtype=np.int64).copy()
        del self.done_at[:], self.done_created[:], self.done_code[:]
        k = self.kinds
        kind = code % k
        latency = at - created
        slot = np.floor_divide(at - self.warmup, self.interval).astype(np.int64)
        inside = (at >= self.warmup) & (at < self.end)
        cell = slot[inside] * k + kind[inside]
        size = self.series_done.size
        self.series_done += np.bincount(cell, minlength=size).reshape(self.series_done.shape)
        self.series_latency += np.bincount(cell, weights=latency[inside], minlength=size).reshape(
            self.series_latency.shape
        )
        counted = (created >= self.warmup) & (created < self.end)
        self.outstanding -= int(counted.sum())
        self.delivered += np.bincount(kind[counted], minlength=k)
        for i in np.unique(kind[counted]).tolist():
            self.latencies[i].append(latency[counted & (kind == i)])
        on_time = counted & (latency <= self.deadlines[kind])
        self.on_time += np.bincount(kind[on_time], minlength=k)
        self.group_on_time += np.bincount(code[on_time] // k, minlength=len(self.group_on_time))

    def lost_message(self, kind: int, terminals: int, created: float, reason: str, now: float) -> None:
        """A message standing for `terminals` terminal messages of an exchange created at `created` is lost."""
        if self.span[0] <= now < self.span[1]:
            self.lost_reasons[reason] = self.lost_reasons.get(reason, 0) + terminals
        slot = self._slot(now)
        if slot >= 0:
            self.series_lost[slot] += terminals
        if self.warmup <= created < self.end:
            self.outstanding -= terminals
            self.lost[kind] += terminals

    def functional(self) -> np.ndarray:
        """[source] functional messages of window exchanges: at creation, and fanned out."""
        return self.source_functional + np.array(self.fanned, dtype=np.int64)

    def unresolved(self) -> int:
        """Terminal messages of window exchanges neither delivered nor lost yet."""
        self.flush()
        return self.outstanding

    def latencies_by_kind(self) -> list[np.ndarray]:
        self.flush()
        return [np.concatenate(parts) if parts else np.zeros(0) for parts in self.latencies]
