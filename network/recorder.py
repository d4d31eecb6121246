"""What one replication measures, and the plain result it hands back.

Only exchanges created inside the measured window [warmup, warmup + duration) count towards
the per-kind figures (latency, availability, losses); their messages are followed after the
window ends until all are resolved or the drain time is up, and any still under way by then
count as not delivered in time ("unresolved"). Per-interval series count every completion in
the interval, whenever its exchange was created.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

import numpy as np

from network.message import Message
from network.plan import Plan

__all__ = ["Recorder", "ReplicationResult"]


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
    """Counts for one replication; the model calls it at creation, completion and loss."""

    def __init__(self, plan: Plan, now: float = 0.0) -> None:
        k, g, s = len(plan.kinds), len(plan.groups), len(plan.sources)
        self.warmup, self.end, self.interval = plan.warmup, plan.end, plan.interval
        self.span = plan.span
        self.deadlines = [d if d is not None else float("inf") for d in plan.deadlines]
        self.created = [0] * k
        self.expected = [0] * k
        self.delivered = [0] * k
        self.on_time = [0] * k
        self.lost = [0] * k
        self.latencies = [array("d") for _ in range(k)]
        self.lost_reasons: dict[str, int] = {}
        self.source_arrivals = [0] * s
        self.source_functional = [0] * s
        self.source_declarations = [0] * s
        self.group_expected = [0] * g
        self.group_on_time = [0] * g
        n = plan.intervals
        self.series_done = [[0] * k for _ in range(n)]
        self.series_latency = [[0.0] * k for _ in range(n)]
        self.series_lost = [0] * n
        self.inflight = 0  # terminal messages of window exchanges not yet resolved
        self.messages = 0

    def _slot(self, now: float) -> int:
        return int((now - self.warmup) // self.interval) if self.warmup <= now < self.end else -1

    def arrival(self, source: int, copies: int, now: float) -> bool:
        """An arrival of `source`; returns whether it falls in the window (and is counted)."""
        counted = self.warmup <= now < self.end
        if counted:
            self.source_arrivals[source] += 1
            self.source_declarations[source] += copies
        return counted

    def created_exchange(self, msg: Message) -> None:
        self.messages += 1
        if msg.counted:
            route, kind = msg.route, msg.kind
            self.created[kind] += 1
            self.expected[kind] += route.terminals
            self.inflight += route.terminals
            for group in route.groups:
                self.group_expected[group] += 1
            if route.functional and not route.deliveries:
                self.source_functional[msg.source] += 1

    def forwarded(self, msg: Message) -> None:
        """The submit leg reached the routing point and fans out into its deliveries."""
        n = len(msg.route.deliveries)
        self.messages += n
        if msg.counted and msg.route.functional:
            self.source_functional[msg.source] += n

    def terminal(self, msg: Message, now: float) -> None:
        latency = now - msg.created
        kind = msg.kind
        slot = self._slot(now)
        if slot >= 0:
            self.series_done[slot][kind] += 1
            self.series_latency[slot][kind] += latency
        if msg.counted:
            self.inflight -= 1
            self.delivered[kind] += 1
            self.latencies[kind].append(latency)
            if latency <= self.deadlines[kind]:
                self.on_time[kind] += 1
                self.group_on_time[msg.route.groups[max(msg.terminal, 0)]] += 1

    def lost_message(self, msg: Message, reason: str, now: float) -> None:
        n = msg.terminals()
        if self.span[0] <= now < self.span[1]:
            self.lost_reasons[reason] = self.lost_reasons.get(reason, 0) + n
        slot = self._slot(now)
        if slot >= 0:
            self.series_lost[slot] += n
        if msg.counted:
            self.inflight -= n
            self.lost[msg.kind] += n
