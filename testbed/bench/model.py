"""The model's accuracy as a benchmark (`crossroads bench model`, issue 11): `crossroads calibrate`
then `crossroads validate` with their defaults but --repeats 3, on this machine, and each validation goal as a
benchmark goal (the worst absolute error of its figures against its limit). Beside the goals, not one
of them: the latency errors against the levels moved to the calibration's machine speed
(testbed/calibration/speed.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reports.html import signed_percent
from scenarios.shipped import default_loadtest
from testbed.bench.goals import goal, machine_info, say
from testbed.calibration.calibrate import CalibrationPlan, calibrate
from testbed.calibration.errors import GOALS
from testbed.calibration.measure import LivePlan
from testbed.calibration.validate import ValidationPlan, validate

__all__ = ["REPEATS", "model_figures"]

# each calibration and held-out level measured three times, in rounds (testbed/calibration/rounds.py):
# one 10-second level on this shared machine can land in another tenant's episode
REPEATS = 3


def _bench_goal(name: str, goals: dict[str, Any]) -> dict[str, Any]:
    """The worst absolute error in percent (points for the CPU) against the goal; not met, with
    no value, when nothing could be compared (a knee never reached, say)."""
    worst = goals[name]["worst"]
    scale = 1 if name == "core_cpu_points" else 100
    limit = GOALS[name][1] * scale
    if worst is None:
        return {"value": None, "goal": f"<= {limit:g}", "met": False}
    return goal(round(abs(worst) * scale, 2), "<=", limit)


def model_figures(out: Path, scenario: Path | None = None) -> dict[str, Any]:
    """Calibrate into OUT/calibration, validate into OUT/validation; the figures and their goals
    (model_<figure>_error: the worst absolute error, in percent, or points for the core's CPU),
    and the machine's drift since calibrating (a calibration level measured again: `drift`)."""
    live = LivePlan(scenario=scenario or default_loadtest(), repeats=REPEATS)
    say(f"model: calibrating against the live testbed ({live.scenario.name})")
    cal = calibrate(out / "calibration", CalibrationPlan(live=live), say=say)
    say("model: validating (held-out levels, the knee, three what-ifs)")
    result = validate(cal, out / "validation", ValidationPlan(live=live), say=say)
    goals = {f"model_{name}_error": _bench_goal(name, result["goals"]) for name in GOALS}
    report = out / "validation" / "report.html"
    at_speed = result.get("at_speed")
    if at_speed:  # not goals: how much of the latency error is the machine's speed (testbed/calibration/speed.py)
        worst = {f: at_speed["goals"][f]["worst"] for f in ("mean_ms", "p99_ms")}
        say("model: at the calibration's machine speed (not goals), worst errors: "
            + ", ".join(f"{f} {signed_percent(w)}" for f, w in worst.items()))  # fmt: skip
    resolved = result["whatifs_resolved"]  # not a goal: the what-ifs' errors a measurement can tell from its noise
    say(f"model: what-ifs whose effects stand out of the noise (not a goal), worst error "
        f"{signed_percent(resolved['worst'])}; "
        f"effects within the noise: {', '.join(resolved['within_noise']) or 'none'}")  # fmt: skip
    return {"machine": machine_info(), "calibrated": str(cal), "report": str(report), "levels": result["levels"],
            "knee": result["knee"], "whatifs": result["whatifs"], "drift": result["drift"], "at_speed": at_speed,
            "whatifs_resolved": resolved, "goals": goals}  # fmt: skip
