"""The machine's speed read from the load generator, and the latency moved to the calibration's
speed (testbed/calibration/speed.py): on rounds made with a known elasticity, it must be recovered."""

from __future__ import annotations

import math
from typing import Any

import pytest

from testbed.calibration.speed import ELASTICITY_LIMITS, Speed, at_speed_goals, row_at_speed, speed_of

RATES = (100.0, 200.0, 400.0)


def _reference(rate: float) -> float:
    return float(1000.0 * (rate / 100.0) ** -0.4)  # the generator's CPU a request falls with the rate


ELASTICITY = 1.6  # a machine 10% slower makes the mean latency 1.1 ** 1.6 - 1 = 16.5% longer


def _round(rate: float, ratio: float) -> dict[str, Any]:
    """A round at `rate` on a machine `ratio` times slower than the reference: latency moved by
    ratio ** elasticity (the p99 by 1.5 times that elasticity)."""
    e = ELASTICITY
    base = 2.0 + rate / 100.0
    return {"generator_us": _reference(rate) * ratio, "mean_ms": base * ratio**e, "p50_ms": 0.8 * base * ratio**e,
            "p99_ms": 3 * base * ratio ** (1.5 * e)}  # fmt: skip


def _level(rate: float, ratios: tuple[float, ...]) -> dict[str, Any]:
    return {"rate": rate, "repetitions": [_round(rate, r) for r in ratios]}


def _calibration() -> list[dict[str, Any]]:
    # the median round of each rate runs at the reference speed, the others faster and slower
    return [_level(rate, (1.0, 1.25, 0.9)) for rate in RATES]


def test_the_elasticity_and_the_reference_are_recovered() -> None:
    speed = speed_of(_calibration())
    assert speed is not None
    assert speed.rates == RATES
    for rate in RATES:
        assert speed.reference(rate) == pytest.approx(_reference(rate))
    assert speed.reference(math.sqrt(100 * 200)) == pytest.approx(_reference(math.sqrt(100 * 200)))  # log-log
    assert speed.elasticity_of("mean_ms") == pytest.approx(ELASTICITY)
    assert speed.elasticity_of("p50_ms") == pytest.approx(ELASTICITY)
    assert speed.elasticity_of("p99_ms") == pytest.approx(1.5 * ELASTICITY)
    assert speed.ratio(200.0, 1.2 * _reference(200.0)) == pytest.approx(1.2)


def test_a_level_on_a_slower_machine_is_moved_back_to_the_calibrations_speed() -> None:
    speed = speed_of(_calibration())
    assert speed is not None
    level = _level(300.0, (1.3, 1.2, 1.25))  # a validation level while the machine ran a fifth slower
    moved = speed.at_reference(300.0, level["repetitions"])
    assert moved is not None and moved["ratio"] == pytest.approx(1.25)
    at_reference = _round(300.0, 1.0)
    for figure in ("mean_ms", "p50_ms", "p99_ms"):
        assert moved["measured"][figure] == pytest.approx(at_reference[figure], rel=1e-3)
        assert level["repetitions"][2][figure] > 1.2 * at_reference[figure]  # as measured: far off
    row = {"rate": 300.0, "below_knee": True, "repetitions": level["repetitions"],
           "predicted": {k: at_reference[k] * 1.05 for k in ("mean_ms", "p50_ms", "p99_ms")}}  # fmt: skip
    at = row_at_speed(speed, row)
    assert at is not None and at["error"]["mean_ms"] == pytest.approx(0.05, abs=1e-3)
    goals = at_speed_goals([{**row, "at_speed": at}, {"below_knee": False, "at_speed": {"error": {"mean_ms": 0.9}}}])
    # the level past the knee is not judged
    assert goals["mean_ms"]["worst"] == pytest.approx(0.05, abs=1e-3) and goals["mean_ms"]["met"]


def test_nothing_to_read_gives_none() -> None:
    assert speed_of([]) is None
    assert speed_of([_level(100.0, (1.0,)), _level(200.0, (1.1,))]) is None  # no rate read twice
    assert speed_of([_level(100.0, (1.0, 1.0, 1.0))]) is None  # no round faster or slower than another
    lacking = [{"rate": 100.0, "repetitions": [{"mean_ms": 3.0, "p50_ms": 2.0, "p99_ms": 9.0}]}]
    assert speed_of(lacking) is None  # an older calibration: no generator reading
    speed = speed_of(_calibration())
    assert speed is not None
    assert speed.at_reference(200.0, [_round(200.0, 1.0), {"mean_ms": 3.0, "p50_ms": 2.0, "p99_ms": 9.0}]) is None
    assert at_speed_goals([{"below_knee": True}])["mean_ms"] == {
        "goal": "within 10% at each held-out level below the knee",
        "worst": None,
        "met": False,
    }


def test_one_rate_read_twice_is_enough_and_the_elasticity_is_kept_within_its_limits() -> None:
    speed = speed_of([_level(200.0, (1.0, 1.3))])
    assert isinstance(speed, Speed) and speed.elasticity_of("mean_ms") == pytest.approx(ELASTICITY)
    wild = Speed(speed.rates, speed.generator_us, {"mean_ms": 9.0, "p50_ms": -1.0, "p99_ms": 2.0})
    assert (wild.elasticity_of("mean_ms"), wild.elasticity_of("p50_ms")) == ELASTICITY_LIMITS[::-1]


def test_a_round_with_no_answer_leaves_its_figures_unknown() -> None:
    speed = speed_of(_calibration())
    assert speed is not None
    silent = {"generator_us": _reference(400.0), "mean_ms": None, "p50_ms": None, "p99_ms": None}
    moved = speed.at_reference(400.0, [_round(400.0, 1.0), silent])
    assert moved is not None and moved["measured"] == {"mean_ms": None, "p50_ms": None, "p99_ms": None}
