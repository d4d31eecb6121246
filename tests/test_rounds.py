"""Levels in interleaved rounds (testbed/calibration/rounds.py): the order they are measured in,
and how a rate's repetitions become one level."""

from __future__ import annotations

from typing import Any

import pytest

from testbed.calibration.rounds import combined, in_rounds


def _level(rate: float, mean: float, *, p99: float = 10.0, cpu: float = 0.5, tag: str = "") -> dict[str, Any]:
    return {"rate": rate, "achieved_per_s": rate, "mean_ms": mean, "p50_ms": mean * 0.8, "p90_ms": mean * 1.5,
            "p99_ms": p99, "cpu": {"core": {"utilisation": cpu, "threads": {"main": {"utilisation": cpu / 2}}}},
            "telemetry": {"tag": tag}, "window": [0.0, 1.0], "cpu_us_per_call": 100 * mean}  # fmt: skip


def test_each_figure_is_the_median_and_the_median_repetition_is_kept_whole() -> None:
    reps = [_level(100, 5.0, p99=30.0, cpu=0.4, tag="a"), _level(100, 9.0, p99=12.0, cpu=0.6, tag="b"),
            _level(100, 7.0, p99=20.0, cpu=0.9, tag="c")]  # fmt: skip
    level = combined(reps)
    assert level["mean_ms"] == 7.0 and level["p99_ms"] == 20.0 and level["p50_ms"] == pytest.approx(5.6)
    assert level["cpu"]["core"]["utilisation"] == 0.6
    assert level["telemetry"] == {"tag": "c"}  # the repetition whose mean is the median
    assert level["cpu"]["core"]["threads"] == {"main": {"utilisation": 0.45}}
    assert [r["mean_ms"] for r in level["repetitions"]] == [5.0, 9.0, 7.0]
    assert [r["generator_us"] for r in level["repetitions"]] == [500.0, 900.0, 700.0]
    assert reps[2]["mean_ms"] == 7.0 and "repetitions" not in reps[2]  # the inputs are left as they were


def test_a_lone_level_is_unchanged_but_for_its_repetitions() -> None:
    lone = _level(50, 4.0)
    level = combined([lone])
    assert {k: v for k, v in level.items() if k != "repetitions"} == lone
    assert len(level["repetitions"]) == 1
    with pytest.raises(ValueError):
        combined([])


def test_rates_are_measured_round_after_round() -> None:
    order: list[float] = []

    def measure(rate: float) -> dict[str, Any]:
        order.append(rate)
        return _level(rate, rate / 10 + len(order))

    levels = in_rounds(measure, [100, 200, 300], 3, lambda _: None)
    assert order == [100, 200, 300] * 3
    assert [lv["rate"] for lv in levels] == [100, 200, 300]
    assert [len(lv["repetitions"]) for lv in levels] == [3, 3, 3]
    assert levels[1]["mean_ms"] == 20 + 5  # 20 + 2, 20 + 5, 20 + 8


def test_a_first_round_measured_already_is_not_measured_again() -> None:
    order: list[float] = []

    def measure(rate: float) -> dict[str, Any]:
        order.append(rate)
        return _level(rate, 1.0)

    climbed = [_level(100, 3.0), _level(150, 4.0)]
    levels = in_rounds(measure, [100, 150], 2, lambda _: None, first=climbed)
    assert order == [100, 150] and [len(lv["repetitions"]) for lv in levels] == [2, 2]
    assert in_rounds(measure, [100], 1, lambda _: None, first=[climbed[0]])[0]["mean_ms"] == 3.0
    with pytest.raises(ValueError):
        in_rounds(measure, [100], 0, lambda _: None)
