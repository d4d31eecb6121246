"""Running a live load test: the network up, Locust headless, faults on time, then checks and report.

`run_loadtest(LoadtestRun(scenario=..., out=DIR))`:
1. validates the scenario's `loadtest:` section (loadtests/spec.py) and brings the live network
   of its `world:` up with its state in DIR/state (`testbed.live.bring_up`);
2. runs Locust headless as a subprocess on loadtests/locustfile.py (`--processes K` for local
   workers; any other Locust flags pass through, e.g. `--master --expect-workers N` for
   workers on other machines), writing DIR/locust_*.csv (full history), DIR/locust.html,
   DIR/locust.log and the request logs DIR/requests/*.jsonl;
3. applies the scenario's timed faults from the moment the load starts (loadtests/faults.py),
   while psutil samples CPU and memory of the core, the hosts and Locust every second;
4. lets the core empty its outbox (at most the scenario's `drain` seconds), stops the network,
   and checks the guarantees (loadtests/guarantees.py) and the budget;
5. writes DIR/summary.json (headline figures, checks), DIR/series.json and DIR/report.html.
`LoadtestResult.ok` is False when a guarantee broke, the budget was exceeded or a fault could not
be applied; `failed` names which.

The capacity and soak benchmarks (`capacity_benchmark`, `soak_benchmark`; run them with
`crossroads bench capacity|soak --out DIR`, also `make bench`) use the same machinery with a
staircase of routed consultations (loadtests/capacity.py), against the core and the raw one-hop
proxy (testbed/proxy.py) of one network; the soak judges whether memory stays flat
(loadtests.resources.memory_trend) and can ask the core for memory snapshots
(crossroads/diagnostics.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import yaml

import loadtests
from crossroads.diagnostics import DUMP_ENV, INTERVAL_ENV, TRACEMALLOC_ENV, read_dump, summarise_dump
from loadtests.capacity import (
    DEFAULT_P99_MS,
    SETTLE_S,
    Step,
    evaluate,
    median_capacity,
    plan_steps,
    stairs_scenario,
)
from loadtests.context import STARTED_FILE, default_scenario
from loadtests.faults import FaultWindow
from loadtests.guarantees import Check, check_budget, check_state, drain_outbox
from loadtests.metrics import overall, series, window_stats
from loadtests.record import RequestRecord, read_requests
from loadtests.report import build_loadtest_report
from loadtests.resources import DEFAULT_FLAT_MB_PER_MIN, ResourceSampler, mean_cpu_percent, memory_trend
from loadtests.spec import LoadtestSpec, load_loadtest_spec
from testbed import processes, proxy
from testbed.faults import FaultInjector
from testbed.live import DEFAULT_HOSTS, LiveNetwork, bring_up
from testbed.processes import Child, ChildError

__all__ = [
    "CAPACITY_HOSTS",
    "DIAGNOSTICS_INTERVAL_S",
    "FAULTS_APPLIED",
    "LOCUSTFILE",
    "PROGRESS_EVERY_S",
    "CapacityPlan",
    "LoadtestError",
    "LoadtestResult",
    "LoadtestRun",
    "capacity_benchmark",
    "main",
    "run_loadtest",
    "soak_benchmark",
]

LOCUSTFILE = Path(loadtests.__file__).resolve().parent / "locustfile.py"
LOCUST_START_TIMEOUT_S = 120.0  # imports and the world, on a loaded machine: a ceiling, not a target
LOCUST_STOP_MARGIN_S = 60.0  # beyond the shape's end, before Locust is told to stop
LOCUST_STOP_TIMEOUT_S = 20.0
DIAGNOSTICS_INTERVAL_S = 30.0  # seconds between the core's memory snapshots in a soak that asks for them
# One agency host, as `crossroads bench core`: the proxy's path ends at one host, so the core's must
# too, or the comparison is of one host against several (the core's path then looked faster).
CAPACITY_HOSTS = 1
PROGRESS_EVERY_S = 60.0  # a long load says how far it is this often
FAULTS_APPLIED = "every fault applied as planned"
_POLL_S = 0.1


class LoadtestError(RuntimeError):
    """The load test could not run (Locust did not start, or died); the message says where to look."""


@dataclass(frozen=True, kw_only=True)
class LoadtestRun:
    """What to run. `scenario` holds the `loadtest:` section; `world` the `world:` the network is
    built from (default: the same file). users/rate/duration replace the stages by one (see
    `LoadtestSpec.with_overrides`)."""

    scenario: Path
    out: Path
    world: Path | None = None
    users: int | None = None
    rate: float | None = None
    duration: float | None = None
    processes: int = 1
    hosts: int = DEFAULT_HOSTS
    service_time_ms: float = 0.0
    locust_args: tuple[str, ...] = ()
    progress: bool = True
    flat_mb_per_min: float = DEFAULT_FLAT_MB_PER_MIN  # a process's memory is flat below this slope
    core_env: Mapping[str, str] = field(default_factory=dict)  # added to the core's environment

    @property
    def world_file(self) -> Path:
        return self.world or self.scenario

    def spec(self) -> LoadtestSpec:
        return load_loadtest_spec(self.scenario).with_overrides(
            users=self.users, rate=self.rate, duration=self.duration
        )


@dataclass(frozen=True)
class LoadtestResult:
    """The outcome: `ok` only if every check held; `failed` names those that did not."""

    ok: bool
    failed: tuple[str, ...]
    summary: dict[str, Any]
    out: Path


@dataclass
class _Measured:
    """What one Locust run against a network produced."""

    t0: float
    seconds: float
    requests: list[RequestRecord]
    windows: list[FaultWindow]
    fault_errors: list[str]
    resources: dict[str, Any]
    pending: int = 0
    drain_s: float = 0.0
    locust_code: int = 0
    files: list[str] = field(default_factory=list)


def _say(progress: bool, message: str) -> None:
    if progress:
        print(f"crossroads loadtest: {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ Locust as a subprocess


def _locust_command(run: LoadtestRun, state: Path, address: str, requests: Path, target: str) -> list[str]:
    out = run.out.resolve()
    command = [
        *("-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", address),
        *("--crossroads-state", str(state), "--crossroads-scenario", str(run.scenario.resolve())),
        *("--crossroads-world", str(run.world_file.resolve()), "--crossroads-out", str(requests)),
        *("--crossroads-run-id", os.urandom(4).hex(), "--crossroads-target", target),
        *("--csv", str(out / "locust"), "--csv-full-history", "--html", str(out / "locust.html")),
        *("--exit-code-on-error", "0", "--only-summary"),  # failures are ours to judge; a non-zero exit is a crash
    ]
    for flag, value in (("--crossroads-users", run.users), ("--crossroads-rate", run.rate)):
        if value is not None:
            command += [flag, str(value)]
    if run.duration is not None:
        command += ["--crossroads-duration", str(run.duration)]
    if run.processes > 1:
        command += ["--processes", str(run.processes)]
    return [*command, *run.locust_args]


def _start_locust(command: Sequence[str], log: Path) -> Child:
    # in a process group of its own with its workers, which are stopped as one
    return processes.start("locust", command, log=log, group=True)


def _wait_started(started: Path, locust: Child) -> float:
    """The UNIX time the load started (Locust's test_start), once Locust has written it."""
    deadline = time.monotonic() + LOCUST_START_TIMEOUT_S
    try:
        processes.wait_until([locust], lambda _: started.exists(), deadline=deadline, what="start the load")
    except ChildError as exc:
        raise LoadtestError(str(exc)) from exc
    return float(json.loads(started.read_text())["wall"])


def _stop_locust(locust: Child) -> None:
    """SIGTERM to Locust's process group (it quits cleanly, writing its files), SIGKILL if it hangs."""
    processes.stop([locust], LOCUST_STOP_TIMEOUT_S)


def _locust_pids(locust: Child) -> dict[str, int]:
    try:
        children = psutil.Process(locust.pid).children()
    except psutil.Error:
        return {}
    return {"locust": locust.pid, **{f"locust-{k + 1}": c.pid for k, c in enumerate(children)}}


def _wait_locust(locust: Child, duration: float, sampler: ResourceSampler, progress: bool) -> bool:
    """Wait for Locust to end its load of `duration` s (True), at most LOCUST_STOP_MARGIN_S more (False);
    on long loads, say every PROGRESS_EVERY_S how far it is and how big the core is."""
    started = time.monotonic()
    deadline = started + duration + LOCUST_STOP_MARGIN_S
    while (left := deadline - time.monotonic()) > 0:
        if locust.wait(min(left, PROGRESS_EVERY_S)):
            return True
        elapsed = time.monotonic() - started
        core = next((v for v in reversed(sampler.rss_mb.get("core", [])) if v is not None), None)
        memory = "" if core is None else f"; core {core:.0f} MB resident"
        _say(progress, f"{min(elapsed, duration):.0f} of {duration:g} s{memory}")
    return False


# ------------------------------------------------------------------ one run against a network


@contextlib.contextmanager
def _sampling(sampler: ResourceSampler) -> Iterator[ResourceSampler]:
    sampler.start()
    try:
        yield sampler
    finally:
        sampler.stop()


def _drive(
    network: LiveNetwork,
    run: LoadtestRun,
    spec: LoadtestSpec,
    target: str,
    address: str,
    others: Mapping[str, int] | None = None,
) -> _Measured:
    """Run Locust against `address` with the faults of `spec`; drain the outbox; the network stays up.
    The resources of the processes `others` (name -> pid) are sampled with the network's and Locust's.

    Hosts that a fault restarted are stopped at the end (they are the injector's), so a network
    that met a kill_host or slow_host fault is not driven again.
    """
    out = run.out.resolve()
    requests = out / "requests"
    for old in (*requests.glob("*.jsonl"), requests / STARTED_FILE):
        old.unlink(missing_ok=True)  # a folder used before must not mix two runs
    injector = FaultInjector(network.state, network.endpoints["pids"], service_time_ms=run.service_time_ms)
    log = out / "locust.log"
    locust = _start_locust(_locust_command(run, network.state, address, requests, target), log)
    stop = threading.Event()
    sampler = ResourceSampler(lambda: {**injector.pids(), **(others or {}), **_locust_pids(locust)})
    try:
        with _sampling(sampler):
            t0 = _wait_started(requests / STARTED_FILE, locust)
            _say(run.progress, f"load started; {spec.duration:g} s, {len(spec.faults)} fault(s)")
            faults = threading.Thread(target=injector.run, args=(spec.faults, t0, stop), name="faults", daemon=True)
            faults.start()
            if not _wait_locust(locust, spec.duration, sampler, run.progress):
                _stop_locust(locust)
            faults.join()
            pending, drain_s = drain_outbox(network.state, spec.drain)
    finally:
        stop.set()
        _stop_locust(locust)
        injector.close()  # SIGCONT a frozen core, stop the hosts it restarted
    if locust.exited() not in (0, None):
        raise LoadtestError(f"Locust exited with code {locust.exited()}; see {log}")
    return _Measured(
        t0=t0,
        seconds=spec.duration,
        requests=read_requests(requests),
        windows=injector.windows,
        fault_errors=injector.errors,
        resources=sampler.as_json(t0),
        pending=pending,
        drain_s=drain_s,
        locust_code=locust.exited() or 0,
    )


# ------------------------------------------------------------------ the summary


def _resources_summary(resources: dict[str, Any], seconds: float, flat_mb_per_min: float) -> dict[str, Any]:
    """Mean and peak CPU, peak memory, and each process's memory trend while the load ran
    (loadtests.resources.memory_trend: the slope over the second half, the growth, flat or not;
    the samples of the start-up, drain and shutdown are left out)."""

    def clean(values: list[float | None]) -> list[float]:
        return [v for v in values if v is not None]

    cpu, rss, t = resources["cpu_percent"], resources["rss_mb"], resources["t_s"]
    trends = {k: memory_trend(t, vs, seconds, flat_mb_per_min) for k, vs in rss.items()}
    return {
        "mean_cpu_percent": {k: round(sum(v) / len(v), 1) for k, vs in cpu.items() if (v := clean(vs))},
        "peak_cpu_percent": {k: max(v) for k, vs in cpu.items() if (v := clean(vs))},
        "peak_rss_mb": {k: max(v) for k, vs in rss.items() if (v := clean(vs))},
        "rss_slope_mb_per_min": {k: None if m is None else _round(m.slope_mb_per_min) for k, m in trends.items()},
        "memory": {k: None if m is None else m.as_json() for k, m in trends.items()},
    }


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _scenario_summary(run: LoadtestRun, spec: LoadtestSpec) -> dict[str, Any]:
    return {
        "file": str(run.scenario),
        "world": str(run.world_file),
        "seed": spec.seed,
        "mix": {k: dict(v) for k, v in spec.mix.weights.items()},
        "mix_origin": spec.mix.origin,
        "user_shares": {k: round(v, 4) for k, v in spec.mix.user_weights().items()},
        "stages": [dataclasses.asdict(s) for s in spec.stages],
        "faults": [dataclasses.asdict(f) for f in spec.faults],
        "budget": dataclasses.asdict(spec.budget),
    }


def _summarise(run: LoadtestRun, spec: LoadtestSpec, m: _Measured, checks: list[Check]) -> dict[str, Any]:
    windows = [w.as_json(m.t0) for w in m.windows]
    failed = [c.name for c in checks if not c.ok]
    return {
        "ok": not failed,
        "failed": failed,
        "scenario": _scenario_summary(run, spec),
        "run": {
            "started_at": m.t0,
            "duration_s": m.seconds,
            "processes": run.processes,
            "hosts": run.hosts,
            "locust_exit_code": m.locust_code,
        },
        "overall": overall(m.requests, m.seconds),
        "faults": windows,
        "windows": window_stats(m.requests, m.t0, m.seconds, windows),
        "guarantees": [c.as_json() for c in checks],
        "outbox": {"pending": m.pending, "drain_s": round(m.drain_s, 3)},
        "resources": _resources_summary(m.resources, m.seconds, run.flat_mb_per_min),
        "files": m.files,
    }


def _fault_check(m: _Measured) -> Check:
    if m.fault_errors:
        return Check(FAULTS_APPLIED, False, "; ".join(m.fault_errors), {"errors": len(m.fault_errors)})
    return Check(FAULTS_APPLIED, True, f"{len(m.windows)} fault(s) applied and ended", {"faults": len(m.windows)})


def _write(out: Path, summary: dict[str, Any], series_: dict[str, Any]) -> None:
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "series.json").write_text(json.dumps(series_) + "\n")
    (out / "report.html").write_text(build_loadtest_report(summary, series_))


