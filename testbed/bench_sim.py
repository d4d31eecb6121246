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
With --profile, one extra short run (a quarter of an hour of the scenario's morning peak) is
profiled and the time is split between the SimPy kernel, the model's own code and the rest.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import json
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
from network.run import build_plan, load
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


def bench_sim(scenario_path: Path | str = DEFAULT_SCENARIO, duration: float | None = None) -> dict[str, Any]:
    """One timed replication of the scenario, and the bare SimPy loop, in this process."""
    started = time.perf_counter()
    scenario = load(scenario_path)
    if duration is not None:
        scenario = dataclasses.replace(scenario, duration=Seconds(duration))
    plan = build_plan(scenario)
    built = time.perf_counter() - started
    # the yardstick is measured just before and just after the run: on a shared machine the
    # load changes, and the ratio should compare like with like
    before = bare_simpy()
    result = run_replication(plan, 0)
    bare = (before + bare_simpy()) / 2
    functional = int(result.source_functional.sum())
    return {
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
    }


def profile_split(scenario_path: Path | str = DEFAULT_SCENARIO, duration: float = 900.0) -> dict[str, float]:
    """Share of the profiled time of a short run (from 10:00, the morning peak) spent in SimPy,
    in the model (network/), in numpy's draws and elsewhere. cProfile inflates the cost of
    Python calls, so the model's share is an upper bound."""
    scenario = load(scenario_path)
    start = scenario.start.replace(hour=10, minute=0, second=0)
    scenario = dataclasses.replace(scenario, duration=Seconds(duration), start=start)
    plan = build_plan(scenario)
    profiler = cProfile.Profile()
    profiler.runcall(run_replication, plan, 0)
    stats = pstats.Stats(profiler)
    split = {"simpy": 0.0, "model (network/)": 0.0, "numpy draws": 0.0, "other": 0.0}
    for (file, _, _), (_, _, own, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        group = "simpy" if "/simpy/" in file else "model (network/)" if "/network/" in file else "other"
        if "numpy" in file or file == "~":
            group = "numpy draws" if "numpy" in file else group
        split[group] += own
    total = sum(split.values())
    return {k: round(v / total, 3) for k, v in split.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed.bench_sim", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", type=Path, default=DEFAULT_SCENARIO)
    parser.add_argument("--runs", type=int, default=1, help="timed runs; the median is reported")
    parser.add_argument("--duration", help='override the measured window, e.g. "2h"')
    parser.add_argument("--profile", action="store_true", help="also split the time of a short profiled run")
    parser.add_argument("--out", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    duration = None if args.duration is None else float(parse_duration(args.duration, "--duration"))
    runs = [bench_sim(args.scenario, duration) for _ in range(args.runs)]
    figures: dict[str, Any] = {
        "runs": runs,
        "median_run_seconds": statistics.median(r["run_seconds"] for r in runs),
        "median_messages_per_second": statistics.median(r["messages_per_second"] for r in runs),
        "median_ratio_to_bare_simpy": statistics.median(r["ratio_to_bare_simpy"] for r in runs),
    }
    if args.profile:
        figures["time_split"] = profile_split(args.scenario)
    text = json.dumps(figures, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
