"""`crossroads bench core|audit|world|up|capacity|soak|sim|all`: the benchmarks (testbed/bench/), each
against its goal.

Benchmarks are not tests: they print figures and whether each goal was met, and exit 0 when
they ran (1 when they could not). Progress goes to stderr; the summary and a last line of JSON
to stdout; the full figures to a JSON file in --out. This module parses, calls and prints.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_type_hints

from loadtests.report import soak_text
from loadtests.resources import DEFAULT_FLAT_MB_PER_MIN
from scenarios.schema import parse_duration
from scenarios.shipped import default_scenario, shipped
from testbed.bench import audit as ba
from testbed.bench import core as bc
from testbed.bench.all import AllPlan, bench_all
from testbed.bench.capacity import CapacityPlan, capacity_text, measure_capacity
from testbed.bench.goals import (
    GOAL_APPENDS_PER_S,
    GOAL_CORE_RATIO,
    GOAL_SIM_RATIO,
    GOAL_SIM_S,
    GOAL_UP_MB,
    GOAL_UP_S,
    GOAL_VERIFY_S,
    GOAL_WORLD_MB,
    GOAL_WORLD_S,
    BenchError,
    goal_lines,
    goal_values,
    write_figures,
)
from testbed.bench.model import model_figures
from testbed.bench.performance import update_performance
from testbed.bench.sim import DEFAULT_SIM_RUNS, sim_figures
from testbed.bench.soak import DEFAULT_SOAK_MINUTES, SOAK_SHARE, SoakPlan, capacity_and_soak, measure_soak
from testbed.bench.up import up_figures
from testbed.bench.world import DEFAULT_WORLD_RUNS, world_figures
from testbed.commands.arguments import positive_number

DEFAULT_OUT = Path("runs/bench")
_PLAN = CapacityPlan()
# the staircase's options, each a CapacityPlan field (its default, its type) as --NAME-WITH-DASHES
_STAIRCASE = {
    "start_rate": "requests/s of the first step",
    "factor": "each step this many times the last",
    "max_steps": "steps of the staircase at most",
    "step_s": "seconds per step",
    "warmup_s": "unmeasured seconds before each step",
    "repeats": "climbs against each target (median)",
    "p99_ms": "the latency a sustained step keeps",
    "point_s": "seconds of each latency point",
}

_BENCH_HELP = """\
The benchmarks of the live core, its audit log and the synthetic world, each measured on this
machine and compared with its goal (issue 2); the core's capacity under open-loop load against
a raw proxy, and a soak at 70 % of it that judges whether memory stays flat (issue 4); the speed
of a simulated national day (issue 13).
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
  ratio                 core_rps / proxy_rps                               goal >= {GOAL_CORE_RATIO}
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
Both knees: the highest rate of routed consultations the core carries with p99 <= --p99-ms
(default {_PLAN.p99_ms:g} ms), and the same for the raw one-hop proxy (testbed/proxy.py) in front of the
same single agency host, in one live network. The load is open loop (loadtests/loadgen.py in
--processes processes: a seeded Poisson schedule, latency from each request's intended send
time). A climb offers --start-rate, then --factor x more each step (--step-s measured after
--warmup-s), to both paths in turn; a step holds when its p99 <= --p99-ms, <= 1 % failed and
>= 95 % of it was answered in time. A path climbs until two steps in a row fail, or the generator
cannot keep its schedule (its ceiling, reported as the limit). Then both paths at 25, 50 and 75 %
of the proxy's capacity (--fractions): p50/p90/p99 of each and the latency the core adds over the
proxy, and where the core path's time went. To measure those points again without climbing, give
the proxy's capacity of an earlier run: `--proxy-capacity 1290 --fractions 0.5` takes ~2 minutes.

Figures (last line of stdout, JSON; everything in OUT/capacity/capacity.json, a summary in
OUT/capacity/capacity.txt):
  core_rps, proxy_rps   highest rate sustained (requests/s), median of --repeats climbs
  ratio                 core_rps / proxy_rps, the median of each climb's ratio
  core_limits, proxy_limits   what ended each climb: p99, errors, generator, top of the staircase
  points                latency of both paths at each fraction, and the core's added latency
