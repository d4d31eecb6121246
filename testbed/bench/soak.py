"""The soak benchmark: routed consultations at a steady rate for minutes; is memory flat?
(`crossroads bench soak`; by default at SOAK_SHARE of the capacity measured first.)

Flat is judged per process on the second half of the load (the first half is the warm-up:
caches fill, the allocator finds its size): the least-squares slope of resident memory must be
below a threshold (loadtests.resources.memory_trend); the total growth is reported beside it.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from crossroads.diagnostics import DUMP_ENV, INTERVAL_ENV, TRACEMALLOC_ENV, read_dump, summarise_dump
from loadtests.capacity import Step, plan_steps, stairs_scenario
from loadtests.report import soak_text
from loadtests.resources import DEFAULT_FLAT_MB_PER_MIN
from scenarios.shipped import default_loadtest
from testbed.bench.capacity import CapacityPlan, measure_capacity
from testbed.bench.goals import BenchError, goal, load_average, say, write_figures
from testbed.loadtest import LoadtestRun, run_loadtest

__all__ = [
    "DEFAULT_SOAK_MINUTES",
    "DIAGNOSTICS_INTERVAL_S",
    "SOAK_SHARE",
    "SoakPlan",
    "capacity_and_soak",
    "measure_soak",
    "soak_benchmark",
    "soak_goals",
    "soak_rate",
]

SOAK_SHARE = 0.7  # issue 4: the soak runs at 70 % of the capacity measured
DEFAULT_SOAK_MINUTES = 10.0
DIAGNOSTICS_INTERVAL_S = 30.0  # seconds between the core's memory snapshots in a soak that asks for them


def stairs_file(out: Path, world: Path, steps: Sequence[Step], seed: int, timeout_s: float) -> Path:
    """OUT/stairs.yaml: a Locust load test of routed consultations at the rates of `steps`, on `world`'s world."""
    document = stairs_scenario(yaml.safe_load(world.read_text())["world"], steps, seed, timeout_s)
    path = out / "stairs.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def soak_rate(capacity: dict[str, Any]) -> float:
    """SOAK_SHARE of the core's capacity; BenchError when the capacity run sustained no rate."""
    if not capacity["core_rps"]:
        raise BenchError("the capacity run sustained no rate with the core: nothing to soak at")
    return round(SOAK_SHARE * float(capacity["core_rps"]), 1)


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


@dataclass(frozen=True, kw_only=True)
class SoakPlan:
    """How long a soak runs, what counts as flat, and whether the core reports on its memory."""

    minutes: float = DEFAULT_SOAK_MINUTES
    flat_mb_per_min: float = DEFAULT_FLAT_MB_PER_MIN
    memory_dump: bool = False
    tracemalloc_frames: int = 0


def soak_benchmark(
    out: Path,
    rate: float,
    *,
    world: Path | None = None,
    duration_s: float = 60.0 * DEFAULT_SOAK_MINUTES,
    processes: int = 1,
    progress: bool = True,
    flat_mb_per_min: float = DEFAULT_FLAT_MB_PER_MIN,
    memory_dump: bool = False,
    tracemalloc_frames: int = 0,
) -> dict[str, Any]:
    """Routed consultations at `rate` for `duration_s` against the core: latency, errors, and whether
    memory stays flat: each process's slope over the second half of the load, its total growth,
    and flat = slope < `flat_mb_per_min`.

    With `memory_dump`, the core is asked (through its environment) for memory snapshots every
    DIAGNOSTICS_INTERVAL_S in OUT/memory-core.jsonl (crossroads/diagnostics.py; `tracemalloc_frames`
    > 0 also traces Python allocations, at a cost in CPU), summarised in "core_breakdown".
    Writes OUT/soak.json (and the load test's own files) and returns it.
    """
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    world = world or default_loadtest()
    stairs = stairs_file(out, world, plan_steps(rate, 2.0, 1, duration_s, 0.0), seed=11, timeout_s=5.0)
    dump = out / "memory-core.jsonl" if memory_dump else None
    if dump is not None:
        dump.unlink(missing_ok=True)
    load_before = load_average()
    env = _core_diagnostics(dump, tracemalloc_frames)
    run = LoadtestRun(scenario=stairs, world=world, out=out, processes=processes, progress=progress,
                      flat_mb_per_min=flat_mb_per_min, core_env=env)  # fmt: skip
    result = run_loadtest(run)
    o, resources = result.summary["overall"], result.summary["resources"]
    soak = {
        "rate": rate,
        "duration_s": duration_s,
        "answered_per_s": o["per_s"],
        "p50_ms": o["p50_ms"],
        "p99_ms": o["p99_ms"],
        "errors": o["failures"],
        "guarantees_ok": result.ok,
        **_flatness(resources["memory"], flat_mb_per_min),
        "memory": resources["memory"],
        "peak_rss_mb": resources["peak_rss_mb"],
        "load_average": {"before": load_before, "after": load_average()},
        "core_breakdown": summarise_dump(read_dump(dump)) if dump is not None and dump.exists() else None,
    }
    write_figures(out, "soak.json", soak)
    return soak


def soak_goals(soak: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The soak's goals: every process's memory slope below the flat threshold."""
    threshold = soak["flat_threshold_mb_per_min"]
    slopes = {"soak_core_mb_per_min": soak["core_slope_mb_per_min"],
              "soak_hosts_max_mb_per_min": soak["hosts_max_slope_mb_per_min"]}  # fmt: skip
    return {name: goal(value, "<", threshold) for name, value in slopes.items() if value is not None}


def measure_soak(
    out: Path, rate: float, plan: SoakPlan, *, world: Path | None = None, processes: int = 1
) -> dict[str, Any]:
    """`soak_benchmark` at `rate` in OUT/soak on a fresh state folder, with a summary for people in
    OUT/soak/soak.txt."""
    folder = out.resolve() / "soak"
    shutil.rmtree(folder / "state", ignore_errors=True)
    say(f"soak: {rate:g} requests/s for {plan.minutes:g} min; progress every minute")
    figures = soak_benchmark(folder, rate, world=world, duration_s=60.0 * plan.minutes, processes=processes,
                             flat_mb_per_min=plan.flat_mb_per_min, memory_dump=plan.memory_dump,
                             tracemalloc_frames=plan.tracemalloc_frames)  # fmt: skip
    (folder / "soak.txt").write_text(soak_text(figures) + "\n")
    return figures


def capacity_and_soak(
    out: Path, plan: CapacityPlan, soak: SoakPlan, *, world: Path | None = None, processes: int = 1
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The capacity, then the soak at SOAK_SHARE of it (None when no rate was sustained)."""
    capacity = measure_capacity(out, plan, scenario=world)
    try:
        rate = soak_rate(capacity)
    except BenchError as exc:
        say(f"{exc}; the soak is left out")
        return capacity, None
    return capacity, measure_soak(out, rate, soak, world=world, processes=processes)
