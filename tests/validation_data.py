"""Synthetic validation.json contents (the shape `crossroads validate` writes), for the tests of the
validation page: a realistic one, and a sparse one with nulls, no what-if and no knee."""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["anchored", "realistic", "sparse"]

_FIGURES = ("throughput", "mean_ms", "p50_ms", "p90_ms", "p99_ms", "core_cpu")


def _level(rate: float, predicted: list[float], measured: list[float], *, below_knee: bool = True) -> dict[str, Any]:
    """A held-out level: the model's figures (with a +-4% interval), the measured ones, the errors."""
    model = dict(zip(_FIGURES, predicted, strict=True))
    seen = dict(zip(_FIGURES, measured, strict=True))
    error: dict[str, float | None] = {
        k: round((model[k] - seen[k]) / seen[k], 4) for k in ("throughput", "mean_ms", "p50_ms", "p99_ms")
    }
    error["core_cpu_points"] = round((model["core_cpu"] - seen["core_cpu"]) * 100, 2)
    ci = {k: [round(v * 0.96, 4), round(v * 1.04, 4)] for k, v in model.items()}
    return {"rate": rate, "below_knee": below_knee, "predicted": {**model, "ci": ci}, "measured": seen, "error": error}


def realistic() -> dict[str, Any]:
    """Four held-out levels (the last past the knee), a knee staircase, two what-ifs, six goals."""
    return {
        "calibrated": "runs/cal/calibrated.yaml",
        "description": "2-core VM, 2026-11-28, scenario loadtest_small.yaml, open-loop mix",
        "machine": {"cpus": 2, "load_average": [0.52, 0.61, 0.7], "python": "3.11.9", "kernel": "6.1.0"},
        "calibration_levels": [100.0, 150.0, 225.0],
        "replications": 5,
        "levels": [
            _level(122.5, [122.0, 5.1, 4.4, 8.0, 14.2, 0.28], [123.1, 5.3, 4.9, 7.1, 13.6, 0.26]),
            _level(187.5, [186.0, 6.0, 5.0, 9.5, 18.0, 0.41], [187.0, 5.2, 4.6, 9.0, 20.5, 0.43]),
            _level(400.0, [398.0, 9.8, 7.9, 16.0, 31.0, 0.83], [396.0, 11.14, 8.4, 17.0, 29.75, 0.8]),
            _level(
                820.0,
                [700.0, 240.0, 180.0, 520.0, 900.0, 1.0],
                [690.0, 80.0, 60.0, 150.0, 300.0, 0.98],
                below_knee=False,
            ),
        ],
        "knee": {
            "p99_limit_ms": 50.0,
            "predicted": 760.0,
            "measured": 700.0,
            "error": 0.0857,
            "rates": [600.0, 630.0, 660.0, 700.0, 730.0, 760.0, 790.0],
            "predicted_p99_ms": [33.0, 35.5, 38.0, 42.0, 46.0, 52.0, None],
            "measured_p99_ms": [34.0, 37.0, 41.0, 55.0, None, None, None],
        },
        "whatifs": _whatifs(),
        "goals": _goals(),
        "drift": _drift(),
    }


def _whatifs() -> list[dict[str, Any]]:
    """A fault the model predicted well, and one it predicted less well."""
    return [
        {
            "name": "host killed",
            "what": "host-1 killed for 3 s at 300/s",
            "rate": 300.0,
            "predicted": {"mean_ms": 5.0, "effect_mean_ms": -0.2, "failed": 40, "queued": 25},
            "measured": {"mean_ms": 5.4, "effect_mean_ms": -0.3, "failed": 44, "queued": 20},
            "error": {"effect_mean_ms": -0.3333, "failed": -0.0909, "queued": 0.25},
        },
        {
            "name": "slow host",
            "what": "host-2 slowed by 20 ms for 5 s at 200/s",
            "rate": 200.0,
            "predicted": {"mean_ms": 9.1, "effect_mean_ms": 3.6, "failed": 0, "queued": 0},
            "measured": {"mean_ms": 9.8, "effect_mean_ms": 4.1, "failed": 0, "queued": 0},
            "error": {"effect_mean_ms": -0.122, "failed": None, "queued": None},
        },
    ]


def _drift() -> dict[str, Any]:
    """The control level measured again: faster now, its core CPU not read."""
    figures = ("throughput", "mean_ms", "p50_ms", "p90_ms", "p99_ms", "core_cpu")
    return {
        "rate": 225.0,
        "calibration": dict(zip(figures, (229.0, 5.1, 4.7, 7.4, 12.8, 0.388), strict=True)),
        "now": dict(zip(figures, (228.0, 4.5, 4.1, 6.8, 11.3, None), strict=True)),
        "change": {
            "throughput": -0.0044,
            "mean_ms": -0.1176,
            "p50_ms": -0.1277,
            "p90_ms": -0.0811,
            "p99_ms": -0.1172,
            "core_cpu_points": None,
        },
    }


