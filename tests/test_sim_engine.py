"""The SimPy engine on small explicit networks: determinism, warm-up, failures, losses, surges, statistics."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
import math
from typing import Any

import numpy as np
import pytest

from crossroads.statistics import compare, estimate, t975
from network.explicit import plan_explicit
from network.model import run_replication
from network.plan import Plan
from network.profiles import Clock, level, segments, window_expected, year_expected
from network.recorder import ReplicationResult
from network.replications import run_replications
from network.run import clean_json
from network.sampling import draws
from network.summary import series, summarise
from scenarios.schema import Event, Exponential, Lognormal, Profile, Scenario, Seconds, Uniform, parse_scenario

ONE_STATION: dict[str, Any] = {
    "name": "one",
    "seed": 11,
    "replications": 3,
    "warmup": 100,
    "duration": 2000,
    "interval": 500,
    "network": {"model": "explicit", "stations": {"s": {"servers": 1, "time": {"dist": "exponential", "mean": 1.0}}}},
    "traffic": [{"name": "in", "kind": "CONSULTATION", "rate": 0.5, "path": ["s"]}],
}


def _scenario(**changes: Any) -> Scenario[None]:
    data = copy.deepcopy(ONE_STATION)
    data.update(changes)
    return parse_scenario(data, "test.yaml")


def _plan(**changes: Any) -> Plan:
    return plan_explicit(_scenario(**changes))


def _same(a: ReplicationResult, b: ReplicationResult) -> bool:
    for f in dataclasses.fields(ReplicationResult):
        if f.name == "wall_seconds":
            continue
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, list) and x and isinstance(x[0], np.ndarray):
            if not all(np.array_equal(p, q) for p, q in zip(x, y, strict=True)):
                return False
        elif isinstance(x, np.ndarray):
            if not np.array_equal(x, y):
                return False
        elif x != y:
            return False
    return True


def test_same_seed_same_results_bit_for_bit() -> None:
    plan = _plan()
    a, b = run_replication(plan, 0), run_replication(plan, 0)
    assert _same(a, b)
    summary = json.dumps(clean_json(summarise(plan, [a])), sort_keys=True)
    assert summary == json.dumps(clean_json(summarise(plan, [b])), sort_keys=True)


def test_replications_and_seeds_differ() -> None:
    plan = _plan()
    assert not _same(run_replication(plan, 0), run_replication(plan, 1))
    other = dataclasses.replace(plan, seed=12)
    assert not _same(run_replication(plan, 0), run_replication(other, 0))


def test_worker_processes_give_the_same_results_as_one_process() -> None:
    plan = _plan(duration=300)
    here = run_replications(plan)
    there = run_replications(plan, workers=2)
    assert [r.index for r in there] == [0, 1, 2]
    assert all(_same(a, b) for a, b in zip(here, there, strict=True))


def test_warm_up_is_left_out() -> None:
    plan = _plan(warmup=5000, duration=1000, replications=1)
    r = run_replication(plan, 0)
    # ~500 arrivals in the window; the 2,500 of the warm-up are not counted
    assert 400 < r.source_arrivals[0] < 600
    assert r.created[0] == r.source_arrivals[0] == r.delivered[0] + r.unresolved + r.lost[0]


def test_a_failed_station_holds_its_line_and_misses_deadlines() -> None:
    events = [{"at": 500, "action": "fail", "node": "s"}, {"at": 900, "action": "restore", "node": "s"}]
    base = run_replication(_plan(deadlines={"CONSULTATION": 30}), 0)
    failed = run_replication(_plan(deadlines={"CONSULTATION": 30}, events=events), 0)
    assert base.on_time[0] / base.expected[0] > 0.95
    assert failed.on_time[0] / failed.expected[0] < 0.85
    assert failed.lost[0] == 0  # held, not lost
    assert failed.station_max_queue[0] > 100  # ~200 arrive during the 400 s outage
    assert [label for _, label in failed.events] == ["s: fail", "s: restore"]


def test_a_bounded_line_loses_the_overflow() -> None:
    r = run_replication(
        _plan(
            network={
                "model": "explicit",
                "stations": {"s": {"servers": 1, "queue_limit": 5, "time": {"dist": "exponential", "mean": 3.0}}},
            }
        ),
        0,
    )
    assert r.lost_reasons["queue_full"] > 0
    assert 0 < r.lost[0] <= r.lost_reasons["queue_full"]  # the window's share of all losses
    assert r.station_max_queue[0] == 5


def test_link_loss_loses_its_share() -> None:
    network = {
        "model": "explicit",
        "stations": {
            "a": {"servers": 4, "time": {"dist": "deterministic", "value": 0.1}},
            "b": {"servers": 4, "time": {"dist": "deterministic", "value": 0.1}},
        },
        "links": [{"from": "a", "to": "b", "loss": 0.2, "latency": {"dist": "deterministic", "value": 0.01}}],
    }
    r = run_replication(
        _plan(network=network, traffic=[{"name": "in", "kind": "DIMONA", "rate": 2, "path": ["a", "b"]}]), 0
    )
    kind = 1  # DIMONA
    share = r.lost[kind] / r.expected[kind]
    assert 0.16 < share < 0.24
    assert r.lost_reasons == {"link_loss": r.link_lost}


def test_more_servers_from_a_capacity_event_cut_waiting() -> None:
    busy = {"model": "explicit", "stations": {"s": {"servers": 1, "time": {"dist": "exponential", "mean": 1.8}}}}
    slow = run_replication(_plan(network=busy), 0)
    fast = run_replication(
        _plan(network=busy, events=[{"at": -100, "action": "capacity", "node": "s", "servers": 3}]), 0
    )
    assert fast.latencies[0].mean() < slow.latencies[0].mean() / 2


def test_a_surge_multiplies_arrivals_while_it_lasts() -> None:
    surge = {"at": 0, "until": 1000, "action": "surge", "source": "in", "multiplier": 3}
    r = run_replication(
        _plan(
            events=[surge],
            network={
                "model": "explicit",
                "stations": {"s": {"servers": 50, "time": {"dist": "exponential", "mean": 1.0}}},
            },
        ),
        0,
    )
    done = r.series_done[:, 0]  # per 500 s interval, by completion
    assert done[:2].sum() > 2.3 * done[2:].sum()


def test_utilisation_and_queue_series_are_time_averages() -> None:
    plan = _plan(replications=1)
    r = run_replication(plan, 0)
    assert r.series_utilisation.shape == (4, 1)
    assert abs(r.series_utilisation.mean() - r.station_utilisation[0]) < 0.02
    assert abs(r.series_queue.mean() - r.station_queue[0]) < 1e-9
    s = series(plan, [r])
    assert s["t_s"] == [0.0, 500.0, 1000.0, 1500.0] and s["t_end_s"] == 2000.0


def test_summary_has_the_figures_the_issue_asks_for() -> None:
    plan = _plan()
    s = summarise(plan, run_replications(plan))
    k = s["kinds"]["CONSULTATION"]
    assert set(k["latency_s"]) == {"mean", "p50", "p90", "p95", "p99"}
    assert k["latency_s"]["p99"]["n"] == 3 and k["latency_s"]["p99"]["ci95"] > 0
    for key in ("throughput_per_s", "availability", "lost", "histogram"):
        assert key in k
    assert {"utilisation", "queue_mean", "queue_max", "lost"} <= set(s["nodes"][0])
    assert s["functional_messages_per_year"]["mean"] == pytest.approx(0.5 * 365 * 86400, rel=0.1)


# ---------------------------------------------------------------- profiles, statistics, draws


def test_profiles_are_normalised_and_integrate_exactly() -> None:
    flat = year_expected(2.0, None, 2023)
    assert flat == 2.0 * 365 * 86400
    profile = Profile(daily=tuple(float(h) for h in range(1, 25)), weekly=(2, 2, 2, 2, 2, 1, 1), monthly=(1,) * 12)
    assert year_expected(2.0, profile, 2023) == pytest.approx(flat, rel=0.01)
    assert level(profile, dt.datetime(2023, 3, 14, 23)) > level(profile, dt.datetime(2023, 3, 14, 0)) * 20
    clock = Clock(dt.datetime(2023, 3, 14, 10, 30), warmup=600.0)
    parts = segments("x", 1.0, profile, [], clock, 7200.0)
    assert parts[0][0] == 0.0 and parts[-1][1] == 7200.0
    assert parts[1][0] == pytest.approx(2400.0)  # simulated 0 is 10:20; the first cut is at 11:00
    assert window_expected(parts, 0.0, 7200.0) == pytest.approx(sum(r * (b - a) for a, b, r in parts))
    surge = Event(at=Seconds(0.0), action="surge", multiplier=2.0, until=Seconds(600.0))
    boosted = segments("x", 1.0, None, [surge], clock, 7200.0)
    assert window_expected(boosted, 600.0, 1200.0) == pytest.approx(1200.0)


def test_confidence_intervals() -> None:
    assert t975(1) == 12.706 and t975(30) == 2.042
    assert 1.96 < t975(10_000) < 1.961
    assert 2.042 > t975(35) > 2.021
    e = estimate([1.0, 2.0, 3.0, 4.0])
    assert e.mean == 2.5 and e.half_width == pytest.approx(3.182 * math.sqrt(5 / 3) / 2)
    assert math.isnan(estimate([1.0]).half_width)
    same = compare(e, e)
    assert same.diff == 0 and not same.significant
    far = compare(e, estimate([11.0, 12.0, 13.0, 14.0]))
    assert far.significant and far.diff == 10


@pytest.mark.parametrize("dist", [Exponential(mean=2.0), Lognormal(mean=2.0, cv=0.5), Uniform(low=1.0, high=3.0)])
def test_draws_have_the_right_mean(dist: Any) -> None:
    draw = draws(dist, np.random.default_rng(5))
    values = np.array([draw() for _ in range(40_000)])
    assert values.mean() == pytest.approx(2.0, rel=0.02)
    if isinstance(dist, Lognormal):
        assert values.std() / values.mean() == pytest.approx(0.5, rel=0.05)


def test_random_failures_come_and_go() -> None:
    failing = [{"node": "s", "mtbf": 300, "mttr": 60}]
    r = run_replication(_plan(failures=failing, deadlines={"CONSULTATION": 20}), 0)
    labels = [label for _, label in r.events]
    assert "s fails (random)" in labels and "s repaired" in labels
    assert labels.count("s fails (random)") - labels.count("s repaired") in (0, 1)
    steady = run_replication(_plan(deadlines={"CONSULTATION": 20}), 0)
    assert r.on_time[0] / r.expected[0] < steady.on_time[0] / steady.expected[0]


def test_random_link_failures_lose_what_crosses_while_down() -> None:
    network = {
        "model": "explicit",
        "stations": {
            "a": {"servers": 4, "time": {"dist": "deterministic", "value": 0.1}},
            "b": {"servers": 4, "time": {"dist": "deterministic", "value": 0.1}},
        },
        "links": [{"from": "a", "to": "b", "latency": {"dist": "deterministic", "value": 0.01}}],
    }
    traffic = [{"name": "in", "kind": "CONSULTATION", "rate": 2, "path": ["a", "b"]}]
    r = run_replication(
        _plan(network=network, traffic=traffic, failures=[{"link_class": "link", "mtbf": 200, "mttr": 50}]), 0
    )
    assert r.lost_reasons.get("link_down", 0) > 0
    assert any(label == "link a - b fails (random)" for _, label in r.events)
    assert 0.05 < r.lost[0] / r.expected[0] < 0.4  # down about a fifth of the time
