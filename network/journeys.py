"""Journeys: what a message does that does not depend on the state of the network, drawn at once.

A message's service time at each station it visits, the latency of each link it crosses and
whether a lossy link loses it depend only on the message (its class, its route) and on chance,
never on the queues. So they are drawn when the exchange is created, for all its legs, and the
model's hot path (courier.py) only looks them up. The draws are common random numbers: they come
from a stream keyed by the exchange (its source and the batch of that source's arrivals it was
created in, network/arrivals.py), not by the order in which stations happen to serve, so a run
cut into slices (network/slicing.py) gives every message the very draws the whole run gives it;
what differs between the two is then only what the cut itself changes, the queues.

An `Itinerary` is the compiled journey of one (route, message class): `stops`, a tuple indexed
like the message's draws, laid out leg by leg as

    gap, stop, gap, stop, ..., gap, end        (the submit leg; end is a FanOut or a Terminal)
    gap, stop, ..., gap, Terminal              (each delivery, starting where the decision was taken)

where a gap is the time spent on the plain links before the next stop (their latencies and
transmission times, summed), a stop is a station that serves the message (its draw: the service
time) or a link that can lose it or fail (a `Crossing`; its draw: the time to cross it, or
LOST_BY_CHANCE), and the position after the last one holds the exchange's creation time.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from network.link import Link
from network.plan import Hop, Route, SourcePlan
from network.sampling import lognormal_parameters
from scenarios.schema import Deterministic, Distribution, Exponential, Lognormal, Uniform

__all__ = [
    "LOST_BY_CHANCE",
    "Crossing",
    "FanOut",
    "Itineraries",
    "Itinerary",
    "Params",
    "Parts",
    "Terminal",
    "draw_journeys",
]

LOST_BY_CHANCE = -1.0  # the draw of a crossing whose link loses the message
_CONST, _EXPONENTIAL, _LOGNORMAL, _UNIFORM = 0, 1, 2, 3


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


Stop = object  # a BookedStation, a Station (event-driven), a Crossing, a Terminal, a FanOut, or None (a gap)


class Params:
    """The distributions raw draws come from, by code (one per distinct distribution): family, a, b."""

    def __init__(self) -> None:
        self.codes: dict[Distribution, int] = {}
        self.rows: list[tuple[int, float, float]] = []
        self._arrays: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._families: tuple[int, ...] = ()

    def code(self, dist: Distribution) -> int:
        if dist not in self.codes:
            self.codes[dist] = len(self.rows)
            self.rows.append(_family(dist))
            self._arrays = None
        return self.codes[dist]

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._arrays is None:
            family, a, b = zip(*self.rows, strict=True)
            self._arrays = np.array(family, dtype=np.int8), np.array(a), np.array(b)
            self._families = tuple(sorted({f for f in family if f != _CONST}))
        return self._arrays

    def random_families(self) -> tuple[int, ...]:
        """The families other than constants that some code has (as of the last `arrays`)."""
        return self._families


def _family(dist: Distribution) -> tuple[int, float, float]:
    if isinstance(dist, Deterministic) or (isinstance(dist, Lognormal) and dist.cv == 0):
        return _CONST, float(dist.mean), 0.0
    if isinstance(dist, Exponential):
        return _EXPONENTIAL, dist.mean, 0.0
    if isinstance(dist, Lognormal):
        return (_LOGNORMAL, *lognormal_parameters(dist.mean, dist.cv))
    assert isinstance(dist, Uniform)
    return _UNIFORM, dist.low, dist.high


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
    kinds of message, and the distributions' codes."""

    stations: Sequence[object]
    times: Sequence[tuple[Distribution, ...]]
    links: Sequence[Link]
    latencies: Sequence[Distribution]
    kinds: int
    params: Params


class _Flat:
    """Several itineraries' arrays of one field end to end, with where each starts and its length."""

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
        self.compiled: list[Itinerary] = []
        self.stops: list[tuple[Stop, ...]] = []  # each compiled itinerary's stops
        self.codes, self.extra_at, self.extra = _Flat(np.int64), _Flat(np.int64), _Flat(np.int64)
        self.lossy, self.loss = _Flat(np.int64), _Flat(float)
        self.zero = parts.params.code(Deterministic(value=0.0))
        self._legs: dict[tuple[tuple[Hop, ...], int, int], _Layout] = {}  # laid out once for every route
        self._link_codes: dict[int, list[int]] = {}
        self._service_codes: dict[tuple[int, int], list[int]] = {}

    def _link(self, index: int) -> list[int]:
        """The codes of crossing link `index`: its latency, and the transmission time at its bandwidth."""
        if index not in self._link_codes:
            code, link = self.parts.params.code, self.parts.links[index]
            codes = [code(self.parts.latencies[index])]
            if link.bandwidth:
                codes.append(code(Deterministic(value=self.source.size / link.bandwidth)))
            self._link_codes[index] = codes
        return self._link_codes[index]

    def _service(self, station: int, cls: int) -> list[int]:
        if (station, cls) not in self._service_codes:
            self._service_codes[(station, cls)] = [self.parts.params.code(self.parts.times[station][cls])]
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
            self.alike[alike] = len(self.compiled)
            self.compiled.append(it)
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


def _starts(lengths: np.ndarray) -> np.ndarray:
    out = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=out[1:])
    return out


def _ragged(flat: _Flat, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The values of itineraries `ids` in `flat`, end to end; their lengths; where each begins."""
    values, start, length = flat.arrays()
    lengths = length[ids]
    begins = _starts(lengths)
    index = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(begins - start[ids], lengths)
    return values[index], lengths, begins


def _sample(params: Params, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A draw of each distribution in `codes` (constants as they are), family by family."""
    family, a, b = params.arrays()
    fam, pa = family[codes], a[codes]
    out: np.ndarray = pa.copy()
    for f in params.random_families():
        mask = fam == f
        n = int(np.count_nonzero(mask))
        if not n:
            continue
        x, y = pa[mask], b[codes[mask]]
        if f == _LOGNORMAL:
            out[mask] = np.exp(x + y * rng.standard_normal(n))
        elif f == _EXPONENTIAL:
            out[mask] = x * rng.standard_exponential(n)
        else:
            out[mask] = x + (y - x) * rng.random(n)
    return out


def draw_journeys(
    itineraries: Itineraries, ids: np.ndarray, created: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The draws of one batch of exchanges (itinerary ids, creation times), end to end, and
    where each exchange's draws begin and end (each is as long as its itinerary's stops, the last
    one its creation time)."""
    params = itineraries.parts.params
    codes, lengths, begins = _ragged(itineraries.codes, ids)
    draws = _sample(params, codes, rng)
    if itineraries.extra.size:
        at, counts, _ = _ragged(itineraries.extra_at, ids)
        extra, _, _ = _ragged(itineraries.extra, ids)
        draws += np.bincount(at + np.repeat(begins, counts), weights=_sample(params, extra, rng), minlength=len(draws))
    draws[begins + lengths - 1] = created
    if itineraries.lossy.size:
        lossy, counts, _ = _ragged(itineraries.lossy, ids)
        chance, _, _ = _ragged(itineraries.loss, ids)
        lost = rng.random(len(lossy)) < chance
        draws[(lossy + np.repeat(begins, counts))[lost]] = LOST_BY_CHANCE
    return draws, begins, begins + lengths
