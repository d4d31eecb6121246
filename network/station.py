"""An event-driven station: servers working through a first-come-first-served line of messages.

The model uses it for the stations that can fail or change their number of servers (timed
changes, random failures); every other station works out its timetable on arrival, with the
same figures and no event of its own (booked.py).

The line is a deque (SimPy's Store.get is O(n) at long queues; a deque pops in O(1)). A
service is one SimPy timeout whose callback ends it and starts the next message in line, so a
message costs the station one scheduled event and no SimPy process. (A first version ran one
long-lived process per server; on the world network, where most stations are idle most of the
time, each arrival then also cost a wake-up event and a process switch: the callbacks ran the
same model about 1.6 times as fast.)

Statistics: the time-integral of the line length is kept exactly (updated only when the line
changes, so idle stations cost nothing); busy time is credited when a service starts, so a
service straddling the end of an interval counts in the interval it started in.

A failed station starts no new service (one under way completes) and keeps its line; a line of
`queue_limit` messages turns further arrivals away (lost).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import simpy

from network.due import Due
from network.plan import StationPlan

__all__ = ["Station"]


class Station:
    """Serves what arrives (`arrive(item, service)`: anything the model hands it, with its service
    time) and hands it back through `done(item)`, or `lost(item, reason)` when its line is full."""

    def __init__(
        self,
        env: simpy.Environment,
        plan: StationPlan,
        done: Callable[[Any], None],
        lost: Callable[[Any, str], None],
    ) -> None:
        self.env = env
        self.name = plan.name
        self.node_class = plan.node_class
        self.queue: deque[tuple[Any, float]] = deque()
        self.limit = plan.queue_limit
        self._done = done
        self._lost = lost
        self.servers = plan.servers
        self.busy = 0
        self.down = False
        self.reset()

    # ---------------------------------------------------------------- statistics

    def reset(self) -> None:
        """Start the integrals and counts afresh (at the end of the warm-up)."""
        now = self.env.now
        self.t_queue = self.t_capacity = now
        self.area_queue = 0.0
        self.area_capacity = 0.0
        self.busy_time = 0.0
        self.max_queue = len(self.queue)
        self.served = 0
        self.lost = 0

    def account(self) -> None:
        """Bring the integrals of line length and capacity up to now."""
        self._account_queue()
        now = self.env.now
        self.area_capacity += self.servers * (now - self.t_capacity)
        self.t_capacity = now

    def _account_queue(self) -> None:
        now = self.env.now
        self.area_queue += len(self.queue) * (now - self.t_queue)
        self.t_queue = now

    # ---------------------------------------------------------------- arrivals and service

    def arrive(self, item: Any, service: float) -> None:
        if self.busy < self.servers and not self.down:
            self._start(item, service)
            return
        queue = self.queue
        if self.limit is not None and len(queue) >= self.limit:
            self.lost += 1
            self._lost(item, "queue_full")
            return
        self._account_queue()
        queue.append((item, service))
        if len(queue) > self.max_queue:
            self.max_queue = len(queue)

    def _start(self, item: Any, service: float) -> None:
        self.busy += 1
        self.busy_time += service
        Due(self.env, service, item, self._finish)

    def _finish(self, event: simpy.Event) -> None:
        self.busy -= 1
        self.served += 1
        if self.queue and self.busy < self.servers and not self.down:
            self._account_queue()
            self._start(*self.queue.popleft())
        self._done(event._value)

    def _start_waiting(self) -> None:
        while self.queue and self.busy < self.servers and not self.down:
            self._account_queue()
            self._start(*self.queue.popleft())

    # ---------------------------------------------------------------- changes

    def set_servers(self, servers: int) -> None:
        """Change the number of servers; services under way beyond it complete first."""
        self.account()
        self.servers = servers
        self._start_waiting()

    def fail(self) -> None:
        self.down = True

    def restore(self) -> None:
        self.down = False
        self._start_waiting()
