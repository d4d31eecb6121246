"""`crossroads bench core|audit|world|up|capacity|soak|all`: the benchmarks of issues 2 and 4, each
against its goal.

Benchmarks are not tests: they print figures and whether each goal was met, and exit 0 when
they ran (1 when they could not). Progress goes to stderr; the summary and a last line of JSON
to stdout; the full figures to a JSON file in --out.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any

from loadtests.capacity import DEFAULT_P99_MS
from loadtests.report import capacity_text, soak_text
from loadtests.resources import DEFAULT_FLAT_MB_PER_MIN
from testbed import bench_core as bc
from testbed.loadtest import CapacityPlan, capacity_benchmark, soak_benchmark

DEFAULT_OUT = Path("runs/bench")
DEFAULT_AUDIT_RUNS = 3
DEFAULT_WORLD_RUNS = 1  # one national build is ~20-40 s; --runs 3 for a median
GOAL_APPENDS_PER_S = 100_000.0
GOAL_VERIFY_S = 5.0
GOAL_WORLD_S = 60.0
GOAL_WORLD_MB = 4096.0
GOAL_UP_S = 10.0
GOAL_UP_MB = 1024.0
DEFAULT_SOAK_MINUTES = 10.0
SOAK_SHARE = 0.7  # issue 4: the soak runs at 70 % of the capacity measured
_PLAN = CapacityPlan()

_BENCH_HELP = """\
The benchmarks of the live core, its audit log and the synthetic world, each measured on this
machine and compared with its goal (issue 2); the core's capacity under open-loop load against
a raw proxy, and a soak at 70 % of it that judges whether memory stays flat (issue 4).
`make bench` runs `crossroads bench all`.
"""

_CORE_HELP = f"""\
Routed consultations through the crossroads core against a raw one-hop gRPC proxy, in one run:
the same load generator process, the same single agency host process, mutual TLS on every hop.
The core authenticates each sender by its certificate, validates, checks the deliberation and
the directory, routes, forwards and appends a durable audit record before it answers; the proxy
(testbed/proxy.py) forwards the very Forward bytes the core would send, and nothing else.
Runs alternate proxy/core (ABBA) to share the machine's noise; figures are medians of --runs.

