"""`crossroads validate`: the calibrated model's predictions held against new live measurements.

For a model written by `crossroads calibrate` (CAL/calibrated.yaml), in this order:
1. the model predicts, before anything is measured: its knee (the highest rate whose p99 stays
   at or under 50 ms), held-out levels below it (rates the calibration did not use), and the
   what-ifs (testbed/calibration/whatifs.py);
2. a fresh live network of the same load-test scenario is measured: first one calibration level
   again (the control: how far the machine moved since calibrating, `drift_of`), then the
   held-out levels (with `repeats` > 1 both again, round after round, each rate's repetitions
   combined by their medians: testbed/calibration/rounds.py), then on a staircase to its knee
   (from the lower of 0.85 of the model's knee and 0.8 of the highest calibration level that
   held, up 6% a level, each stair predicted before it is measured, until two in a row pass the
   knee), and runs the what-ifs;
   The stairs climbed are then measured again, round after round like the held-out levels, and
   the knee is read from their medians. Once the control is measured (with the held-out levels,
   in the same rounds) and when the plan asks for it (`anchor`), a second model is made from the
   calibrated one and that level alone: the model anchored to the machine of now
   (testbed/calibration/anchor.py), which predicts the held-out levels (reading none of their
   measurements), the stairs before they are measured, and its knee, beside the model as
   calibrated (`anchored`);
3. per level and figure, the signed error (predicted - measured) / measured (core CPU: in
   points of one core), the knee's error, each what-if's; and whether each goal is met over the
   levels below the knee (those whose p99 held, at or under the measured knee's rate) (by the
   model as calibrated: `goals`; by the anchored one: `anchored.goals`, its what-ifs the
   calibrated model's).
Written into OUT: validation.json and report.html (reports/validation.py), and live/.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crossroads.atomic_file import write_atomic, write_json_atomic
from reports.validation import build_validation_report
from scenarios.calibrated import Calibrated, load_calibrated
from testbed.bench.goals import machine_info
from testbed.calibration.anchor import Anchor, anchored
from testbed.calibration.calibrate import Progress, read_levels
from testbed.calibration.errors import goals, level_errors, resolved_whatifs, signed
from testbed.calibration.estimate import KNEE_P99_MS, below_knee, p99_held, until_past_knee
from testbed.calibration.measure import LiveBench, LivePlan
from testbed.calibration.predicted import Predicted, held_out_rates, knee_of, predicted
from testbed.calibration.rounds import in_rounds
from testbed.calibration.speed import at_speed_goals, row_at_speed, speed_of
from testbed.calibration.whatifs import WhatIfs, run_whatifs

__all__ = [
    "KNEE_STAIRS",
    "KNEE_STEP",
    "ValidationPlan",
    "below_the_knee",
    "control_of",
    "drift_of",
    "measured_figures",
    "stairs_from",
    "validate",
]

KNEE_STEP = 1.06  # the staircase to the measured knee climbs by 6% a level ...
KNEE_STAIRS = 20  # ... at most this many levels
_REQUESTS = 40_000


@dataclass(frozen=True, kw_only=True)
class ValidationPlan:
    """How the validation measures: the live network (scenario, hosts, each level's length), the
    held-out rates (default: chosen from the model), the knee's staircase, the model's
    replications, and the what-ifs."""

    live: LivePlan
    held_out: tuple[float, ...] = ()
    knee: bool = True
    replications: int = 5
    whatifs: WhatIfs = field(default_factory=WhatIfs)
    anchor: bool = False  # also predict with the model anchored to the machine of now by the control (anchor.py)


def measured_figures(level: dict[str, Any]) -> dict[str, float | None]:
    """A live level's figures under the model's names."""
    return {"throughput": level["achieved_per_s"], "mean_ms": level["mean_ms"], "p50_ms": level["p50_ms"],
            "p90_ms": level["p90_ms"], "p99_ms": level["p99_ms"],
            "core_cpu": level["cpu"]["core"]["utilisation"] if level["cpu"].get("core") else None}  # fmt: skip


def _row(
    rate: float, guess: Predicted, level: dict[str, Any], moved: Predicted | None, knee: Mapping[str, Any] | None
) -> dict[str, Any]:
    """A level's row: the model's prediction, the measurement, the errors, whether it is below the
    `knee` (its p99 held, and `below_the_knee`), and (`moved`) the anchored model's prediction and
    errors."""
    measured = measured_figures(level)
    row = {"rate": rate, "below_knee": p99_held(level) and below_the_knee(rate, knee),
           "predicted": guess.as_json(), "measured": measured,
           "error": level_errors(guess.figures, measured),
           "repetitions": level.get("repetitions", [])}  # fmt: skip
    if moved is not None:
        row["anchored"] = {"predicted": moved.as_json(), "error": level_errors(moved.figures, measured)}
    return row


def stairs_from(knee: float, held: float | None) -> list[float]:
    """The staircase to the measured knee: from the lower of 0.85 of the model's knee and 0.8 of
    the highest calibration level that held (a rate of its own, not a calibration level: those
    are 1.5 apart; low enough that the first stair holds where that level held by a hair: a
    stair at 0.9 of it once failed by its median, 50.8 ms, and left no knee measured), up by
    KNEE_STEP a level."""
    start = min(0.85 * knee, 0.8 * held if held else math.inf)
    return [round(start * KNEE_STEP**k, 1) for k in range(KNEE_STAIRS)]


def _held_levels(cal: Path) -> list[dict[str, Any]]:
    """The calibration's levels that held (none when CAL has no calibration.json beside it)."""
    return below_knee(read_levels(cal)) if (cal.parent / "calibration.json").exists() else []


def _highest_held(cal: Path) -> float | None:
    held = [lv["rate"] for lv in _held_levels(cal)]
    return max(held) if held else None


def control_of(held: Sequence[dict[str, Any]], held_out: Sequence[float]) -> dict[str, Any] | None:
    """The calibration level measured again first, to tell the machine's drift from the model's
    error: of those that held, the one nearest the held-out rates' median (None when none held)."""
    if not held or not held_out:
        return None
    middle = sorted(held_out)[len(held_out) // 2]
    return min(held, key=lambda lv: abs(math.log(lv["rate"] / middle)))


def drift_of(then: dict[str, Any], now: dict[str, Any]) -> dict[str, Any]:
    """The same level measured at calibration (`then`) and again now: each figure and its signed
    change (core CPU in points), as `level_errors` gives them with `now` in the predicted's place."""
    before, after = measured_figures(then), measured_figures(now)
    return {"rate": then["rate"], "calibration": before, "now": after, "change": level_errors(after, before),
            "repetitions": now.get("repetitions", [])}  # fmt: skip


# a stair: what the model (and the anchored one, if any) predicted of it, then the level measured
Stair = tuple[tuple[Predicted, Predicted | None], dict[str, Any]]


def _staircase(bench: LiveBench, stairs: Sequence[float],
               guesses: Callable[[float], tuple[Predicted, Predicted | None]], repeats: int,
               say: Progress) -> list[Stair]:  # fmt: skip
    """Each stair predicted (`guesses`), then measured, until two levels in a row pass the knee
    (estimate.until_past_knee); then the stairs climbed measured again in `repeats` - 1 more
    rounds (testbed/calibration/rounds.py), each stair's repetitions combined by their medians."""

    def stair(rate: float) -> Stair:
        before = guesses(rate)
        level = bench.level(rate)
        say(f"knee staircase {rate:g}/s: p99 {level['p99_ms']} ms (predicted {before[0].figures['p99_ms']:.2f})")
        return before, level

    climbed = list(until_past_knee((stair(rate) for rate in stairs), lambda s: p99_held(s[1])))
    levels = in_rounds(bench.level, [lv["rate"] for _, lv in climbed], repeats, say, first=[lv for _, lv in climbed])
    return [(g, level) for (g, _), level in zip(climbed, levels, strict=True)]


def _changes(change: dict[str, float | None]) -> str:
    shown = [f"{name} {'-' if v is None else f'{v:+.1%}'}" for name, v in change.items() if name != "core_cpu_points"]
    cpu = change.get("core_cpu_points")
    return ", ".join([*shown, f"core CPU {'-' if cpu is None else f'{cpu:+.1f} points'}"])


def _knee(climbed: Sequence[Stair], predicted_knee: float) -> dict[str, Any]:
    """The measured knee: the highest stair that held below the first failing one (None when the
    first stair failed already); `at_least` when that is the highest stair climbed (the climb
    stopped on its first round, and the medians of all its stairs held: the knee is higher)."""
    measured = None
    for _, level in climbed:
        if not p99_held(level):
            break
        measured = level["rate"]
    at_least = bool(climbed) and measured == climbed[-1][1]["rate"]
    return {"p99_limit_ms": KNEE_P99_MS, "predicted": round(predicted_knee, 1), "measured": measured,
            "at_least": at_least,
            "error": signed(predicted_knee, measured), "rates": [lv["rate"] for _, lv in climbed],
            "predicted_p99_ms": [g.as_json()["p99_ms"] for (g, _), _ in climbed],
            "measured_p99_ms": [lv["p99_ms"] for _, lv in climbed]}  # fmt: skip


def below_the_knee(rate: float, knee: Mapping[str, Any] | None) -> bool:
    """Whether `rate` is at or under the measured `knee`'s rate, or under the first stair's when
    the first stair failed already: a stair that held past the first that failed is the machine's
    jagged staircase, not a level below the knee (run s20's second: the knee at 483.5/s, and
    543.3, 610.4, 647.1 and 727/s held again, and were judged as below it). Without a staircase
    (`knee` None), every rate is."""
    if knee is None:
        return True
    measured, rates = knee.get("measured"), knee.get("rates") or []
    if measured is not None:
        return rate <= float(measured)
    return not rates or rate < rates[0]


def _knee_start(model: Calibrated) -> float:
    """Where the search for the model's knee starts: half its lowest calibration level."""
    return (min(model.levels) if model.levels else 50.0) / 2


def _predict_all(
    model: Calibrated, cal: Path, plan: ValidationPlan, say: Progress
) -> tuple[float, list[float], list[float]]:
    """The model's knee (NaN when nothing asks for it), the held-out rates and the knee's staircase."""
    wanted = plan.knee or not plan.held_out or (plan.whatifs.enabled and plan.whatifs.rate is None)
    knee = knee_of(model, plan.live.conditions, _knee_start(model)) if wanted else math.nan
    held = sorted(plan.held_out) or held_out_rates(model.levels, knee)
    stairs = stairs_from(knee, _highest_held(cal)) if plan.knee else []
    shown = "not asked for" if math.isnan(knee) else f"{knee:,.0f}/s"
    say(f"the model's knee: {shown}; held-out levels {', '.join(f'{r:g}' for r in held)}/s"
        + (f"; staircase from {stairs[0]:g}/s up by {KNEE_STEP - 1:.0%}" if stairs else ""))  # fmt: skip
    return knee, held, stairs


def _anchored(model: Calibrated, drift: dict[str, Any] | None, plan: ValidationPlan,
              say: Progress) -> tuple[Calibrated, Anchor] | None:  # fmt: skip
    """The model anchored to the machine of now by the control level (None: not asked for, or no control)."""
    if not plan.anchor or drift is None:
        return None
    moved, anchor = anchored(model, drift["calibration"], drift["now"], plan.live.conditions(drift["rate"]))
    say(f"the model anchored to the machine of now by {anchor.rate:g}/s: CPU x{anchor.cpu:.3f}, path delay "
        + ", ".join(f"{q} x{f:.3f}" for q, f in zip(("p50", "p90", "p99"), anchor.delay, strict=True)))  # fmt: skip
    return moved, anchor


def _anchored_json(anchor: Anchor, rows: Sequence[dict[str, Any]], knee: dict[str, Any] | None,
                   moved_knee: float, whatifs: list[dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    """The anchored model's side: how it was moved, its knee and its goals (its what-ifs: the calibrated model's)."""
    levels = [{"below_knee": row["below_knee"], "error": row["anchored"]["error"]} for row in rows]
    knee_json = None if knee is None else {"predicted": round(moved_knee, 1),
                                           "error": signed(moved_knee, knee["measured"])}  # fmt: skip
    return {"anchor": anchor.as_json(), "knee": knee_json,
            "goals": goals({"levels": levels, "knee": knee_json, "whatifs": whatifs})}  # fmt: skip


def _at_speed(cal: Path, rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """Each row's latency at the calibration's speed, under its "at_speed" (testbed/calibration/speed.py),
    and how the speed was read, with the latency goals judged against those (None: no speed to read)."""
    speed = speed_of(_held_levels(cal))
    if speed is None:
        return None
    for row in rows:
        if (moved := row_at_speed(speed, row)) is not None:
            row["at_speed"] = moved
    return {**speed.as_json(), "goals": at_speed_goals(rows)}


def validate(cal: Path, out: Path, plan: ValidationPlan, say: Progress = print) -> dict[str, Any]:
    """Validate the model in `cal` (see the module doc); returns what validation.json holds."""
    model = load_calibrated(cal)
    out.mkdir(parents=True, exist_ok=True)
    knee, held, stairs = _predict_all(model, cal, plan, say)

    def guess(m: Calibrated, rate: float) -> Predicted:
        return predicted(m, plan.live.conditions(rate), plan.replications)

    guesses = {r: guess(model, r) for r in held}
    control = control_of(_held_levels(cal), held)
    with LiveBench(out / "live", plan.live, say) as bench:
        bench.prepare(_REQUESTS)
        first = [control["rate"]] if control and control["rate"] not in held else []
        measured = dict(zip(first + held, in_rounds(bench.level, first + held, plan.live.repeats, say), strict=True))
        drift = drift_of(control, measured[control["rate"]]) if control else None
        if drift:
            say(f"the machine since calibrating: {drift['rate']:g}/s measured again: " + _changes(drift["change"]))
        anchoring = _anchored(model, drift, plan, say)
        moved = anchoring[0] if anchoring else None
        levels = {r: measured[r] for r in held}
        for r in held:
            say(f"held-out {r:g}/s: p99 {levels[r]['p99_ms']} ms (predicted {guesses[r].figures['p99_ms']:.2f})")
        climbed = _staircase(bench, stairs, lambda r: (guess(model, r), guess(moved, r) if moved else None),
                             plan.live.repeats, say)  # fmt: skip
        whatifs = run_whatifs(model, bench, plan.whatifs, knee, say, plan.replications)

    knee_json = _knee(climbed, knee) if stairs else None
    # the anchored model's held-out guesses read the control, no held-out level
    rows = [_row(r, guesses[r], levels[r], guess(moved, r) if moved else None, knee_json) for r in held]
    rows += [_row(lv["rate"], g, lv, g_moved, knee_json) for (g, g_moved), lv in climbed]
    rows.sort(key=lambda row: row["rate"])
    result = {"calibrated": str(cal), "description": model.description, "machine": machine_info(),
              "calibration_levels": list(model.levels), "replications": plan.replications,
              "levels": rows, "knee": knee_json, "whatifs": whatifs, "drift": drift}  # fmt: skip
    result["goals"] = goals(result)
    result["at_speed"] = _at_speed(cal, rows)
    result["whatifs_resolved"] = resolved_whatifs(whatifs)
    if anchoring is not None:
        moved_knee = knee if math.isnan(knee) else knee_of(anchoring[0], plan.live.conditions, _knee_start(model))
        result["anchored"] = _anchored_json(anchoring[1], rows, knee_json, moved_knee, whatifs)
    write_json_atomic(out / "validation.json", result)
    write_atomic(out / "report.html", build_validation_report(result).encode())
    return result
