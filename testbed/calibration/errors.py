"""Prediction errors and the validation's goals (issue 11).

Every error is signed, (predicted - measured) / measured, so that its sign says which way the
model is wrong; the core's CPU is compared in points of one core ((predicted - measured) * 100).
An error that cannot be had (nothing measured, or a measured 0) is None.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from network.testbed_model import FIGURES

__all__ = ["GOALS", "goal_of", "goals", "level_errors", "resolved_whatifs", "signed"]

# figure -> (what the goal says, the largest error allowed: a fraction, or points for the CPU)
GOALS: dict[str, tuple[str, float]] = {
    "throughput": ("within 5% at each held-out level below the knee", 0.05),
    "mean_ms": ("within 10% at each held-out level below the knee", 0.10),
    "p99_ms": ("within 20% at each held-out level below the knee", 0.20),
    "core_cpu_points": ("within 5 points at each held-out level below the knee", 5.0),
    "knee": ("within 10%", 0.10),
    "whatifs": ("each what-if's effect on mean latency and on failed/queued messages within 15%", 0.15),
}


def signed(predicted: float | None, measured: float | None) -> float | None:
    """(predicted - measured) / |measured|, or None when either is missing or measured is 0."""
    if predicted is None or measured is None or measured == 0:
        return None
    if math.isnan(predicted) or math.isnan(measured):
        return None
    return round((predicted - measured) / abs(measured), 4)


def level_errors(
    predicted: Mapping[str, float | None], measured: Mapping[str, float | None]
) -> dict[str, float | None]:
    """The errors of one level: each figure's signed error, the core CPU's in points (None where
    either side lacks the figure)."""
    errors = {name: signed(predicted.get(name), measured.get(name)) for name in FIGURES if name != "core_cpu"}
    model, cpu = predicted.get("core_cpu"), measured.get("core_cpu")
    errors["core_cpu_points"] = None if model is None or cpu is None else round((model - cpu) * 100, 2)
    return errors


def _worst(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return max(known, key=abs) if known else None


def goal_of(name: str, values: Sequence[float | None]) -> dict[str, Any]:
    """Goal `name` (GOALS) judged by the worst of `values` (None where an error could not be had)."""
    text, limit = GOALS[name]
    worst = _worst(values)
    return {"goal": text, "worst": worst, "met": worst is not None and abs(worst) <= limit}


def goals(result: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each goal with the worst error of its figures and whether it is met (not met when there is
    nothing to judge it by)."""
    below = [row for row in result["levels"] if row["below_knee"]]
    out = {name: goal_of(name, [row["error"][name] for row in below]) for name in ("throughput", "mean_ms", "p99_ms",
                                                                                "core_cpu_points")}  # fmt: skip
    knee = result.get("knee")
    out["knee"] = goal_of("knee", [knee["error"] if knee else None])
    out["whatifs"] = goal_of("whatifs", [e for w in result["whatifs"] for e in w["error"].values()])
    return out


def resolved_whatifs(whatifs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Not a goal: the what-ifs' goal judged only by the errors a measurement can tell from its
    noise: every count's, and an effect on mean latency's where it stands out of the noise
    (`resolved`: testbed/calibration/noise.py); under "within_noise", the what-ifs whose measured
    effect did not."""
    kept = [e for w in whatifs for k, e in w["error"].items() if k != "effect_mean_ms" or w.get("resolved")]
    return {**goal_of("whatifs", kept), "within_noise": [w["name"] for w in whatifs if w.get("resolved") is False]}
