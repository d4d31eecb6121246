"""The simulation's speed (issue 13): a simulated national day, whole and in time slices, beside a
bare SimPy loop measured in the same run. `crossroads bench sim` runs `sim_figures`.

The bare loop is the textbook SimPy M/M/1: a source process starting one process per customer,
which requests a Resource, holds it for its service and releases it. Its customers per second
(measured just before and just after the runs, averaged) are the machine's yardstick; the ratio
of the model's messages per second to it says how much the model costs beyond SimPy itself,
whatever the load on the machine when it ran.

"Messages" (legs) are every leg the model moves (a submission to the core, each delivery fanned
out from it); "functional messages" are the deliveries that passed the checks (as CBSS counts
them). The whole run is one replication in this process. The sliced run cuts the same
replication into time slices (by default the scenario's own slicing, network/slicing.py) run in
worker processes (by default one per core), timed from the start of the processes to the
stitched result; its ratio counts the legs of the whole run (the day's messages, not the
overlaps simulated twice) over its wall time. The ratios compare like with like: the model's
legs per second against the bare loop's customers per second, which is the ratio of the bare
loop's time for as many customers as the day has legs to the model's time.

With `profile`, one more short run (a quarter of an hour of the morning peak) is profiled: the
time is split between the SimPy kernel, the model's own code, numpy and the rest, and the SimPy
events per leg are counted.
"""

from __future__ import annotations

import cProfile
import dataclasses
import pstats
import statistics
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np
import simpy

from network.model import run_replication
from network.plan import Plan
from network.replications import run_replications
from network.run import build_plan, cores, load
from network.slicing import default_slices
from scenarios.schema import Seconds
from scenarios.shipped import shipped
from testbed.bench.goals import GOAL_SIM_RATIO, GOAL_SIM_S, goal, load_average, say

__all__ = ["DEFAULT_SIM_RUNS", "bare_simpy", "bench_sim", "default_sim_scenario", "profile_split", "sim_figures"]

BARE_CUSTOMERS = 200_000
DEFAULT_SIM_RUNS = 1  # one national day is ~1-2 min whole and sliced; --runs 3 for a median
PROFILED_SECONDS = 900.0  # the profiled run: a quarter of an hour from 10:00


def default_sim_scenario() -> Path:
    """The benchmark's scenario: the shipped national day."""
    return shipped("national_day.yaml")


def bare_simpy(customers: int = BARE_CUSTOMERS, seed: int = 1) -> float:
    """Customers per wall-clock second through a bare SimPy M/M/1 loop (utilisation 0.8)."""
    env = simpy.Environment()
    rng = np.random.default_rng(seed)
    gaps, services = rng.exponential(1.25, customers).tolist(), rng.exponential(1.0, customers).tolist()
    server = simpy.Resource(env, capacity=1)

    def customer(service: float) -> Generator[simpy.Event, Any, None]:
        with server.request() as turn:
            yield turn
            yield env.timeout(service)

    def source() -> Generator[simpy.Event, Any, None]:
        for gap, service in zip(gaps, services, strict=True):
            yield env.timeout(gap)
            env.process(customer(service))

    env.process(source())
    started = time.perf_counter()
    env.run()
    return customers / (time.perf_counter() - started)


def _plan(scenario_path: Path | str, duration: float | None) -> tuple[Plan, float]:
    started = time.perf_counter()
    scenario = load(scenario_path)
    if duration is not None:
        scenario = dataclasses.replace(scenario, duration=Seconds(duration))
    return dataclasses.replace(build_plan(scenario), replications=1), time.perf_counter() - started


def bench_sim(
    scenario_path: Path | str, duration: float | None = None, slices: int | None = None, workers: int | None = None
) -> dict[str, Any]:
    """One timed replication of the scenario, whole (in this process) and, when it is cut into
    more than one slice (`slices` None: the scenario's default), in slices on `workers`
    processes (None: one per core, at most one per slice); the bare SimPy loop around them."""
    plan, built = _plan(scenario_path, duration)
    n = slices if slices is not None else default_slices(plan)
    load_before = load_average()
    # the yardstick is measured just before and just after the runs: on a shared machine the
    # load changes, and the ratio should compare like with like
    before = bare_simpy()
    whole = run_replication(plan, 0)
    sliced = _sliced(plan, n, workers or min(cores(), n)) if n > 1 else None
    bare = (before + bare_simpy()) / 2
    legs, wall = whole.messages, whole.wall_seconds
    figures: dict[str, Any] = {
        "scenario": plan.name,
        "simulated_seconds": plan.warmup + plan.duration,
        "build_seconds": round(built, 2),
        "run_seconds": round(wall, 2),
        "messages": legs,
        "functional_messages_in_window": int(whole.source_functional.sum()),
        "messages_per_second": round(legs / wall),
        "microseconds_per_message": round(1e6 * wall / legs, 2),
        "bare_simpy_customers_per_second": round(bare),
        "ratio_to_bare_simpy": round(legs / wall / bare, 3),
        "load_average_before": load_before,
        "load_average_after": load_average(),
    }
    if sliced is not None:
        figures["sliced"] = {**sliced, "ratio_to_bare_simpy": round(legs / sliced["run_seconds"] / bare, 3)}
        figures["sliced"]["messages_per_second"] = round(legs / sliced["run_seconds"])
    return figures


