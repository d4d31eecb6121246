"""The model anchored to the machine of now by one control level (testbed/calibration/anchor.py).

Synthetic: the "machine of now" is the same model with its CPU and its path delay moved by known
factors, and its figures at the control level are what `anchored` is given: it must find the
factors again, and predict another level as the moved model does.
"""

from __future__ import annotations

from typing import Any

import pytest

from network.testbed_model import Conditions
from scenarios.calibrated import Calibrated
from testbed.calibration.anchor import LIMITS, anchored, speed_index
from testbed.calibration.predicted import predicted

MODEL: dict[str, Any] = {
    "cpus": 2,
    "hosts": 4,
    "generator": {"processes": 2, "cpu_ms": 0.3},
    "core": {"cpu_ms": 0.5, "io_cpu_ms": 0.1, "background": 0.02},
    "host": {"cpu_ms": 0.2, "startup_cpu_ms": 100.0},
    "commit": {"cpu_ms": 0.1, "fixed_ms": 1.0, "handoffs": 2},
    "delay": {"curve": [[100.0, 2.0, 4.0, 8.0], [300.0, 3.0, 6.0, 12.0]]},
    "mix": {
        "CONSULTATION": {"share": 0.75, "consultation": True, "destinations": {1: 1.0}},
        "MUTATION": {"share": 0.25, "destinations": {2: 1.0}},
    },
    "levels": [100.0, 300.0],
}
CONTROL = Conditions(rate=200.0, seconds=8.0, warmup_s=1.0, seed=5)


def _model(cpu: float = 1.0, delay: float = 1.0) -> Calibrated:
    data = {**MODEL, "delay": {"curve": [[r, *(q * delay for q in point)] for r, *point in MODEL["delay"]["curve"]]}}
    for section, keys in (("generator", ("cpu_ms",)), ("core", ("cpu_ms", "io_cpu_ms", "background")),
                          ("host", ("cpu_ms", "startup_cpu_ms")), ("commit", ("cpu_ms",))):  # fmt: skip
        data[section] = {**MODEL[section], **{k: MODEL[section][k] * cpu for k in keys}}
    return Calibrated.model_validate(data)


def _figures(model: Calibrated, when: Conditions = CONTROL) -> dict[str, float]:
    return predicted(model, when, 3).figures


def test_the_speed_index_is_the_core_cpu_per_request_now_over_then() -> None:
    then = {"core_cpu": 0.30, "throughput": 300.0}
    assert speed_index(then, {"core_cpu": 0.36, "throughput": 300.0}) == pytest.approx(1.2)
    assert speed_index(then, {"core_cpu": 0.36, "throughput": 360.0}) == pytest.approx(1.0)  # more answered
    assert speed_index(then, {"core_cpu": None, "throughput": 300.0}) == 1.0  # nothing to tell by
    assert speed_index(then, {"core_cpu": 3.0, "throughput": 300.0}) == LIMITS[1]  # bounded


def test_a_machine_that_did_not_move_leaves_the_model_as_it_is() -> None:
    model = _model()
    figures = _figures(model)
    moved, anchor = anchored(model, figures, figures, CONTROL)
    assert anchor.cpu == pytest.approx(1.0) and anchor.delay == pytest.approx((1.0, 1.0, 1.0))
    assert [p == pytest.approx(q) for p, q in zip(moved.delay.curve, model.delay.curve, strict=True)] == [True] * 2
    assert moved.core.cpu_ms == pytest.approx(model.core.cpu_ms)


def test_the_anchor_finds_a_known_move_and_predicts_another_level_as_the_moved_model() -> None:
    model, now_model = _model(), _model(cpu=1.25, delay=1.6)
    moved, anchor = anchored(model, _figures(model), _figures(now_model), CONTROL)
    assert anchor.cpu == pytest.approx(1.25, rel=0.03)
    assert all(f == pytest.approx(1.6, rel=0.15) for f in anchor.delay), anchor
    assert moved.core.cpu_ms == pytest.approx(model.core.cpu_ms * anchor.cpu)
    assert moved.host.startup_cpu_ms == pytest.approx(model.host.startup_cpu_ms * anchor.cpu)
    # at a level the anchor never saw, the anchored model is nearer the machine of now than the calibrated one
    elsewhere = Conditions(rate=280.0, seconds=8.0, warmup_s=1.0, seed=9)
    truth, before, after = (_figures(m, elsewhere)["mean_ms"] for m in (now_model, model, moved))
    assert abs(after - truth) / truth < 0.05 and abs(before - truth) / truth > 0.2, (truth, before, after)


def test_a_model_without_a_delay_curve_has_only_its_cpu_moved() -> None:
    model = Calibrated.model_validate({**MODEL, "delay": {"fixed_ms": 1.0, "mean_ms": 0.5, "cv": 1.0}})
    then = {"core_cpu": 0.2, "throughput": 200.0, "p50_ms": 3.0, "p90_ms": 5.0, "p99_ms": 9.0}
    moved, anchor = anchored(model, then, {**then, "core_cpu": 0.22, "p99_ms": 20.0}, CONTROL)
    assert anchor.cpu == pytest.approx(1.1) and anchor.delay == (1.0, 1.0, 1.0)
    assert moved.delay == model.delay and moved.generator.cpu_ms == pytest.approx(0.33)