Figures (last line of stdout, JSON; everything in OUT/bench_core.json):
  core_rps, proxy_rps   completed calls per second (closed loop, --concurrency in flight)
  ratio                 core_rps / proxy_rps                               goal >= {bc.GOAL_RATIO}
  core_p50_ms, core_p99_ms, proxy_p50_ms, proxy_p99_ms
                        latency percentiles of each path, milliseconds
  runs                  runs per path
  (and in the file: ratio_paired, the median of each core run's req/s over the proxy run beside
  it, steadier than `ratio` when the machine drifts between runs; CPU time per call of the core,
  the proxy, the host and the load generator; every run's figures; the audit outcomes)
Why 256 in flight by default: the ratio depends on the load. A closed-loop client measures a
server's capacity only once the server is saturated; on the 2-core machine the core saturates
from ~128 in flight (its one busy CPU is the limit) and the proxy from ~256 (the machine is),
so 256 compares capacities, with p99 latency still under ~200 ms. At 64 in flight neither is
quite saturated and the ratio is higher: run --concurrency 64 for that point.
"""

_AUDIT_HELP = f"""\
The durable audit log (SQLite WAL, synchronous=FULL, group commit), via testbed/bench_audit.py:
  sync_records_per_s    append_batch_sync, batches of 10,000                goal >= {GOAL_APPENDS_PER_S:,.0f}/s
  async_records_per_s   concurrent `append`, one record per call (as the core appends)
                                                                            goal >= {GOAL_APPENDS_PER_S:,.0f}/s
  many_records_per_s    concurrent `append_many`, 100 records per call      goal >= {GOAL_APPENDS_PER_S:,.0f}/s
  verify_seconds        `audit verify` (verify_store) of a 1 M record log   goal <= {GOAL_VERIFY_S:g} s
Each rate also comes as CPU time per record (*_cpu_us_per_record), steadier on a shared
machine: with the GIL, 1e6 / cpu_us is about the rate on two idle cores.
Medians of --runs; all figures in OUT/bench_audit.json.
"""

_WORLD_HELP = f"""\
The national synthetic world (11 M persons, 220 K employers; scenarios/national.yaml), built in
a fresh process per run (testbed/bench_world.py):
  seconds               World.build wall time                               goal <= {GOAL_WORLD_S:g} s
  peak_rss_mb           the building process's peak resident memory         goal <= {GOAL_WORLD_MB:g} MB
Medians of --runs; all figures in OUT/bench_world.json.
"""

_UP_HELP = f"""\
The live network of the demo world (~3,000 agencies, 4 hosts and the core) brought up on a
fresh state folder (world files, certificates and all), then again warm (files reused):
  cold_seconds, warm_seconds   until every process answers SERVING           goal <= {GOAL_UP_S:g} s
  rss_mb                       resident memory of the core and the hosts      goal <= {GOAL_UP_MB:g} MB
Figures in OUT/bench_up.json.
"""

_CAPACITY_HELP = f"""\
The highest rate of routed consultations the core sustains with p99 <= {DEFAULT_P99_MS:g} ms, against the
raw one-hop proxy (testbed/proxy.py), in the same live network and run (issue 4); one agency host
serves every agency, so both paths end at the same host process, as in `bench core`.
Locust, open loop (users send on a schedule of their own), climbs a staircase of
rates: --warmup-s at --start-rate, then --steps steps of --step-s, each --factor x higher. A
step is sustained when its requests (its first second left out) had p99 <= --p99-ms, at most 1 %
failed, and at least 90 % of the target rate was sent; the capacity of a climb is the highest
step sustained. Core and proxy climbs alternate --repeats times; each capacity is the median.

Figures (last line of stdout, JSON; everything in OUT/capacity/capacity.json, a summary in
OUT/capacity/capacity.txt, each climb's Locust files in OUT/capacity/core-K, proxy-K):
  core_rps, proxy_rps   highest rate sustained (requests/s), median of the climbs
  ratio                 core_rps / proxy_rps
  core_p99_ms, proxy_p99_ms   p99 of the step found
  core_rps_each, proxy_rps_each   every climb's capacity
  core_at_top, proxy_at_top   true when that capacity is the staircase's top step: only a lower
                        bound (then the ratio is too); run more --steps
In the file, each step of each climb also has the mean CPU of every process (core or proxy, the
host, Locust) while it was judged, which says what saturated; and the load average before and
after: figures on a shared machine are noisy.
"""

_SOAK_HELP = f"""\
Routed consultations at a steady rate for --minutes (default {DEFAULT_SOAK_MINUTES:g}) against the core: is
memory flat? The rate is --rate, or {100 * SOAK_SHARE:.0f} % of the core's capacity measured first in the same run
(`bench capacity`, with the staircase options below). psutil samples every process once a second.
Flat is judged per process on the second half of the load (the first half is the warm-up:
caches fill, the allocator finds its size): the least-squares slope of resident memory must be
below --flat-mb-per-min (default {DEFAULT_FLAT_MB_PER_MIN:g} MB/min); the total growth is reported beside it.

--memory-dump asks the core (through CROSSROADS_MEMORY_DUMP, crossroads/diagnostics.py) for a
snapshot every 30 s of where its memory is: SQLite, malloc in use and free-but-kept, Python
objects per type; --tracemalloc N also traces Python allocations (N frames; it costs CPU).

Figures (last line of stdout, JSON; everything in OUT/soak/soak.json, a summary in
OUT/soak/soak.txt, the load test's report in OUT/soak/report.html):
  rate, answered_per_s, p50_ms, p99_ms, errors, guarantees_ok
  core_slope_mb_per_min, core_growth_mb, core_flat
  hosts_max_slope_mb_per_min, hosts_flat
"""

_ALL_HELP = """\
Every benchmark above (core, audit, world, up, capacity, then a soak at 70 % of that capacity),
one after the other; writes OUT/bench.json with every figure and every goal, prints a table of
the goals and, last, one JSON line of them.
"""


class _Raw(argparse.RawDescriptionHelpFormatter):
    """Keeps the paragraphs of the descriptions as written."""


def register(sub: Any) -> None:
    """Add `bench` and its benchmarks to the `crossroads` sub-commands."""
    bench = sub.add_parser("bench", help="benchmarks against the goals of issues 2 and 4", description=_BENCH_HELP)
    bench.formatter_class = _Raw
    kinds = bench.add_subparsers(dest="bench", metavar="BENCH")
    bench.set_defaults(func=lambda _args: _usage(bench))
    for name, summary, text, add, run in (
        ("core", "routed consultations: the core against a raw mTLS proxy", _CORE_HELP, _core_args, run_core),
        ("audit", "durable audit appends/s and `audit verify` of 1 M records", _AUDIT_HELP, _audit_args, run_audit),
        ("world", "national world build time and peak memory", _WORLD_HELP, _world_args, run_world),
        ("up", "~3,000 agencies serving: start-up time and memory", _UP_HELP, _no_args, run_up),
        ("capacity", "highest rate with p99 <= 50 ms, core vs raw proxy", _CAPACITY_HELP, _capacity_args, run_capacity),
        ("soak", "a steady rate for minutes: is memory flat?", _SOAK_HELP, _soak_args, run_soak),
        ("all", "all of the above; OUT/bench.json with every figure", _ALL_HELP, _all_args, run_all),
    ):
        parser = kinds.add_parser(name, help=summary, description=text, formatter_class=_Raw)
        parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"run folder (default {DEFAULT_OUT})")
        add(parser)
        parser.set_defaults(func=_reporting(run))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _reporting(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def guarded(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except (bc.BenchError, OSError, RuntimeError, ValueError) as exc:
            print(f"crossroads bench: {exc}", file=sys.stderr)
            return 1

    return guarded


def _core_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=float, default=bc.DEFAULT_SECONDS, help="measured seconds per run")
    p.add_argument("--concurrency", type=int, default=bc.DEFAULT_CONCURRENCY, help="calls in flight")
    p.add_argument("--runs", type=int, default=bc.DEFAULT_RUNS, help="runs per path (median)")
    p.add_argument("--warmup", type=float, default=bc.DEFAULT_WARMUP_S, help="unmeasured seconds before each run")
    p.add_argument("--requests", type=int, default=bc.DEFAULT_REQUESTS, help="distinct prepared consultations")
    p.add_argument("--scenario", type=Path, default=None, help="world scenario (default: the shipped demo.yaml)")


def _audit_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runs", type=int, default=DEFAULT_AUDIT_RUNS, help="runs (median)")
    p.add_argument("--appends", type=int, default=200_000, help="records per append mode")
    p.add_argument("--verify", type=int, default=1_000_000, help="records in the verified log")
    p.add_argument("--concurrency", type=int, default=10_000, help="concurrently appending coroutines")


def _world_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runs", type=int, default=DEFAULT_WORLD_RUNS, help="builds, each in a fresh process (median)")
    p.add_argument("--scenario", type=Path, default=None, help="world scenario (default: the shipped national.yaml)")


def _no_args(p: argparse.ArgumentParser) -> None:
    del p


def _capacity_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scenario", type=Path, default=None, help="world scenario (default: the shipped smoke test's)")
    p.add_argument("--processes", type=int, default=1, help="Locust processes")
    _staircase_args(p)


def _staircase_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--start-rate", type=float, default=_PLAN.start_rate, help="requests/s of the first step")
    p.add_argument("--factor", type=float, default=_PLAN.factor, help="each step this many times the last")
    p.add_argument("--steps", type=int, default=_PLAN.steps, help="steps of the staircase")
    p.add_argument("--step-s", type=float, default=_PLAN.step_s, help="seconds per step")
    p.add_argument("--warmup-s", type=float, default=_PLAN.warmup_s, help="seconds at the start rate first")
    p.add_argument("--repeats", type=int, default=_PLAN.repeats, help="climbs against each target (median)")
    p.add_argument("--p99-ms", type=float, default=_PLAN.p99_ms, help="the latency a sustained step keeps")


def _soak_args(p: argparse.ArgumentParser) -> None:
    _capacity_args(p)  # the capacity measured first when no --rate is given
    _soak_only_args(p)
    p.add_argument(
        "--rate", type=float, default=None, help=f"requests/s (default: {100 * SOAK_SHARE:.0f} %% of the capacity)"
    )


def _soak_only_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--minutes", type=float, default=DEFAULT_SOAK_MINUTES, help="minutes of steady load")
    p.add_argument("--flat-mb-per-min", type=float, default=DEFAULT_FLAT_MB_PER_MIN, help="flat: a slope below this")
    p.add_argument("--memory-dump", action="store_true", help="the core's memory snapshots in OUT/soak")
    p.add_argument("--tracemalloc", type=int, default=0, metavar="FRAMES", help="trace Python allocations too")


def _all_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runs", type=int, default=None, help="runs of every benchmark (default: each its own)")
    p.add_argument("--seconds", type=float, default=bc.DEFAULT_SECONDS, help="measured seconds per core run")
    p.add_argument("--concurrency", type=int, default=bc.DEFAULT_CONCURRENCY, help="calls in flight (core)")
    _capacity_args(p)
    _soak_only_args(p)


def _shipped(name: str) -> Path:
    return Path(str(files("scenarios").joinpath(name)))


def _say(message: str) -> None:
    print(f"crossroads bench: {message}", file=sys.stderr, flush=True)


def _write(out: Path, name: str, figures: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / name).write_text(json.dumps(figures, indent=2) + "\n")


def _goal(value: float, op: str, target: float) -> dict[str, Any]:
    met = {">=": value >= target, "<=": value <= target, "<": value < target}[op]
    return {"value": value, "goal": f"{op} {target:g}", "met": met}


# ------------------------------------------------------------------ core


def core_figures(out: Path, args: argparse.Namespace, runs: int | None = None) -> dict[str, Any]:
    config = bc.CoreBenchConfig(
        out=out,
        scenario=getattr(args, "scenario", None) or bc.default_scenario(),
        seconds=args.seconds,
        concurrency=args.concurrency,
        runs=runs or getattr(args, "runs", None) or bc.DEFAULT_RUNS,
        warmup_s=getattr(args, "warmup", bc.DEFAULT_WARMUP_S),
        requests=getattr(args, "requests", bc.DEFAULT_REQUESTS),
    )
    return bc.bench_core(config)


def run_core(args: argparse.Namespace) -> int:
    figures = core_figures(args.out, args)
    print(bc.format_summary(figures))
    print(json.dumps(bc.headline(figures)), flush=True)
    return 0


# ------------------------------------------------------------------ audit


def _medians(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: float(statistics.median(run[key] for run in runs)) for key in runs[0]} if runs else {}


def audit_figures(out: Path, runs: int, appends: int, verify: int, concurrency: int) -> dict[str, Any]:
    """Medians of `runs` runs of testbed/bench_audit.py's append and verify benchmarks, in `out`."""
    from testbed.bench_audit import bench_appends, bench_verify

    out.mkdir(parents=True, exist_ok=True)
    append_runs, verify_runs = [], []
    for run in range(runs):
        with tempfile.TemporaryDirectory(prefix="bench-audit-", dir=out) as tmp:  # on the run folder's disk
            _say(f"audit run {run + 1}/{runs}: {appends:,} appends per mode")
            append_runs.append(bench_appends(Path(tmp), appends, concurrency=concurrency, seed=run))
            if verify:
                _say(f"audit run {run + 1}/{runs}: building and verifying {verify:,} records")
                verify_runs.append(bench_verify(Path(tmp), verify, seed=run))
    appended, verified = _medians(append_runs), _medians(verify_runs)
    goals = {
        "audit_sync_appends_per_s": _goal(round(appended["sync_records_per_s"]), ">=", GOAL_APPENDS_PER_S),
        "audit_async_appends_per_s": _goal(round(appended["async_records_per_s"]), ">=", GOAL_APPENDS_PER_S),
        "audit_many_appends_per_s": _goal(round(appended["many_records_per_s"]), ">=", GOAL_APPENDS_PER_S),
    }
    if verified:
        goals["audit_verify_s"] = _goal(round(verified["verify_seconds"], 3), "<=", GOAL_VERIFY_S)
    each = {"appends": append_runs, "verify": verify_runs}
    return {"runs": runs, "appends": appended, "verify": verified, "goals": goals, "each": each}


def run_audit(args: argparse.Namespace) -> int:
    figures = audit_figures(args.out, args.runs, args.appends, args.verify, args.concurrency)
    _write(args.out, "bench_audit.json", figures)
    _print_goals(figures["goals"])
    print(json.dumps({k: g["value"] for k, g in figures["goals"].items()}), flush=True)
    return 0


# ------------------------------------------------------------------ world


def world_figures(scenario: Path, runs: int) -> dict[str, Any]:
    """bench_world_runs (a fresh spawned process per build) with the goals of issue 2."""
    from testbed.bench_world import bench_world_runs

    _say(f"world: {runs} build(s) of {scenario.name}, each in a fresh process")
    figures = bench_world_runs(scenario, runs)
    figures["goals"] = {
        "world_seconds": _goal(float(figures["median_seconds"]), "<=", GOAL_WORLD_S),  # type: ignore[arg-type]
        "world_peak_rss_mb": _goal(float(figures["median_peak_rss_mb"]), "<=", GOAL_WORLD_MB),  # type: ignore[arg-type]
    }
    return figures


def run_world(args: argparse.Namespace) -> int:
    figures = world_figures(args.scenario or _shipped("national.yaml"), args.runs)
    _write(args.out, "bench_world.json", figures)
    _print_goals(figures["goals"])
    print(json.dumps({k: g["value"] for k, g in figures["goals"].items()}), flush=True)
    return 0


# ------------------------------------------------------------------ up


def _bring_up_once(scenario: Path, state: Path) -> tuple[float, float, int]:
    from testbed.live import bring_up

    started = time.perf_counter()
    with bring_up(scenario, state, progress=True) as network:
        seconds = time.perf_counter() - started
        rss = sum(network.rss_bytes().values()) / 2**20
        agencies = int(network.endpoints["agencies"])
    return seconds, rss, agencies


def up_figures(out: Path) -> dict[str, Any]:
    """The demo network brought up cold (fresh state folder), then warm (its files reused)."""
    with tempfile.TemporaryDirectory(prefix="bench-up-", dir=out.resolve()) as tmp:
        _say("up: bringing the demo network up on a fresh state folder")
        cold, cold_rss, agencies = _bring_up_once(_shipped("demo.yaml"), Path(tmp))
        _say("up: and again, warm")
        warm, warm_rss, _ = _bring_up_once(_shipped("demo.yaml"), Path(tmp))
    rss = max(cold_rss, warm_rss)
    goals = {
        "up_cold_seconds": _goal(round(cold, 2), "<=", GOAL_UP_S),
        "up_warm_seconds": _goal(round(warm, 2), "<=", GOAL_UP_S),
        "up_rss_mb": _goal(round(rss, 1), "<=", GOAL_UP_MB),
    }
    return {"agencies": agencies, "cold_seconds": cold, "warm_seconds": warm, "rss_mb": rss, "goals": goals}


def run_up(args: argparse.Namespace) -> int:
    args.out.mkdir(parents=True, exist_ok=True)
    figures = up_figures(args.out)
    _write(args.out, "bench_up.json", figures)
    _print_goals(figures["goals"])
    print(json.dumps({k: g["value"] for k, g in figures["goals"].items()}), flush=True)
    return 0


# ------------------------------------------------------------------ capacity and soak (issue 4)


def _plan(args: argparse.Namespace) -> CapacityPlan:
    return CapacityPlan(start_rate=args.start_rate, factor=args.factor, steps=args.steps, step_s=args.step_s,
                        warmup_s=args.warmup_s, repeats=args.repeats, p99_ms=args.p99_ms)  # fmt: skip


def capacity_figures(out: Path, args: argparse.Namespace) -> dict[str, Any]:
    """`capacity_benchmark` in OUT/capacity (a fresh state folder), with its summary in capacity.txt."""
    folder = out.resolve() / "capacity"
    _fresh_state(folder)
    plan = _plan(args)
    _say(f"capacity: {plan.repeats} climb(s) each of core and proxy, {plan.steps} steps from {plan.start_rate:g}/s")
    figures = capacity_benchmark(folder, plan, world=args.scenario, processes=args.processes)
    (folder / "capacity.txt").write_text(capacity_text(figures) + "\n")
    return figures


def soak_figures(out: Path, args: argparse.Namespace, rate: float) -> dict[str, Any]:
    """`soak_benchmark` at `rate` in OUT/soak (a fresh state folder), with its summary in soak.txt."""
    folder = out.resolve() / "soak"
    _fresh_state(folder)
    _say(f"soak: {rate:g} requests/s for {args.minutes:g} min; progress every minute")
    figures = soak_benchmark(folder, rate, world=args.scenario, duration_s=60.0 * args.minutes,
                             processes=args.processes, flat_mb_per_min=args.flat_mb_per_min,
                             memory_dump=args.memory_dump, tracemalloc_frames=args.tracemalloc)  # fmt: skip
    (folder / "soak.txt").write_text(soak_text(figures) + "\n")
    return figures


def _fresh_state(folder: Path) -> None:
    """A benchmark starts from an empty audit log and outbox: the state folder of an earlier run goes."""
    shutil.rmtree(folder / "state", ignore_errors=True)


def soak_rate(capacity: dict[str, Any]) -> float:
    """SOAK_SHARE of the core's capacity; BenchError when the capacity run sustained no rate."""
    if not capacity["core_rps"]:
        raise bc.BenchError("the capacity run sustained no rate with the core: nothing to soak at")
    return round(SOAK_SHARE * float(capacity["core_rps"]), 1)


_CAPACITY_KEYS = ("core_rps", "proxy_rps", "ratio", "core_p99_ms", "proxy_p99_ms", "core_rps_each", "proxy_rps_each",
                  "core_at_top", "proxy_at_top")  # fmt: skip
_SOAK_KEYS = ("rate", "answered_per_s", "p50_ms", "p99_ms", "errors", "guarantees_ok", "core_slope_mb_per_min",
              "core_growth_mb", "core_flat", "hosts_max_slope_mb_per_min", "hosts_flat")  # fmt: skip


def capacity_and_soak(out: Path, args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The capacity, then the soak at SOAK_SHARE of it (None when no rate was sustained)."""
    capacity = capacity_figures(out, args)
    try:
        rate = soak_rate(capacity)
    except bc.BenchError as exc:
        _say(f"{exc}; the soak is left out")
        return capacity, None
    return capacity, soak_figures(out, args, rate)


def run_capacity(args: argparse.Namespace) -> int:
    figures = capacity_figures(args.out, args)
    print(capacity_text(figures))
    print(json.dumps({k: figures[k] for k in _CAPACITY_KEYS}), flush=True)
    return 0


def run_soak(args: argparse.Namespace) -> int:
    if args.rate is None:
        capacity, soak = capacity_and_soak(args.out, args)
        print(capacity_text(capacity))
    else:
        soak = soak_figures(args.out, args, args.rate)
    if soak is None:
        return 1
    print(soak_text(soak))
    print(json.dumps({k: soak[k] for k in _SOAK_KEYS}), flush=True)
    return 0


def _soak_goals(soak: dict[str, Any]) -> dict[str, dict[str, Any]]:
    threshold = soak["flat_threshold_mb_per_min"]
    slopes = {"soak_core_mb_per_min": soak["core_slope_mb_per_min"],
              "soak_hosts_max_mb_per_min": soak["hosts_max_slope_mb_per_min"]}  # fmt: skip
    return {name: _goal(value, "<", threshold) for name, value in slopes.items() if value is not None}


# ------------------------------------------------------------------ all


def _print_goals(goals: dict[str, dict[str, Any]]) -> None:
    for name, goal in goals.items():
        print(f"{name:28}{goal['value']:>14,}  goal {goal['goal']:<10} {'met' if goal['met'] else 'NOT met'}")


def run_all(args: argparse.Namespace) -> int:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    core = core_figures(out / "core", args, runs=args.runs)
    audit = audit_figures(out, args.runs or DEFAULT_AUDIT_RUNS, 200_000, 1_000_000, 10_000)
    world = world_figures(_shipped("national.yaml"), args.runs or DEFAULT_WORLD_RUNS)
    up = up_figures(out)
    capacity, soak = capacity_and_soak(out, args)
    goals = {"core_ratio": _goal(core["ratio"], ">=", bc.GOAL_RATIO)} | audit["goals"] | world["goals"] | up["goals"]
    goals |= _soak_goals(soak) if soak else {}
    report = {"machine": bc.machine_info(), "goals": goals, "core": core, "audit": audit, "world": world, "up": up,
              "capacity": capacity, "soak": soak}  # fmt: skip
    _write(out, "bench.json", report)
    print(bc.format_summary(core))
    print(capacity_text(capacity))
    print(soak_text(soak) if soak else "soak: not run (the capacity run sustained no rate)")
    _print_goals(goals)
    print(json.dumps(bc.headline(core) | {k: g["value"] for k, g in goals.items()}), flush=True)
    return 0
