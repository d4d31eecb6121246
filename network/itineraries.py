"""Itineraries: a route of the plan compiled, for one message class, into what the hot path runs.

An `Itinerary`'s `stops` is a tuple indexed like a message's draws (network/journeys.py), laid
out leg by leg as

    gap, stop, gap, stop, ..., gap, end        (the submit leg; end is a FanOut or a Terminal)
    gap, stop, ..., gap, Terminal              (each delivery, starting where the decision was taken)

where a gap is the time spent on the plain links before the next stop (their latencies and
transmission times, summed), a stop is a station that serves the message (its draw: the service
time) or a link that can lose it or fail (a `Crossing`; its draw: the time to cross it, or
network.journeys.LOST_BY_CHANCE), and the position after the last one holds the exchange's
creation time. Stops are at odd positions, gaps at even ones. Each position's draw is that of
a distribution, by its code in a `Distributions` table (network/sampling.py).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from network.link import Link
from network.plan import Hop, Route, SourcePlan
from network.sampling import Distributions
from scenarios.schema import Deterministic, Distribution

__all__ = ["Crossing", "FanOut", "Flat", "Itineraries", "Itinerary", "Parts", "Stop", "Terminal"]


@dataclass(frozen=True, slots=True, eq=False)
class Terminal:
    """The end of a leg that is a terminal message, of availability group `group`; `code` is
    what the recorder files it under."""

    kind: int
    group: int
    code: int  # group * kinds + kind


@dataclass(frozen=True, slots=True, eq=False)
class FanOut:
    """The end of a submit leg at the routing point: the deliveries start at `starts`."""

    kind: int
    source: int
    starts: tuple[int, ...]  # the position of each delivery's first gap
    functional: bool
    deliveries: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "deliveries", len(self.starts))


@dataclass(frozen=True, slots=True, eq=False)
class Crossing:
    """A link that is not plain (it loses messages, or it can fail): crossed as a stop."""

    link: Link


Stop = object  # a BookedStation, a Station (event-driven), a Crossing, a Terminal, a FanOut, or None


@dataclass(frozen=True, slots=True)
class Itinerary:
    """The compiled journey of one (route, class): its stops and how its draws are made.

    `codes` holds the distribution code of each position's draw (a gap's first link, a stop's
    service or crossing; zero where there is nothing to draw), `extra_at` and `extra` the
    positions and codes of further draws added to them (a gap of several links, a transmission
    time), `lossy` the positions of crossings that can lose the message, with chances `loss`.
    """

    stops: tuple[Stop, ...]
    codes: tuple[int, ...]
    extra_at: tuple[int, ...]
    extra: tuple[int, ...]
    lossy: tuple[int, ...]
    loss: tuple[float, ...]


class _Layout:
    """One itinerary laid out position by position (the layout in the module docstring)."""

    def __init__(self, zero: int) -> None:
        self.zero = zero  # the code of a constant 0
        self.stops: list[Stop] = []
        self.codes: list[int] = []
        self.extra_at: list[int] = []
        self.extra: list[int] = []
        self.lossy: list[int] = []
        self.loss: list[float] = []
        self.gap: list[int] = []  # the codes of the gap under way

    def _put(self, stop: Stop, codes: Sequence[int]) -> int:
        position = len(self.stops)
        self.stops.append(stop)
        self.codes.append(codes[0] if codes else self.zero)
        self.extra_at.extend(position for _ in codes[1:])
        self.extra.extend(codes[1:])
        return position

    def stop(self, stop: Stop, codes: Sequence[int] = ()) -> int:
        """The gap under way, then `stop` drawing `codes` (summed); returns the stop's position."""
        self._put(None, self.gap)
        self.gap = []
        return self._put(stop, codes)

    def lose(self, position: int, chance: float) -> None:
        self.lossy.append(position)
        self.loss.append(chance)

    def append(self, leg: _Layout) -> None:
        """`leg` (left as it is) after what is laid out, its gap under way still open."""
        base = len(self.stops)
        self.stops += leg.stops
        self.codes += leg.codes
        self.extra_at += [base + p for p in leg.extra_at]
        self.extra += leg.extra
        self.lossy += [base + p for p in leg.lossy]
        self.loss += leg.loss
        self.gap = self.gap + leg.gap

    def build(self) -> Itinerary:
        self._put(None, ())  # the creation time's place
        return Itinerary(
            tuple(self.stops),
            tuple(self.codes),
            tuple(self.extra_at),
            tuple(self.extra),
            tuple(self.lossy),
            tuple(self.loss),
        )


@dataclass(frozen=True, slots=True)
class Parts:
    """What itineraries are made of, indexed as in the plan: the station objects (booked or
    event-driven) and their service time per class, the link objects and their latencies, the
    kinds of message, and the table of the distributions drawn."""

    stations: Sequence[object]
    times: Sequence[tuple[Distribution, ...]]
    links: Sequence[Link]
    latencies: Sequence[Distribution]
    kinds: int
    distributions: Distributions


