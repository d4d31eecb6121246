"""The calibrated model of the live testbed (network/testbed_model.py): its laws and its what-ifs.

A small model whose numbers are round: every statement below follows from queueing theory or
from the model's own rules, not from a measurement.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from network.testbed_model import Conditions, predict
from scenarios.calibrated import Calibrated, CalibrationError, dump_calibrated, load_calibrated

MODEL: dict[str, Any] = {
    "cpus": 2,
    "hosts": 4,
    "generator": {"processes": 2, "cpu_ms": 0.2},
    "core": {"cpu_ms": 0.4, "io_cpu_ms": 0.1, "background": 0.05},
    "host": {"cpu_ms": 0.2},
    "commit": {"cpu_ms": 0.1, "fixed_ms": 1.0, "handoffs": 2},
    "delay": {"fixed_ms": 1.0, "mean_ms": 0.5, "cv": 1.0},
    "mix": {
        "CONSULTATION": {"share": 0.75, "consultation": True, "destinations": {1: 1.0}},
        "MUTATION": {"share": 0.25, "destinations": {2: 1.0}},
    },
    "levels": [100.0, 200.0],
}


def _model(**changes: Any) -> Calibrated:
    return Calibrated.model_validate({**MODEL, **changes})


def _at(rate: float, model: Calibrated | None = None, **when: Any) -> Any:
    return predict(model or _model(), Conditions(rate=rate, seconds=10.0, warmup_s=2.0, seed=3, **when))


def test_the_same_seed_predicts_the_same_and_another_seed_differs() -> None:
    a, b = _at(200).latencies_ms, _at(200).latencies_ms
    assert a.tolist() == b.tolist()
    other = predict(_model(), Conditions(rate=200, seconds=10.0, warmup_s=2.0, seed=4)).latencies_ms
    assert other.tolist() != a.tolist()


def test_at_low_load_the_latency_is_the_sum_of_the_path() -> None:
    # no queueing at 10/s: generator 0.2 + delay 1.5 + core io 0.1 + handler 0.4 + host 0.2 + commit 1.0 = 3.4 ms
    figures = _at(10).figures()
    assert figures["mean_ms"] == pytest.approx(3.4, rel=0.08)
    assert figures["p50_ms"] < figures["mean_ms"] < figures["p99_ms"]


def test_the_core_cpu_follows_the_utilisation_law() -> None:
    # U = background + X (handler + io) + commits/s x writer's CPU (at most one commit per request)
    prediction = _at(300)
    x = prediction.throughput
    low = 0.05 + x * 0.5e-3
    assert low <= prediction.core_cpu <= low + x * 0.1e-3 + 0.01
    assert x == pytest.approx(300, rel=0.1)


def test_the_load_curve_scales_each_demand_at_the_offered_rate() -> None:
    # factors 1 at 100/s and 0.5 at 500/s: at 300/s the handler's and io's 0.5 ms become 0.375 ms
    curve = [[100.0, 1.0, 1.0, 1.0, 1.0], [500.0, 0.5, 0.5, 0.5, 0.5]]
    plain, scaled = _at(300), _at(300, _model(load={"curve": curve}))
    x = scaled.throughput
    assert scaled.core_cpu == pytest.approx(plain.core_cpu - x * 0.125e-3, abs=0.01)
    assert _at(50, _model(load={"curve": curve})).core_cpu == _at(50).core_cpu  # below the curve: its first factors
    slow = _at(10, _model(load={"curve": [[5.0, 2.0, 2.0, 2.0, 2.0]]})).figures()  # past its end: its last
    assert slow["mean_ms"] == pytest.approx(
        3.4 + 0.2 + 0.1 + 0.4 + 0.2, rel=0.08
    )  # the generator, io, handler, host x2
    with pytest.raises(ValueError, match="rates must rise"):
        _model(load={"curve": [[500.0, 1, 1, 1, 1], [100.0, 1, 1, 1, 1]]})


# a handler of 2 ms a request: the core's lock saturates near 500/s (fewer requests to simulate)
SLOW_CORE = {"cpu_ms": 2.0, "io_cpu_ms": 0.1, "background": 0.05}


def test_latency_grows_with_load_and_explodes_past_the_core_lock() -> None:
    model = _model(core=SLOW_CORE)
    means = [_at(rate, model).figures()["mean_ms"] for rate in (20, 200, 400)]
    assert means[0] < means[1] < means[2]
    past = _at(600, model)
    assert past.figures()["p99_ms"] > 100 and past.throughput < 540


def test_batches_grow_with_load_and_commit_times_with_contention() -> None:
    model = _model(core=SLOW_CORE)
    calm, busy = _at(20, model), _at(450, model)
    batch = [sum(n for n, _ in p.commits) / len(p.commits) for p in (calm, busy)]
    assert batch[0] < 1.2 < batch[1]
    assert busy.mean_commit_ms > calm.mean_commit_ms >= 1.0


def test_a_host_down_fails_its_consultations_and_queues_its_notices() -> None:
    down = _at(200, hosts_down=((1, 5.0, 10.0),))
    share = 5.0 * 200  # requests in the outage
    failed, queued = down.outcomes["FAILED"], down.outcomes["QUEUED"]
    # a consultation has one destination: one in four is host-1's; a notice two: 1 - (3/4)^2 of them
    assert failed == pytest.approx(share * 0.75 * 0.25, rel=0.35)
    assert queued == pytest.approx(share * 0.25 * (1 - 0.75**2), rel=0.35)
    assert _at(200).outcomes["FAILED"] == 0


def test_a_stopped_core_holds_every_request_until_it_resumes() -> None:
    calm, stopped = _at(200), _at(200, core_stopped=((5.0, 6.0),))
    # ~200 requests wait half a second on average: the mean over 2,000 grows by ~50 ms
    assert stopped.figures()["mean_ms"] - calm.figures()["mean_ms"] == pytest.approx(50, rel=0.4)
    assert stopped.figures()["p99_ms"] > 500


def test_slow_agencies_add_their_service_time_to_the_forwards() -> None:
    calm, slow = _at(200), _at(200, service_time_ms=10.0)
    # every request with a destination waits the longest of its forwards: one (mean 10) or two (mean 15)
    effect = slow.figures()["mean_ms"] - calm.figures()["mean_ms"]
    assert effect == pytest.approx(0.75 * 10 + 0.25 * 15, rel=0.15)


def test_the_written_model_reads_back_the_same(tmp_path: Any) -> None:
    curve = [[300.0, 1.0, 1.0, 1.0, 1.0], [450.0, 0.8, 0.9, 0.5, 0.95]]
    model = _model(description="a test", delay={"fixed_ms": 1.0, "mean_ms": 1e-06, "cv": 1.0},  # "1.0e-06" in YAML
                   unroutable=0.0125, load={"curve": curve})  # fmt: skip
    path = tmp_path / "calibrated.yaml"
    path.write_text(dump_calibrated(model, {"core.cpu_ms": "measured: the test"}, "header line"))
    text = path.read_text()
    assert text.startswith("# header line") and "# measured: the test" in text
    assert load_calibrated(path) == model
    plain = _model()
    path.write_text(dump_calibrated(plain, {}))
    assert "load:" not in path.read_text() and load_calibrated(path) == plain  # no curve: no section


def test_a_model_whose_shares_do_not_add_up_is_refused_with_its_place(tmp_path: Any) -> None:
    path = tmp_path / "bad.yaml"
    model = _model()
    text = dump_calibrated(model, {}).replace("share: 0.25", "share: 0.5")
    path.write_text(text)
    with pytest.raises(CalibrationError, match=r"mix: expected shares that add up to 1, got float 1.25 \(line \d+"):
        load_calibrated(path)
    path.write_text(text.replace("cpus: 2", "cpus: -1"))
    with pytest.raises(CalibrationError, match=r"cpus: expected an integer 1..256"):
        load_calibrated(path)


def test_forwards_go_to_the_hosts_by_their_shares() -> None:
    """A host with a small share of the forwards, killed, fails fewer consultations."""
    down: dict[str, Any] = {"hosts_down": ((1, 2.0, 5.0),)}
    even = _at(300, **down).outcomes["FAILED"]
    shared = _at(300, _model(host={**MODEL["host"], "shares": [0.45, 0.05, 0.25, 0.25]}), **down).outcomes["FAILED"]
    assert shared < 0.4 * even


def test_shares_must_cover_every_host_and_add_up_to_one(tmp_path: Any) -> None:
    for shares in ([0.5, 0.5], [0.4, 0.4, 0.4, 0.4]):
        with pytest.raises(ValueError, match=r"host\.shares"):
            _model(host={**MODEL["host"], "shares": shares})
    model = _model(host={**MODEL["host"], "shares": [0.25, 0.125, 0.125, 0.5]})
    path = tmp_path / "calibrated.yaml"
    path.write_text(dump_calibrated(model, {"host.shares": "counted"}))
    assert load_calibrated(path).host.shares == [0.25, 0.125, 0.125, 0.5]


def test_given_arrivals_are_the_requests_offered_and_the_model_draws_none() -> None:
    due = tuple(np.sort(np.random.default_rng(1).uniform(-2.0, 10.0, 1500)).tolist())  # 125/s
    in_window = sum(1 for t in due if 0 <= t < 10.0)
    one, other = _at(100, arrivals_s=due), _at(100, arrivals_s=due)
    assert sum(one.outcomes.values()) == in_window  # not the rate's 1,000: the schedule's
    assert one.throughput == pytest.approx(in_window / 10.0, rel=0.01)
    assert one.latencies_ms.tolist() == other.latencies_ms.tolist()
    with pytest.raises(ValueError, match="before the warm-up"):
        Conditions(rate=100, seconds=10.0, warmup_s=1.0, arrivals_s=due)


def test_unroutable_requests_are_audited_failed_and_neither_throughput_nor_latency() -> None:
    base, some = _at(300), _at(300, _model(unroutable=0.1))
    failed = some.outcomes["FAILED"] / sum(some.outcomes.values())
    assert base.outcomes["FAILED"] == 0 and failed == pytest.approx(0.1, abs=0.02)
    assert some.throughput == pytest.approx(base.throughput * 0.9, rel=0.04)
    assert len(some.latencies_ms) == some.outcomes["DELIVERED"] + some.outcomes["QUEUED"]


def _spread(agencies: int) -> list[list[float]]:
    return [[1 / agencies] * agencies] * 4


def test_the_outbox_redelivers_every_parcel_once_the_host_is_back() -> None:
    down = _at(200, hosts_down=((1, 2.0, 4.0),))
    assert down.outcomes["QUEUED"] > 0
    # every parcel owed to host-1 is delivered after the restart (one per queued notice's host-1 destination)
    assert down.redelivered >= down.outcomes["QUEUED"] and down.owed == 0
    assert _at(200).redelivered == 0


def test_a_notice_to_an_agency_with_parcels_waiting_queues_behind_them() -> None:
    """With one agency per host every notice to host-1 queues behind the first until the outbox
    has drained it (after the outage); spread over a thousand agencies few meet a parcel."""
    down: dict[str, Any] = {"hosts_down": ((1, 2.0, 4.0),)}
    one = _at(200, _model(host={**MODEL["host"], "notice_spread": _spread(1)}), **down)
    many = _at(200, _model(host={**MODEL["host"], "notice_spread": _spread(1000)}), **down)
    in_outage = 2.0 * 200 * 0.25 * (1 - 0.75**2)  # notices with a destination on host-1 while it is down
    assert many.outcomes["QUEUED"] == pytest.approx(in_outage, rel=0.35)
    assert one.outcomes["QUEUED"] > 1.3 * many.outcomes["QUEUED"]
    assert one.redelivered > many.redelivered  # those queued behind are owed too


def test_a_restarted_host_serves_at_its_window_s_end_its_start_up_cpu_spent_before() -> None:
    """The live window ends when the restarted host answers (testbed/faults.py): the start-up is
    inside it. On one core, a second of start-up stalls every request for up to a second."""
    down: dict[str, Any] = {"hosts_down": ((1, 2.0, 4.0),)}
    # two cores: the other one carries the load, and the outage is the window, start-up or not
    # (a start-up after the window would fail a quarter more: 2.5 s of outage instead of 2)
    half = {**MODEL["host"], "startup_cpu_ms": 500.0}
    assert _at(200, _model(host=half), **down).outcomes["FAILED"] == pytest.approx(
        _at(200, **down).outcomes["FAILED"], rel=0.12
    )
    # one core: ~100 requests due in that second wait ~0.5 s on average, +50 ms over the window's 1,000
    starting = {**MODEL["host"], "startup_cpu_ms": 1000.0}
    quick, slow = _at(100, _model(cpus=1), **down), _at(100, _model(cpus=1, host=starting), **down)
    assert slow.figures()["mean_ms"] - quick.figures()["mean_ms"] > 20


def test_the_notice_spread_must_cover_every_host_and_add_up_to_one(tmp_path: Any) -> None:
    for spread in ([[1.0]] * 3, [[0.5, 0.4]] * 4, [[1.0], [1.0], [1.0], []]):
        with pytest.raises(ValueError, match=r"host\.notice_spread"):
            _model(host={**MODEL["host"], "notice_spread": spread})
    model = _model(host={**MODEL["host"], "notice_spread": [[0.75, 0.25], [1.0], [0.5, 0.5], [1.0]],
                         "startup_cpu_ms": 290.0})  # fmt: skip
    path = tmp_path / "calibrated.yaml"
    path.write_text(dump_calibrated(model, {"host.notice_spread": "counted", "host.startup_cpu_ms": "measured"}))
    assert load_calibrated(path) == model


def test_each_latency_has_its_request_s_due_time() -> None:
    stopped = _at(200, core_stopped=((5.0, 6.0),))
    due, latency = stopped.due_s, stopped.latencies_ms
    assert len(due) == len(latency) > 1500 and ((due >= 0) & (due < 10)).all()
    held = (due >= 5.0) & (due < 5.9)  # due while the core was stopped: answered once it resumed at 6 s
    assert held.sum() > 100 and (latency[held] >= (6.0 - due[held]) * 1000).all()
    assert np.median(latency[due < 4.5]) < 10  # before the stop: the path's few milliseconds


def test_a_forward_s_round_trip_is_waited_by_each_exchange_that_makes_one() -> None:
    model = _model(host={"cpu_ms": 0.2, "forward_ms": 2.0})
    # at 10/s the path's 3.4 ms (see above) and the forward's round trip: one forward in each exchange
    assert _at(10, model).figures()["mean_ms"] == pytest.approx(5.4, rel=0.08)
    # every host down: the consultations make no forward (FAILED at once), the notices none (QUEUED)
    down = _at(10, model, hosts_down=tuple((h, 0.0, 10.0) for h in range(4)))
    assert down.outcomes["DELIVERED"] == 0 and down.figures()["mean_ms"] == pytest.approx(3.4 - 0.2, rel=0.1)


def test_every_world_of_one_seed_is_offered_the_same_requests() -> None:
    # common random numbers: slow agencies draw no request's kind, destination or routability anew
    model = _model(unroutable=0.1)
    calm, slow = _at(200, model), _at(200, model, service_time_ms=10.0)
    assert slow.outcomes["FAILED"] == calm.outcomes["FAILED"] > 0
    assert slow.outcomes == calm.outcomes
    # a host down: what it fails and queues is its own doing; after its window the requests are the same
    down = _at(200, model, hosts_down=((1, 2.0, 3.0),))
    assert sum(down.outcomes.values()) == sum(calm.outcomes.values())
    late = (down.due_s > 6.0, calm.due_s > 6.0)  # the outage and its redeliveries long over
    assert len(down.latencies_ms[late[0]]) == len(calm.latencies_ms[late[1]])
