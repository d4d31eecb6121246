"""How long the synthetic world takes to build, and how much memory, for one scenario.

    python -m testbed.bench_world scenarios/national.yaml --runs 3

Each run builds the world in a fresh process (multiprocessing "spawn"), so that every run's
peak RSS is its own; the figures printed are the median over the runs, with each run's.
The national world must build in <= 60 s and <= 4 GB on the project's 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

__all__ = ["bench_world", "bench_world_runs", "main"]


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("scenario", type=Path, help="a scenario YAML file with a world: section")
    parser.add_argument("--runs", type=int, default=3, help="builds, each in a fresh process (default 3)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    json.dump(bench_world_runs(args.scenario, args.runs), sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
