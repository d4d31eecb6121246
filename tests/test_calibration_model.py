"""From measured levels to a model (testbed/calibration/estimate.py): synthetic measurements made
from known demands must give those demands back, and the delay the latency they were made with."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from loadtests.prepared_mix import Drawn
from network.testbed_model import Conditions, predict
from scenarios.calibrated import Calibrated
from testbed.calibration.calibrate import _climb
from testbed.calibration.errors import level_errors
from testbed.calibration.estimate import Setup, Sources, below_knee, estimate_model
from testbed.calibration.forwards import Forwards
from testbed.calibration.measure import LivePlan
from testbed.calibration.predicted import Predicted, held_out_rates
from testbed.calibration.validate import _knee, _staircase, below_the_knee, drift_of, stairs_from

GEN, MAIN, IO, WRITER, HOST = 0.25e-3, 0.4e-3, 0.1e-3, 0.2e-3, 0.3e-3  # seconds per request (per commit, per forward)
FORWARD = 1.2e-3  # seconds of a forward's round trip beyond the host's CPU
UNROUTABLE = 0.02  # of the requests sent, answered FAILED_PRECONDITION
DRAWN = [Drawn("agency", "CONSULTATION", 1)] * 6 + [Drawn("agency", "MUTATION", 3)] * 2  # 1.5 destinations on average


def _level(rate: float, batch: float, p99_ms: float = 12.0, load: float = 1.0, answered: float = 1.0) -> dict[str, Any]:
    """A level measured: `load` times each demand per request (the CPU per request falls past the
    knee), `answered` the share of the offered rate answered (less: its generator sent late)."""
    commits, x = rate * 10 / batch, rate * answered
    return {
        "rate": rate, "offered_per_s": rate, "achieved_per_s": x, "seconds": 10.0, "warmup_s": 2.0,
        "limited_by": ["send_lag", "sent_rate"] if answered < 1 else [],
        "cpu_s": (0.05 + GEN * load * rate) * 12.0,
        "sent": int(rate * 10), "errors_by_code": {"FAILED_PRECONDITION": round(rate * 10 * UNROUTABLE),
                                                   "DEADLINE_EXCEEDED": 3},
        "p50_ms": 4.0, "p90_ms": 6.0, "p99_ms": p99_ms, "mean_ms": 4.5,
        "cpu": {
            "core": {"utilisation": 0.0, "threads": {
                "main": {"utilisation": 0.02 + MAIN * load * x},
                "event_engine": {"utilisation": 0.03 + IO * load * x},
                "audit-writer": {"utilisation": WRITER * x / batch}}},
            **{f"host-{k}": {"utilisation": HOST * load * x * 1.5 / 4, "threads": {}} for k in range(4)},
        },
        "telemetry": {"commits": {"commits": commits, "records": rate * 10, "commit_s": commits * 1.1e-3,
                                  "mean_batch": batch, "mean_commit_ms": 1.1},
                      # the core's time in an exchange's forwards: 1.5 of them, each the host's CPU and the trip
                      "mean": {"forward_ms": 1.5 * (HOST + FORWARD) * 1000 * (1 + (rate - 100) / 1000)}},
    }  # fmt: skip


# past the knee, the 800/s level kept up (its generator sending late) with its CPU per request at
# 0.8 of the lines' and its latency grown (p50 10, p90 30, p99 80 ms); 1600/s did not keep up
LEVELS = [_level(100, 1.0), _level(200, 1.1), _level(400, 1.3),
          _level(800, 3.0, p99_ms=80.0, load=0.8, answered=0.98) | {"p50_ms": 10.0, "p90_ms": 30.0},
          _level(1600, 6.0, p99_ms=900.0, load=0.5, answered=0.9)]  # fmt: skip


@pytest.fixture(scope="module")
def estimated() -> tuple[Calibrated, Sources]:
    return estimate_model(LEVELS, DRAWN, Setup(cpus=2, hosts=4, processes=2, service_time_ms=0.0), fit_seconds=3.0)


def test_the_demands_come_back_from_measurements_made_with_them(estimated: tuple[Calibrated, Sources]) -> None:
    model, sources = estimated
    assert model.generator.cpu_ms == pytest.approx(GEN * 1000, rel=1e-6)
    assert model.core.cpu_ms == pytest.approx(MAIN * 1000, rel=1e-6)
    assert model.core.io_cpu_ms == pytest.approx(IO * 1000, rel=1e-6)
    assert model.host.cpu_ms == pytest.approx(HOST * 1000, rel=1e-6)
    assert model.host.forward_ms == pytest.approx(FORWARD * 1000, rel=1e-6)  # at the lowest level, 100/s
    assert "at 100/s" in sources["host.forward_ms"]
    assert model.commit.cpu_ms == pytest.approx(WRITER * 1000, rel=1e-6)
    assert model.commit.fixed_ms == pytest.approx(1.1)
    assert model.core.background == pytest.approx(0.05)  # the main thread's 0.02 and gRPC's 0.03
    assert model.levels == [100, 200, 400, 800, 1600]  # every level measured, the last two past the knee
    assert "over 3 level(s)" in sources["core.cpu_ms"]  # ... but not used: it did not hold
    assert model.mix["MUTATION"].destinations == {3: 1.0} and model.mix["CONSULTATION"].share == 0.75
    assert model.unroutable == pytest.approx(UNROUTABLE)  # other errors are not the directory's
    assert "140 of the 7,000 requests sent" in sources["unroutable"]  # the levels that held


def test_the_load_curve_gives_each_line_s_factor_past_the_knee_where_the_generator_kept_up(
    estimated: tuple[Calibrated, Sources],
) -> None:
    model, sources = estimated
    assert model.load.curve == [(400, 1.0, 1.0, 1.0, 1.0), (800, 0.8, 0.8, 0.8, 0.8)]  # 1600/s did not keep up
    assert model.load.at(600) == pytest.approx((0.9, 0.9, 0.9, 0.9))
    assert "1 at 400/s" in sources["load.curve"] and "at 800/s" in sources["load.curve"]
    plain = estimate_model(LEVELS[:3], DRAWN, Setup(cpus=2, hosts=4, processes=2, service_time_ms=0.0),
                           fit_seconds=1.0, delay_requests=0)[0]  # fmt: skip
    assert plain.load.curve == []  # nothing measured past the knee: the lines hold at every load


def test_the_delay_curve_makes_each_level_that_held_or_kept_up_past_them_what_it_measured(
    estimated: tuple[Calibrated, Sources],
) -> None:
    model, sources = estimated
    # 800/s did not hold (p99 80 ms) but kept up: measured there, not extrapolated; 1600/s did not keep up
    assert [point[0] for point in model.delay.curve] == [100, 200, 400, 800]
    assert model.delay.fixed_ms == model.delay.mean_ms == 0  # the curve takes their place
    for rate, p50, p99 in ((100, 4.0, 12.0), (400, 4.0, 12.0), (800, 10.0, 80.0)):
        figures = predict(model, Conditions(rate=rate, seconds=60.0, seed=1)).figures()
        assert figures["p50_ms"] == pytest.approx(p50, rel=0.1)
        assert figures["p99_ms"] == pytest.approx(p99, rel=0.1)
    assert "corrected 2 times" in sources["delay.curve"] and "100/s, 200/s, 400/s, 800/s" in sources["delay.curve"]


def test_the_knee_is_a_p99_of_50_ms_with_the_rate_offered_and_nothing_held_is_refused_saying_why() -> None:
    assert [lv["rate"] for lv in below_knee(LEVELS)] == [100, 200, 400]
    # sends that were only late hold (a shared machine's lag is in the latency); a rate not offered does not
    lagging, short = LEVELS[0] | {"limited_by": ["send_lag"]}, LEVELS[1] | {"limited_by": ["send_lag", "sent_rate"]}
    assert below_knee([lagging, short]) == [lagging]
    with pytest.raises(ValueError, match=r"no level held p99 <= 50 ms .*200/s: the generator could not offer it "
                       r"\(send_lag, sent_rate\); 1600/s: p99 900 ms\); lower the rates"):  # fmt: skip
        estimate_model(
            [short, LEVELS[-1] | {"limited_by": []}], DRAWN, Setup(cpus=2, hosts=4, processes=2, service_time_ms=0.0)
        )


def test_held_out_levels_avoid_the_calibration_levels() -> None:
    assert held_out_rates([100, 200, 400, 800], knee=600) == [
        141.4,
        282.8,
        510.0,
    ]  # midpoints, then 0.85 of the knee (0.7, 0.5: too near)
    rates = held_out_rates([100], knee=1000)
    assert len(rates) == 3 and all(abs(r - 100) / 100 > 0.08 for r in rates)


def test_the_knee_staircase_starts_below_both_knees_and_on_no_calibration_level() -> None:
    stairs = stairs_from(knee=1000.0, held=759.4)  # the highest calibration level that held
    assert stairs[0] == pytest.approx(607.5, abs=0.1) and stairs[1] == pytest.approx(607.5 * 1.06, abs=0.1)
    assert stairs_from(knee=500.0, held=759.4)[0] == 425.0  # a model whose knee is lower starts lower
    assert stairs_from(knee=500.0, held=None)[0] == 425.0


class _Stairs:
    """A live bench whose p99 is 10 ms per 100/s, but 60 ms for 200/s and 300/s the first time
    each is measured (another tenant's episode)."""

    def __init__(self) -> None:
        self.measured: list[float] = []

    def level(self, rate: float) -> dict[str, Any]:
        spike = rate in (200.0, 300.0) and rate not in self.measured
        self.measured.append(rate)
        p99 = 60.0 if spike else rate / 10
        return {"rate": rate, "achieved_per_s": rate, "mean_ms": p99 / 3, "p50_ms": p99 / 4, "p90_ms": p99 / 2,
                "p99_ms": p99}  # fmt: skip


def test_the_staircase_stops_two_stairs_past_the_knee_then_reads_it_from_each_stair_s_rounds() -> None:
    bench = _Stairs()
    models = Predicted({"p99_ms": 1.0}, {}, {}), Predicted({"p99_ms": 2.0}, {}, {})
    asked: list[float] = []

    def guesses(rate: float) -> tuple[Predicted, Predicted]:
        asked.append(rate)
        assert rate not in bench.measured  # each stair predicted before it is measured
        return models

    climbed = _staircase(bench, [100.0, 200.0, 300.0, 400.0, 500.0, 600.0], guesses, 3, lambda _: None)  # type: ignore[arg-type]
    assert asked == [100.0, 200.0, 300.0]  # two in a row failed at first: the climb stops there
    assert bench.measured == [100.0, 200.0, 300.0] * 3  # then every stair climbed, round after round
    assert [lv["p99_ms"] for _, lv in climbed] == [10.0, 20.0, 30.0]  # the medians: the spikes were one round
    assert all(g == models for g, _ in climbed)
    knee = _knee(climbed, 250.0)
    assert knee["measured"] == 300.0 and knee["error"] == pytest.approx(-1 / 6, abs=1e-4)
    assert knee["at_least"]  # every stair climbed held by its median: the live knee is higher still
    failed = (models, {"rate": 350.0, "p99_ms": 80.0, "limited_by": []})
    assert _knee([*climbed, failed], 250.0)["measured"] == 300.0 and not _knee([*climbed, failed], 250.0)["at_least"]


def test_a_stair_that_held_past_the_knee_is_not_below_it() -> None:
    """The goals are judged below the knee: a stair above the first that failed, which held again
    on a jagged staircase, is past the knee; with no knee measured (the first stair failed), every
    level from the first stair up is."""
    rates = [122.5, 183.7, 270.0, 300.0, 330.0, 360.0]
    held = {122.5: True, 183.7: True, 270.0: True, 300.0: True, 330.0: False, 360.0: True}

    def below(knee: dict[str, Any] | None) -> list[float]:
        return [r for r in rates if held[r] and below_the_knee(r, knee)]

    assert below({"measured": 300.0, "rates": [270.0, 300.0, 330.0, 360.0]}) == [122.5, 183.7, 270.0, 300.0]
    assert below({"measured": None, "rates": [270.0, 300.0]}) == [122.5, 183.7]
    assert below(None) == [r for r in rates if held[r]]  # no staircase: each level's own p99 decides


class _Climb:
    """A live bench whose levels hold (p99 <= 50 ms) except those in `failing`."""

    def __init__(self, failing: set[float]) -> None:
        self.failing = failing
        self.measured: list[float] = []

    def level(self, rate: float) -> dict[str, Any]:
        self.measured.append(rate)
        return {"rate": rate, "achieved_per_s": rate, "p50_ms": 5.0, "p99_ms": 80.0 if rate in self.failing else 20.0,
                "limited_by": [], "cpu": {"core": {"utilisation": 0.3}}}  # fmt: skip


@pytest.mark.parametrize(("failing", "climbed"), [
    ({100.0}, [100.0, 150.0, 225.0, 337.5]),  # a first level in a tenant's episode does not end the climb
    ({150.0, 337.5}, [100.0, 150.0, 225.0, 337.5]),  # nor one failure between two that held
    ({150.0, 225.0}, [100.0, 150.0, 225.0]),  # two in a row do
])  # fmt: skip
def test_the_calibration_climb_stops_after_two_levels_in_a_row_past_the_knee(
    failing: set[float], climbed: list[float]
) -> None:
    bench = _Climb(failing)
    levels = _climb(bench, [100.0, 150.0, 225.0, 337.5], True, lambda _: None)  # type: ignore[arg-type]
    assert bench.measured == climbed and [lv["rate"] for lv in levels] == climbed


def test_a_thread_whose_cpu_does_not_grow_with_the_load_is_background_not_demand() -> None:
    """gRPC's C threads busy 11% of a core at every level: no demand per request (an average of
    U / X would make it 1.1 ms at 100/s and charge it to every request at 1,000/s)."""
    flat = copy.deepcopy(LEVELS)
    for level, busy in zip(flat, (0.11, 0.115, 0.105, 0.11, 0.1), strict=True):
        level["cpu"]["core"]["threads"]["event_engine"]["utilisation"] = busy
    setup = Setup(cpus=2, hosts=4, processes=2, service_time_ms=0.0)
    model, sources = estimate_model(flat, DRAWN, setup, fit_seconds=1.0, delay_requests=0)
    assert model.core.io_cpu_ms == 0.0
    assert model.core.background == pytest.approx(0.02 + (0.11 + 0.115 + 0.105) / 3)  # the levels that held
    assert "did not grow across the levels" in sources["core.io_cpu_ms"]


def test_drift_is_the_same_level_measured_again_with_its_signed_change() -> None:
    then = {**LEVELS[1], "cpu": {"core": {"utilisation": 0.30, "threads": {}}}}
    now = {**LEVELS[1], "mean_ms": 5.4, "p99_ms": 9.0, "cpu": {}}  # the core's CPU not read this time
    drift = drift_of(then, now)
    assert drift["rate"] == 200 and drift["calibration"]["core_cpu"] == 0.30 and drift["now"]["core_cpu"] is None
    assert drift["change"]["mean_ms"] == pytest.approx(0.2) and drift["change"]["p99_ms"] == pytest.approx(-0.25)
    assert drift["change"]["throughput"] == 0.0 and drift["change"]["core_cpu_points"] is None
    assert level_errors({"core_cpu": 0.5}, {"core_cpu": 0.3})["core_cpu_points"] == pytest.approx(20.0)


def test_the_model_is_offered_the_live_generator_s_own_schedule() -> None:
    plan = LivePlan(scenario=Path("load.yaml"), seconds=4.0, warmup_s=1.0, processes=2)
    when, level = plan.conditions(250.0), plan.level(250.0)
    assert when.arrivals_s == tuple(level.intended().tolist())
    assert (when.seconds, when.warmup_s) == (level.seconds, level.warmup_s)
    assert len(when.arrivals_s) == pytest.approx(250 * 5, rel=0.15)


def test_the_hosts_traffic_and_start_up_go_into_the_model_with_their_sources() -> None:
    forwards = Forwards(shares=(0.4, 0.2, 0.2, 0.2), total=500, notice_spread=((0.6, 0.4), (1.0,), (1.0,), (1.0,)),
                        notices=120)  # fmt: skip
    startup = {"core": 0.4, "host-0": 0.25, "host-1": 0.31, "host-2": 0.29, "host-3": 0.30}
    setup = Setup(cpus=2, hosts=4, processes=2, service_time_ms=0.0, forwards=forwards, startup_cpu_s=startup)
    model, sources = estimate_model(LEVELS, DRAWN, setup, fit_seconds=1.0, delay_requests=0)
    assert model.host.shares == [0.4, 0.2, 0.2, 0.2]
    assert model.host.notice_spread == [[0.6, 0.4], [1.0], [1.0], [1.0]]
    assert model.host.startup_cpu_ms == pytest.approx(295.0)  # the hosts' median, not the core's
    assert "500 forwards" in sources["host.shares"] and "120 notices" in sources["host.notice_spread"]
    assert "250-310 ms over 4 hosts" in sources["host.startup_cpu_ms"]
