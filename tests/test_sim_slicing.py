"""Time slicing: a hub outage spanning the cut is carried into the slice after it.

The network: a core, a sector hub and a fund behind it; the hub is down for 600 s across the
cut between the two slices, and its line holds some 700 messages when it comes back. Services
and links are deterministic, so the only randomness is the arrivals, which every slice shares
with the unsliced run: what differs between the two is the slicing alone. The overlap the rule
chooses gives a summary whose every figure lies inside the unsliced run's 95% interval and the
other way round; a slice started only a warm-up before its cut, as if the network had no
memory, misses the backlog at the hub and fails the same comparison.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any

import numpy as np
import pytest

from network.backlog import busy_since, work_per_arrival
from network.compare import outside_intervals
from network.explicit import plan_explicit
from network.plan import Plan
from network.recorder import ReplicationResult
from network.replications import run_replications, run_task
from network.run import clean_json
from network.slicing import Slice, cut, default_slices, overlap, stitch
from network.summary import series, summarise
from scenarios.schema import parse_scenario

FIXED = {"dist": "deterministic"}
HUB_OUTAGE: dict[str, Any] = {
    "name": "hub_outage_across_the_cut",
    "seed": 7,
    "replications": 10,
    "warmup": 100,
    "duration": 2000,
    "interval": 100,
    "deadlines": {"CONSULTATION": 60},
    "network": {
        "model": "explicit",
        "stations": {
            "core": {"servers": 2, "time": {**FIXED, "value": 0.1}},
            "hub": {"servers": 1, "time": {**FIXED, "value": 0.5}, "queue_limit": 5000},
            "fund": {"servers": 2, "time": {**FIXED, "value": 0.5}},
        },
        "links": [
            {"from": "core", "to": "hub", "latency": {**FIXED, "value": 0.01}},
            {"from": "hub", "to": "fund", "latency": {**FIXED, "value": 0.01}},
        ],
    },
    "traffic": [
        {"name": "to_funds", "kind": "CONSULTATION", "rate": 1.2, "path": ["core", "hub", "fund"]},
        {"name": "others", "kind": "DIMONA", "rate": 2.0, "path": ["core"]},
    ],
    "events": [{"at": 600, "action": "fail", "node": "hub"}, {"at": 1200, "action": "restore", "node": "hub"}],
}


def _plan(**changes: Any) -> Plan:
    data = copy.deepcopy(HUB_OUTAGE)
    data.update(changes)
    return plan_explicit(parse_scenario(data, "hub_outage.yaml"))


def _summary(plan: Plan, results: list[ReplicationResult]) -> dict[str, Any]:
    out: dict[str, Any] = clean_json(summarise(plan, results))
    return out


@pytest.fixture(scope="module")
def unsliced() -> dict[str, Any]:
    plan = _plan()
    return _summary(plan, run_replications(plan))


def test_the_overlap_reaches_back_to_the_outage_before_the_cut() -> None:
    plan = _plan()
    parts = cut(plan, 2)
    assert [(p.first, p.stop) for p in parts] == [(0, 9), (9, 20)]  # equal shares of the legs
    cut_at = plan.warmup + 9 * plan.interval  # 1000 s into the window, the hub down since 600 s
    assert busy_since(plan, [cut_at]) == [plan.warmup + 600]
    assert overlap(plan, [cut_at]) == [cut_at - (plan.warmup + 600) + plan.warmup]
    assert parts[1].begin == 600.0
    calm = _plan(events=[])
    assert overlap(calm, [cut_at]) == [calm.warmup]  # no backlog: the warm-up alone
    assert work_per_arrival(plan)[0].tolist() == pytest.approx([0.1, 0.5, 0.5])


def test_sliced_and_unsliced_summaries_agree_within_their_intervals(unsliced: dict[str, Any]) -> None:
    plan = _plan()
    sliced = _summary(plan, run_replications(plan, slices=2))
    assert outside_intervals(sliced, unsliced) == []
    assert sliced["nodes"][1]["queue_max"]["mean"] > 600  # the backlog at the hub, across the cut
    assert sliced["kinds"]["CONSULTATION"]["availability"]["mean"] < 0.8


def test_a_slice_without_the_outage_in_its_overlap_gets_the_hub_wrong(
    unsliced: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = _plan()

    def memoryless(plan: Plan, count: int) -> list[Slice]:
        parts = cut(plan, count)
        return [parts[0]] + [dataclasses.replace(p, begin=p.first * plan.interval) for p in parts[1:]]

    monkeypatch.setattr("network.replications.cut", memoryless)
    wrong = _summary(plan, run_replications(plan, slices=2))
    outside = outside_intervals(wrong, unsliced)
    assert "nodes[hub].queue_mean" in outside and "kinds.CONSULTATION.availability" in outside


def test_same_seed_and_slicing_same_summary_byte_for_byte() -> None:
    plan = _plan(replications=2, duration=1000)
    runs = [run_replications(plan, slices=3) for _ in range(2)]
    texts = [json.dumps(_summary(plan, r)) + json.dumps(clean_json(series(plan, r))) for r in runs]
    assert texts[0] == texts[1]
    in_workers = run_replications(plan, slices=3, workers=2)
    assert json.dumps(_summary(plan, in_workers)) == json.dumps(_summary(plan, runs[0]))


def test_one_slice_is_the_unsliced_run_and_the_first_slice_its_beginning() -> None:
    plan = _plan(replications=1)
    whole = run_replications(plan)[0]
    assert stitch(plan, [(cut(plan, 1)[0], whole)]) is whole
    first = cut(plan, 2)[0]
    head = run_task(plan, 0, first)  # from 0, on the replication's own streams
    assert np.array_equal(head.series_done, whole.series_done[: first.stop])
    assert np.array_equal(head.series_queue, whole.series_queue[: first.stop])


RANDOM: dict[str, Any] = {
    "name": "random_tandem",
    "seed": 21,
    "replications": 1,
    "warmup": 200,
    "duration": 3000,
    "interval": 300,
    "network": {
        "model": "explicit",
        "stations": {
            "a": {"servers": 2, "time": {"dist": "exponential", "mean": 0.6}},
            "b": {"servers": 1, "time": {"dist": "lognormal", "mean": 0.5, "cv": 1.0}},
        },
        "links": [{"from": "a", "to": "b", "latency": {"dist": "uniform", "low": 0.01, "high": 0.05}}],
    },
    "traffic": [{"name": "in", "kind": "CONSULTATION", "rate": 1.2, "path": ["a", "b"]}],
    "failures": [{"node": "b", "mtbf": 400, "mttr": 30}],
}


def test_a_slice_sees_the_unsliced_runs_draws_and_failures() -> None:
    """Common random numbers: every message brings its own service times and latencies, and the
    failures are those of the run from 0, so once the overlap has washed out the empty start,
    the slice after the cut runs exactly as the unsliced run."""
    plan = plan_explicit(parse_scenario(copy.deepcopy(RANDOM), "random.yaml"))
    whole = run_replications(plan)[0]
    parts = cut(plan, 2)
    sliced = run_replications(plan, slices=2)[0]
    assert parts[1].begin > 0 and any("fails (random)" in what for _, what in whole.events)
    assert sliced.events == whole.events
    assert np.array_equal(sliced.series_done, whole.series_done)
    assert sliced.series_queue == pytest.approx(whole.series_queue, rel=1e-9, abs=1e-12)
    assert np.array_equal(np.sort(np.concatenate(sliced.latencies)), np.sort(np.concatenate(whole.latencies)))


def test_the_default_slicing_is_the_scenarios_alone() -> None:
    assert default_slices(_plan()) == 1  # a window under LONG_WINDOW
    day = _plan(duration=24 * 3600, interval=3600)
    assert default_slices(day) == 2
    assert default_slices(dataclasses.replace(day, duration=7 * 24 * 3600.0)) == 14
