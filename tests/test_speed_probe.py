"""The machine's speed probe (loadtests/speed_probe.py) and the model moved to a speed it read
(testbed/calibration/anchor.py `at_speed`)."""

from __future__ import annotations

import time

import pytest

from loadtests.speed_probe import SpeedProbe, work
from testbed.calibration.anchor import LIMITS, at_speed
from testbed.calibration.rounds import combined
from tests.test_anchor import CONTROL, _figures, _model


def test_the_work_is_the_same_every_time() -> None:
    assert work() == work() > 0


def test_the_probe_reads_the_cpu_time_of_its_work_over_a_window() -> None:
    start = time.time()
    with SpeedProbe(every_s=0.005) as probe:
        time.sleep(0.4)
    end = time.time()
    median = probe.between(start, end)
    assert median is not None and 0 < median < 400  # ms of one core for a piece of work, not seconds
    assert probe.between(end + 1, end + 2) is None  # no sample there
    assert probe.between(start, start + 1e-6) is None  # fewer than MIN_SAMPLES


def test_repetitions_combined_keep_the_median_speed() -> None:
    def level(mean: float, probe: float | None) -> dict[str, object]:
        return {"rate": 100.0, "achieved_per_s": 100.0, "mean_ms": mean, "p50_ms": mean, "p90_ms": mean,
                "p99_ms": mean, "machine": {"stolen": 0.0, "probe_ms": probe}}  # fmt: skip

    out = combined([level(5.0, 1.0), level(6.0, 1.4), level(7.0, 1.1), level(8.0, None)])
    assert out["machine"]["probe_ms"] == 1.1  # the median of those read
    assert [r["probe_ms"] for r in out["repetitions"]] == [1.0, 1.4, 1.1, None]


def test_the_model_at_a_slower_machine_has_every_cpu_demand_scaled() -> None:
    model = _model().model_copy(update={"probe_ms": 1.0})
    slower, k = at_speed(model, 1.25)
    assert k == pytest.approx(1.25)
    assert slower.core.cpu_ms == pytest.approx(1.25 * model.core.cpu_ms)
    assert slower.host.startup_cpu_ms == pytest.approx(1.25 * model.host.startup_cpu_ms)
    assert slower.generator.cpu_ms == pytest.approx(1.25 * model.generator.cpu_ms)
    assert slower.delay == model.delay  # the path's delay is not the machine's CPU
    assert _figures(slower)["mean_ms"] > _figures(model)["mean_ms"]
    assert _figures(slower, CONTROL)["core_cpu"] == pytest.approx(1.25 * _figures(model)["core_cpu"], rel=0.1)


def test_without_two_readings_the_model_is_left_as_it_is() -> None:
    model = _model()
    assert at_speed(model, 1.3) == (model, 1.0)  # the model has no speed of its own
    with_speed = model.model_copy(update={"probe_ms": 1.0})
    assert at_speed(with_speed, None) == (with_speed, 1.0)
    assert at_speed(with_speed, 9.0)[1] == LIMITS[1]  # bounded
