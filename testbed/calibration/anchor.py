"""The calibrated model anchored to the machine of the moment, by the control level alone.

Why: this machine is shared, and its speed drifts between a calibration and the validation that
follows it minutes later (three runs of `crossroads bench model` saw the same calibration level's
mean latency move by -9 %, +9 % and +13 %, its p99 by up to +22 %, and the sign of each run's
errors followed the sign of its drift). A model calibrated on the machine of then cannot know the
machine of now; what it can be given is how far the machine moved, measured beside the
held-out levels. The validation measures one calibration level again (the control,
testbed/calibration/validate.py `control_of`, in the same rounds as the held-out levels), and
`anchored` moves the model by what that level shows, reading nothing else:

- the machine's speed: the core's CPU per answered request at the control now against then (the
  same requests at the same rate), one index by which every CPU demand of the model is scaled
  (generator, core and its gRPC threads, the audit writer, the hosts, a host's start-up);
- the path's delay: each of the delay curve's quantile columns (p50, p90, p99) scaled by the
  factor that brings the model's own p50/p90/p99 at the control, with its CPU scaled, to what was
  measured there now; found as the calibration fits the curve (network/path_delay.py), corrected
  DELAY_ROUNDS times, since a sum's quantiles are not the sums of its parts'.

No held-out level, stair or what-if is read: the anchored model predicts them as the calibrated
one would on the machine the control found. The validation keeps the calibrated model's own
predictions beside, with their errors, so that a reader sees both.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from network.path_delay import quantiles_at
from network.testbed_model import Conditions
from scenarios.calibrated import Calibrated
from testbed.calibration.estimate import DELAY_ROUNDS
from testbed.calibration.predicted import predicted

__all__ = ["LIMITS", "Anchor", "anchored", "speed_index"]

LIMITS = (0.5, 2.0)  # no factor outside these: a control that moved more than this measured something else
_QUANTILES = ("p50", "p90", "p99")
_REPLICATIONS = 3  # the model's runs at the control, each fitting round (their mean figures)
Figures = Mapping[str, float | None]


@dataclass(frozen=True)
class Anchor:
    """How the model was moved: the CPU index and the delay's factors (p50, p90, p99)."""

    rate: float
    cpu: float
    delay: tuple[float, float, float]

    def as_json(self) -> dict[str, Any]:
        delay = {q: round(f, 4) for q, f in zip(_QUANTILES, self.delay, strict=True)}
        return {"rate": self.rate, "cpu": round(self.cpu, 4), "delay": delay}


def _bounded(factor: float) -> float:
    low, high = LIMITS
    return min(high, max(low, factor))


def speed_index(then: Figures, now: Figures) -> float:
    """The core's CPU per answered request now over then (1 when either lacks it), within LIMITS."""
    u0, u1, x0, x1 = then.get("core_cpu"), now.get("core_cpu"), then.get("throughput"), now.get("throughput")
    if not (u0 and u1 and x0 and x1):
        return 1.0
    return _bounded((u1 / x1) / (u0 / x0))


# the model's CPU demands, by section: what the speed index scales
_CPU = (("generator", ("cpu_ms",)), ("core", ("cpu_ms", "io_cpu_ms", "background")),
        ("host", ("cpu_ms", "startup_cpu_ms")), ("commit", ("cpu_ms",)))  # fmt: skip


def _cpu_scaled(model: Calibrated, k: float) -> Calibrated:
    for section, keys in _CPU:
        part = getattr(model, section)
        model = model.with_values(section, **{key: getattr(part, key) * k for key in keys})
    return model


def _delay_scaled(model: Calibrated, factors: tuple[float, float, float]) -> Calibrated:
    curve = [(rate, *(q * f for q, f in zip(point, factors, strict=True))) for rate, *point in model.delay.curve]
    return model.with_values("delay", curve=curve)


def _refit(base: Sequence[float], factors: Sequence[float], simulated: Mapping[str, float],
           measured: Figures) -> tuple[float, float, float]:  # fmt: skip
    """Each quantile's factor moved so that the delay there makes up what the model with the
    current factors misses against the measured (a factor kept where either side lacks a number)."""

    def moved(q: str, b: float, f: float) -> float:
        got, wanted = simulated[f"{q}_ms"], measured.get(f"{q}_ms")
        if b <= 0 or wanted is None or math.isnan(got):
            return f
        return _bounded((b * f + wanted - got) / b)

    p50, p90, p99 = (moved(q, b, f) for q, b, f in zip(_QUANTILES, base, factors, strict=True))
    return p50, p90, p99


def anchored(model: Calibrated, then: Figures, now: Figures, control: Conditions) -> tuple[Calibrated, Anchor]:
    """`model` on the machine of now (see the module doc): `then` and `now` are the control
    level's figures (validate.measured_figures) at calibration and now, `control` the model's
    conditions of that level. A model without a delay curve has only its CPU scaled."""
    k = speed_index(then, now)
    moved = _cpu_scaled(model, k)
    factors = (1.0, 1.0, 1.0)
    if model.delay.curve and all(now.get(f"{q}_ms") for q in _QUANTILES):
        base = quantiles_at(model.delay.curve, control.rate)
        trial = moved
        for _ in range(1 + DELAY_ROUNDS):
            factors = _refit(base, factors, predicted(trial, control, _REPLICATIONS).figures, now)
            trial = _delay_scaled(moved, factors)
        moved = trial
    return moved, Anchor(control.rate, k, factors)
