"""Measuring the live testbed at open-loop load levels: what the calibration estimates from, and
what the validation holds the model's predictions against.

`LiveBench` brings up a fresh live network of a load-test scenario's world with the core's
telemetry on (crossroads/telemetry.py), draws that scenario's mix in advance
(loadtests/prepared_mix.py) and offers it at each level with the open-loop load generator
(loadtests/loadgen.py, in processes of its own). Per level it keeps:
- the generator's figures: offered, sent and answered rates, latency from each request's
  intended send time (p50/p90/p99, mean), errors; its own CPU;
- the CPU of every process of the network, in all and per thread name (/proc: loadtests.cpu),
  as a share of one core over the level's run;
- the core's telemetry over the measured window: where each exchange's time went (forward round
  trip, audit commit, the core's own) and the group commits (batches, time a commit takes);
- the audit outcomes of the level's exchanges (a consultation whose agency is down is FAILED);
- the windows of any fault applied during the level (testbed/faults.py), placed after the
  measured window's start as the generator fixed it (its senders take seconds to start).
- the shares of the machine's CPU over the measured window (loadtests/machine.py), and of
  them the share the hypervisor took for another tenant (stolen).
Before each level (and each measurement of it again) the network is let go quiet: every watched
process at most 5 % of a core over half a second, for at most 30 s (testbed/calibration/settle.py;
how long it took is the level's "settled"), so that no level measures what the last one left.
A level during which the hypervisor took more than the plan's `stolen_limit` of the machine is
measured again, up to `retries` times, and the attempt it stole least from is kept; the others'
headline figures are listed under "stolen_attempts". Why: this machine is a VM on a shared host,
and stolen time comes in episodes (0-32 % of the machine in a second, ten to thirty seconds
long): a level measured in one is a measurement of the neighbour, not of the testbed, and the
model, which has the machine's two cores, cannot predict it.
Once, as the network comes up: each process's CPU when it was ready (`startup_cpu_s`), what a
restarted host spends again before it serves. Once, when the requests are drawn (`prepare`): the
network is offered `warm_rate` for `warm_s`, unmeasured. Why: a fresh network's first level is
not its steady state. The same 400/s offered eight times in a row on a fresh network
(2026-12-07): the first measured a mean of 13.5 ms and 1,504 us of the core's CPU a request (its
event loop 717 us), the next seven 8.8-10.9 ms and 1,306-1,378 us (loop 599-645 us). In a
calibration the first round of the climb is that first minute: the rounds after it were
faster at every high rate in four `bench model` runs (506.2/s: 45.1 ms, then 9.9 and 17.3).
The citizens' consultations among the drawn requests carry the FAS's assertions, vouched for
when they are drawn, for `assertion_ttl_s` (default: the longest the core accepts, an hour);
a level that would outlive them draws the same requests again with fresh ones. Why: with the
portal's own ten minutes, a validation network (~20 minutes) had the core refuse every citizen's
consultation as expired from its eleventh minute on (2026-12-07: ~5 % of the exchanges of the
upper stairs and of every what-if DENIED at once, unforwarded), a mix the model was never given,
and the slow agencies' fresh network, whose assertions were still valid, counted its citizens'
unroutable consultations (FAILED, ~40 a round) as an effect of the slow agencies.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agencies.spec import load_world_spec
from agencies.world import World
from crossroads.citizen import MAX_LIFETIME, Fas
from crossroads.telemetry import EVERY_ENV, TELEMETRY_ENV, over, read_telemetry
from loadtests.cpu import cpu_seconds, snapshot
from loadtests.level import Level, read_records
from loadtests.mix import Mix
from loadtests.prepared import write_requests
from loadtests.prepared_mix import Drawn, prepare_mix
from loadtests.spec import Fault, load_loadtest_spec
from network.testbed_model import Conditions
from testbed.bench.goals import BenchError
from testbed.bench.levels import Path_, longest_s, run_level
from testbed.bench.paths import audit_outcomes, audit_size, fresh_state
from testbed.calibration.settle import settle
from testbed.faults import FaultInjector
from testbed.live import DEFAULT_HOSTS, LiveNetwork, bring_up

__all__ = [
    "DEFAULT_PROCESSES",
    "DEFAULT_RETRIES",
    "DEFAULT_STOLEN_LIMIT",
    "DEFAULT_WARM_RATE",
    "DEFAULT_WARM_S",
    "LiveBench",
    "LivePlan",
    "least_stolen",
]

DEFAULT_PROCESSES = 2  # load generator processes
DEFAULT_STOLEN_LIMIT = 0.02  # a level the hypervisor took more of the machine from is measured again ...
DEFAULT_RETRIES = 2  # ... at most this many times
DEFAULT_WARM_S = 20.0  # a fresh network is offered this long before its first level ...
DEFAULT_WARM_RATE = 250.0  # ... at this rate (5,000 requests; under every live knee measured here), unmeasured
_TELEMETRY_EVERY_S = 0.5
_START_POLL_S = 0.01  # how often the fault thread looks for the window's start


@dataclass(frozen=True, kw_only=True)
class LivePlan:
    """The live network measured: its load-test scenario (world and mix), hosts, service time,
    how each level runs, and how many times each level is measured (`repeats`, in interleaved
    rounds: testbed/calibration/rounds.py)."""

    scenario: Path
    hosts: int = DEFAULT_HOSTS
    service_time_ms: float = 0.0
    seconds: float = 10.0
    warmup_s: float = 2.0
    processes: int = DEFAULT_PROCESSES
    seed: int = 0
    repeats: int = 1
    stolen_limit: float = DEFAULT_STOLEN_LIMIT
    retries: int = DEFAULT_RETRIES
    warm_s: float = DEFAULT_WARM_S
    warm_rate: float = DEFAULT_WARM_RATE
    assertion_ttl_s: int = MAX_LIFETIME  # the citizens' assertions in the drawn requests live this long

    def level(self, rate: float, seed: int = 0) -> Level:
        """The load generator's level of this plan at `rate`, its schedule drawn from `seed`."""
        return Level(rate=rate, seconds=self.seconds, warmup_s=self.warmup_s, processes=self.processes, seed=seed)

    def conditions(self, rate: float) -> Conditions:
        """The model's conditions for the level `LiveBench.level(rate)` offers: the same window,
        warm-up and arrivals (the generator's schedule), the model's own seed for the rest."""
        arrivals = tuple(float(t) for t in self.level(rate).intended())
        return Conditions(rate=rate, seconds=self.seconds, warmup_s=self.warmup_s, seed=self.seed, arrivals_s=arrivals)


