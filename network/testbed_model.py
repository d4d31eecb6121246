"""The live testbed simulated: a calibrated model (scenarios/calibrated.py) at one offered load.

Each request follows the live path, one SimPy process per request:

1. it is due at its intended send time: the live generator's own schedule when the conditions
   carry it (`arrivals_s`: the same arrivals in both worlds, so that a prediction and its
   measurement differ by the network, not by the draw), else a Poisson process at the offered
   rate; latency counts from there, as the generator counts it;
2. the generator sends it: half the generator's CPU per request, on one of its processes (each
   one interpreter lock) and one of the machine's cores;
3. the path's delay (the kernel, sockets, TLS, what no process's CPU shows): its curve's at the
   offered rate, through the curve's three quantiles there (network/path_delay.py's
   PiecewiseDelay), or the model's constant one (a fixed part and a lognormal);
4. the core: its transport threads' CPU (a core, no lock), then half its handler's CPU, run by
   the core's event loop: each turn of the loop runs every callback ready when it began, under
   the core's one interpreter lock (and a core), which it lets go between turns or, when the
   audit writer waits for it, after the interpreter's switch interval;
5. the forwards, all at once: per destination, an agency host (drawn by the hosts' shares of
   the forwards, `host.shares`, evenly without them) spends its CPU per
   forward under its lock and a core, then its agencies' service time (a wait, exponential),
   the forward's round trip (`host.forward_ms`, a wait) half before and half after;
   a destination whose host is down refuses at once: a consultation then FAILS, a notice is
   QUEUED (a parcel for its agency, drawn by the host's `notice_spread`); a notice to an agency
   that has parcels waiting is QUEUED behind them without a forward (the outbox keeps each
   agency's order);
6. the other half of the handler's CPU (lock and core);
7. the group commit: the audit writer commits every record waiting as soon as it is free
   (crossroads/audit_writer.py's rule: it never waits for more), in one commit of fixed +
   per_record * n milliseconds uncontended, of which its CPU is spent under
   the core's interpreter lock and on a core and the rest is a wait (SQLite, the fsync), in
   `handoffs` turns: each turn takes the lock back behind the handler's work queued for it, which
   is how a busy handler slows the commits down (and so lets their batches grow);
8. the generator reads the answer: the other half of its CPU.
The outbox (crossroads/outbox.py's Redelivery, its rule and constants): a loop that looks at the
agencies with committed parcels every DEFAULT_RETRY_MAX seconds while none has any, every
DEFAULT_RETRY_INITIAL while some have (its phase is unknown: drawn), and drains each such agency
in order, one parcel at a time: half the handler's CPU, then the forward, then an outbox write;
an attempt at a host that is down fails (an outbox write too) and backs that agency off,
doubling from DEFAULT_RETRY_INITIAL up to DEFAULT_RETRY_MAX. The outbox's writes are group-committed
by a writer of their own, which takes turns with the audit writer at the database (one write
transaction at a time). A killed host serves again at its window's end (when the live one did,
restarted), its start-up CPU (`host.startup_cpu_ms`) spent on a core just before.
A share of the requests (the model's `unroutable`) has nowhere to go: it takes the path without
the forwards, is audited FAILED, and counts in neither the throughput nor the latencies (the
generator counts only OK answers).

Each CPU demand per request (the generator's, the core's handler and transport, the hosts') is
the model's, times its factor at the offered rate (`load`: the CPU a process spends per request
falls as the load grows past the levels its line was fitted on).

The machine's cores are one SimPy resource every CPU step holds (first come, first served: the
steps are short beside the kernel's time slice); the core's background CPU holds one for its
share of each 10 ms. A core stopped (SIGSTOP) starts no step, and a commit that ends while it is
stopped ends when it resumes.

Each request's own draws (its kind, whether it has nowhere to go, its forwards' hosts, its
path's delay, its agencies' service times) are made at its arrival, in arrival order, whether the
model uses them or not; the outbox has draws of its own. So the worlds of one seed are offered
the same requests (common random numbers), as the live baseline and what-if levels are, and a
what-if's predicted effect is the change's, not another sample's. (Before, 2026-12-07, the
requests drew from the stream the service times and delays drew from as events came: the slow
agencies' world predicted 6.0 more FAILED than its baseline, the core stopped 4.4, all of them
unroutable requests drawn differently.)

`predict(model, conditions)` returns the requests due in the measured window (after the
warm-up) with their latencies, due times and outcomes, and the core's CPU over that window.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import simpy
from numpy.typing import NDArray

from crossroads.outbox import DEFAULT_RETRY_INITIAL, DEFAULT_RETRY_MAX, backoff_after, look_again_in
from crossroads.outcomes import AuditOutcome
from crossroads.statistics import mean, percentiles
from network.path_delay import delay_at
from scenarios.calibrated import Calibrated

__all__ = ["FIGURES", "OUTCOMES", "Conditions", "Prediction", "predict", "replicate"]

Steps = Generator[simpy.Event, object, None]
Agency = tuple[int, int]  # (host index, the agency's place in the host's notice spread)
_BACKGROUND_TICK_S = 0.01
_DRAIN_S = 30.0  # the longest a request due in the window is waited for
OUTCOMES: tuple[str, ...] = (AuditOutcome.DELIVERED, AuditOutcome.QUEUED, AuditOutcome.FAILED)  # a routed exchange's
FIGURES = ("throughput", "mean_ms", "p50_ms", "p90_ms", "p99_ms", "core_cpu")  # Prediction.figures(), in order


@dataclass(frozen=True, kw_only=True)
class Conditions:
    """One load level and what goes wrong during it (times in seconds from the measured window's start)."""

    rate: float
    seconds: float
    warmup_s: float = 2.0
    seed: int = 0
    hosts_down: tuple[tuple[int, float, float], ...] = ()  # (host index, from, until)
    core_stopped: tuple[tuple[float, float], ...] = ()  # (from, until)
    service_time_ms: float | None = None  # the hosts' service time, if not the model's
    # the intended send times (seconds from the window's start, the warm-up's negative, ascending),
    # e.g. the live generator's schedule of this level; None: the model draws a Poisson process
    arrivals_s: tuple[float, ...] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.arrivals_s and self.arrivals_s[0] < -self.warmup_s:
            raise ValueError(f"arrivals from {self.arrivals_s[0]:g} s start before the warm-up (-{self.warmup_s:g} s)")


@dataclass(frozen=True)
class Prediction:
    """The requests due in the measured window: latency (ms, answered ones) and outcome counts."""

    conditions: Conditions
    latencies_ms: NDArray[np.float64]
    outcomes: dict[str, int]
    core_cpu: float  # the core's CPU over the window, in cores
    completed: int  # answers that came back within the window, whenever they were due
    commits: tuple[tuple[int, float], ...] = ()  # (records, seconds) of each commit ended in the window
    redelivered: int = 0  # parcels the outbox delivered, whenever
    owed: int = 0  # parcels still in the outbox at the end
    due_s: NDArray[np.float64] = field(default_factory=lambda: np.empty(0))  # each latency's due time, window s

    @property
    def throughput(self) -> float:
        """Answers per second within the window (the generator's achieved_per_s)."""
        return self.completed / self.conditions.seconds

    @property
    def mean_commit_ms(self) -> float:
        """The mean time of a commit (lock waits included), ms; NaN when none ended in the window."""
        return mean([s for _, s in self.commits]) * 1000 if self.commits else math.nan

    def figures(self) -> dict[str, float]:
        """FIGURES: throughput (answers/s), mean/p50/p90/p99 latency (ms), core CPU (cores)."""
        p50, p90, p99 = percentiles(self.latencies_ms, (50, 90, 99)) if len(self.latencies_ms) else (math.nan,) * 3
        return {"throughput": self.throughput, "mean_ms": mean(self.latencies_ms), "p50_ms": p50,
                "p90_ms": p90, "p99_ms": p99, "core_cpu": self.core_cpu}  # fmt: skip


def _distribution(shares: dict[int, float]) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """The values and their probabilities (normalised) of a discrete distribution."""
    weights = np.array(list(shares.values()), dtype=float)
    return np.array(list(shares), dtype=np.int64), weights / weights.sum()


class _Inbox:
    """What a single worker (the event loop, the audit writer) has waiting: `put` adds and wakes
    it; `take` waits until something is there and takes all of it."""

    def __init__(self, env: simpy.Environment) -> None:
        self.env = env
        self.items: list[Any] = []
        self._wakes = env.event()

    def put(self, item: Any) -> None:
        self.items.append(item)
        if not self._wakes.triggered:
            self._wakes.succeed()

    def wait(self) -> Steps:
        """Until something is there (taking nothing)."""
        if not self.items:
            self._wakes = self.env.event()
            yield self._wakes

    def take(self) -> Generator[simpy.Event, object, list[Any]]:
        yield from self.wait()
        taken, self.items = self.items, []
        return taken


@dataclass
class _Tally:
    latencies: list[float] = field(default_factory=list)
    due: list[float] = field(default_factory=list)  # each latency's request's due time (window seconds)
    outcomes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    completed: int = 0  # answers that came back within the window, whenever due
    commits: list[tuple[int, float]] = field(default_factory=list)  # (records, seconds) of each commit
    core_busy: float = 0.0


@dataclass(frozen=True, slots=True)
class _Drawn:
    """A request's own draws (`_Testbed.draw`)."""

    kind: str
    unroutable: bool
    hosts: tuple[int, ...]  # where its forwards go, when it has somewhere to go
    delay_z: float  # standard normal: its path's delay
    services: tuple[float, ...]  # standard exponential: each forward's agency service time, in means


class _Testbed:
    """The SimPy network of one prediction (see the module doc)."""

    def __init__(self, model: Calibrated, when: Conditions) -> None:
        self.m, self.when = model, when
        self.env = simpy.Environment()
        self.rng = np.random.default_rng(np.random.SeedSequence([model.seed, when.seed]))
        self.cpus = simpy.Resource(self.env, model.cpus)
        self.generator = simpy.Resource(self.env, model.generator.processes)
        self.core = simpy.Resource(self.env, 1)
        self.hosts = [simpy.Resource(self.env, 1) for _ in range(model.hosts)]
        self.begin = when.warmup_s  # the measured window, in simulated time
        self.end = self.begin + when.seconds
        self.tally = _Tally()
        self.records = _Inbox(self.env)  # the audit writer's: each record's "durable" event
        self.ready = _Inbox(self.env)  # the core's event loop's: (ms, "ran" event) of each callback
        self.kinds = list(model.mix)
        self.kind_shares = np.array([model.mix[k].share for k in self.kinds])
        self.destinations = {kind: _distribution(mix.destinations) for kind, mix in model.mix.items()}
        self.delay = delay_at(model.delay, when.rate)  # the path's, at this rate (network/path_delay.py)
        service = model.host.service_time_ms if when.service_time_ms is None else when.service_time_ms
        self.service_s = service / 1000
        self.forward_half_s = model.host.forward_ms / 2000
        # the demands at this load (the model's `load` curve: CPU per request falls as the load grows)
        gen, core, io, host = model.load.at(when.rate)
        self.generator_ms, self.host_ms = model.generator.cpu_ms * gen, model.host.cpu_ms * host
        self.handler_ms, self.io_ms = model.core.cpu_ms * core, model.core.io_cpu_ms * io
        shares = np.asarray(model.host.shares, dtype=float)
        self.host_p = shares / shares.sum() if len(shares) else None  # each host's share of the forwards
        self.database = simpy.Resource(self.env, 1)  # one write transaction at a time (SQLite's lock)
        self.host_up = [True] * model.hosts
        # the outbox: its own draws (agencies, the loop's phase), so that the requests' draws are
        # the same with and without a fault
        self.outbox_rng = np.random.default_rng(np.random.SeedSequence([model.seed, when.seed, 1]))
        self.spread = [np.cumsum(s) / sum(s) for s in model.host.notice_spread] or [np.ones(1)] * model.hosts
        self.reserved: Counter[Agency] = Counter()  # queued by the core, not yet committed
        self.owed: Counter[Agency] = Counter()  # committed, not yet delivered
        self.draining: set[Agency] = set()
        self.backoff: dict[Agency, float] = {}
        self.next_try: dict[Agency, float] = {}
        self.poke = self.env.event()  # wakes the redelivery loop
        self.outbox_writes = _Inbox(self.env)
        self.redelivered = 0

    # ------------------------------------------------------------------ resources

    def work(self, lock: simpy.Resource | None, ms: float, core: bool = False) -> Steps:
        """`ms` of CPU under `lock` (none: a thread without one) on one of the machine's cores."""
        if ms <= 0:
            return
        if core:
            yield from self.awake()
        held = lock.request() if lock is not None else None
        if held is not None:
            yield held
        yield from self.on_a_cpu(ms)
        if lock is not None and held is not None:
            lock.release(held)
        if core:
            self.busy(ms)

    def on_a_cpu(self, ms: float) -> Steps:
        """Hold one of the machine's cores for `ms`."""
        with self.cpus.request() as cpu:
            yield cpu
            yield self.env.timeout(ms / 1000)

    def awake(self) -> Steps:
        """Wait while the core is stopped."""
        for start, until in self.when.core_stopped:
            if self.begin + start <= self.env.now < self.begin + until:
                yield self.env.timeout(self.begin + until - self.env.now)

    def handler(self, ms: float) -> Steps:
        """`ms` of the core's handler: a callback run by the core's event loop in its next turn."""
        ran = self.env.event()
        self.ready.put((ms, ran))
        yield ran

    def event_loop(self) -> Steps:
        """The core's event loop: each turn runs every callback ready when it began, holding the
        core's lock throughout; it lets the lock go between turns (its poll for I/O releases it)
        and, when the writer waits for it, after the switch interval."""
        switch_s = self.m.core.switch_interval_ms / 1000
        while True:
            turn = yield from self.ready.take()
            yield from self.awake()
            held = self.core.request()
            yield held
            since = self.env.now
            for ms, ran in turn:
                yield from self.on_a_cpu(ms)
                self.busy(ms)
                ran.succeed()
                if self.core.queue and self.env.now - since >= switch_s:  # the writer forces a switch
                    self.core.release(held)
                    held = self.core.request()
                    yield held
                    since = self.env.now
            self.core.release(held)

    def busy(self, ms: float) -> None:
        if self.begin <= self.env.now < self.end:
            self.tally.core_busy += ms / 1000

    # ------------------------------------------------------------------ processes

    def arrivals(self) -> Steps:
        for t in self.due_times():
            yield self.env.timeout(t - self.env.now)
            self.env.process(self.request(t, self.draw()))

    def draw(self) -> _Drawn:
        """One request's own draws, all at its arrival, each whether the model uses it or not:
        the same requests, in every world of one seed (see the module doc)."""
        rng, m = self.rng, self.m
        kind = self.kinds[int(rng.choice(len(self.kinds), p=self.kind_shares))]
        unroutable = bool(rng.random() < m.unroutable)
        counts, shares = self.destinations[kind]
        n = int(counts[rng.choice(len(counts), p=shares)])
        hosts = rng.choice(m.hosts, size=n, p=self.host_p) if self.host_p is not None else rng.integers(0, m.hosts, n)
        delay_z, services = float(rng.standard_normal()), rng.standard_exponential(n)
        return _Drawn(kind, unroutable, tuple(map(int, hosts)), delay_z, tuple(map(float, services)))

    def due_times(self) -> Iterator[float]:
        """Each request's intended send time in simulated time, ascending: the conditions'
        schedule (shifted by the warm-up), else a Poisson process at the rate."""
        if self.when.arrivals_s is not None:
            yield from (self.begin + t for t in self.when.arrivals_s if self.begin + t < self.end)
            return
        t = float(self.rng.exponential(1 / self.when.rate))
        while t < self.end:
            yield t
            t += float(self.rng.exponential(1 / self.when.rate))

    def request(self, due: float, drawn: _Drawn) -> Steps:
        unroutable = drawn.unroutable  # nowhere to go: no forward
        counted = self.begin <= due < self.end
        yield from self.work(self.generator, self.generator_ms / 2)
        yield self.env.timeout(self.delay_s(drawn.delay_z))
        yield from self.work(None, self.io_ms, core=True)
        yield from self.handler(self.handler_ms / 2)
        outcome, parcels = (AuditOutcome.FAILED, []) if unroutable else (yield from self.forward(drawn))
        yield from self.handler(self.handler_ms / 2)
        durable = self.env.event()
        self.records.put(durable)
        yield durable
        for agency in parcels:  # committed with the record: the outbox owes them
            self.reserved[agency] -= 1
            self.owed[agency] += 1
        yield from self.work(self.generator, self.generator_ms / 2)
        if counted:
            self.tally.outcomes[outcome] += 1
        if unroutable:
            return  # an error: neither throughput nor latency, as the generator counts
        self.tally.completed += self.begin <= self.env.now < self.end
        if counted:
            self.tally.latencies.append((self.env.now - due) * 1000)
            self.tally.due.append(due - self.begin)

    def forward(self, drawn: _Drawn) -> Generator[simpy.Event, object, tuple[str, list[Agency]]]:
        """The forwards of one exchange: its outcome and the parcels it leaves in the outbox."""
        mix = self.m.mix[drawn.kind]
        up: list[tuple[int, float]] = []  # (host, the agency's service time in means)
        parcels: list[Agency] = []
        for host, service in zip(drawn.hosts, drawn.services, strict=True):
            if mix.consultation:
                if self.host_up[host]:
                    up.append((host, service))
                continue
            agency = self.agency_of(host)
            if self.reserved[agency] or self.owed[agency] or not self.host_up[host]:
                self.reserved[agency] += 1  # behind the agency's parcels, or refused: owed
                parcels.append(agency)
            else:
                up.append((host, service))
        if up:
            yield self.env.all_of([self.env.process(self.at_host(*h)) for h in up])
        if mix.consultation and len(up) < len(drawn.hosts):
            return AuditOutcome.FAILED, parcels
        return (AuditOutcome.QUEUED if parcels else AuditOutcome.DELIVERED), parcels

    def agency_of(self, host: int) -> Agency:
        """The agency of `host` a notice goes to, drawn by the host's notice spread."""
        return host, int(np.searchsorted(self.spread[host], self.outbox_rng.random(), side="right"))

    def outage(self, host: int, start: float, until: float) -> Steps:
        """`host` killed from `start` and serving again from `until` (window time, when the
        live restarted host answered: testbed/faults.py), its start-up CPU spent just before."""
        yield self.env.timeout(max(0.0, self.begin + start - self.env.now))
        self.host_up[host] = False
        starting = max(start, until - self.m.host.startup_cpu_ms / 1000)
        yield self.env.timeout(max(0.0, self.begin + starting - self.env.now))
        self.env.process(self.work(self.hosts[host], self.m.host.startup_cpu_ms))
        yield self.env.timeout(max(0.0, self.begin + until - self.env.now))
        self.host_up[host] = True

    def redelivery(self) -> Steps:
        """The outbox's loop (crossroads/outbox.py's Redelivery._run): start a drain for each
        agency owed parcels whose retry is due; look again when a retry falls due, at once after a
        failure, else after the idle poll."""
        yield self.env.timeout(float(self.outbox_rng.uniform(0.0, DEFAULT_RETRY_MAX)))  # its phase
        while True:
            now = self.env.now
            for agency in list(self.owed):
                if agency not in self.draining and self.next_try.get(agency, 0.0) <= now:
                    self.draining.add(agency)
                    self.env.process(self.drain(agency))
            sleep = look_again_in(now, (t for a, t in self.next_try.items() if a not in self.draining),
                                  bool(self.owed), DEFAULT_RETRY_INITIAL, DEFAULT_RETRY_MAX)  # fmt: skip
            self.poke = self.env.event()
            yield self.poke | self.env.timeout(sleep)

    def drain(self, agency: Agency) -> Steps:
        """Deliver `agency`'s parcels in order until one fails (then it is backed off)."""
        while self.owed[agency]:
            delivered = yield from self.attempt(agency)
            if not delivered:
                break
        else:
            self.backoff.pop(agency, None)
            self.next_try.pop(agency, None)
        self.draining.discard(agency)

    def attempt(self, agency: Agency) -> Generator[simpy.Event, object, bool]:
        """One redelivery: the handler's half, the forward, the outbox's write of how it went."""
        host = agency[0]
        yield from self.handler(self.handler_ms / 2)
        if not self.host_up[host]:  # refused at once: back off, record the failed attempt
            delay = backoff_after(self.backoff.get(agency), DEFAULT_RETRY_INITIAL, DEFAULT_RETRY_MAX)
            self.backoff[agency] = delay
            self.next_try[agency] = self.env.now + delay
            if not self.poke.triggered:
                self.poke.succeed()
            yield from self.outbox_write()
            return False
        yield from self.work(None, self.io_ms, core=True)
        yield from self.at_host(host, float(self.outbox_rng.standard_exponential()))
        yield from self.outbox_write()
        self.owed[agency] -= 1
        if not self.owed[agency]:
            del self.owed[agency]
        self.redelivered += 1
        return True

    def outbox_write(self) -> Steps:
        written = self.env.event()
        self.outbox_writes.put(written)
        yield written

    def outbox_writer(self) -> Steps:
        """The outbox's writer thread: every write waiting, in one transaction."""
        while True:
            batch = yield from self.outbox_writes.take()
            yield from self.transaction(len(batch))
            for written in batch:
                written.succeed()

    def at_host(self, host: int, service: float) -> Steps:
        """One forward: there, the host's CPU, its agency's service time (`service` of its mean:
        exponential), back."""
        if self.forward_half_s > 0:
            yield self.env.timeout(self.forward_half_s)
        yield from self.work(self.hosts[host], self.host_ms)
        if self.service_s > 0:
            yield self.env.timeout(self.service_s * service)
        if self.forward_half_s > 0:
            yield self.env.timeout(self.forward_half_s)

    def writer(self) -> Steps:
        while True:
            yield from self.records.wait()
            yield from self.awake()
            batch = yield from self.records.take()
            started = self.env.now
            yield from self.transaction(len(batch))
            if self.begin <= self.env.now < self.end:
                self.tally.commits.append((len(batch), self.env.now - started))
            for durable in batch:
                durable.succeed()

    def transaction(self, records: int) -> Steps:
        """One commit of `records` rows: fixed + per_record * n ms uncontended, its CPU under the
        core's lock in `handoffs` turns, the rest a wait; one transaction at a time."""
        commit = self.m.commit
        with self.database.request() as turn:
            yield turn
            wait_s = max(0.0, commit.fixed_ms + commit.per_record_ms * records - commit.cpu_ms) / 1000
            for _ in range(commit.handoffs):
                yield from self.work(self.core, commit.cpu_ms / commit.handoffs, core=True)
                yield self.env.timeout(wait_s / commit.handoffs)
            yield from self.awake()

    def background(self) -> Steps:
        share = self.m.core.background
        while share > 0:
            ms = min(share, 1.0) * _BACKGROUND_TICK_S * 1000
            yield from self.work(None, ms, core=True)
            yield self.env.timeout(max(0.0, _BACKGROUND_TICK_S - ms / 1000))

    def delay_s(self, z: float) -> float:
        """The path's delay of a request whose standard normal draw is `z`."""
        return self.delay.of_normal(z) / 1000

    def run(self) -> Prediction:
        for process in (self.arrivals(), self.event_loop(), self.writer(), self.background(), self.redelivery(),
                        self.outbox_writer(), *(self.outage(*window) for window in self.when.hosts_down)):  # fmt: skip
            self.env.process(process)
        self.env.run(until=self.end + _DRAIN_S)
        t = self.tally
        return Prediction(self.when, np.asarray(t.latencies, dtype=float), dict(t.outcomes),
                          t.core_busy / self.when.seconds, t.completed, tuple(t.commits), self.redelivered,
                          sum(self.owed.values()), np.asarray(t.due, dtype=float))  # fmt: skip


def predict(model: Calibrated, conditions: Conditions) -> Prediction:
    """The testbed of `model` simulated under `conditions` (see the module doc)."""
    if conditions.rate <= 0 or conditions.seconds <= 0:
        raise ValueError(
            f"a prediction needs a rate and a window > 0, got {conditions.rate} /s for {conditions.seconds} s"
        )
    return _Testbed(model, conditions).run()


def replicate(model: Calibrated, conditions: Conditions, replications: int) -> Sequence[Prediction]:
    """`replications` predictions of `conditions`, each on its own seed (for confidence intervals)."""
    return [
        predict(model, dataclasses.replace(conditions, seed=conditions.seed * 1000 + r)) for r in range(replications)
    ]
