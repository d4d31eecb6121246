"""`crossroads calibrate` and `crossroads validate`: the model of the live testbed, fitted and held to account."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from scenarios.documents import ScenarioError
from scenarios.shipped import default_loadtest
from testbed.bench.goals import BenchError
from testbed.calibration.calibrate import CalibrationPlan, Progress, calibrate
from testbed.calibration.measure import (
    DEFAULT_PROCESSES,
    DEFAULT_RETRIES,
    DEFAULT_STOLEN_LIMIT,
    DEFAULT_WARM_RATE,
    DEFAULT_WARM_S,
    LivePlan,
)
from testbed.calibration.validate import ValidationPlan, validate
from testbed.calibration.whatifs import WhatIfs
from testbed.commands.arguments import add_command, add_hosts, add_out, add_quiet, add_seed, failed
from testbed.live import DEFAULT_HOSTS, LiveNetworkError

_CALIBRATE_HELP = """\
Measure the live testbed and write a model of it. A fresh live network of SCENARIO's world (a
load-test scenario; default the shipped loadtest_smoke.yaml) is offered that scenario's mix, open
loop, at rising rates (--start, times --step each level) until two levels in a row pass 50 ms at p99.
Per level: throughput, latency, CPU per process and per thread (/proc), the core's telemetry
(exchange stages, group commits). From the levels that held it estimates the service demands
(utilisation law, lines across levels) and fits the rest, and writes into OUT:
  calibrated.yaml    the model: the machine's cores, the generator, the core (its event loop, its
                     threads, its group commit), the hosts, the path's delay and the mix, each
                     number with a comment saying where it came from
  calibration.json   every level measured, and the sources
  live/              the network's state and logs
Then `crossroads validate OUT/calibrated.yaml --out DIR` holds the model to new measurements.
"""

_VALIDATE_HELP = """\
Hold a calibrated model (CAL, written by `crossroads calibrate`) against the live testbed. The
model first predicts its knee (the highest rate whose p99 stays <= 50 ms), levels the calibration
did not use (held out, below the knee) and three what-ifs (an agency host killed for 3 s, the core
stopped for 1 s, agencies 10 ms slow); then a fresh live network is measured at the same levels and
under the same changes, and on a staircase to its own knee (up 6% a level, each stair predicted
just before it is measured, until two in a row pass 50 ms). One calibration level is measured
again beside the held-out ones (the control: how far this machine moved since calibrating), and
with --anchor a second model, anchored to the machine of now by that level alone (its CPU demands
and path delay moved by what it shows), predicts beside the model as calibrated. Writes into OUT:
  validation.json    per level and figure: predicted (with its 95% interval over --replications),
                     measured, and the signed error (predicted - measured) / measured; the knee's,
                     the what-ifs', and each goal met or not
  report.html        the same as a self-contained page with its figures
