"""`crossroads simulate` and `crossroads compare`: what-if runs and their side-by-side report."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from network.compare import compare_summaries
from network.run import Overrides, load, write_json
from reports.compare import build_comparison
from testbed.commands.arguments import add_command, add_out, add_quiet, add_seed, duration, failed
from testbed.simulation import simulate_to

_SIMULATE_HELP = """\
Validate SCENARIO (a YAML file; see scenarios/*.yaml), build its network (from the synthetic
world, for the world model), run its replications with SimPy and write into OUT:
  summary.json      per kind and per node: throughput, latency percentiles, utilisation, queue
                    lengths, availability, losses, each with its 95% confidence interval;
                    "functional_messages_per_year" and "employer_declarations_per_year"
  series.json/.csv  per-interval series;  performance.json  wall-clock figures
  report.html       the report, self-contained (open it in any browser)
The same scenario and seed give the same summary.json, byte for byte.
"""

_COMPARE_HELP = """\
Compare two simulation runs (folders written by `crossroads simulate`): every figure they share,
the difference B - A with its 95% interval (Welch's test over the replications), and whether it is
significant. Writes comparison.json and comparison.html into OUT (default: RUN_B/compare).
"""


def register(sub: Any) -> None:
    """Add `simulate` and `compare` to the `crossroads` sub-commands."""
    sim = add_command(sub, "simulate", run_simulate, help_text="run a what-if scenario", description=_SIMULATE_HELP)
    sim.add_argument("scenario", type=Path, help="scenario YAML file")
    add_out(sim, "run folder to write")
    sim.add_argument("--replications", type=int, help="replications (default: the scenario's)")
    sim.add_argument(
        "--workers",
        type=int,
        help="local worker processes for the replications and slices (default 1, or one per core when sliced); "
        "the only choice the machine makes: the results are the same for any number",
    )
    sim.add_argument(
        "--slices",
        type=int,
        help="cut each replication's window into N time slices run in parallel, each with a warm-up overlap "
        "(default, from the scenario alone: 1 for a window under 4 h, else one per 12 h of window, at least 2; "
        "the summary depends on it, never on the machine)",
    )
    sim.add_argument("--dask", metavar="tcp://HOST:PORT", help="run the replications on this Dask scheduler")
    add_seed(sim, "seed (default: the scenario's)")
    window = duration("command line")
    sim.add_argument("--duration", type=window, help='measured window, e.g. "2h" (default: the scenario\'s)')
    sim.add_argument("--warmup", type=window, help="warm-up (default: the scenario's)")
    add_quiet(sim, "no progress bars")
    cmp = add_command(sub, "compare", run_compare, help_text="compare two simulation runs", description=_COMPARE_HELP)
    cmp.add_argument("run_a", type=Path, help="run folder A (the reference)")
    cmp.add_argument("run_b", type=Path, help="run folder B (the what-if)")
    cmp.add_argument("--out", type=Path, help="folder to write (default: RUN_B/compare)")


def run_simulate(args: argparse.Namespace) -> int:
    overrides = Overrides(replications=args.replications, seed=args.seed, duration=args.duration, warmup=args.warmup)
    try:
        scenario = overrides.apply(load(args.scenario))
    except (OSError, ValueError) as e:
        return failed("simulate", str(e), 2)
    simulate_to(
        args.out,
        args.scenario,
        scenario,
        workers=args.workers,
        dask=args.dask,
        progress=not args.quiet,
        slices=args.slices,
    )
    return 0


def _read(run: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    series = json.loads((run / "series.json").read_text(encoding="utf-8"))
    return summary, series


def run_compare(args: argparse.Namespace) -> int:
    try:
        (a, series_a), (b, series_b) = _read(args.run_a), _read(args.run_b)
    except (OSError, ValueError) as e:
        return failed("compare", f"cannot read a run folder: {e}", 2)
    comparison = compare_summaries(a, b)
    out: Path = args.out or args.run_b / "compare"
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "comparison.json", comparison)
    page = out / "comparison.html"
    page.write_text(build_comparison(comparison, a, b, series_a, series_b), encoding="utf-8")
    print(f"{comparison['significant']} of {len(comparison['rows'])} figures differ significantly")
    print(f"report: {page.resolve()}")
    return 0