Each step also has the CPU of the server, the host (per thread) and the generator.
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

_SIM_HELP = f"""\
A simulated national day (scenarios/national_day.yaml, 24 h of the 2023 traffic, one replication),
whole in this process and cut into the scenario's time slices on one worker process per core,
beside a bare SimPy M/M/1 loop measured before and after (testbed/bench/sim.py; issue 13):
  sim_day_seconds          the sliced run's wall time, processes started to result stitched
                                                                            goal <= {GOAL_SIM_S:g} s
  sim_ratio_to_bare_simpy  the day's legs per second sliced / the bare loop's customers per second
                                                                            goal >= {GOAL_SIM_RATIO:g}
Also the whole run's seconds, legs, microseconds per leg and ratio; with --profile, a quarter
of an hour of the morning peak profiled: the share of time in SimPy, the model, numpy, and the
SimPy events per leg. The load average before and after each run; medians of --runs; all
figures in OUT/bench_sim.json.
"""

_MODEL_HELP = """\
The calibrated model's accuracy (issue 11; docs/CALIBRATION.md): `crossroads calibrate` then
`crossroads validate` with their defaults but --repeats 3 (each level measured three times, in
rounds, each figure's median kept) against fresh live networks of the load-test scenario
(default the shipped smoke test), into OUT/model/calibration and OUT/model/validation. Each
figure is the worst absolute error over the held-out levels below the knee, in percent (the
core's CPU in points of one core), against its goal: throughput <= 5, mean latency <= 10, p99
latency <= 20, core CPU <= 5 points, the knee <= 10, each what-if's effects <= 15. All figures
in OUT/bench_model.json; the report in OUT/model/validation/report.html.
"""

_ALL_HELP = """\
Every benchmark above (core, audit, world, up, capacity, then a soak at 70 % of that capacity, sim,
model),
one after the other; writes OUT/bench.json with every figure and every goal, prints a table of
the goals and, last, one JSON line of them.
"""


class _Raw(argparse.RawDescriptionHelpFormatter):
    """Keeps the paragraphs of the descriptions as written."""


def register(sub: Any) -> None:
    """Add `bench` and its benchmarks to the `crossroads` sub-commands."""
    bench = sub.add_parser("bench", help="benchmarks against the goals of issues 2, 4 and 13", description=_BENCH_HELP)
    bench.formatter_class = _Raw
    kinds = bench.add_subparsers(dest="bench", metavar="BENCH")
    bench.set_defaults(func=lambda _args: _usage(bench))
    for name, summary, text, add, run in (
        ("core", "routed consultations: the core against a raw mTLS proxy", _CORE_HELP, _core_args, run_core),
        ("audit", "durable audit appends/s and `audit verify` of 1 M records", _AUDIT_HELP, _audit_args, run_audit),
        ("world", "national world build time and peak memory", _WORLD_HELP, _world_args, run_world),
        ("up", "~3,000 agencies serving: start-up time and memory", _UP_HELP, _no_args, run_up),
        (
            "capacity",
            "highest rate with p99 <= 50 ms, core vs raw proxy",
            _CAPACITY_HELP,
            _capacity_only_args,
            run_capacity,
        ),
        ("soak", "a steady rate for minutes: is memory flat?", _SOAK_HELP, _soak_args, run_soak),
        ("sim", "a simulated national day: wall time, ratio to bare SimPy", _SIM_HELP, _sim_args, run_sim),
        ("model", "the calibrated model's errors against the live testbed", _MODEL_HELP, _model_args, run_model),
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
        except (BenchError, OSError, RuntimeError, ValueError) as exc:
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
    p.add_argument("--runs", type=int, default=ba.DEFAULT_AUDIT_RUNS, help="runs (median)")
    p.add_argument("--appends", type=int, default=ba.DEFAULT_APPENDS, help="records per append mode")
    p.add_argument("--verify", type=int, default=ba.DEFAULT_VERIFY, help="records in the verified log")
    p.add_argument("--concurrency", type=int, default=ba.DEFAULT_CONCURRENCY, help="concurrently appending coroutines")


def _world_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runs", type=int, default=DEFAULT_WORLD_RUNS, help="builds, each in a fresh process (median)")
    p.add_argument("--scenario", type=Path, default=None, help="world scenario (default: the shipped national.yaml)")


def _no_args(p: argparse.ArgumentParser) -> None:
    del p


def _capacity_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scenario", type=Path, default=None,
                   help="world (default: the shipped demo world; the soak's: the smoke load test's)")  # fmt: skip
    p.add_argument("--processes", type=int, default=_PLAN.processes, help="load generator (or Locust) processes")
    _staircase_args(p)


