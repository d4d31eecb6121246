"""`crossroads calibrate`: measure the live testbed on a staircase of load levels, and write its model.

A fresh live network of a load-test scenario's world (testbed/calibration/measure.py) is offered
that scenario's mix, open loop, at rising rates: `start`, then each `step` times the last, until
two levels in a row (estimate.PAST_KNEE_STEPS) did not hold (p99 latency past the knee's limit,
50 ms, or the generator behind its schedule) or `max_rate` is reached (or at the `rates` given).
With `repeats` > 1 the rates climbed are measured again, round after round, and each rate's
repetitions are combined by their medians (testbed/calibration/rounds.py). The levels that held
are what the model is estimated from (testbed/calibration/estimate.py); every level's figures
are kept. Written into CAL:

    calibrated.yaml     the model (scenarios/calibrated.py), a comment per number
    calibration.json    the levels measured (generator figures, CPU per process and thread,
                        the core's telemetry, audit outcomes) and where each number came from
    live/               the network's state folder and logs
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crossroads.atomic_file import write_atomic, write_json_atomic
from scenarios.calibrated import dump_calibrated
from testbed.bench.goals import machine_info
from testbed.calibration.estimate import Setup, estimate_model, held, until_past_knee
from testbed.calibration.forwards import forwards_of
from testbed.calibration.measure import LiveBench, LivePlan
from testbed.calibration.rounds import in_rounds

__all__ = ["CalibrationPlan", "Progress", "calibrate", "staircase"]

Progress = Callable[[str], None]
_REQUESTS = 40_000  # drawn once, sent in turn (each send gets a fresh message id)


@dataclass(frozen=True, kw_only=True)
class CalibrationPlan:
    """The live network measured, and its staircase of levels."""

    live: LivePlan
    start: float = 100.0
    step: float = 1.5
    max_rate: float = 3000.0
    rates: tuple[float, ...] = field(default=())  # given levels instead of a climb


def staircase(plan: CalibrationPlan) -> list[float]:
    """The rates a climb may visit: the given ones, or start, start*step, ... up to max_rate."""
    if plan.rates:
        return sorted(plan.rates)
    if plan.start <= 0 or plan.step <= 1:
        raise ValueError(f"a climb needs a start > 0 and a step > 1, got {plan.start} and {plan.step}")
    rates, rate = [], plan.start
    while rate <= plan.max_rate:
        rates.append(round(rate, 1))
        rate *= plan.step
    return rates


def _climb(bench: LiveBench, rates: Sequence[float], stop_past_knee: bool, say: Progress) -> list[dict[str, Any]]:
    """Each rate measured in turn; with `stop_past_knee`, until PAST_KNEE_STEPS levels in a row did not hold."""

    def measured(rate: float) -> dict[str, Any]:
        level = bench.level(rate)
        say(f"{rate:g}/s: answered {level['achieved_per_s']:,.0f}/s, p50 {level['p50_ms']} ms, "
            f"p99 {level['p99_ms']} ms, core CPU {level['cpu']['core']['utilisation']:.2f}")  # fmt: skip
        return level

    levels = (measured(rate) for rate in rates)
    return list(until_past_knee(levels, held) if stop_past_knee else levels)


def calibrate(out: Path, plan: CalibrationPlan, say: Progress = print) -> Path:
    """Measure (see the module doc) and write CAL = `out`; returns the path of calibrated.yaml."""
    out.mkdir(parents=True, exist_ok=True)
    rates = staircase(plan)
    with LiveBench(out / "live", plan.live, say) as bench:
        drawn = bench.prepare(_REQUESTS)
        climbed = _climb(bench, rates, not plan.rates, say)
        levels = in_rounds(bench.level, [lv["rate"] for lv in climbed], plan.live.repeats, say, first=climbed)
        forwards, startup = forwards_of(bench.state), bench.startup_cpu_s
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    setup = Setup(cpus=os.cpu_count() or 1, hosts=plan.live.hosts, processes=plan.live.processes,
                  service_time_ms=plan.live.service_time_ms, seed=plan.live.seed,
                  description=f"the live testbed on this machine ({os.cpu_count()} cores), {when}, "
                  f"the mix of {plan.live.scenario.name}", forwards=forwards, startup_cpu_s=startup)  # fmt: skip
    model, sources = estimate_model(levels, drawn, setup)
    path = out / "calibrated.yaml"
    header = (f"The live testbed as a queueing network, calibrated by `crossroads calibrate` ({when}).\n"
              "Simulate it with `crossroads validate`; each number says where it came from.")  # fmt: skip
    write_atomic(path, dump_calibrated(model, sources, header).encode())
    write_json_atomic(out / "calibration.json", {"machine": machine_info(), "scenario": str(plan.live.scenario),
                                                 "levels": levels, "sources": sources})  # fmt: skip
    return path


def read_levels(cal: Path) -> list[dict[str, Any]]:
    """The levels a calibration measured (CAL/calibration.json beside CAL/calibrated.yaml)."""
    data: dict[str, Any] = json.loads((cal.parent / "calibration.json").read_text())
    return list(data["levels"])