class Flat:
    """One field of several itineraries, end to end, with where each starts and its length."""

    def __init__(self, dtype: type) -> None:
        self.dtype = dtype
        self.values: np.ndarray = np.zeros(0, dtype=dtype)
        self.start: list[int] = []
        self.length: list[int] = []
        self.new: list[Sequence[float]] = []
        self.size = 0
        self._arrays: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def add(self, values: Sequence[float]) -> None:
        self.start.append(self.size)
        self.length.append(len(values))
        self.size += len(values)
        self.new.append(values)
        self._arrays = None

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(values end to end, starts, lengths)."""
        if self._arrays is None:
            added = [v for part in self.new for v in part]
            self.values = np.concatenate([self.values, np.asarray(added, dtype=self.dtype)])
            self.new = []
            self._arrays = self.values, np.asarray(self.start, dtype=np.int64), np.asarray(self.length, dtype=np.int64)
        return self._arrays


class Itineraries:
    """The itineraries of source `index`, compiled as its (route, class) pairs first come up
    (once for routes of the pool that are alike)."""

    def __init__(self, index: int, source: SourcePlan, parts: Parts) -> None:
        self.index, self.source, self.parts = index, source, parts
        self.table = np.full(len(source.routes) * len(source.classes), -1, dtype=np.int64)
        self.alike: dict[tuple[Route, int], int] = {}
        self.stops: list[tuple[Stop, ...]] = []  # each compiled itinerary's stops, by id
        self.codes, self.extra_at, self.extra = Flat(np.int64), Flat(np.int64), Flat(np.int64)
        self.lossy, self.loss = Flat(np.int64), Flat(float)
        self.zero = parts.distributions.code(Deterministic(value=0.0))
        self._legs: dict[tuple[tuple[Hop, ...], int, int], _Layout] = {}  # laid out once for every route
        self._link_codes: dict[int, list[int]] = {}
        self._service_codes: dict[tuple[int, int], list[int]] = {}

    def _link(self, index: int) -> list[int]:
        """The codes of crossing link `index`: its latency, and the transmission time at its bandwidth."""
        if index not in self._link_codes:
            code, link = self.parts.distributions.code, self.parts.links[index]
            codes = [code(self.parts.latencies[index])]
            if link.bandwidth:
                codes.append(code(Deterministic(value=self.source.size / link.bandwidth)))
            self._link_codes[index] = codes
        return self._link_codes[index]

    def _service(self, station: int, cls: int) -> list[int]:
        if (station, cls) not in self._service_codes:
            self._service_codes[(station, cls)] = [self.parts.distributions.code(self.parts.times[station][cls])]
        return self._service_codes[(station, cls)]

    def _leg(self, hops: tuple[Hop, ...], cls: int, group: int) -> _Layout:
        """The layout of a path's hops (its last gap open), then, for `group` >= 0, its Terminal."""
        key = (hops, cls, group)
        if key not in self._legs:
            b = _Layout(self.zero)
            for link_index, station_index in hops:
                if link_index >= 0:
                    link = self.parts.links[link_index]
                    if link.volatile or link.loss > 0:
                        position = b.stop(Crossing(link), self._link(link_index))
                        if link.loss > 0:
                            b.lose(position, link.loss)
                    else:
                        b.gap += self._link(link_index)
                if station_index >= 0:
                    b.stop(self.parts.stations[station_index], self._service(station_index, cls))
            if group >= 0:
                kind = self.source.kind
                b.stop(Terminal(kind, group, group * self.parts.kinds + kind))
            self._legs[key] = b
        return self._legs[key]

    def _compile(self, route: Route, cls: int) -> Itinerary:
        b = _Layout(self.zero)
        if not route.deliveries:
            b.append(self._leg(route.submit, cls, route.groups[0]))
            return b.build()
        b.append(self._leg(route.submit, cls, -1))
        # a delivery starts where the decision was taken
        legs = [self._leg(path[1:], cls, group) for path, group in zip(route.deliveries, route.groups, strict=True)]
        fan = len(b.stops) + 1  # the FanOut's position, after the submit leg's last gap
        starts = itertools.accumulate((len(leg.stops) for leg in legs[:-1]), initial=fan + 1)
        b.stop(FanOut(self.source.kind, self.index, tuple(starts), route.functional))
        for leg in legs:
            b.append(leg)
        return b.build()

    def _add(self, key: int) -> None:
        route, c = divmod(key, len(self.source.classes))
        alike = (self.source.routes[route], c)
        if alike not in self.alike:
            it = self._compile(self.source.routes[route], self.source.classes[c])
            self.alike[alike] = len(self.stops)
            self.stops.append(it.stops)
            for flat, values in ((self.codes, it.codes), (self.extra_at, it.extra_at), (self.extra, it.extra)):
                flat.add(values)
            self.lossy.add(it.lossy)
            self.loss.add(it.loss)
        self.table[key] = self.alike[alike]

    def ids(self, routes: np.ndarray, classes: np.ndarray) -> np.ndarray:
        """The itinerary id of each (route, class index), compiling those not seen yet."""
        keys = routes * len(self.source.classes) + classes
        ids: np.ndarray = self.table[keys]
        if (ids < 0).any():
            for key in np.unique(keys[ids < 0]).tolist():
                self._add(key)
            ids = self.table[keys]
        return ids