"""


def _live_plan(args: argparse.Namespace) -> LivePlan:
    return LivePlan(scenario=args.scenario, hosts=args.hosts, seconds=args.seconds, warmup_s=args.warmup,
                    processes=args.processes, seed=args.seed, repeats=args.repeats,
                    stolen_limit=args.stolen_limit / 100, retries=args.retries, warm_s=args.warm,
                    warm_rate=args.warm_rate)  # fmt: skip


def _add_live(parser: argparse.ArgumentParser) -> None:
    what = "load-test scenario whose world and mix are measured (default: the smoke test)"
    parser.add_argument("--scenario", type=Path, default=default_loadtest(), help=what)
    add_hosts(parser, DEFAULT_HOSTS)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per level (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per level (default 2)")
    parser.add_argument("--repeats", type=_positive, default=1,
                        help="measure each level this many times, in rounds over all the levels, and keep each "
                        "figure's median: steadier on a shared machine (default 1)")  # fmt: skip
    parser.add_argument("--processes", type=int, default=DEFAULT_PROCESSES,
                        help=f"load generator processes (default {DEFAULT_PROCESSES})")  # fmt: skip
    parser.add_argument("--stolen-limit", type=_percent, default=DEFAULT_STOLEN_LIMIT * 100, metavar="PERCENT",
                        help="measure a level again when the hypervisor took more than this share of the machine's "
                        "CPU during it (/proc/stat's steal: another tenant of a shared host ran instead; "
                        f"default {DEFAULT_STOLEN_LIMIT * 100:g}%%; 100 never measures again)")  # fmt: skip
    parser.add_argument(
        "--retries",
        type=_whole,
        default=DEFAULT_RETRIES,
        help=f"at most this many more measurements of a level so stolen from (default {DEFAULT_RETRIES})",
    )
    parser.add_argument(
        "--warm",
        type=float,
        default=DEFAULT_WARM_S,
        metavar="SECONDS",
        help="offer a fresh network --warm-rate for this long before its first level, unmeasured: "
        f"its first minute is slower than its steady state (default {DEFAULT_WARM_S:g}; 0: none)",
    )
    parser.add_argument("--warm-rate", type=float, default=DEFAULT_WARM_RATE, metavar="RATE",
                        help=f"requests/s of the warm-up (default {DEFAULT_WARM_RATE:g})")  # fmt: skip
    add_seed(parser, "seed of the drawn requests and the model (default 0)", default=0)
    add_quiet(parser)


def _whole(text: str, least: int = 0) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be at least {least}, got {value}")
    return value


def _positive(text: str) -> int:
    return _whole(text, 1)


def _percent(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a percentage, e.g. 3, got {text!r}") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be between 0 and 100, got {value:g}")
    return value


def _rates(text: str) -> tuple[float, ...]:
    try:
        rates = tuple(float(r) for r in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected rates separated by commas, e.g. 100,200, got {text!r}") from None
    if not rates or min(rates) <= 0:
        raise argparse.ArgumentTypeError(f"rates must be > 0, got {text!r}")
    return rates


def register(sub: Any) -> None:
    """Add `calibrate` and `validate` to the `crossroads` sub-commands."""
    cal = add_command(sub, "calibrate", run_calibrate, help_text="measure the live testbed and write its model",
                      description=_CALIBRATE_HELP)  # fmt: skip
    add_out(cal, "calibration folder", default=Path("runs/calibration"))
    _add_live(cal)
    cal.add_argument("--start", type=float, default=100.0, help="first rate of the climb, req/s (default 100)")
    cal.add_argument("--step", type=float, default=1.5, help="each level's rate over the last (default 1.5)")
    cal.add_argument("--max-rate", type=float, default=3000.0, help="highest rate of the climb (default 3000)")
    cal.add_argument("--rates", type=_rates, default=(), help="measure these rates instead of a climb, e.g. 100,300")
    val = add_command(sub, "validate", run_validate, help_text="hold a calibrated model against the live testbed",
                      description=_VALIDATE_HELP)  # fmt: skip
    val.add_argument("cal", type=Path, help="calibrated.yaml written by `crossroads calibrate`")
    add_out(val, "validation folder", default=Path("runs/validation"))
    _add_live(val)
    val.add_argument("--held-out", type=_rates, default=(), help="held-out rates (default: chosen from the model)")
    val.add_argument("--no-knee", action="store_true", help="skip the staircase to the knee")
    val.add_argument("--no-whatifs", action="store_true", help="skip the what-ifs")
    val.add_argument("--whatif-rate", type=float, help="rate of the what-ifs (default: half the model's knee)")
    val.add_argument("--replications", type=int, default=5, help="model runs per level, for its intervals (default 5)")
    val.add_argument("--anchor", action="store_true",
                     help="also predict with a second model: the calibrated one anchored to the machine of now by "
                     "the calibration level measured again (testbed/calibration/anchor.py; docs/CALIBRATION.md "
                     "says why it is not the default)")  # fmt: skip


def _say(args: argparse.Namespace) -> Progress:
    return (lambda _: None) if args.quiet else (lambda text: print(f"crossroads: {text}", file=sys.stderr))


def run_calibrate(args: argparse.Namespace) -> int:
    plan = CalibrationPlan(live=_live_plan(args), start=args.start, step=args.step, max_rate=args.max_rate,
                           rates=args.rates)  # fmt: skip
    try:
        path = calibrate(args.out, plan, _say(args))
    except (BenchError, LiveNetworkError, ScenarioError, ValueError) as exc:
        return failed("calibrate", str(exc), 1)
    print(f"calibrated model: {path}")
    print(f"next: crossroads validate {path} --out runs/validation")
    return 0


def run_validate(args: argparse.Namespace) -> int:
    plan = ValidationPlan(live=_live_plan(args), held_out=args.held_out, replications=args.replications,
                          knee=not args.no_knee, anchor=args.anchor,
                          whatifs=WhatIfs(enabled=not args.no_whatifs, rate=args.whatif_rate))  # fmt: skip
    try:
        result = validate(args.cal, args.out, plan, _say(args))
    except (BenchError, LiveNetworkError, ScenarioError, ValueError) as exc:
        return failed("validate", str(exc), 1)
    if result.get("anchored"):
        print("the model anchored to the machine of now by the control level:")
        _print_goals(result["anchored"]["goals"])
        print("the model as calibrated:")
    _print_goals(result["goals"])
    print(f"report: {args.out / 'report.html'}")
    return 0


def _print_goals(goals: dict[str, Any]) -> None:
    for name, goal in goals.items():
        worst = goal["worst"]
        shown = "-" if worst is None else (f"{worst:+.1f} pt" if name == "core_cpu_points" else f"{worst:+.1%}")
        print(f"{name:<18} worst {shown:>9}  goal {goal['goal']:<70} {'met' if goal['met'] else 'not met'}")
