"""A fault what-if read over time (testbed/calibration/phases.py): its phases' spans, each
phase's mean latency and effect in both worlds, the timelines; on requests whose latencies are
set by hand, so that every effect is known."""

from __future__ import annotations

import numpy as np
import pytest

from loadtests.level import RECORD
from testbed.calibration.phases import AFTER_S, PHASES, STEP_S, Timed, bounds, compare_phases, live_timed, timeline

DUE = np.arange(0.0, 10.0, 0.01)  # a request due every 10 ms of a 10-second window


def _timed(before: float, during: float, after: float, later: float) -> Timed:
    """Requests whose latency is `before` until 2 s, `during` until 5 s, `after` until 7 s, then `later`."""
    latency = np.select([DUE < 2, DUE < 5, DUE < 7], [before, during, after], later)
    return DUE, latency.astype(float)


def test_the_phases_cut_the_window_at_the_fault_and_two_seconds_after_it() -> None:
    assert AFTER_S == 2.0
    assert bounds(2.0, 5.0, 10.0) == {"before": (0.0, 2.0), "during": (2.0, 5.0), "after": (5.0, 7.0),
                                      "later": (7.0, 10.0)}  # fmt: skip
    near_the_end = bounds(8.0, 9.5, 10.0)
    assert near_the_end["after"] == (9.5, 10.0) and near_the_end["later"] == (10.0, 10.0)


def test_the_timeline_is_each_half_second_s_mean_and_none_where_nothing_was_answered() -> None:
    due = np.array([0.1, 0.2, 1.7])
    steps = timeline((due, np.array([4.0, 6.0, 9.0])), 2.0)
    assert STEP_S == 0.5 and steps == [5.0, None, None, 9.0]


def test_live_records_give_the_answered_requests_of_the_window_in_milliseconds() -> None:
    records = np.zeros(4, dtype=RECORD)
    records["intended_s"] = [-0.5, 0.25, 1.0, 2.0]  # the first one due in the warm-up
    records["latency_s"] = [0.001, 0.002, 0.003, 0.004]
    records["code"] = [0, 0, 14, 0]  # the third failed (UNAVAILABLE)
    due, latency = live_timed(records)
    assert due.tolist() == [0.25, 2.0] and latency.tolist() == pytest.approx([2.0, 4.0])


def test_each_phase_s_effect_is_the_fault_s_minus_the_baseline_s_in_that_phase() -> None:
    baseline = _timed(5, 5, 5, 5)
    # the model: faster while the fault lasts, slower just after it, in each of its two replications
    model = [(baseline, _timed(5, 4, 8, 5))] * 2
    # the testbed: three rounds; each phase's figure is their median
    live = [(baseline, _timed(5, 4, 10, 5)), (baseline, _timed(5, 3, 9, 5)), (baseline, _timed(5, 2, 11, 5))]
    out = compare_phases((2.0, 5.0), 10.0, model, live)
    phases = {p["name"]: p for p in out["phases"]}
    assert list(phases) == list(PHASES)
    assert phases["during"]["predicted"] == {"mean_ms": 4.0, "effect_ms": -1.0}
    assert phases["during"]["measured"] == {"mean_ms": 3.0, "effect_ms": -2.0}
    assert phases["during"]["error"] == pytest.approx(0.5)  # (-1 - -2) / |-2|: the model drops less
    assert phases["after"]["predicted"]["effect_ms"] == 3.0 and phases["after"]["measured"]["effect_ms"] == 5.0
    assert phases["after"]["error"] == pytest.approx(-0.4)
    assert (phases["after"]["from_s"], phases["after"]["until_s"]) == (5.0, 7.0)
    assert phases["before"]["error"] is None  # no effect measured: no error to give
    line = out["timeline"]
    assert line["step_s"] == STEP_S and len(line["measured"]) == 20
    assert line["measured"][4:10] == [3.0] * 6 and line["measured"][10:14] == [10.0] * 4
    assert line["predicted_baseline"] == [5.0] * 20 and line["measured_baseline"] == [5.0] * 20
