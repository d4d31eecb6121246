"""A traffic source's arrivals: a non-homogeneous Poisson process, one scheduled event each.

Within a segment of constant rate the gaps are exponential; at a segment's end the next one
starts afresh (exact, the exponential being memoryless). Each arrival is a `Due` event whose
callback emits the exchange and schedules the next arrival: no SimPy process to resume, which
halves the cost of an arrival against a generator process.
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

__all__ = ["Arrivals"]

_STD_EXPONENTIAL = Exponential(mean=1.0)


class Arrivals:
    """Arrivals of source `index` of the plan; `enter(msg)` puts a new message on its way."""

    def __init__(
        self,
        env: simpy.Environment,
        index: int,
        source: SourcePlan,
        gaps: np.random.Generator,
        picks: np.random.Generator,
        recorder: Recorder,
        enter: Callable[[Message], None],
    ) -> None:
        self.env, self.index, self.source, self.rec, self.enter = env, index, source, recorder, enter
        self.gap = draws(_STD_EXPONENTIAL, gaps)
        self.route_of = uniform_indices(len(source.routes), picks)
        self.class_of = indices(source.class_weights, picks)
        self.segment = -1
        self._next_segment()

    def _next_segment(self) -> None:
        """Schedule the first arrival of the next segment with a positive rate, if any."""
        segments = self.source.segments
        while self.segment + 1 < len(segments):
            self.segment += 1
            t0, t1, rate = segments[self.segment]
            if rate > 0:
                t = t0 + self.gap() / rate
                if t < t1:
                    Due(self.env, t - self.env.now, t, self._arrive)
                    return

    def _arrive(self, event: simpy.Event) -> None:
        t: float = event._value
        self._emit(t)
        _, t1, rate = self.source.segments[self.segment]
        t_next = t + self.gap() / rate
        if t_next < t1:
            Due(self.env, t_next - self.env.now, t_next, self._arrive)
        else:
            self._next_segment()

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
            self.enter(msg)