def _goals() -> dict[str, Any]:
    """The mean latency's goal missed, the others met (worst errors below the knee)."""
    return {
        "throughput": {"goal": "within 5%", "worst": -0.009, "met": True},
        "mean_ms": {"goal": "within 10%", "worst": 0.1538, "met": False},
        "p99_ms": {"goal": "within 20%", "worst": -0.122, "met": True},
        "core_cpu_points": {"goal": "within 5 points", "worst": 3.0, "met": True},
        "knee": {"goal": "within 15%", "worst": 0.0857, "met": True},
        "whatifs": {"goal": "within 35%", "worst": -0.3333, "met": True},
    }


def sparse() -> dict[str, Any]:
    """The realistic validation with holes: a level with no answer at all (every figure and error
    null, not even whether it is below the knee), nulls in the others, no knee, no what-if, a goal
    with no worst and no verdict."""
    v = copy.deepcopy(realistic())
    v["levels"][1]["measured"] = {k: None for k in _FIGURES}
    v["levels"][1]["error"] = {k: None for k in v["levels"][1]["error"]}
    v["levels"][1]["below_knee"] = None  # unknown: not marked either way
    v["levels"][0]["predicted"]["p99_ms"] = None
    v["levels"][0]["predicted"]["ci"]["p99_ms"] = None
    v["levels"][2]["error"]["core_cpu_points"] = None
    v["levels"][3]["predicted"] = None
    v["machine"] = {"cpus": None, "load_average": [float("nan"), 0.5, None]}
    v["goals"]["mean_ms"] = {"goal": "within 10%", "worst": None, "met": None}
    del v["knee"]
    v["whatifs"] = []
    v["drift"] = None
    return v


def anchored() -> dict[str, Any]:
    """The realistic validation with a second model, anchored to the machine of now by the
    control level: the anchor, and that model's predictions, errors, knee and goals."""
    v = copy.deepcopy(realistic())
    for level in v["levels"]:
        model = {k: v * 1.1 for k, v in level["predicted"].items() if k != "ci" and v is not None}
        error = {k: round((model[k] - level["measured"][k]) / level["measured"][k], 4)
                 for k in ("throughput", "mean_ms", "p50_ms", "p99_ms")}  # fmt: skip
        error["core_cpu_points"] = round((model["core_cpu"] - level["measured"]["core_cpu"]) * 100, 2)
        level["anchored"] = {"predicted": model, "error": error}
    goals = copy.deepcopy(v["goals"])
    goals["mean_ms"] = {"goal": "within 10%", "worst": 0.2692, "met": False}
    anchor = {"rate": 225.0, "cpu": 0.9721, "delay": {"p50": 0.85, "p90": 0.9, "p99": 1.12}}
    v["anchored"] = {"anchor": anchor, "knee": {"predicted": 690.0, "error": -0.0143}, "goals": goals}
    return v


def with_phases() -> dict[str, Any]:
    """`realistic`, its host killed read over time (testbed/calibration/phases.py): three phases, one
    of them measured with no answer, and a timeline with a hole."""
    validation = realistic()
    killed = validation["whatifs"][0]
    killed["faults"] = [{"action": "kill_host", "from_s": 2.0, "until_s": 5.5}]
    killed["phases"] = [
        {"name": "before", "from_s": 0.0, "until_s": 2.0, "predicted": {"mean_ms": 5.0, "effect_ms": 0.0},
         "measured": {"mean_ms": 5.5, "effect_ms": 0.1}, "error": -1.0},
        {"name": "during", "from_s": 2.0, "until_s": 5.5, "predicted": {"mean_ms": 4.5, "effect_ms": -0.5},
         "measured": {"mean_ms": 4.0, "effect_ms": -1.5}, "error": 0.6667},
        {"name": "after", "from_s": 5.5, "until_s": 7.5, "predicted": {"mean_ms": 7.0, "effect_ms": 2.0},
         "measured": {"mean_ms": None, "effect_ms": None}, "error": None},
    ]  # fmt: skip
    killed["timeline"] = {
        "step_s": 0.5,
        "predicted": [5.0, 4.5, 7.0],
        "measured": [5.5, None, 9.0],
        "predicted_baseline": [5.0, 5.0, 5.0],
        "measured_baseline": [5.4, 5.6, 5.5],
    }
    return validation
