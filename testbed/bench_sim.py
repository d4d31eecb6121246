"""Simulation speed: simulated messages per wall-clock second on a scenario (national_day by
default), beside a bare SimPy single-queue loop measured in the same run.

    python -m testbed.bench_sim [--scenario scenarios/national_day.yaml] [--runs 3] [--duration 24h]

The bare loop is the textbook SimPy M/M/1: a source process starting one process per customer,
which requests a Resource, holds it for its service and releases it. Its customers per second
(measured just before and just after the run, averaged) are the machine's yardstick; the ratio
of the model's messages per second to it says how much the model costs beyond SimPy itself,
whatever the load on the machine when it ran.

"Messages" are every leg the model moves (a submission to the core, each delivery fanned out
from it); "functional messages" are the deliveries that passed the checks (as CBSS counts them).
With --slices N (default: one per core) the same replication is also run cut into N time
slices in N worker processes (network/slicing.py), timed from the start of the processes to
the stitched result; its ratio counts the legs of the unsliced run (the day's messages, not
the overlaps simulated twice) over its wall time. The ratio compares like with like: the
model's legs per second against the bare loop's customers per second, which is the ratio of
the bare loop's time for as many customers as the day has legs to the model's time.
With --profile, one extra short run (a quarter of an hour of the scenario's morning peak) is
profiled: the time is split between the SimPy kernel, the model's own code and the rest, and
the SimPy events per leg are counted.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import json
import os
import pstats
import statistics
import sys
import time
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import simpy

from network.model import run_replication
from network.plan import Plan
from network.replications import run_replications
from network.run import build_plan, cores, load
from scenarios.schema import Seconds, parse_duration

__all__ = ["bare_simpy", "bench_sim", "main", "profile_split"]

DEFAULT_SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "national_day.yaml"
BARE_CUSTOMERS = 200_000


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


def bench_sim(
    scenario_path: Path | str = DEFAULT_SCENARIO, duration: float | None = None, slices: int = 1
) -> dict[str, Any]:
    """One timed replication of the scenario, whole and (slices > 1) in slices, and the bare
    SimPy loop, in this process."""
    started = time.perf_counter()
    scenario = load(scenario_path)
    if duration is not None:
        scenario = dataclasses.replace(scenario, duration=Seconds(duration))
    plan = dataclasses.replace(build_plan(scenario), replications=1)
    built = time.perf_counter() - started
    # the yardstick is measured just before and just after the runs: on a shared machine the
    # load changes, and the ratio should compare like with like
    before = bare_simpy()
    result = run_replication(plan, 0)
    sliced = _sliced(plan, slices) if slices > 1 else None
    bare = (before + bare_simpy()) / 2
    functional = int(result.source_functional.sum())
    figures: dict[str, Any] = {
        "scenario": plan.name,
        "simulated_seconds": plan.warmup + plan.duration,
        "build_seconds": round(built, 2),
        "run_seconds": round(result.wall_seconds, 2),
        "messages": result.messages,
        "functional_messages_in_window": functional,
        "messages_per_second": round(result.messages / result.wall_seconds),
        "functional_per_second": round(functional / result.wall_seconds),
        "bare_simpy_customers_per_second": round(bare),
        "ratio_to_bare_simpy": round(result.messages / result.wall_seconds / bare, 3),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    if sliced is not None:
        wall, simulated = sliced
        figures["sliced"] = {
            "slices": slices,
            "workers": slices,
            "run_seconds": round(wall, 2),
            "messages_simulated": simulated,  # overlaps included
            "messages_per_second": round(result.messages / wall),
            "ratio_to_bare_simpy": round(result.messages / wall / bare, 3),
        }
    return figures


def _sliced(plan: Plan, slices: int) -> tuple[float, int]:
    """Wall seconds of the replication in `slices` slices on as many processes, and its legs simulated."""
    started = time.perf_counter()
    results = run_replications(plan, workers=slices, slices=slices)
    return time.perf_counter() - started, results[0].messages


def profile_split(scenario_path: Path | str = DEFAULT_SCENARIO, duration: float = 900.0) -> dict[str, float]:
    """Share of the profiled time of a short run (from 10:00, the morning peak) spent in SimPy,
    in the model (network/), in numpy's draws and elsewhere. cProfile inflates the cost of
    Python calls, so the model's share is an upper bound."""
    scenario = load(scenario_path)
    start = scenario.start.replace(hour=10, minute=0, second=0)
    scenario = dataclasses.replace(scenario, duration=Seconds(duration), start=start)
    plan = build_plan(scenario)
    profiler = cProfile.Profile()
    result = profiler.runcall(run_replication, plan, 0)
    stats = pstats.Stats(profiler)
    split = {"simpy": 0.0, "model (network/)": 0.0, "numpy draws": 0.0, "other": 0.0}
    events = 0
    for (file, _, name), (_, calls, own, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        group = "simpy" if "/simpy/" in file else "model (network/)" if "/network/" in file else "other"
        if "numpy" in file or file == "~":
            group = "numpy draws" if "numpy" in file else group
        split[group] += own
        if file.endswith("simpy/core.py") and name == "step":
            events = calls  # one step per event processed
    total = sum(split.values())
    return {
        **{k: round(v / total, 3) for k, v in split.items()},
        "events_per_leg": round(events / result.messages, 2),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed.bench_sim", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", type=Path, default=DEFAULT_SCENARIO)
    parser.add_argument("--runs", type=int, default=1, help="timed runs; the median is reported")
    parser.add_argument("--duration", help='override the measured window, e.g. "2h"')
    parser.add_argument(
        "--slices", type=int, default=cores(), help="also time the run in N slices on N processes (1: not)"
    )
    parser.add_argument("--profile", action="store_true", help="also split the time of a short profiled run")
    parser.add_argument("--out", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    duration = None if args.duration is None else float(parse_duration(args.duration, "--duration"))
    runs = [bench_sim(args.scenario, duration, args.slices) for _ in range(args.runs)]
    figures: dict[str, Any] = {
        "runs": runs,
        "median_run_seconds": statistics.median(r["run_seconds"] for r in runs),
        "median_messages_per_second": statistics.median(r["messages_per_second"] for r in runs),
        "median_ratio_to_bare_simpy": statistics.median(r["ratio_to_bare_simpy"] for r in runs),
    }
    if args.slices > 1:
        figures["median_sliced_run_seconds"] = statistics.median(r["sliced"]["run_seconds"] for r in runs)
        figures["median_sliced_ratio_to_bare_simpy"] = statistics.median(
            r["sliced"]["ratio_to_bare_simpy"] for r in runs
        )
    if args.profile:
        figures["time_split"] = profile_split(args.scenario)
    text = json.dumps(figures, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
