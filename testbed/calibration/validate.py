"""`crossroads validate`: the calibrated model's predictions held against new live measurements.

For a model written by `crossroads calibrate` (CAL/calibrated.yaml), in this order:
1. the model predicts, before anything is measured: its knee (the highest rate whose p99 stays
   at or under 50 ms), held-out levels below it (rates the calibration did not use), a
   staircase around the knee, and the what-ifs (testbed/calibration/whatifs.py);
2. a fresh live network of the same load-test scenario is measured at those levels (the
   staircase stops after two levels past the knee), and runs the what-ifs;
3. per level and figure, the signed error (predicted - measured) / measured (core CPU: in
   points of one core), the knee's error, each what-if's; and whether each goal is met.
Written into OUT: validation.json and report.html (reports/validation.py), and live/.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crossroads.atomic_file import write_atomic, write_json_atomic
from network.testbed_model import Conditions
from reports.validation import build_validation_report
from scenarios.calibrated import Calibrated, load_calibrated
from testbed.bench.goals import machine_info
from testbed.calibration.calibrate import Progress
from testbed.calibration.errors import goals, level_errors, signed
from testbed.calibration.estimate import KNEE_P99_MS
from testbed.calibration.measure import LiveBench, LivePlan
from testbed.calibration.predicted import Predicted, held_out_rates, knee_of, predicted
from testbed.calibration.whatifs import WhatIfs, run_whatifs

__all__ = ["KNEE_STEPS", "ValidationPlan", "measured_figures", "validate"]

KNEE_STEPS = (0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.2)  # the staircase around the predicted knee
_REQUESTS = 40_000
_FAILED_STEPS = 2  # the staircase stops after this many levels in a row past the knee


@dataclass(frozen=True, kw_only=True)
class ValidationPlan:
    """How the validation measures: the live network (scenario, hosts, each level's length), the
    held-out rates (default: chosen from the model), the knee's staircase, the model's
    replications, and the what-ifs."""

    live: LivePlan
    held_out: tuple[float, ...] = ()
    knee_steps: tuple[float, ...] = KNEE_STEPS
    replications: int = 5
    whatifs: WhatIfs = field(default_factory=WhatIfs)


def measured_figures(level: dict[str, Any]) -> dict[str, float | None]:
    """A live level's figures under the model's names."""
    return {"throughput": level["achieved_per_s"], "mean_ms": level["mean_ms"], "p50_ms": level["p50_ms"],
            "p90_ms": level["p90_ms"], "p99_ms": level["p99_ms"],
            "core_cpu": level["cpu"]["core"]["utilisation"] if level["cpu"].get("core") else None}  # fmt: skip


def _conditions(plan: ValidationPlan, rate: float) -> Conditions:
    return Conditions(rate=rate, seconds=plan.live.seconds, warmup_s=plan.live.warmup_s, seed=plan.live.seed)


def _row(rate: float, guess: Predicted, level: dict[str, Any]) -> dict[str, Any]:
    measured = measured_figures(level)
    return {"rate": rate, "below_knee": (measured["p99_ms"] or math.inf) <= KNEE_P99_MS,
            "predicted": guess.as_json(), "measured": measured,
            "error": level_errors(guess.figures, measured)}  # fmt: skip


def _staircase(bench: LiveBench, rates: Sequence[float], say: Progress) -> list[dict[str, Any]]:
    levels, past = [], 0
    for rate in rates:
        level = bench.level(rate)
        levels.append(level)
        say(f"knee staircase {rate:g}/s: p99 {level['p99_ms']} ms")
        past = past + 1 if not (level["p99_ms"] or math.inf) <= KNEE_P99_MS else 0
        if past >= _FAILED_STEPS:
            break
    return levels


def _knee(rates: Sequence[float], levels: Sequence[dict[str, Any]], predicted_knee: float,
          guesses: Sequence[Predicted]) -> dict[str, Any]:  # fmt: skip
    held = [lv["rate"] for lv in levels if (lv["p99_ms"] or math.inf) <= KNEE_P99_MS]
    measured = max(held) if held else None
    by_rate = {lv["rate"]: lv["p99_ms"] for lv in levels}
    return {"p99_limit_ms": KNEE_P99_MS, "predicted": round(predicted_knee, 1), "measured": measured,
            "error": signed(predicted_knee, measured), "rates": list(rates),
            "predicted_p99_ms": [g.as_json()["p99_ms"] for g in guesses],
            "measured_p99_ms": [by_rate.get(r) for r in rates]}  # fmt: skip


def _predict_all(model: Calibrated, plan: ValidationPlan, say: Progress) -> tuple[float, list[float], list[float]]:
    lowest = min(model.levels) if model.levels else 50.0
    knee = knee_of(model, plan.live.seconds, plan.live.warmup_s, lowest / 2, plan.live.seed)
    held = sorted(plan.held_out) or held_out_rates(model.levels, knee)
    stairs = [round(knee * s, 1) for s in plan.knee_steps]
    say(f"the model's knee: {knee:,.0f}/s; held-out levels {', '.join(f'{r:g}' for r in held)}/s; "
        f"staircase {', '.join(f'{r:g}' for r in stairs)}/s")  # fmt: skip
    return knee, held, stairs


def validate(cal: Path, out: Path, plan: ValidationPlan, say: Progress = print) -> dict[str, Any]:
    """Validate the model in `cal` (see the module doc); returns what validation.json holds."""
    model = load_calibrated(cal)
    out.mkdir(parents=True, exist_ok=True)
    knee, held, stairs = _predict_all(model, plan, say)
    guesses = {r: predicted(model, _conditions(plan, r), plan.replications) for r in [*held, *stairs]}
    with LiveBench(out / "live", plan.live) as bench:
        bench.prepare(_REQUESTS)
        levels = {r: bench.level(r) for r in held}
        for r in held:
            say(f"held-out {r:g}/s: p99 {levels[r]['p99_ms']} ms (predicted {guesses[r].figures['p99_ms']:.2f})")
        climbed = _staircase(bench, stairs, say) if stairs else []
        whatifs = run_whatifs(model, bench, plan.whatifs, plan.live, knee, say, plan.replications)
    rows = [_row(r, guesses[r], levels[r]) for r in held] + [
        _row(lv["rate"], guesses[lv["rate"]], lv) for lv in climbed
    ]
    knee_json = _knee(stairs, climbed, knee, [guesses[r] for r in stairs]) if stairs else None
    result = {"calibrated": str(cal), "description": model.description, "machine": machine_info(),
              "calibration_levels": list(model.levels), "replications": plan.replications,
              "levels": sorted(rows, key=lambda row: row["rate"]), "knee": knee_json, "whatifs": whatifs}  # fmt: skip
    result["goals"] = goals(result)
    write_json_atomic(out / "validation.json", result)
    write_atomic(out / "report.html", build_validation_report(result).encode())
    return result
