"""One replication of the SimPy model: stations, links, arrivals, changes, statistics.

The model is event-light on purpose (see ARCHITECTURE.md, "SimPy traps"): no SimPy process per
message, nor per server. Everything a message does that does not depend on the network's state
is drawn when its exchange is created (journeys.py: service times, latencies, losses). A station
that cannot fail nor change works out a message's end of service on arrival (booked.py), and the
message goes straight on from there (courier.py): link delays, hops that pass a node unserved,
the fan-out into deliveries and the delivery at the end are done at once, each with its own
simulated time. Only the arrival at the next station waits for its time (arrivals in time order
make the line), in the courier's calendar, which one SimPy event drains up to the next SimPy
event; the traffic sources take their turns in that calendar too (arrivals.py). Stations that
can fail or change are event-driven (station.py: a SimPy event per arrival and per service),
and a link that can fail is crossed by a SimPy event at the crossing's time. SimPy processes
remain only for the rare things: timed changes, random failures, and the statistics window.

A run may be a slice of a longer one (network/slicing.py): it starts at `plan.begin` with an
empty network and measures its own window [plan.warmup, plan.end).

Streams, spawned from the replication's SeedSequence: arrival times and route picks (one child
per source), journeys (one stream per source and batch of arrivals), random failures (one
child per failure). So the same plan and seed give the same result bit for bit; changing one
source's routes leaves the arrival times of all sources as they were; and a message's draws
are its own (common random numbers), whatever happens to the messages around it.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import Any

import numpy as np
import simpy

from network.arrivals import Arrivals
from network.booked import BookedStation
from network.courier import Courier
from network.itineraries import Itineraries, Parts
from network.link import Link
from network.plan import Action, FailurePlan, Plan
from network.recorder import Recorder, ReplicationResult
from network.sampling import Distributions, draws
from network.series import Snapshots, utilisation
from network.station import Station
from scenarios.schema import Exponential

__all__ = ["MAX_LOGGED_EVENTS", "replication_seed", "run_replication"]

MAX_LOGGED_EVENTS = 200  # random failures beyond this are counted, not listed, in the event log
_PROGRESS_STEPS = 50
# after the window, the run goes on in steps this long (at most) until its messages are resolved:
# short, because traffic goes on meanwhile, and a slice's drain may be most of a day
_DRAIN_STEP = 1.0
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
        gaps, picks, journeys, failures = seq.spawn(4)
        changing, failing = _volatile(plan)
        self.links = [Link(lp, volatile=i in failing) for i, lp in enumerate(plan.links)]
        self.courier = courier = Courier(env, self.rec, plan.end + plan.drain, plan.span)
        self.stations: list[BookedStation | Station] = [
            Station(env, sp, courier.served, courier.station_lost)
            if i in changing or sp.servers < 1
            else BookedStation(env, sp)
            for i, sp in enumerate(plan.stations)
        ]
        self.snapshots = Snapshots(plan, self.stations)
        parts = Parts(
            stations=self.stations,
            times=[sp.times for sp in plan.stations],
            links=self.links,
            latencies=[lp.spec.latency for lp in plan.links],
            kinds=len(plan.kinds),
            distributions=Distributions(),
        )
        n = len(plan.sources)
        for i, (src, g, p) in enumerate(zip(plan.sources, gaps.spawn(n), picks.spawn(n), strict=True)):
            itineraries = Itineraries(i, src, parts)
            streams = np.random.default_rng(g), np.random.default_rng(p), journeys
            Arrivals(env, itineraries, streams, self.rec, courier, plan.begin)
        for action in plan.actions:
            env.process(self._act(action))
        for f, rng in zip(plan.failures, _rngs(failures, len(plan.failures)), strict=True):
            env.process(self._fail_randomly(f, rng))
        env.process(self._window())

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
        """Up Exp(mtbf), down Exp(mttr), again and again from time 0: a run that begins later
        (a slice) lives through the same failures as the run from 0, those before its begin unseen."""
        up, down = draws(Exponential(mean=f.mtbf), rng), draws(Exponential(mean=f.mttr), rng)
        if f.station >= 0:
            name = self.stations[f.station].name
        else:
            name = "link " + " - ".join(self.stations[i].name for i in self.links[f.link].ends)
        t = 0.0
        while True:
            fails = t + up()
            t = fails + down()
            if t <= self.env.now:
                continue  # over before this run begins
            if fails >= self.env.now:
                yield self.env.timeout(fails - self.env.now)
                self._log(f"{name} fails (random)")
            self._set_down(f, True)
            yield self.env.timeout(t - self.env.now)
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
        with _without_cycle_collection():
            return self._run(index, progress)

    def _run(self, index: int, progress: Progress | None) -> ReplicationResult:
        started = time.perf_counter()
        plan, env = self.plan, self.env
        span = plan.end - plan.begin
        for step in range(1, _PROGRESS_STEPS + 1):
            env.run(until=plan.begin + span * step / _PROGRESS_STEPS)
            self.rec.flush()
            if progress:
                progress(env.now - plan.begin, self.rec.messages)
        self.snapshots.take(env.now)
        stations = _station_figures(self.stations, plan.duration)
        limit = plan.end + plan.drain
        while self.rec.unresolved() > 0 and env.now < limit:
            env.run(until=min(limit, env.now + max(min(plan.drain / 20, _DRAIN_STEP), 1e-3)))
        if self.hidden_events:
            self.events.append(
                (env.now - plan.warmup, f"... and {self.hidden_events} more random failures and repairs")
            )
        return _result(
            index, self.rec, stations, self.snapshots, self.links, self.events, time.perf_counter() - started
        )


@contextlib.contextmanager
def _without_cycle_collection() -> Iterator[None]:
    """Python's cyclic garbage collector off while the model runs: the model makes no reference
    cycles as it goes, but it makes millions of tuples and lists, and every few hundred of them
    would start a collection that walks the objects alive (the plan's routes among them)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _station_figures(stations: Sequence[BookedStation | Station], duration: float) -> dict[str, np.ndarray]:
    """Each station's figures over the window of `duration` seconds, named as ReplicationResult's fields."""
    for s in stations:
        s.account()
    capacity = np.array([s.area_capacity for s in stations])
    busy = np.array([s.busy_time for s in stations])
    return {
        "station_busy": busy,
        "station_capacity": capacity,
        "station_utilisation": utilisation(busy, capacity),
        "station_queue": np.array([s.area_queue for s in stations]) / duration,
        "station_max_queue": np.array([s.max_queue for s in stations]),
        "station_served": np.array([s.served for s in stations]),
        "station_lost": np.array([s.lost for s in stations]),
    }


# the result's arrays that the recorder holds ready, under the same names
_RECORDED = (
    "created", "expected", "delivered", "on_time", "lost", "source_arrivals", "source_declarations",
    "group_expected", "group_on_time", "series_done", "series_latency", "series_lost",
)  # fmt: skip


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
        latencies=rec.latencies_by_kind(),
        lost_reasons=dict(sorted(rec.lost_reasons.items())),
        source_functional=rec.functional(),
        link_lost=sum(link.lost for link in links),
        unresolved=rec.unresolved(),
        events=events,
        messages=rec.messages,
        wall_seconds=wall,
        **{name: getattr(rec, name) for name in _RECORDED},
        **stations,
        **snapshots.series(),
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