def _capacity_only_args(p: argparse.ArgumentParser) -> None:
    _capacity_args(p)
    p.add_argument("--fractions", type=positive_number, nargs="+", default=list(_PLAN.fractions), metavar="F",
                   help="the latency points, as fractions of the proxy's capacity (default: "
                   f"{' '.join(f'{f:g}' for f in _PLAN.fractions)})")  # fmt: skip
    p.add_argument("--proxy-capacity", type=positive_number, default=None, metavar="RPS",
                   help="no climbs: take the proxy's capacity as RPS (an earlier run's proxy_rps) and measure only "
                   "the latency points, in minutes rather than a quarter of an hour; no knee, no ratio")  # fmt: skip


def _staircase_args(p: argparse.ArgumentParser) -> None:
    types = get_type_hints(CapacityPlan)
    for name, text in _STAIRCASE.items():
        p.add_argument(f"--{name.replace('_', '-')}", type=types[name], default=getattr(_PLAN, name), help=text)


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


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scenario", type=Path, help="load-test scenario (default: the shipped smoke test)")


def _sim_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scenario", type=Path, default=None, help="scenario (default: the shipped national_day.yaml)")
    p.add_argument("--runs", type=int, default=DEFAULT_SIM_RUNS, help="runs (median)")
    p.add_argument("--duration", default=None, help='override the measured window, e.g. "2h"')
    p.add_argument("--slices", type=int, default=None, help="time slices (default: the scenario's own slicing)")
    p.add_argument("--workers", type=int, default=None, help="processes for the slices (default: one per core)")
    p.add_argument("--profile", action="store_true", help="also profile a quarter of an hour of the morning peak")


def _all_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--performance", type=Path, default=None, metavar="FILE",
                   help="rewrite the last section of FILE (docs/PERFORMANCE.md) with the figures")  # fmt: skip
    p.add_argument("--runs", type=int, default=None, help="runs of every benchmark (default: each its own)")
    p.add_argument("--seconds", type=float, default=bc.DEFAULT_SECONDS, help="measured seconds per core run")
    p.add_argument("--concurrency", type=int, default=bc.DEFAULT_CONCURRENCY, help="calls in flight (core)")
    _capacity_args(p)
    _soak_only_args(p)


def _print_goals(goals: dict[str, dict[str, Any]]) -> None:
    print("\n".join(goal_lines(goals)))
    print(json.dumps(goal_values(goals)), flush=True)


def _core_config(args: argparse.Namespace, out: Path) -> bc.CoreBenchConfig:
    return bc.CoreBenchConfig(
        out=out,
        scenario=args.scenario or default_scenario(),
        seconds=args.seconds,
        concurrency=args.concurrency,
        runs=args.runs or bc.DEFAULT_RUNS,
        warmup_s=getattr(args, "warmup", bc.DEFAULT_WARMUP_S),
        requests=getattr(args, "requests", bc.DEFAULT_REQUESTS),
    )


def _plan(args: argparse.Namespace) -> CapacityPlan:
    """The capacity plan of the options; `bench soak` and `bench all` have no --fractions nor --proxy-capacity."""
    fractions = getattr(args, "fractions", None) or _PLAN.fractions
    return CapacityPlan(processes=args.processes, proxy_capacity=getattr(args, "proxy_capacity", None),
                        fractions=tuple(fractions), **{name: getattr(args, name) for name in _STAIRCASE})  # fmt: skip


