"""One replication of the SimPy model: stations, links, arrivals, changes, statistics.

The model is event-light on purpose (see ARCHITECTURE.md, "SimPy traps"): no SimPy process per
message, nor per server. A station that cannot fail nor change works out a message's end of
service on arrival (booked.py), and the message goes straight on from there (courier.py): link
delays, hops that pass a node unserved, the fan-out into deliveries and the delivery at the end
are done at once, each with its own simulated time. Only the arrival at the next station waits
for its time (arrivals in time order make the line), in the courier's calendar, which one SimPy
event drains up to the next SimPy event. Stations that can fail or change are event-driven
(station.py: a SimPy event per arrival and per service), and a link that can fail is crossed by
a SimPy event at the crossing's time. Traffic sources emit their arrivals in batches
(arrivals.py). SimPy processes remain only for the rare things: timed changes, random
failures, and the statistics window.

A run may be a slice of a longer one (network/slicing.py): it starts at `plan.begin` with an
empty network and measures its own window [plan.warmup, plan.end).

Every component draws from its own random stream, spawned from the replication's SeedSequence
(arrivals, route picks, services, links, failures; one child per source, station, link), so
the same plan and seed give the same result bit for bit, and changing one source's routes
leaves the arrival times of all sources as they were.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Sequence
from typing import Any

import numpy as np
import simpy

from network.arrivals import Arrivals
from network.booked import BookedStation
from network.courier import Courier
from network.link import Link
from network.message import Message
from network.plan import Action, FailurePlan, Plan, StationPlan
from network.recorder import Recorder, ReplicationResult
from network.sampling import Draw, draws
from network.series import Snapshots
from network.slicing import slice_seed
from network.station import Station
from scenarios.schema import Distribution, Exponential

__all__ = ["MAX_LOGGED_EVENTS", "replication_seed", "run_replication"]

MAX_LOGGED_EVENTS = 200  # random failures beyond this are counted, not listed, in the event log
_PROGRESS_STEPS = 50
Progress = Callable[[float, int], None]  # (simulated seconds since the run's begin, messages so far)


def replication_seed(seed: int, replications: int, index: int) -> np.random.SeedSequence:
    """The SeedSequence of replication `index`: the index-th child of SeedSequence(seed)."""
    return np.random.SeedSequence(seed).spawn(replications)[index]


def _rngs(seq: np.random.SeedSequence, n: int) -> list[np.random.Generator]:
    return [np.random.default_rng(s) for s in seq.spawn(n)]


def _volatile(plan: Plan) -> tuple[set[int], set[int]]:
    """The stations and links that can fail or change (timed changes, random failures)."""
    stations = {i for a in plan.actions for i in a.stations} | {f.station for f in plan.failures if f.station >= 0}
    links = {i for a in plan.actions for i in a.links} | {f.link for f in plan.failures if f.link >= 0}
    return stations, links


class _Model:
    def __init__(self, plan: Plan, seq: np.random.SeedSequence) -> None:
        self.plan = plan
        self.env = env = simpy.Environment(initial_time=plan.begin)
        self.rec = Recorder(plan)
        self.events: list[tuple[float, str]] = []
        self.hidden_events = 0
        arrivals, picks, services, links, failures = seq.spawn(5)
        if plan.part > 0:  # a later slice: the replication's arrivals, services etc. of its own
            services, links, failures = slice_seed(seq, plan.part).spawn(3)
        changing, failing = _volatile(plan)
        self.links = [
            Link(lp, rng, volatile=i in failing)
            for i, (lp, rng) in enumerate(zip(plan.links, _rngs(links, len(plan.links)), strict=True))
        ]
        self.courier = courier = Courier(env, self.rec, self.links, plan.end + plan.drain, plan.span)
        self.stations: list[BookedStation | Station] = [
            Station(env, sp, self._station_draws(sp, rng), courier.served, self._lost)
            if i in changing or sp.servers < 1
            else BookedStation(env, sp, self._station_draws(sp, rng))
            for i, (sp, rng) in enumerate(zip(plan.stations, _rngs(services, len(plan.stations)), strict=True))
        ]
        courier.stations = self.stations
        self.snapshots = Snapshots(plan, self.stations)
        for i, (src, a, p) in enumerate(
            zip(plan.sources, arrivals.spawn(len(plan.sources)), picks.spawn(len(plan.sources)), strict=True)
        ):
            rngs = np.random.default_rng(a), np.random.default_rng(p)
            Arrivals(env, i, src, *rngs, self.rec, courier.enter, plan.begin)
        for action in plan.actions:
            env.process(self._act(action))
        for f, rng in zip(plan.failures, _rngs(failures, len(plan.failures)), strict=True):
            env.process(self._fail_randomly(f, rng))
        env.process(self._window())

    @staticmethod
    def _station_draws(sp: StationPlan, rng: np.random.Generator) -> list[Draw]:
        # one draw function per distinct distribution, all from the station's own stream
        shared: dict[Distribution, Draw] = {}
        for d in sp.times:
            if d not in shared:
                shared[d] = draws(d, rng)
        return [shared[d] for d in sp.times]

    # ---------------------------------------------------------------- the rest

    def _lost(self, msg: Message, reason: str, where: str) -> None:
        self.rec.lost_message(msg, reason, self.env.now)

    # ---------------------------------------------------------------- processes

    def _log(self, label: str) -> None:
        if not self.plan.span[0] <= self.env.now < self.plan.span[1]:
            return
        if len(self.events) < MAX_LOGGED_EVENTS:
            self.events.append((self.env.now - self.plan.warmup, label))
        else:
            self.hidden_events += 1

    def _apply(self, action: Action) -> None:
        for i in action.stations:
            station = self._changing(i)
            if action.op == "fail":
                station.fail()
            elif action.op == "restore":
                station.restore()
            else:
                station.set_servers(action.servers)
        for i in action.links:
            self.links[i].down = action.op == "fail"
        self._log(action.label)

    def _act(self, action: Action) -> Generator[simpy.Event, Any, None]:
        yield self.env.timeout(max(0.0, action.at - self.env.now))
        self._apply(action)

    def _fail_randomly(self, f: FailurePlan, rng: np.random.Generator) -> Generator[simpy.Event, Any, None]:
        up, down = draws(Exponential(mean=f.mtbf), rng), draws(Exponential(mean=f.mttr), rng)
        if f.station >= 0:
            name = self.stations[f.station].name
        else:
            name = "link " + " - ".join(self.stations[i].name for i in self.links[f.link].ends)
        while True:
            yield self.env.timeout(up())
            self._set_down(f, True)
            self._log(f"{name} fails (random)")
            yield self.env.timeout(down())
            self._set_down(f, False)
            self._log(f"{name} repaired")

    def _set_down(self, f: FailurePlan, down: bool) -> None:
        if f.station < 0:
            self.links[f.link].down = down
        elif down:
            self._changing(f.station).fail()
        else:
            self._changing(f.station).restore()

    def _changing(self, i: int) -> Station:
        station = self.stations[i]
        assert isinstance(station, Station), "a station that can change is event-driven (_volatile)"
        return station

    def _window(self) -> Generator[simpy.Event, Any, None]:
        """Reset the statistics at the end of the warm-up, then snapshot every interval."""
        plan = self.plan
        yield self.env.timeout(plan.warmup - self.env.now)
        for station in self.stations:
            station.account()
            station.reset()
        self.snapshots.start(self.env.now)
        for k in range(1, plan.intervals):
            yield self.env.timeout(plan.warmup + k * plan.interval - self.env.now)
            self.snapshots.take(self.env.now)

    # ---------------------------------------------------------------- the run

    def run(self, index: int, progress: Progress | None) -> ReplicationResult:
        started = time.perf_counter()
        plan, env = self.plan, self.env
        span = plan.end - plan.begin
        for step in range(1, _PROGRESS_STEPS + 1):
            env.run(until=plan.begin + span * step / _PROGRESS_STEPS)
            if progress:
                progress(env.now - plan.begin, self.rec.messages)
        self.snapshots.take(env.now)
        stations = _station_figures(self.stations, plan.duration)
        limit = plan.end + plan.drain
        while self.rec.inflight > 0 and env.now < limit:
            env.run(until=min(limit, env.now + max(plan.drain / 20, 1e-3)))
        if self.hidden_events:
            self.events.append(
                (env.now - plan.warmup, f"... and {self.hidden_events} more random failures and repairs")
            )
        return _result(
            index, self.rec, stations, self.snapshots, self.links, self.events, time.perf_counter() - started
        )


def _station_figures(stations: Sequence[BookedStation | Station], duration: float) -> dict[str, np.ndarray]:
    for s in stations:
        s.account()
    capacity = np.array([s.area_capacity for s in stations])
    busy = np.array([s.busy_time for s in stations])
    return {
        "busy": busy,
        "capacity": capacity,
        "utilisation": np.divide(busy, capacity, out=np.zeros_like(busy), where=capacity > 0),
        "queue": np.array([s.area_queue for s in stations]) / duration,
        "max_queue": np.array([s.max_queue for s in stations]),
        "served": np.array([s.served for s in stations]),
        "lost": np.array([s.lost for s in stations]),
    }


def _result(
    index: int,
    rec: Recorder,
    stations: dict[str, np.ndarray],
    snapshots: Snapshots,
    links: Sequence[Link],
    events: list[tuple[float, str]],
    wall: float,
) -> ReplicationResult:
    return ReplicationResult(
        index=index,
        created=np.array(rec.created),
        expected=np.array(rec.expected),
        delivered=np.array(rec.delivered),
        on_time=np.array(rec.on_time),
        lost=np.array(rec.lost),
        latencies=[np.frombuffer(a, dtype=np.float64).copy() for a in rec.latencies],
        lost_reasons=dict(sorted(rec.lost_reasons.items())),
        source_arrivals=np.array(rec.source_arrivals),
        source_functional=np.array(rec.source_functional),
        source_declarations=np.array(rec.source_declarations),
        station_utilisation=stations["utilisation"],
        station_queue=stations["queue"],
        station_max_queue=stations["max_queue"],
        station_served=stations["served"],
        station_lost=stations["lost"],
        station_busy=stations["busy"],
        station_capacity=stations["capacity"],
        link_lost=sum(link.lost for link in links),
        group_expected=np.array(rec.group_expected),
        group_on_time=np.array(rec.group_on_time),
        series_done=np.array(rec.series_done),
        series_latency=np.array(rec.series_latency),
        series_lost=np.array(rec.series_lost),
        series_queue=snapshots.queue(),
        series_utilisation=snapshots.utilisation(),
        series_class_queue=snapshots.class_queue(),
        series_class_utilisation=snapshots.class_utilisation(),
        unresolved=rec.inflight,
        events=events,
        messages=rec.messages,
        wall_seconds=wall,
    )


def run_replication(
    plan: Plan, index: int, seq: np.random.SeedSequence | None = None, progress: Progress | None = None
) -> ReplicationResult:
    """Run replication `index` of `plan` (its stream: `replication_seed(plan.seed, plan.replications, index)`).

    `progress(simulated seconds since plan.begin, messages so far)` is called as simulated
    time advances. Deterministic: the same plan and
    stream give an identical result (apart from `wall_seconds`).
    """
    stream = seq if seq is not None else replication_seed(plan.seed, plan.replications, index)
    return _Model(plan, stream).run(index, progress)