def _files(out: Path) -> list[str]:
    """The files of the run folder the report links to (its own three are written right after)."""
    made = [n for n in ("locust.html", "locust.log") if (out / n).exists()]
    return ["summary.json", "series.json", *made, *sorted(p.name for p in out.glob("locust_*.csv")), "requests/"]


# ------------------------------------------------------------------ the whole load test


def run_loadtest(run: LoadtestRun) -> LoadtestResult:
    """Bring the network up, load it with faults, check, report (see the module doc)."""
    spec = run.spec()
    out = run.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    network = bring_up(run.world_file, out / "state", hosts=run.hosts, service_time_ms=run.service_time_ms,
                       core_env=run.core_env, progress=run.progress)  # fmt: skip
    try:
        measured = _drive(network, run, spec, "core", str(network.endpoints["core"]))
    finally:
        network.stop()
    _say(run.progress, f"{len(measured.requests)} requests; checking the guarantees")
    checks = [*check_state(network.state, measured.requests), _fault_check(measured)]
    totals = overall(measured.requests, measured.seconds)
    checks += check_budget(totals["requests"], totals["failures"], totals["p99_ms"], spec.budget)
    measured.files = _files(out)
    summary = _summarise(run, spec, measured, checks)
    series_ = {**series(measured.requests, measured.t0, measured.seconds), "resources": measured.resources}
    _write(out, summary, series_)
    return LoadtestResult(summary["ok"], tuple(summary["failed"]), summary, out)


