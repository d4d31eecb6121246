"""A traffic source's arrivals: a non-homogeneous Poisson process, emitted in small batches.

Within a segment of constant rate the gaps are exponential; at a segment's end the next one
starts afresh (exact, the exponential being memoryless). A run that starts late (a slice of a
longer run, `begin` > 0) draws the arrivals before `begin`, and their route and class picks,
and drops them: from `begin` on it has the arrivals of the run from 0 on the same streams. The
arrival times are known ahead, and a new message needs nothing of the network at its creation
(its first step that does, a station or a link that can fail, is an event of its own; see
network/model.py), so one scheduled event emits the next `BATCH` arrivals, each at its own time,
and the source costs one event per `BATCH` arrivals rather than one each.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import simpy

from network.due import Due
from network.message import Message
from network.plan import SourcePlan
from network.recorder import Recorder
from network.sampling import draws, indices, uniform_indices
from scenarios.schema import Exponential

__all__ = ["BATCH", "Arrivals"]

BATCH = 32
_STD_EXPONENTIAL = Exponential(mean=1.0)


class Arrivals:
    """Arrivals of source `index` of the plan from `begin` on; `enter(msg, t)` puts a new message,
    created at `t` (not before the simulated now), on its way."""

    def __init__(
        self,
        env: simpy.Environment,
        index: int,
        source: SourcePlan,
        gaps: np.random.Generator,
        picks: np.random.Generator,
        recorder: Recorder,
        enter: Callable[[Message, float], None],
        begin: float = 0.0,
    ) -> None:
        self.env, self.index, self.source, self.rec, self.enter = env, index, source, recorder, enter
        self.gap = draws(_STD_EXPONENTIAL, gaps)
        self.route_of = uniform_indices(len(source.routes), picks)
        self.class_of = indices(source.class_weights, picks)
        self.segment = -1
        first = self._next_segment()
        while first is not None and first < begin:
            self.route_of(), self.class_of()
            first = self._following(first)
        if first is not None:
            Due(env, first - env.now, first, self._tick)

    def _next_segment(self) -> float | None:
        """The first arrival of the next segment with a positive rate, if any."""
        segments = self.source.segments
        while self.segment + 1 < len(segments):
            self.segment += 1
            t0, t1, rate = segments[self.segment]
            if rate > 0:
                t = t0 + self.gap() / rate
                if t < t1:
                    return t
        return None

    def _following(self, t: float) -> float | None:
        _, t1, rate = self.source.segments[self.segment]
        t_next = t + self.gap() / rate
        return t_next if t_next < t1 else self._next_segment()

    def _tick(self, event: simpy.Event) -> None:
        t: float | None = event._value
        for _ in range(BATCH):
            assert t is not None
            self._emit(t)
            t = self._following(t)
            if t is None:
                return
        Due(self.env, t - self.env.now, t, self._tick)

    def _emit(self, t: float) -> None:
        src = self.source
        route = src.routes[self.route_of()]
        cls = src.classes[self.class_of()]
        counted = self.rec.arrival(self.index, src.copies, t)
        for _ in range(src.copies):
            msg = Message(
                created=t,
                path=route.submit,
                route=route,
                terminal=-1 if route.deliveries else 0,
                kind=src.kind,
                cls=cls,
                size=src.size,
                source=self.index,
                counted=counted,
            )
            self.rec.created_exchange(msg)
            self.enter(msg, t)
