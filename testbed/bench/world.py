"""How long the synthetic world takes to build, and how much memory, for one scenario.

`crossroads bench world` runs `world_figures`. Each run builds the world in a fresh process
(multiprocessing "spawn"), so that every run's peak RSS is its own; the figures are the median
over the runs, with each run's. The goals: the national world in <= 60 s and <= 4 GB.
"""

from __future__ import annotations

import resource
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from testbed.bench.goals import GOAL_WORLD_MB, GOAL_WORLD_S, goal, say

__all__ = ["DEFAULT_WORLD_RUNS", "bench_world", "bench_world_runs", "world_figures"]

DEFAULT_WORLD_RUNS = 1  # one national build is ~20-40 s; --runs 3 for a median


def bench_world(spec_path: Path | str) -> dict[str, float | int]:
    """Build the world of the scenario at `spec_path` in this process and measure it.

    Returns seconds (wall clock of `World.build`), peak_rss_mb (this process's peak resident
    set so far, which includes the interpreter and imports: run it in a fresh process),
    persons, employers, agencies and directory_rows.
    """
    from agencies.spec import load_world_spec
    from agencies.world import World  # imported here so the import is not part of a parent's RSS

    spec = load_world_spec(Path(spec_path))
    start = time.perf_counter()
    world = World.build(spec)
    seconds = time.perf_counter() - start
    # ru_maxrss is in kilobytes on Linux
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "seconds": round(seconds, 3),
        "peak_rss_mb": round(peak_mb, 1),
        "persons": world.person_count,
        "employers": world.employer_count,
        "agencies": len(world.agencies),
        "directory_rows": world.directory_row_count,
    }


def bench_world_runs(spec_path: Path | str, runs: int) -> dict[str, object]:
    """`runs` builds, each in a fresh spawned process; the medians and every run's figures."""
    results = []
    for _ in range(runs):
        with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
            results.append(pool.submit(bench_world, str(spec_path)).result())
    return {
        "scenario": str(spec_path),
        "runs": runs,
        "median_seconds": statistics.median(float(r["seconds"]) for r in results),
        "median_peak_rss_mb": statistics.median(float(r["peak_rss_mb"]) for r in results),
        "each": results,
    }


def world_figures(scenario: Path, runs: int = DEFAULT_WORLD_RUNS) -> dict[str, Any]:
    """`bench_world_runs` with the goals of issue 2."""
    say(f"world: {runs} build(s) of {scenario.name}, each in a fresh process")
    figures: dict[str, Any] = bench_world_runs(scenario, runs)
    figures["goals"] = {
        "world_seconds": goal(float(figures["median_seconds"]), "<=", GOAL_WORLD_S),
        "world_peak_rss_mb": goal(float(figures["median_peak_rss_mb"]), "<=", GOAL_WORLD_MB),
    }
    return figures
