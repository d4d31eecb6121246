"""Running a live load test: the network up, Locust headless, faults on time, then checks and report.

`run_loadtest(LoadtestRun(scenario=..., out=DIR))`:
1. validates the scenario's `loadtest:` section (loadtests/spec.py) and brings the live network
   of its `world:` up with its state in DIR/state (`testbed.live.bring_up`);
2. runs Locust headless as a subprocess on loadtests/locustfile.py (`--processes K` for local
   workers; any other Locust flags pass through, e.g. `--master --expect-workers N` for
   workers on other machines), writing DIR/locust_*.csv (full history), DIR/locust.html,
   DIR/locust.log and the request logs DIR/requests/*.jsonl;
3. applies the scenario's timed faults from the moment the load starts (testbed/faults.py),
   while psutil samples CPU and memory of the core, the hosts and Locust every second;
4. lets the core empty its outbox (at most the scenario's `drain` seconds), stops the network,
   and checks the guarantees (loadtests/guarantees.py) and the budget;
5. writes DIR/summary.json (headline figures, checks), DIR/series.json and DIR/report.html.
`LoadtestResult.ok` is False when a guarantee broke, the budget was exceeded or a fault could not
be applied; `failed` names which.

`drive` is one Locust run against a network already up (the benchmarks in testbed/bench/ use it).
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

import loadtests
from loadtests.context import STARTED_FILE
from loadtests.faults import FaultWindow
from loadtests.guarantees import Check, check_budget, check_state, drain_outbox
from loadtests.metrics import overall, series, window_stats
from loadtests.record import RequestRecord, read_requests
from loadtests.report import build_loadtest_report
from loadtests.resources import DEFAULT_FLAT_MB_PER_MIN, ResourceSampler, memory_trend
from loadtests.spec import LoadtestSpec, load_loadtest_spec
from testbed import processes
from testbed.faults import FaultInjector
from testbed.live import DEFAULT_HOSTS, LiveNetwork, bring_up
from testbed.processes import Child, ChildError

__all__ = [
    "FAULTS_APPLIED",
    "LOCUSTFILE",
    "PROGRESS_EVERY_S",
    "LoadtestError",
    "LoadtestResult",
    "LoadtestRun",
    "Measured",
    "drive",
    "run_loadtest",
]

LOCUSTFILE = Path(loadtests.__file__).resolve().parent / "locustfile.py"
LOCUST_START_TIMEOUT_S = 120.0  # imports and the world, on a loaded machine: a ceiling, not a target
LOCUST_STOP_MARGIN_S = 60.0  # beyond the shape's end, before Locust is told to stop
LOCUST_STOP_TIMEOUT_S = 20.0
PROGRESS_EVERY_S = 60.0  # a long load says how far it is this often
FAULTS_APPLIED = "every fault applied as planned"


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
class Measured:
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


def drive(
    network: LiveNetwork,
    run: LoadtestRun,
    spec: LoadtestSpec,
    target: str,
    address: str,
    others: Mapping[str, int] | None = None,
) -> Measured:
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
    return Measured(
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


def _summarise(run: LoadtestRun, spec: LoadtestSpec, m: Measured, checks: list[Check]) -> dict[str, Any]:
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


def _fault_check(m: Measured) -> Check:
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
        measured = drive(network, run, spec, "core", str(network.endpoints["core"]))
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