class LiveBench:
    """A live network under measurement, in `out` (OUT/state, OUT/telemetry.jsonl, the logs).

    A context manager: the network is up inside it. `level(rate)` measures one level.
    """

    def __init__(self, out: Path, plan: LivePlan, say: Callable[[str], None] = lambda _: None) -> None:
        self.out = out.resolve()
        self.plan = plan
        self.say = say  # told of each level measured again (the hypervisor took too much)
        self.state = self.out / "state"
        self.telemetry = self.out / "telemetry.jsonl"
        self._network: LiveNetwork | None = None
        self._injector: FaultInjector | None = None  # one for the network's life: the hosts it restarts stay up
        self._drawn: list[Drawn] = []
        self._draws: tuple[World, Mix, int] | None = None  # what `prepare` draws from, and how many
        self._expires = 0  # UNIX second the citizens' assertions of the drawn requests expire
        self._requests = self.out / "requests.mix.jsonl"
        self.startup_cpu_s: dict[str, float] = {}  # each process's CPU seconds when the network was up

    def __enter__(self) -> LiveBench:
        self.state.mkdir(parents=True, exist_ok=True)
        fresh_state(self.state)
        self.telemetry.unlink(missing_ok=True)
        env = {TELEMETRY_ENV: str(self.telemetry), EVERY_ENV: str(_TELEMETRY_EVERY_S)}
        self._network = bring_up(self.plan.scenario, self.state, hosts=self.plan.hosts,
                                 service_time_ms=self.plan.service_time_ms, core_env=env, progress=True)  # fmt: skip
        self._injector = FaultInjector(self.state, self._network.endpoints["pids"],
                                       service_time_ms=self.plan.service_time_ms)  # fmt: skip
        self.startup_cpu_s = {name: cpu_seconds(pid) for name, pid in self.watched().items()}
        return self

    def __exit__(self, *exc: object) -> None:
        if self._injector is not None:
            self._injector.close()  # the hosts it restarted, and a core it froze
        if self._network is not None:
            self._network.stop()

    @property
    def network(self) -> LiveNetwork:
        if self._network is None:
            raise BenchError("the live network is not up")
        return self._network

    def prepare(self, requests: int) -> list[Drawn]:
        """Draw `requests` exchanges of the scenario's mix (enough for every level: none is sent
        twice with its content, since an integration sent again is another request)."""
        scenario = self.plan.scenario
        self._draws = (World.build(load_world_spec(scenario)), load_loadtest_spec(scenario).mix, requests)
        self._draw()
        self._warm()
        return self._drawn

    def _draw(self) -> None:
        """Draw the prepared requests from the plan's seed (the same ones every time), the
        citizens' among them vouched for by the FAS now, for the plan's `assertion_ttl_s`."""
        if self._draws is None:
            raise BenchError("no requests drawn: prepare() first")
        world, mix, requests = self._draws
        fas, now, ttl = Fas.open(self.state / "pki"), time.time(), self.plan.assertion_ttl_s
        prepared, self._drawn = prepare_mix(world, mix, requests, np.random.default_rng(self.plan.seed),
                                            vouch=lambda env, sender: fas.vouch(env, sender, now, ttl))  # fmt: skip
        write_requests(self._requests, prepared)
        self._expires = int(now) + ttl

    def _vouch_in_time(self, level: Level) -> None:
        """Draw the requests again, with fresh assertions, when the ones drawn would expire before
        `level` ends (see the module doc)."""
        if self._expires < time.time() + longest_s(level):
            self._draw()
            self.say(f"citizens' assertions vouched for again before {level.rate:g}/s (they would expire within it)")

    def _warm(self) -> None:
        """Offer the plan's warm-up load once, unmeasured (see the module doc); nothing when warm_s is 0."""
        if self.plan.warm_s <= 0:
            return
        self.say(f"warming the fresh network: {self.plan.warm_rate:g}/s for {self.plan.warm_s:g} s, unmeasured")
        level = Level(rate=self.plan.warm_rate, seconds=self.plan.warm_s, warmup_s=0.0, processes=self.plan.processes)
        run_level(self.state / "pki", self._core_path(), level, self.out / "loadgen.log")

    def _core_path(self) -> Path_:
        """The core as the load generator's target: its address, the drawn requests, the pids to watch."""
        return Path_("core", str(self.network.endpoints["core"]), self._requests, self.watched())

    @property
    def injector(self) -> FaultInjector:
        if self._injector is None:
            raise BenchError("the live network is not up")
        return self._injector

    def watched(self) -> dict[str, int]:
        """The processes whose CPU is read: the core and each host (current pids: a host a fault
        restarted has a new one)."""
        return self.injector.pids()

    def level(
        self, rate: float, *, seed: int = 0, faults: Sequence[Fault] = (), records: bool = False
    ) -> dict[str, Any]:
        """Offer `rate` for the plan's seconds (after its warm-up) and measure it, again while the
        hypervisor took more than the plan's `stolen_limit` of the machine (see the module doc).
        With `records`, what happened to each request (loadtests.level's RECORD array, not JSON:
        the caller takes it out) is under "records"."""
        return least_stolen(lambda: self._attempt(rate, seed, faults, records), self.plan.stolen_limit,
                            self.plan.retries, self.say)  # fmt: skip

    def _attempt(self, rate: float, seed: int, faults: Sequence[Fault], records: bool) -> dict[str, Any]:
        """One measurement of `rate`.

        `faults` are applied at their times after the measured window's start, as the generator
        fixed it, by the network's one injector (a host it restarts stays up for the next levels),
        and its windows are reported in that window's time.
        """
        level = self.plan.level(rate, seed)
        self._vouch_in_time(level)  # drawn before settling: the draw's CPU is spent before the level
        settled = self._settle()
        self._vouch_in_time(level)  # settling may take up to 30 s: drawn again if they would now expire
        path = self._core_path()
        kept = self.out / "records.npy" if records else None  # read back at once: the next attempt writes it again
        audit_start = audit_size(self.state)
        start_file = self.out / "window.start"  # the generator writes the window's start there
        start_file.unlink(missing_ok=True)
        injector = self.injector
        windows, errors = len(injector.windows), len(injector.errors)
        stop, thread = self._faults(faults, start_file)
        try:
            figures = run_level(self.state / "pki", path, level, self.out / "loadgen.log", kept, start_file)
        finally:
            stop.set()
            if thread is not None:
                thread.join()
            injector.thaw()  # a stop cut short by the level's end ends with it
        start = float(figures["window_start_unix"])
        figures["telemetry"] = over(read_telemetry(self.telemetry), start, start + level.seconds + 0.5)
        figures["outcomes"] = audit_outcomes(self.state, audit_start)
        figures["faults"] = [w.as_json(start) for w in injector.windows[windows:]]
        figures["fault_errors"] = list(injector.errors[errors:])
        figures["settled"] = settled
        if kept is not None:
            figures["records"] = read_records(kept)
        return figures

    def _settle(self) -> dict[str, Any]:
        """Wait for the network to go quiet after the last level (testbed/calibration/settle.py)."""
        watched = self.watched()
        settled = settle(lambda: snapshot(watched))
        if not settled.quiet:
            self.say(f"the network did not go quiet within {settled.waited_s:.0f} s (its busiest process at "
                     f"{settled.busiest:.0%} of a core): measuring all the same")  # fmt: skip
        return settled.as_dict()

    def _faults(self, faults: Sequence[Fault], start_file: Path) -> tuple[threading.Event, threading.Thread | None]:
        stop = threading.Event()
        if not faults:
            return stop, None
        injector = self.injector

        def when_started() -> None:
            """Wait for the generator to fix its window's start (its senders take seconds to
            start), then apply the faults at their times after it."""
            t0 = None
            while t0 is None and not stop.is_set():
                with contextlib.suppress(FileNotFoundError, ValueError):  # not written yet
                    t0 = float(start_file.read_text())
                if t0 is None:
                    stop.wait(_START_POLL_S)
            if t0 is not None:
                injector.run(list(faults), t0, stop)

        thread = threading.Thread(target=when_started, name="faults", daemon=True)
        thread.start()
        return stop, thread


