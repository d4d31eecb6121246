"""The calibrated model's side of a validation: its figures at a level with their confidence
intervals, its knee, and the held-out levels chosen from it.

Each prediction is `replications` runs of network/testbed_model.py on their own seeds; a figure
is their mean with the 95% interval over them (crossroads.statistics.estimate).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from crossroads.statistics import estimate
from network.run import clean_json
from network.testbed_model import FIGURES, OUTCOMES, Conditions, Prediction, predict, replicate
from scenarios.calibrated import Calibrated
from testbed.calibration.estimate import KNEE_P99_MS

__all__ = ["Predicted", "held_out_rates", "knee_of", "predicted"]

_KNEE_PRECISION = 1.025  # the model's knee is found to within this ratio
_MAX_RATE = 1e6
_MIN_HELD_OUT = 3


@dataclass(frozen=True)
class Predicted:
    """A level as the model predicts it: each figure's mean and 95% interval, and outcome counts
    (and the replications themselves, `runs`, for what is read per request: not in its JSON)."""

    figures: dict[str, float]
    ci: dict[str, tuple[float, float]]
    outcomes: dict[str, float]
    runs: tuple[Prediction, ...] = field(default=(), repr=False, compare=False)

    def as_json(self) -> dict[str, Any]:
        """Strict JSON: no NaN (null), figures to 4 decimals."""
        shown: dict[str, Any] = clean_json({k: round(v, 4) for k, v in self.figures.items()})
        ci = {k: [round(lo, 4), round(hi, 4)] for k, (lo, hi) in self.ci.items()}
        return {**shown, "ci": clean_json(ci), "outcomes": self.outcomes}


def predicted(model: Calibrated, when: Conditions, replications: int) -> Predicted:
    """The model's figures under `when` over `replications` seeds."""
    runs = replicate(model, when, replications)
    figures, ci = {}, {}
    for name in FIGURES:
        e = estimate([r.figures()[name] for r in runs])
        figures[name] = e.mean
        ci[name] = (e.mean, e.mean) if math.isnan(e.half_width) else (e.low, e.high)
    mean_counts = {k: sum(r.outcomes[k] for r in runs) / len(runs) for k in OUTCOMES}
    return Predicted(figures, ci, mean_counts, tuple(runs))


def knee_of(model: Calibrated, conditions: Callable[[float], Conditions], start: float) -> float:
    """The highest rate whose p99 latency the model keeps at or under the knee's limit, to 2.5%,
    each rate under `conditions(rate)`: doubling from `start` until a rate fails, then halving
    the interval; `start` when it fails."""

    def holds(rate: float) -> bool:
        return bool(predict(model, conditions(rate)).figures()["p99_ms"] <= KNEE_P99_MS)

    if not holds(start):
        return start
    held, failed = start, start * 2
    while holds(failed) and failed < _MAX_RATE:
        held, failed = failed, failed * 2
    while failed / held > _KNEE_PRECISION:
        middle = math.sqrt(held * failed)
        held, failed = (middle, failed) if holds(middle) else (held, middle)
    return held


def held_out_rates(calibration: Sequence[float], knee: float) -> list[float]:
    """Rates the calibration did not use, below `knee`: the geometric midpoints of its levels
    under the knee, and shares of the knee away from every calibration level, at least three."""
    below = sorted(r for r in calibration if r < knee)
    rates = [round(math.sqrt(a * b), 1) for a, b in itertools.pairwise(below)]
    for share in (0.7, 0.5, 0.85, 0.3, 0.6, 0.4):
        if len(rates) >= _MIN_HELD_OUT:
            break
        candidate = round(knee * share, 1)
        if all(abs(candidate - r) / r > 0.08 for r in [*calibration, *rates]):
            rates.append(candidate)
    return sorted(rates)