def _sliced(plan: Plan, slices: int, workers: int) -> dict[str, Any]:
    """The replication in `slices` slices on `workers` processes: wall seconds from the start of the
    processes to the stitched result, legs simulated (the overlaps included), seconds in the model."""
    started = time.perf_counter()
    result = run_replications(plan, workers=workers, slices=slices)[0]
    wall = time.perf_counter() - started
    return {
        "slices": slices,
        "workers": workers,
        "run_seconds": round(wall, 2),
        "messages_simulated": result.messages,
        "model_seconds": round(result.wall_seconds, 2),  # summed over the slices
    }


def profile_split(scenario_path: Path | str, duration: float = PROFILED_SECONDS) -> dict[str, float]:
    """Share of the profiled time of a short run (from 10:00, the morning peak) spent in SimPy,
    in the model's Python code (network/), in numpy, in the C builtins it calls (heapq, list and
    array methods) and elsewhere, and the SimPy events per leg. cProfile
    inflates the cost of Python calls, so the model's share is an upper bound."""
    scenario = load(scenario_path)
    start = scenario.start.replace(hour=10, minute=0, second=0)
    scenario = dataclasses.replace(scenario, duration=Seconds(duration), start=start)
    plan = build_plan(scenario)
    profiler = cProfile.Profile()
    result = profiler.runcall(run_replication, plan, 0)
    stats = pstats.Stats(profiler)
    split = {"simpy": 0.0, "model (network/)": 0.0, "numpy": 0.0, "builtins (heapq, ...)": 0.0, "other": 0.0}
    events = 0
    for (file, _, name), (_, calls, own, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        group = "simpy" if "/simpy/" in file else "model (network/)" if "/network/" in file else "other"
        if "numpy" in file or "numpy" in name:
            group = "numpy"
        elif file == "~":
            group = "builtins (heapq, ...)"
        split[group] += own
        if file.endswith("simpy/core.py") and name == "step":
            events = calls  # one step per event processed
    total = sum(split.values())
    return {
        **{k: round(v / total, 3) for k, v in split.items()},
        "events_per_leg": round(events / result.messages, 4),
    }


def sim_figures(
    scenario: Path | None = None,
    runs: int = DEFAULT_SIM_RUNS,
    *,
    duration: float | None = None,
    slices: int | None = None,
    workers: int | None = None,
    profile: bool = False,
) -> dict[str, Any]:
    """`runs` of `bench_sim` (the shipped national day by default), their medians and the goals
    of issue 13: the day's wall time sliced (whole if it is not sliced), and the sliced run's
    ratio to the bare SimPy loop."""
    path = scenario or default_sim_scenario()
    say(f"sim: {runs} run(s) of {path.name}, whole and sliced, beside a bare SimPy loop")
    each = [bench_sim(path, duration, slices, workers) for _ in range(runs)]
    figures: dict[str, Any] = {
        "scenario": str(path),
        "runs": each,
        "median_run_seconds": statistics.median(r["run_seconds"] for r in each),
        "median_ratio_to_bare_simpy": statistics.median(r["ratio_to_bare_simpy"] for r in each),
    }
    fastest = "run_seconds", "ratio_to_bare_simpy"
    if all("sliced" in r for r in each):
        figures["median_sliced_run_seconds"] = statistics.median(r["sliced"]["run_seconds"] for r in each)
        figures["median_sliced_ratio_to_bare_simpy"] = statistics.median(
            r["sliced"]["ratio_to_bare_simpy"] for r in each
        )
        fastest = "sliced_run_seconds", "sliced_ratio_to_bare_simpy"
    if profile:
        figures["time_split"] = profile_split(path)
    figures["goals"] = {
        "sim_day_seconds": goal(figures[f"median_{fastest[0]}"], "<=", GOAL_SIM_S),
        "sim_ratio_to_bare_simpy": goal(figures[f"median_{fastest[1]}"], ">=", GOAL_SIM_RATIO),
    }
    return figures