def least_stolen(attempt: Callable[[], dict[str, Any]], limit: float, retries: int,
                 say: Callable[[str], None] = lambda _: None) -> dict[str, Any]:  # fmt: skip
    """A level measured by `attempt()`, again while the hypervisor took more than `limit` of the
    machine during it, at most `retries` more times (each time `say`s so): the attempt it took
    least from, with the others' headline figures under "stolen_attempts" (empty when the first
    was kept)."""
    attempts = [attempt()]
    while _stolen(attempts[-1]) > limit and len(attempts) <= retries:
        last = attempts[-1]
        say(f"{last['rate']:g}/s measured again: the hypervisor took {_stolen(last):.1%} of the machine "
            f"(mean {last['mean_ms']} ms)")  # fmt: skip
        attempts.append(attempt())
    kept = min(attempts, key=_stolen)
    kept["stolen_attempts"] = [_attempt_summary(a) for a in attempts if a is not kept]
    return kept


def _stolen(level: dict[str, Any]) -> float:
    return float(level["machine"]["stolen"])


def _attempt_summary(level: dict[str, Any]) -> dict[str, Any]:
    """A level measured and not kept: its rate, headline figures and the machine's shares."""
    return {"rate": level["rate"], "achieved_per_s": level["achieved_per_s"], "mean_ms": level["mean_ms"],
            "p99_ms": level["p99_ms"], "machine": level["machine"]}  # fmt: skip
