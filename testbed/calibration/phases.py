"""A fault what-if read over time: the latency of the requests due before the fault, during it,
just after it and later, and in half-second steps, in both worlds.

Why: a fault's effect on a level's mean latency is the sum of effects of opposite signs. While an
agency host is down the exchanges that need it fail at once and the machine has a process less
to run (faster); once it serves again it spends its start-up again and the outbox redelivers
what it was owed (slower). The net effect on a 10-second window's mean is then about as large as
the noise of that mean on this machine (2026-12-07, host-1 killed for 3 s at 250/s, seven
baseline and fault pairs: effects of -0.56 to +2.70 ms, the baselines' means 6.1-8.6 ms), and its
signed error says little about where the model goes wrong. Each phase's effect has one sign, and
the timeline shows when the two worlds part.

A request belongs to the phase its intended send time falls in (window seconds): "before"
[0, from), "during" [from, until), "after" [until, until + AFTER_S) and "later" (the rest of the
window); a phase with no answered request has no mean (None). Latency is of the answered
requests (the generator counts only those), from each one's intended send time.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from crossroads.statistics import mean
from network.testbed_model import Prediction
from testbed.calibration.errors import signed

__all__ = ["AFTER_S", "PHASES", "STEP_S", "Timed", "bounds", "compare_phases", "live_timed", "model_timed", "timeline"]

PHASES = ("before", "during", "after", "later")
AFTER_S = 2.0  # "after": this long from when the fault ended (the live redelivery and restart lasted 1-2 s)
STEP_S = 0.5  # the timeline's step

Timed = tuple[NDArray[np.float64], NDArray[np.float64]]  # (due times in window seconds, latencies in ms)


def bounds(start: float, until: float, seconds: float) -> dict[str, tuple[float, float]]:
    """Each phase's span in window seconds for a fault from `start` to `until` in a window of `seconds`."""
    after = min(until + AFTER_S, seconds)
    return {"before": (0.0, start), "during": (start, until), "after": (until, after), "later": (after, seconds)}


def live_timed(records: NDArray[np.void]) -> Timed:
    """The answered requests of a live level's records (loadtests.level's RECORD) due in its window."""
    ok = records[(records["code"] == 0) & (records["intended_s"] >= 0)]
    return np.asarray(ok["intended_s"], dtype=float), np.asarray(ok["latency_s"], dtype=float) * 1000


def model_timed(run: Prediction) -> Timed:
    """The answered requests of one model run."""
    return run.due_s, run.latencies_ms


def _mean_in(timed: Timed, span: tuple[float, float]) -> float | None:
    due, latency = timed
    inside = latency[(due >= span[0]) & (due < span[1])]
    return mean(inside) if inside.size else None


def timeline(timed: Timed, seconds: float) -> list[float | None]:
    """The mean latency of the requests due in each STEP_S of the window (None: none answered)."""
    steps = math.ceil(seconds / STEP_S - 1e-9)
    return [_mean_in(timed, (i * STEP_S, min((i + 1) * STEP_S, seconds))) for i in range(steps)]


def _centre(values: Sequence[float | None], how: str) -> float | None:
    """The mean (the model's replications) or median (the live rounds) of the values there are."""
    there = [v for v in values if v is not None]
    if not there:
        return None
    return statistics.fmean(there) if how == "mean" else statistics.median(there)


def _side(pairs: Sequence[tuple[Timed, Timed]], spans: dict[str, tuple[float, float]], seconds: float,
          how: str) -> dict[str, Any]:  # fmt: skip
    """One world's phases and timeline over its (baseline, what-if) pairs: each phase's mean and
    effect (what-if minus baseline in that phase) and each step's mean, centred over the pairs by `how`."""
    phases = {}
    for name, span in spans.items():
        means = [(_mean_in(base, span), _mean_in(level, span)) for base, level in pairs]
        effects = [None if b is None or w is None else w - b for b, w in means]
        phases[name] = {"mean_ms": _centre([w for _, w in means], how), "effect_ms": _centre(effects, how)}
    steps = [timeline(level, seconds) for _, level in pairs]
    base_steps = [timeline(base, seconds) for base, _ in pairs]
    return {"phases": phases,
            "timeline": [_centre(column, how) for column in zip(*steps, strict=True)],
            "baseline": [_centre(column, how) for column in zip(*base_steps, strict=True)]}  # fmt: skip


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def compare_phases(window: tuple[float, float], seconds: float, predicted: Sequence[tuple[Timed, Timed]],
                   measured: Sequence[tuple[Timed, Timed]]) -> dict[str, Any]:  # fmt: skip
    """The phases of a fault `window` (window seconds) in both worlds: `predicted`, the model's
    (baseline, what-if) replications, each phase's figure their mean; `measured`, the live
    rounds' pairs, each phase's figure their median (as the what-if's own figures). Per phase its
    span, both sides' mean latency and effect, and the effect's signed error; the timelines (the
    what-if's and the baseline's mean latency in each STEP_S)."""
    spans = bounds(window[0], window[1], seconds)
    model, live = _side(predicted, spans, seconds, "mean"), _side(measured, spans, seconds, "median")
    phases = []
    for name in PHASES:
        p, m = model["phases"][name], live["phases"][name]
        error = None if p["effect_ms"] is None or m["effect_ms"] is None else signed(p["effect_ms"], m["effect_ms"])
        phases.append({"name": name, "from_s": round(spans[name][0], 3), "until_s": round(spans[name][1], 3),
                       "predicted": {k: _rounded(v) for k, v in p.items()},
                       "measured": {k: _rounded(v) for k, v in m.items()}, "error": error})  # fmt: skip
    steps = {f"{side}{suffix}": [_rounded(v) for v in world[key]]
             for side, world in (("predicted", model), ("measured", live))
             for key, suffix in (("timeline", ""), ("baseline", "_baseline"))}  # fmt: skip
    return {"phases": phases, "timeline": {"step_s": STEP_S, **steps}}
