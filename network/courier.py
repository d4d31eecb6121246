"""A message's way through the network: the model's hot path.

A message carries its journey (network/journeys.py): its itinerary's stops and its own draws,
made when its exchange was created. What does not depend on the state of the network is done
at once, with its own simulated time: the gaps between stops (plain links), the crossing of a
link that loses messages but cannot fail, the fan-out into deliveries, the delivery at the end
(filed at its time). What does depend on that state waits for its time: the arrival at a
station (the order of arrivals makes its line), the crossing of a link that can fail.

Arrivals at booked stations (booked.py: a steady FIFO line, its timetable worked out on arrival)
wait in the courier's own calendar, a heap of (time, sequence, position, stops, draws), rather
than as SimPy events: one SimPy event (`_pump`) takes them in time order, as many as come before
the next SimPy event of any kind. Nothing else happens in between (timed changes, failures,
statistics, event-driven stations are all SimPy events), so they are taken exactly as SimPy
would have taken them, at the cost of a heap push and pop each instead of an Event object and a
turn of SimPy's loop. Between the SimPy time `env.now` and the calendar's time (`now`, passed
along), only the booked stations are touched; everything that must happen at its SimPy time (an
event-driven station, a link that can fail) is scheduled as a SimPy event, which ends the pump's
run (`horizon`).
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Sequence
from typing import Any

import simpy

from network.booked import BookedStation
from network.due import Due
from network.itineraries import Crossing, FanOut, Terminal
from network.recorder import Recorder
from network.station import Station

__all__ = ["Courier"]

Stops = Sequence[Any]  # an itinerary's stops (network/journeys.py)
Item = tuple[int, Stops, list[float]]  # a message at a stop: (position, stops, draws)
# the calendar's entries: (time, sequence, position, stops, draws), or, at position FEED
# (network/arrivals.py), (time, sequence, FEED, the traffic source, [])
Entry = tuple[float, int, int, Any, list[float]]


class Courier:
    """Takes messages along their itineraries.

    Nothing is filed after `limit` (the run stops by then); link losses count in the run's
    figures only inside `span` (a slice reports those of its own part of the run).
    """

    def __init__(self, env: simpy.Environment, rec: Recorder, limit: float, span: tuple[float, float]) -> None:
        self.env, self.rec, self.limit, self.span = env, rec, limit, span
        self.calendar: list[Entry] = []
        self.order = itertools.count()
        self.pumps: list[float] = []  # heap: the times of the pump events scheduled
        self.pumping = False
        self.horizon = math.inf  # while pumping: the time of the next SimPy event

    # ---------------------------------------------------------------- the way

    def go(self, t: float, j: int, stops: Stops, draws: list[float], now: float) -> None:
        """The message reaches position `j` of its itinerary at `t` (>= now, the calendar's time)."""
        while True:
            stop = stops[j]
            kind = stop.__class__
            if kind is BookedStation:
                heapq.heappush(self.calendar, (t, next(self.order), j, stops, draws))
                if not self.pumping and (not self.pumps or t < self.pumps[0]):
                    self._pump_at(t)
                return
            if kind is Terminal:
                if t <= self.limit:
                    rec = self.rec
                    rec.done_at.append(t)
                    rec.done_created.append(draws[-1])
                    rec.done_code.append(stop.code)
                return
            if kind is FanOut:
                self._fan_out(t, stop, stops, draws, now)
                return
            if kind is Station:
                self._to_station(t, (j, stops, draws))
                return
            t = self._cross(t, j, stop, stops, draws, now)
            if t < 0:
                return
            t += draws[j + 1]
            j += 2

    def _fan_out(self, t: float, fan: FanOut, stops: Stops, draws: list[float], now: float) -> None:
        """The submit leg reaches the routing point at `t`: its deliveries start there."""
        self.rec.forwarded(fan, draws[-1])
        calendar, order = self.calendar, self.order
        for b in fan.starts:
            j = b + 1
            if stops[j].__class__ is BookedStation and self.pumping:  # the pump takes it (the hot path)
                heapq.heappush(calendar, (t + draws[b], next(order), j, stops, draws))
            else:
                self.go(t + draws[b], j, stops, draws, now)

    def served(self, item: Item) -> None:
        """An event-driven station has served `item` now."""
        j, stops, draws = item
        now = self.env.now
        self.go(now + draws[j + 1], j + 2, stops, draws, now)

    def station_lost(self, item: Item, reason: str) -> None:
        """An event-driven station turned `item` away now."""
        self.lost(self.env.now, *item, reason)

    def lost(self, t: float, j: int, stops: Stops, draws: list[float], reason: str) -> None:
        """The message at position `j` is lost at `t`: it stands for its leg's terminal messages
        (all the deliveries, on a submit leg)."""
        end = next(s for s in stops[j + 2 :: 2] if isinstance(s, Terminal | FanOut))
        terminals = len(end.starts) if isinstance(end, FanOut) else 1
        self.rec.lost_message(end.kind, terminals, draws[-1], reason, t)

    def _later(self, t: float, item: Item, callback: Any) -> None:
        Due(self.env, t - self.env.now, item, callback)
        if t < self.horizon:
            self.horizon = t

    def _to_station(self, t: float, item: Item) -> None:
        if t > self.env.now:
            self._later(t, item, self._land)
        else:
            j, stops, draws = item
            stops[j].arrive(item, draws[j])

    def _land(self, event: simpy.Event) -> None:
        j, stops, draws = event._value
        stops[j].arrive(event._value, draws[j])

    def _cross(self, t: float, j: int, crossing: Crossing, stops: Stops, draws: list[float], now: float) -> float:
        """Cross a link that is not plain at `t`: the time on its far side, or -1 if the message
        stops here (lost, or to cross at `t` if the link can fail and `t` is still to come; until
        the next SimPy event, the link is as it is at `now`)."""
        link = crossing.link
        if link.volatile and t > now:
            self._later(t, (j, stops, draws), self._resume)
            return -1.0
        value = draws[j]
        if link.down or value < 0:
            if t <= self.limit and self.span[0] <= t < self.span[1]:
                link.lost += 1
                self.lost(t, j, stops, draws, "link_down" if link.down else "link_loss")
            return -1.0
        return t + value

    def _resume(self, event: simpy.Event) -> None:
        now = self.env.now
        j, stops, draws = event._value
        self.go(now, j, stops, draws, now)

    # ---------------------------------------------------------------- the calendar

    def wake(self) -> None:
        """Entries were pushed straight into the calendar: make sure a pump will take them."""
        calendar = self.calendar
        if calendar and not self.pumping and (not self.pumps or calendar[0][0] < self.pumps[0]):
            self._pump_at(calendar[0][0])

    def _pump_at(self, t: float) -> None:
        heapq.heappush(self.pumps, t)
        Due(self.env, t - self.env.now, None, self._pump)

    def _pump(self, event: simpy.Event) -> None:
        """Take the calendar's arrivals in time order, up to the next SimPy event. The hot path,
        inlined on purpose: a booked station with a free server (BookedStation.book's first case),
        the gap on, the next stop if a booked station or a delivery's end; anything else by `go`."""
        heapq.heappop(self.pumps)  # this one: pumps fire in time order
        calendar, pop, push, order = self.calendar, heapq.heappop, heapq.heappush, self.order.__next__
        replace, limit, rec = heapq.heapreplace, self.limit, self.rec
        done_at, done_created, done_code = rec.done_at.append, rec.done_created.append, rec.done_code.append
        start = self.env.now
        self.horizon = horizon = self.env.peek()
        self.pumping = True  # arrivals booked meanwhile wait for the pump scheduled below
        while calendar:
            now, _, j, stops, draws = entry = pop(calendar)
            # a pump never leaves its own time's work (SimPy's order at one time is arbitrary too)
            if now >= horizon and now > start:
                push(calendar, entry)
                break
            if j < 0:  # a traffic source's turn (network/arrivals.py)
                stops.feed(now)
                horizon = self.horizon
                continue
            station, service = stops[j], draws[j]
            free = station.free
            if free[0] <= now:
                t = now + service
                replace(free, t)
                station.busy_time += service
                station.booked += 1
            else:
                t = station.book(now, service)
                if t < 0:
                    self.lost(now, j, stops, draws, "queue_full")
                    continue
            t += draws[j + 1]
            j += 2
            stop = stops[j]
            if stop.__class__ is BookedStation:
                push(calendar, (t, order(), j, stops, draws))
            elif stop.__class__ is Terminal:
                if t <= limit:
                    done_at(t)
                    done_created(draws[-1])
                    done_code(stop.code)
            else:
                self.go(t, j, stops, draws, now)
                horizon = self.horizon
        self.pumping = False
        if calendar and (not self.pumps or calendar[0][0] < self.pumps[0]):
            self._pump_at(calendar[0][0])