# ------------------------------------------------------------------ benchmarks


def _stairs_file(out: Path, world: Path, steps: Sequence[Step], seed: int, timeout_s: float) -> Path:
    document = stairs_scenario(yaml.safe_load(world.read_text())["world"], steps, seed, timeout_s)
    path = out / "stairs.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@contextlib.contextmanager
def _proxy(pki: Path, upstream: str, folder: Path) -> Iterator[tuple[str, int]]:
    try:
        with proxy.running(pki, upstream, folder) as (address, pid):
            yield address, pid
    except ChildError as exc:
        raise LoadtestError(f"the raw proxy did not start: {exc}") from exc


def _staircase(network: LiveNetwork, run: LoadtestRun, target: str, plan: Sequence[Step], p99_ms: float) -> Any:
    """One climb of the staircase against the core ("core") or the raw proxy in front of host-0 ("proxy").

    Each step also gets the mean CPU of every process while it was judged: which one saturated.
    """
    run.out.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        if target == "core":
            address, name, pids = str(network.endpoints["core"]), "core", {}
        else:
            upstream = network.endpoints["hosts"][0]
            address, pid = stack.enter_context(_proxy(network.state / "pki", upstream["address"], run.out))
            name, pids = f"proxy:{upstream['name']}", {"proxy": pid}
        _say(run.progress, f"capacity staircase against the {target}")
        m = _drive(network, run, run.spec(), name, address, pids)
    judged = [s for s in plan if not s.warmup]
    steps = evaluate(m.requests, m.t0, plan, p99_ms=p99_ms)
    for step, figures in zip(judged, steps, strict=True):
        figures["cpu_percent"] = mean_cpu_percent(m.resources, step.from_s + SETTLE_S, step.until_s)
    return steps