def _soak_plan(args: argparse.Namespace) -> SoakPlan:
    return SoakPlan(minutes=args.minutes, flat_mb_per_min=args.flat_mb_per_min, memory_dump=args.memory_dump,
                    tracemalloc_frames=args.tracemalloc)  # fmt: skip


_CAPACITY_KEYS = ("core_rps", "proxy_rps", "ratio", "core_rps_each", "proxy_rps_each", "core_limits", "proxy_limits")
_SOAK_KEYS = ("rate", "answered_per_s", "p50_ms", "p99_ms", "errors", "guarantees_ok", "core_slope_mb_per_min",
              "core_growth_mb", "core_flat", "hosts_max_slope_mb_per_min", "hosts_flat")  # fmt: skip


def run_core(args: argparse.Namespace) -> int:
    figures = bc.bench_core(_core_config(args, args.out))
    print(bc.format_summary(figures))
    print(json.dumps(bc.headline(figures)), flush=True)
    return 0


def run_audit(args: argparse.Namespace) -> int:
    figures = ba.audit_figures(args.out, args.runs, args.appends, args.verify, args.concurrency)
    write_figures(args.out, "bench_audit.json", figures)
    _print_goals(figures["goals"])
    return 0


def run_world(args: argparse.Namespace) -> int:
    figures = world_figures(args.scenario or shipped("national.yaml"), args.runs)
    write_figures(args.out, "bench_world.json", figures)
    _print_goals(figures["goals"])
    return 0


def run_up(args: argparse.Namespace) -> int:
    figures = up_figures(args.out)
    write_figures(args.out, "bench_up.json", figures)
    _print_goals(figures["goals"])
    return 0


def run_capacity(args: argparse.Namespace) -> int:
    figures = measure_capacity(args.out, _plan(args), scenario=args.scenario)
    print(capacity_text(figures))
    print(json.dumps({k: figures[k] for k in _CAPACITY_KEYS}), flush=True)
    return 0


def run_soak(args: argparse.Namespace) -> int:
    plan, where = _soak_plan(args), {"world": args.scenario, "processes": args.processes}
    if args.rate is None:
        capacity, soak = capacity_and_soak(args.out, _plan(args), plan, **where)
        print(capacity_text(capacity))
    else:
        soak = measure_soak(args.out, args.rate, plan, **where)
    if soak is None:
        return 1
    print(soak_text(soak))
    print(json.dumps({k: soak[k] for k in _SOAK_KEYS}), flush=True)
    return 0


def run_sim(args: argparse.Namespace) -> int:
    duration = None if args.duration is None else float(parse_duration(args.duration, "--duration"))
    figures = sim_figures(args.scenario, args.runs, duration=duration, slices=args.slices, workers=args.workers,
                          profile=args.profile)  # fmt: skip
    write_figures(args.out, "bench_sim.json", figures)
    _print_goals(figures["goals"])
    return 0


def run_model(args: argparse.Namespace) -> int:
    figures = model_figures(args.out / "model", args.scenario)
    write_figures(args.out, "bench_model.json", figures)
    _print_goals(figures["goals"])
    return 0


def run_all(args: argparse.Namespace) -> int:
    report = bench_all(AllPlan(out=args.out, runs=args.runs, seconds=args.seconds, concurrency=args.concurrency,
                               capacity=_plan(args), soak=_soak_plan(args), world=args.scenario,
                               processes=args.processes))  # fmt: skip
    soak = report["soak"]
    print(bc.format_summary(report["core"]))
    print(capacity_text(report["capacity"]))
    print(soak_text(soak) if soak else "soak: not run (the capacity run sustained no rate)")
    print("\n".join(goal_lines(report["goals"])))
    if args.performance is not None:
        update_performance(args.performance, report)
    print(json.dumps(bc.headline(report["core"]) | goal_values(report["goals"])), flush=True)
    return 0
