"""A message's way through the network: the model's hot path.

Everything up to the next thing that depends on the state of the network at the time it happens
is done at once, with its own simulated time: the service at a station that cannot fail nor
change (booked.py works out its end on arrival), link delays and losses of links that cannot
fail, hops that pass a node unserved, the fan-out into deliveries, the delivery at the end
(recorded at its time). What does depend on that state waits for its time: the arrival at a
station (the order of arrivals makes its line), the crossing of a link that can fail.

Arrivals at booked stations wait in the courier's own calendar (a heap of (time, sequence,
message)) rather than as SimPy events: one SimPy event (`_pump`) takes them in time order, as
many as come before the next SimPy event of any kind. Nothing else happens in between (timed
changes, failures, statistics, event-driven stations are all SimPy events), so they are taken
exactly as SimPy would have taken them, at the cost of a heap push and pop each instead of an
Event object and a turn of SimPy's loop. Between the SimPy time `env.now` and the calendar's
time (`now`, passed along), only the booked stations are touched; everything that must happen
at its SimPy time (an event-driven station, a link that can fail) is scheduled as a SimPy event.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Sequence

import simpy

from network.booked import BookedStation
from network.due import Due
from network.link import Link
from network.message import Message
from network.recorder import Recorder
from network.station import Station

__all__ = ["Courier"]


class Courier:
    """Takes messages along their paths; `stations` and `links` are indexed as in the plan.

    Nothing is recorded after `limit` (the run stops by then); link losses count in the run's
    figures only inside `span` (a slice reports those of its own part of the run).
    """

    def __init__(
        self,
        env: simpy.Environment,
        rec: Recorder,
        links: Sequence[Link],
        limit: float,
        span: tuple[float, float],
    ) -> None:
        self.env, self.rec, self.links, self.limit, self.span = env, rec, links, limit, span
        self.stations: list[BookedStation | Station] = []  # set by the model once built
        self.calendar: list[tuple[float, int, Message]] = []
        self.order = itertools.count()
        self.pumps: list[float] = []  # heap: the times of the pump events scheduled
        self.pumping = False

    # ---------------------------------------------------------------- entry points

    def enter(self, msg: Message, t: float) -> None:
        """A new message, created at `t` (not before env.now), at the first hop of its path."""
        msg.pos = -1
        self.walk(msg, t, self.env.now)

    def served(self, msg: Message) -> None:
        """An event-driven station has served `msg` now."""
        now = self.env.now
        self.walk(msg, now, now)

    def _resume(self, event: simpy.Event) -> None:
        now = self.env.now
        self.walk(event._value, now, now)

    def _land(self, event: simpy.Event) -> None:
        """`msg` reaches an event-driven station."""
        msg: Message = event._value
        station = self.stations[msg.path[msg.pos][1]]
        assert isinstance(station, Station)
        station.arrive(msg)

    # ---------------------------------------------------------------- the way

    def walk(self, msg: Message, t: float, now: float) -> None:
        """`msg` is done at its current hop at time `t` (>= now, the calendar's time): take it on."""
        path = msg.path
        pos = msg.pos
        links = self.links
        while True:
            pos += 1
            if pos >= len(path):
                if msg.terminal < 0:
                    self._fan_out(msg, t, now)
                elif t <= self.limit:
                    self.rec.terminal(msg, t)
                return
            link_index, station_index = path[pos]
            if link_index >= 0:
                link = links[link_index]
                if link.plain:
                    t += link.latency()
                else:
                    t = self._cross(msg, pos, link, t, now)
                    if t < 0:
                        return
            if station_index >= 0:
                msg.pos = pos
                station = self.stations[station_index]
                if type(station) is not BookedStation:
                    self._to_event_station(msg, t)
                elif t > now:
                    heapq.heappush(self.calendar, (t, next(self.order), msg))
                    if not self.pumping and (not self.pumps or t < self.pumps[0]):
                        self._pump_at(t)
                else:
                    self._book(msg, station, t)  # type: ignore[arg-type]  # a BookedStation
                return

    def _book(self, msg: Message, station: BookedStation, now: float) -> None:
        end = station.book(msg, now)
        if end >= 0:
            self.walk(msg, end, now)
        else:
            self.rec.lost_message(msg, "queue_full", now)

    def _to_event_station(self, msg: Message, t: float) -> None:
        station = self.stations[msg.path[msg.pos][1]]
        assert isinstance(station, Station)
        if t > self.env.now:
            Due(self.env, t - self.env.now, msg, self._land)
        else:
            station.arrive(msg)

    def _pump_at(self, t: float) -> None:
        heapq.heappush(self.pumps, t)
        Due(self.env, t - self.env.now, None, self._pump)

    def _pump(self, event: simpy.Event) -> None:
        """Take the calendar's arrivals in time order, up to the next SimPy event."""
        heapq.heappop(self.pumps)  # this one: pumps fire in time order
        calendar, stations, env = self.calendar, self.stations, self.env
        pop, book = heapq.heappop, self._book
        now = env.now
        self.pumping = True  # arrivals booked meanwhile wait for the pump scheduled below
        # what is due now is taken now, whatever else is due at the same time (SimPy's order
        # among events at one time is arbitrary too): a pump never leaves its own time's work
        while calendar and (calendar[0][0] < env.peek() or calendar[0][0] <= now):
            t, _, msg = pop(calendar)
            book(msg, stations[msg.path[msg.pos][1]], t)  # type: ignore[arg-type]  # in the calendar: booked
        self.pumping = False
        if calendar and (not self.pumps or calendar[0][0] < self.pumps[0]):
            self._pump_at(calendar[0][0])

    def _cross(self, msg: Message, pos: int, link: Link, t: float, now: float) -> float:
        """Cross a link that is not plain at `t`: the time on its far side, or -1 if `msg` stops
        here (lost, or to cross at `t` if the link can fail and `t` is still to come; until the
        next SimPy event, the link is as it is at `now`)."""
        if link.volatile and t > now:
            msg.pos = pos - 1
            Due(self.env, t - self.env.now, msg, self._resume)
            return -1.0
        if link.down or (link.loss > 0 and link.chance() < link.loss):
            if t <= self.limit and self.span[0] <= t < self.span[1]:
                link.lost += 1
                self.rec.lost_message(msg, "link_down" if link.down else "link_loss", t)
            return -1.0
        return t + link.latency() + (msg.size / link.bandwidth if link.bandwidth else 0.0)

    def _fan_out(self, msg: Message, t: float, now: float) -> None:
        self.rec.forwarded(msg)
        route = msg.route
        for i, path in enumerate(route.deliveries):
            child = Message(
                created=msg.created,
                path=path,
                route=route,
                terminal=i,
                kind=msg.kind,
                cls=msg.cls,
                size=msg.size,
                source=msg.source,
                counted=msg.counted,
            )
            self.walk(child, t, now)  # the delivery path starts where the decision was taken
