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
`python -m testbed.loadtest capacity|soak --out DIR`) use the same machinery with a staircase of
routed consultations (loadtests/capacity.py), against the core and the raw one-hop proxy
(testbed/proxy.py) of one network.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import yaml

import loadtests
from loadtests.capacity import DEFAULT_P99_MS, Step, evaluate, median_capacity, plan_steps, stairs_scenario
from loadtests.context import STARTED_FILE, default_scenario
from loadtests.faults import FaultInjector, FaultWindow
from loadtests.guarantees import Check, check_budget, check_state, drain_outbox
from loadtests.metrics import overall, series, window_stats
from loadtests.record import RequestRecord, read_requests
from loadtests.report import build_loadtest_report
from loadtests.resources import ResourceSampler, rss_slope_mb_per_min
from loadtests.spec import LoadtestSpec, load_loadtest_spec
from testbed.live import DEFAULT_HOSTS, LiveNetwork, bring_up

__all__ = [
    "FAULTS_APPLIED",
    "LOCUSTFILE",
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


def _locust_env() -> dict[str, str]:
    # Locust imports the very code this process runs, wherever it is started from
    root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


def _locust_command(run: LoadtestRun, state: Path, address: str, requests: Path, target: str) -> list[str]:
    out = run.out.resolve()
    command = [
        *(sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", address),
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


def _start_locust(command: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=_locust_env(),
            start_new_session=True,  # its workers form a group of their own, which we stop as one
        )


def _wait_started(started: Path, locust: subprocess.Popen[bytes], log: Path) -> float:
    """The UNIX time the load started (Locust's test_start), once Locust has written it."""
    deadline = time.monotonic() + LOCUST_START_TIMEOUT_S
    while not started.exists():
        if locust.poll() is not None:
            raise LoadtestError(f"Locust exited with code {locust.returncode} before the load started; see {log}")
        if time.monotonic() > deadline:
            raise LoadtestError(f"Locust did not start the load within {LOCUST_START_TIMEOUT_S:g} s; see {log}")
        time.sleep(_POLL_S)
    return float(json.loads(started.read_text())["wall"])


def _stop_locust(locust: subprocess.Popen[bytes]) -> None:
    """SIGTERM to Locust's process group (it quits cleanly, writing its files), SIGKILL if it hangs."""
    if locust.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(locust.pid, signal.SIGTERM)
    try:
        locust.wait(timeout=LOCUST_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(locust.pid, signal.SIGKILL)
        locust.wait()


def _locust_pids(locust: subprocess.Popen[bytes]) -> dict[str, int]:
    try:
        children = psutil.Process(locust.pid).children()
    except psutil.Error:
        return {}
    return {"locust": locust.pid, **{f"locust-{k + 1}": c.pid for k, c in enumerate(children)}}


# ------------------------------------------------------------------ one run against a network


@contextlib.contextmanager
def _sampling(sampler: ResourceSampler) -> Iterator[ResourceSampler]:
    sampler.start()
    try:
        yield sampler
    finally:
        sampler.stop()


def _drive(network: LiveNetwork, run: LoadtestRun, spec: LoadtestSpec, target: str, address: str) -> _Measured:
    """Run Locust against `address` with the faults of `spec`; drain the outbox; the network stays up.

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
    sampler = ResourceSampler(lambda: {**injector.pids(), **_locust_pids(locust)})
    try:
        with _sampling(sampler):
            t0 = _wait_started(requests / STARTED_FILE, locust, log)
            _say(run.progress, f"load started; {spec.duration:g} s, {len(spec.faults)} fault(s)")
            faults = threading.Thread(target=injector.run, args=(spec.faults, t0, stop), name="faults", daemon=True)
            faults.start()
            try:
                locust.wait(timeout=spec.duration + LOCUST_STOP_MARGIN_S)
            except subprocess.TimeoutExpired:
                _stop_locust(locust)
            faults.join()
            pending, drain_s = drain_outbox(network.state, spec.drain)
    finally:
        stop.set()
        _stop_locust(locust)
        injector.close()  # SIGCONT a frozen core, stop the hosts it restarted
    if locust.returncode not in (0, None):
        raise LoadtestError(f"Locust exited with code {locust.returncode}; see {log}")
    return _Measured(
        t0=t0,
        seconds=spec.duration,
        requests=read_requests(requests),
        windows=injector.windows,
        fault_errors=injector.errors,
        resources=sampler.as_json(t0),
        pending=pending,
        drain_s=drain_s,
        locust_code=locust.returncode or 0,
    )


# ------------------------------------------------------------------ the summary


def _resources_summary(resources: dict[str, Any], seconds: float) -> dict[str, Any]:
    """Mean and peak CPU, peak memory, and the memory slope of each process while the load ran
    (the samples of the start-up, drain and shutdown are left out of the slope)."""

    def clean(values: list[float | None]) -> list[float]:
        return [v for v in values if v is not None]

    cpu, rss, t = resources["cpu_percent"], resources["rss_mb"], resources["t_s"]
    during = [k for k, x in enumerate(t) if 0.0 <= x <= seconds]

    def slope(values: list[float | None]) -> float | None:
        return _round(rss_slope_mb_per_min([t[k] for k in during], [values[k] for k in during]))

    return {
        "mean_cpu_percent": {k: round(sum(v) / len(v), 1) for k, vs in cpu.items() if (v := clean(vs))},
        "peak_cpu_percent": {k: max(v) for k, vs in cpu.items() if (v := clean(vs))},
        "peak_rss_mb": {k: max(v) for k, vs in rss.items() if (v := clean(vs))},
        "rss_slope_mb_per_min": {k: slope(vs) for k, vs in rss.items()},
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
        "resources": _resources_summary(m.resources, m.seconds),
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
                       progress=run.progress)  # fmt: skip
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
def _proxy(state: Path, upstream: str, log: Path) -> Iterator[str]:
    """The raw one-hop proxy (testbed/proxy.py) in front of `upstream`, in a process of its own."""
    port_file = state / "proxy.port"
    port_file.unlink(missing_ok=True)
    with open(log, "wb") as out:
        popen = subprocess.Popen(
            [sys.executable, "-m", "testbed.proxy", "--pki", str(state / "pki"), "--upstream", upstream,
             "--port-file", str(port_file)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=_locust_env(), start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + LOCUST_START_TIMEOUT_S
        while not port_file.exists() or not port_file.read_text().strip():
            if popen.poll() is not None or time.monotonic() > deadline:
                raise LoadtestError(f"the raw proxy did not start; see {log}")
            time.sleep(_POLL_S)
        yield f"127.0.0.1:{int(port_file.read_text())}"
    finally:
        popen.send_signal(signal.SIGTERM)
        try:
            popen.wait(timeout=LOCUST_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()


def _staircase(network: LiveNetwork, run: LoadtestRun, target: str, plan: Sequence[Step], p99_ms: float) -> Any:
    """One climb of the staircase against the core ("core") or the raw proxy in front of host-0 ("proxy")."""
    run.out.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        if target == "core":
            address, name = str(network.endpoints["core"]), "core"
        else:
            upstream = network.endpoints["hosts"][0]
            address = stack.enter_context(_proxy(network.state, upstream["address"], run.out / "proxy.log"))
            name = f"proxy:{upstream['name']}"
        _say(run.progress, f"capacity staircase against the {target}")
        m = _drive(network, run, run.spec(), name, address)
    return evaluate(m.requests, m.t0, plan, p99_ms=p99_ms)


def capacity_benchmark(
    out: Path,
    *,
    world: Path | None = None,
    start_rate: float = 200.0,
    factor: float = 1.25,
    steps: int = 10,
    step_s: float = 8.0,
    warmup_s: float = 8.0,  # every agency connects first (`connect: all`), within the warm-up
    repeats: int = 3,
    p99_ms: float = DEFAULT_P99_MS,
    processes: int = 1,
    progress: bool = True,
) -> dict[str, Any]:
    """The highest routed-consultation rate the core sustains with p99 <= `p99_ms`, and the same for
    the raw one-hop proxy in front of one agency host, in one live network; their ratio.

    The two staircases alternate `repeats` times (core, proxy, core, ...), so that both meet the
    same moods of a shared machine, and each capacity is the median of its climbs. Writes
    OUT/capacity.json (every step of every climb) and returns it.
    """
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    world = world or default_scenario()
    plan = plan_steps(start_rate, factor, steps, step_s, warmup_s)
    stairs = _stairs_file(out, world, plan, seed=7, timeout_s=5.0)
    network = bring_up(world, out / "state", progress=progress)
    climbs: dict[str, list[Any]] = {"core": [], "proxy": []}
    try:
        for k in range(repeats):
            for target, found in climbs.items():
                run = LoadtestRun(scenario=stairs, world=world, out=out / f"{target}-{k}", processes=processes,
                                  progress=progress)  # fmt: skip
                found.append(_staircase(network, run, target, plan, p99_ms))
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
        "p99_limit_ms": p99_ms,
        "climbs": climbs,
    }
    (out / "capacity.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def soak_benchmark(
    out: Path,
    rate: float,
    *,
    world: Path | None = None,
    duration_s: float = 600.0,
    processes: int = 1,
    progress: bool = True,
) -> dict[str, Any]:
    """Routed consultations at `rate` for `duration_s` against the core; the memory slope of each
    process (MB per minute, least squares after the first 20 %), latency and errors.

    Writes OUT/soak.json (and the load test's own files) and returns it.
    """
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    world = world or default_scenario()
    plan = plan_steps(rate, 2.0, 1, duration_s, 0.0)
    stairs = _stairs_file(out, world, plan, seed=11, timeout_s=5.0)
    result = run_loadtest(LoadtestRun(scenario=stairs, world=world, out=out, processes=processes, progress=progress))
    s = result.summary
    soak = {
        "rate": rate,
        "duration_s": duration_s,
        "answered_per_s": s["overall"]["per_s"],
        "p50_ms": s["overall"]["p50_ms"],
        "p99_ms": s["overall"]["p99_ms"],
        "errors": s["overall"]["failures"],
        "rss_slope_mb_per_min": s["resources"]["rss_slope_mb_per_min"],
        "peak_rss_mb": s["resources"]["peak_rss_mb"],
        "guarantees_ok": result.ok,
    }
    (out / "soak.json").write_text(json.dumps(soak, indent=2) + "\n")
    return soak


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m testbed.loadtest capacity|soak --out DIR ...`: the benchmarks, last line JSON."""
    parser = argparse.ArgumentParser(prog="python -m testbed.loadtest", description=main.__doc__)
    sub = parser.add_subparsers(dest="which", required=True)
    cap = sub.add_parser("capacity", help="highest rate with p99 <= 50 ms, core vs raw proxy")
    cap.add_argument("--out", type=Path, required=True)
    cap.add_argument("--start-rate", type=float, default=200.0)
    cap.add_argument("--factor", type=float, default=1.25)
    cap.add_argument("--steps", type=int, default=10)
    cap.add_argument("--step-s", type=float, default=8.0)
    cap.add_argument("--warmup-s", type=float, default=8.0)
    cap.add_argument("--repeats", type=int, default=3, help="climbs of each staircase (the median is kept)")
    cap.add_argument("--processes", type=int, default=1)
    soak = sub.add_parser("soak", help="a steady rate for a while: is memory flat?")
    soak.add_argument("--out", type=Path, required=True)
    soak.add_argument("--rate", type=float, help="requests/s (default: 70%% of a capacity run first)")
    soak.add_argument("--duration-s", type=float, default=600.0)
    soak.add_argument("--processes", type=int, default=1)
    args = parser.parse_args(argv)
    if args.which == "capacity":
        figures = capacity_benchmark(
            args.out, start_rate=args.start_rate, factor=args.factor, steps=args.steps, step_s=args.step_s,
            warmup_s=args.warmup_s, repeats=args.repeats, processes=args.processes,
        )  # fmt: skip
        keys = ("core_rps", "proxy_rps", "ratio", "core_p99_ms", "proxy_p99_ms", "core_rps_each", "proxy_rps_each")
        print(json.dumps({k: figures[k] for k in keys}))
        return 0
    rate = args.rate
    if rate is None:
        found = capacity_benchmark(args.out / "capacity", processes=args.processes)["core_rps"]
        if not found:
            print("no sustained rate found: nothing to soak at", file=sys.stderr)
            return 1
        rate = 0.7 * found
    print(json.dumps(soak_benchmark(args.out, rate, duration_s=args.duration_s, processes=args.processes)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
