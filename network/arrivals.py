"""A traffic source's arrivals: a non-homogeneous Poisson process, made a batch at a time.

Within a segment of constant rate the gaps are exponential; at a segment's end the next one
starts afresh (exact, the exponential being memoryless). The arrival times are known ahead, and a
new exchange needs nothing of the network at its creation, so the source makes its arrivals in
batches of BATCH: their times, routes and classes, the counts they bring, and their journeys
(every draw of every message, network/journeys.py) with numpy, all at once; one scheduled
event, at the batch's first arrival, puts the batch's messages on their way, each at its own
time.

Streams: the times come from the source's `gaps` stream, routes and classes from its `picks`
stream, BATCH of each per batch whatever the batch holds; the journeys of batch k from a stream
of their own, `SeedSequence(journeys.entropy, spawn_key=journeys.spawn_key + (source, k))`. A
run that starts late (a slice of a longer run, `begin` > 0) makes the batches before `begin` too
(times and picks only) and drops the arrivals before `begin`: from `begin` on it has the very
arrivals, and the very journeys, of the run from 0.
"""

from __future__ import annotations

import heapq

import numpy as np
import simpy

from network.booked import BookedStation
from network.courier import Courier, Stops
from network.itineraries import Itineraries
from network.journeys import draw_journeys
from network.recorder import Recorder, RouteFigures

__all__ = ["BATCH", "FEED", "Arrivals"]

BATCH = 1024  # arrivals made at once
FEED = -1  # the position of a source's entry in the courier's calendar
FEED_SIZE = 16  # exchanges put on their way at once


class _Times:
    """Successive arrival times of a source's piecewise-constant rate, from its gaps stream."""

    def __init__(self, segments: tuple[tuple[float, float, float], ...], gaps: np.random.Generator) -> None:
        self.segments, self.gaps = segments, gaps
        self.segment = 0
        self.last: float | None = None  # the last arrival in the current segment (None: at its start)

    def take(self, n: int) -> np.ndarray:
        """The next `n` arrival times (fewer when the segments end)."""
        parts: list[np.ndarray] = []
        need = n
        while need > 0 and self.segment < len(self.segments):
            t0, t1, rate = self.segments[self.segment]
            if rate <= 0:
                self.segment, self.last = self.segment + 1, None
                continue
            start = t0 if self.last is None else self.last
            times = start + np.cumsum(self.gaps.standard_exponential(need) / rate)
            inside = int(np.searchsorted(times, t1))
            parts.append(times[:inside])
            need -= inside
            if inside < len(times):  # the segment is over: the next starts afresh
                self.segment, self.last = self.segment + 1, None
            else:
                self.last = float(times[-1])
        return np.concatenate(parts) if parts else np.zeros(0)


class Arrivals:
    """Arrivals of source `index` from `begin` on, fed to `courier` (see the module docstring).

    The courier's calendar holds one entry of the source's at a time (position FEED, `self` as
    its stops): when its time comes, `feed` puts the next FEED_SIZE exchanges on their way and
    enters the source again at the creation of the one after, so that the calendar stays short.
    """

    def __init__(
        self,
        env: simpy.Environment,
        itineraries: Itineraries,
        streams: tuple[np.random.Generator, np.random.Generator, np.random.SeedSequence],
        recorder: Recorder,
        courier: Courier,
        begin: float = 0.0,
    ) -> None:
        self.env, self.itineraries, self.rec, self.courier = env, itineraries, recorder, courier
        source = itineraries.source
        gaps, self.picks, self.journeys = streams
        self.times = _Times(source.segments, gaps)
        self.figures = RouteFigures.of_source(source, len(recorder.group_expected))
        weights = np.asarray(source.class_weights, dtype=float)
        self.cumulative = np.cumsum(weights / weights.sum())[:-1]
        self.batch = 0
        self.begin = begin
        self.draws: list[float] = []  # the current batch's journeys, end to end
        self.begins: list[int] = []  # where each exchange to send begins in them, ...
        self.ends: list[int] = []  # ... and ends, ...
        self.stops: list[Stops] = []  # ... its itinerary's stops, ...
        self.first: list[float] = []  # ... when it reaches its first stop, ...
        self.created: list[float] = []  # ... and its creation
        self.sent = 0
        if self._refill():
            self._enter(self.created[0])
            courier.wake()

    def _enter(self, t: float) -> None:
        courier = self.courier
        heapq.heappush(courier.calendar, (t, next(courier.order), FEED, self, []))

    def _refill(self) -> bool:
        """Make the next batch holding arrivals from `begin` on; False when there are no more."""
        while True:
            times = self.times.take(BATCH)
            routes, classes = self._picks()
            if not len(times):
                return False
            if times[-1] >= self.begin:
                break
            self.batch += 1
        self._make(times, routes[: len(times)], classes[: len(times)])
        return True

    def _picks(self) -> tuple[np.ndarray, np.ndarray]:
        source = self.itineraries.source
        routes = self.picks.integers(0, len(source.routes), BATCH) if len(source.routes) > 1 else np.zeros(BATCH, int)
        if len(source.classes) > 1:
            classes = np.searchsorted(self.cumulative, self.picks.random(BATCH), side="right")
        else:
            classes = np.zeros(BATCH, dtype=np.int64)
        return routes, classes

    def _make(self, times: np.ndarray, routes: np.ndarray, classes: np.ndarray) -> None:
        """The batch's counts and journeys (those of arrivals before `begin` drawn too, and dropped)."""
        source = self.itineraries.source
        copies = source.copies
        keep = times >= self.begin
        self.rec.arrivals(self.itineraries.index, source.kind, copies, times[keep], routes[keep], self.figures)
        key = (*self.journeys.spawn_key, self.itineraries.index, self.batch)
        rng = np.random.default_rng(np.random.SeedSequence(self.journeys.entropy, spawn_key=key))
        self.batch += 1
        ids, created = np.repeat(self.itineraries.ids(routes, classes), copies), np.repeat(times, copies)
        draws, begins, ends = draw_journeys(self.itineraries, ids, created, rng)
        kept = np.repeat(keep, copies)
        begins, ends, created = begins[kept], ends[kept], created[kept]
        self.first = (created + draws[begins]).tolist()  # the first gap from the creation
        self.draws, self.begins, self.ends, self.created = (
            draws.tolist(),
            begins.tolist(),
            ends.tolist(),
            created.tolist(),
        )
        stops = self.itineraries.stops
        self.stops = [stops[i] for i in ids[kept].tolist()]
        self.sent = 0

    def feed(self, now: float) -> None:
        """Put the next FEED_SIZE exchanges on their way (it is `now`, the first one's creation)."""
        courier, draws = self.courier, self.draws
        calendar, push, order = courier.calendar, heapq.heappush, courier.order.__next__
        first = self.sent
        last = min(first + FEED_SIZE, len(self.stops))
        for b, e, t, stops in zip(
            self.begins[first:last], self.ends[first:last], self.first[first:last], self.stops[first:last], strict=True
        ):
            if stops[1].__class__ is BookedStation:
                push(calendar, (t, order(), 1, stops, draws[b:e]))
            else:
                courier.go(t, 1, stops, draws[b:e], now)
        self.sent = last
        if last < len(self.stops):
            self._enter(self.created[last])
        elif self._refill():
            self._enter(self.created[0])
