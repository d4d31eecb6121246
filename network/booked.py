"""A steady station: first-come-first-served with c servers, its timetable worked out on arrival.

In a FIFO line with c servers that never fail nor change in number, a message's start and end
of service are known the moment it arrives: it takes the server that frees first (the heap of
the servers' free times), starts when that server frees (or at once), and ends a drawn service
time later. So a message costs such a station no scheduled event at all: the model goes on
from the returned end of service (network/courier.py, which inlines the case of a free server).
Stations whose servers can fail or change (timed changes, random failures) are event-driven
instead (network/station.py).

The figures are the same as the event-driven station's, exactly: the line's length at time t
is the number of booked messages whose service starts after t (`waiting`, in start order, as
FIFO starts are non-decreasing); its time-integral, the busy time credited at each service's
start and the count of services ended are brought up to date when asked (`account`), by
walking the starts that have passed since. Each message brings its own service time (drawn
with its journey, network/journeys.py).
"""

from __future__ import annotations

import heapq
from collections import deque

import simpy

from network.plan import StationPlan

__all__ = ["LOST", "BookedStation"]

LOST = -1.0  # what `book` returns for a message turned away by a full line


class BookedStation:
    def __init__(self, env: simpy.Environment, plan: StationPlan) -> None:
        if plan.servers < 1:
            raise ValueError(f"station {plan.name}: a booked station needs at least one server")
        self.env = env
        self.name = plan.name
        self.node_class = plan.node_class
        self.servers = plan.servers
        self.limit = plan.queue_limit
        now = env.now
        self.free = [now] * plan.servers  # heap: when each server is free
        self.waiting: deque[tuple[float, float]] = deque()  # (start, service) of the line, in order
        self.booked = 0  # messages accepted since the start
        self.t_queue = now
        self.area_queue = self.busy_time = 0.0
        self.reset()

    # ---------------------------------------------------------------- statistics

    def reset(self) -> None:
        """Start the integrals and counts afresh (at the end of the warm-up)."""
        self._catch_up(self.env.now)
        now = self.env.now
        self.t_capacity = now
        self.area_queue = 0.0
        self.area_capacity = 0.0
        self.busy_time = 0.0
        self.max_queue = len(self.waiting)
        self.lost = 0
        self._ended_before = self._ended(now)
        self.served = 0

    def account(self) -> None:
        """Bring the integrals, the busy time and the count served up to now."""
        now = self.env.now
        self._catch_up(now)
        self.area_capacity += self.servers * (now - self.t_capacity)
        self.t_capacity = now
        self.served = self._ended(now) - self._ended_before

    def _catch_up(self, now: float) -> None:
        """Start the services of the line due by `now`, integrating its length on the way."""
        waiting = self.waiting
        t, area = self.t_queue, self.area_queue
        while waiting and waiting[0][0] <= now:
            start, service = waiting.popleft()
            area += (len(waiting) + 1) * (start - t)
            t = start
            self.busy_time += service
        self.area_queue = area + len(waiting) * (now - t)
        self.t_queue = now

    def _ended(self, now: float) -> int:
        """Services ended by `now`: every booking but those waiting or under way (a server free
        after `now` is serving: a booked message never leaves its server idle)."""
        return self.booked - len(self.waiting) - sum(1 for f in self.free if f > now)

    # ---------------------------------------------------------------- arrivals

    def book(self, now: float, service: float) -> float:
        """A message needing `service` seconds arrives at `now` (env.now, or later with no SimPy
        event in between): the time its service ends, or LOST if the line is full."""
        free = self.free
        first: float = free[0]
        if first <= now:  # a server is free, so nobody waits (courier.py inlines this case)
            heapq.heapreplace(free, now + service)
            self.busy_time += service
            self.booked += 1
            return now + service
        waiting = self.waiting
        if waiting and waiting[0][0] <= now:
            self._catch_up(now)
        if self.limit is not None and len(waiting) >= self.limit:
            self.lost += 1
            return LOST
        self.area_queue += len(waiting) * (now - self.t_queue)
        self.t_queue = now
        heapq.heapreplace(free, first + service)
        waiting.append((first, service))
        if len(waiting) > self.max_queue:
            self.max_queue = len(waiting)
        self.booked += 1
        return first + service