@dataclass(frozen=True, kw_only=True)
class CapacityPlan:
    """The staircase of the capacity benchmark (loadtests/capacity.py says how a step is judged)."""

    start_rate: float = 200.0
    factor: float = 1.25
    steps: int = 12  # up to 200 x 1.25**11 = 2,328/s: above what the raw proxy held on the 2-core machine
    step_s: float = 8.0
    warmup_s: float = 8.0  # every agency connects first (`connect: all`), within the warm-up
    repeats: int = 3
    p99_ms: float = DEFAULT_P99_MS

    def to_steps(self) -> list[Step]:
        return plan_steps(self.start_rate, self.factor, self.steps, self.step_s, self.warmup_s)


def _load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def capacity_benchmark(
    out: Path,
    plan: CapacityPlan = CapacityPlan(),
    *,
    world: Path | None = None,
    processes: int = 1,
    progress: bool = True,
) -> dict[str, Any]:
    """The highest routed-consultation rate the core sustains with p99 <= `plan.p99_ms`, and the same
    for the raw one-hop proxy in front of one agency host, in one live network; their ratio.

    The two staircases alternate `plan.repeats` times (core, proxy, core, ...), so that both meet
    the same moods of a shared machine, and each capacity is the median of its climbs. Writes
    OUT/capacity.json (every step of every climb, the load average before and after) and returns it.
    """
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    world = world or default_scenario()
    steps = plan.to_steps()
    stairs = _stairs_file(out, world, steps, seed=7, timeout_s=5.0)
    load_before = _load_average()
    network = bring_up(world, out / "state", hosts=CAPACITY_HOSTS, progress=progress)
    climbs: dict[str, list[Any]] = {"core": [], "proxy": []}
    try:
        for k in range(plan.repeats):
            for target, found in climbs.items():
                _say(progress, f"climb {k + 1} of {plan.repeats} against the {target}")
                run = LoadtestRun(scenario=stairs, world=world, out=out / f"{target}-{k}", processes=processes,
                                  progress=progress)  # fmt: skip
                found.append(_staircase(network, run, target, steps, plan.p99_ms))
    finally:
        network.stop()
    core, proxy = median_capacity(climbs["core"]), median_capacity(climbs["proxy"])
    result: dict[str, Any] = {
        "core_rps": core["rps"],
        "proxy_rps": proxy["rps"],
        "ratio": _round(core["rps"] / proxy["rps"]) if core["rps"] and proxy["rps"] else None,
        "core_p99_ms": core["p99_ms"],
        "proxy_p99_ms": proxy["p99_ms"],
        "core_rps_each": core["each"],
        "proxy_rps_each": proxy["each"],
        # a capacity at the staircase's top step is only a lower bound: it held the highest rate tried
        "core_at_top": core["rps"] == steps[-1].rate,
        "proxy_at_top": proxy["rps"] == steps[-1].rate,
        "p99_limit_ms": plan.p99_ms,
        "plan": dataclasses.asdict(plan),
        "load_average": {"before": load_before, "after": _load_average()},
        "climbs": climbs,
    }
    (out / "capacity.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _core_diagnostics(dump: Path | None, frames: int) -> dict[str, str]:
    """The environment that asks the core for memory snapshots (crossroads/diagnostics.py) in
    `dump`; none when `dump` is None."""
    wanted = {} if dump is None else {DUMP_ENV: str(dump), INTERVAL_ENV: str(DIAGNOSTICS_INTERVAL_S)}
    if dump is not None and frames:
        wanted[TRACEMALLOC_ENV] = str(frames)
    return wanted


def _flatness(memory: dict[str, Any], threshold: float) -> dict[str, Any]:
    """The headline of the memory trends: the core's slope, the hosts' steepest, and whether each is flat."""
    core = memory.get("core")
    hosts = [m for name, m in memory.items() if name.startswith("host-") and m is not None]
    steepest = max((m["slope_mb_per_min"] for m in hosts), default=None)
    return {
        "flat_threshold_mb_per_min": threshold,
        "core_slope_mb_per_min": None if core is None else core["slope_mb_per_min"],
        "core_growth_mb": None if core is None else core["total_growth_mb"],
        "core_flat": None if core is None else core["flat"],
        "hosts_max_slope_mb_per_min": steepest,
        "hosts_flat": None if steepest is None else steepest < threshold,
    }


def soak_benchmark(
    out: Path,
    rate: float,
    *,
    world: Path | None = None,
    duration_s: float = 600.0,
    processes: int = 1,
    progress: bool = True,
    flat_mb_per_min: float = DEFAULT_FLAT_MB_PER_MIN,
    memory_dump: bool = False,
    tracemalloc_frames: int = 0,
) -> dict[str, Any]:
    """Routed consultations at `rate` for `duration_s` against the core: latency, errors, and whether
    memory stays flat: each process's slope over the second half of the load (the first half is
    the warm-up), its total growth, and flat = slope < `flat_mb_per_min` (loadtests.resources.memory_trend).

    With `memory_dump`, the core is asked (through the environment) for memory snapshots every
    DIAGNOSTICS_INTERVAL_S in OUT/memory-core.jsonl (crossroads/diagnostics.py; `tracemalloc_frames`
    > 0 also traces Python allocations, at a cost in CPU), summarised in "core_breakdown".
    Writes OUT/soak.json (and the load test's own files) and returns it.
    """
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    world = world or default_scenario()
    stairs = _stairs_file(out, world, plan_steps(rate, 2.0, 1, duration_s, 0.0), seed=11, timeout_s=5.0)
    dump = out / "memory-core.jsonl" if memory_dump else None
    if dump is not None:
        dump.unlink(missing_ok=True)
    load_before = _load_average()
    diagnostics = _core_diagnostics(dump, tracemalloc_frames)
    run = LoadtestRun(scenario=stairs, world=world, out=out, processes=processes, progress=progress,
                      flat_mb_per_min=flat_mb_per_min, core_env=diagnostics)  # fmt: skip
    result = run_loadtest(run)
    o = result.summary["overall"]
    memory = result.summary["resources"]["memory"]
    soak = {
        "rate": rate,
        "duration_s": duration_s,
        "answered_per_s": o["per_s"],
        "p50_ms": o["p50_ms"],
        "p99_ms": o["p99_ms"],
        "errors": o["failures"],
        "guarantees_ok": result.ok,
        **_flatness(memory, flat_mb_per_min),
        "memory": memory,
        "peak_rss_mb": result.summary["resources"]["peak_rss_mb"],
        "load_average": {"before": load_before, "after": _load_average()},
        "core_breakdown": summarise_dump(read_dump(dump)) if dump is not None and dump.exists() else None,
    }
    (out / "soak.json").write_text(json.dumps(soak, indent=2) + "\n")
    return soak


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m testbed.loadtest capacity|soak ...`: the same as `crossroads bench capacity|soak ...`."""
    from testbed.cli import main as crossroads  # the command line imports this module: only when run

    return crossroads(["bench", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
