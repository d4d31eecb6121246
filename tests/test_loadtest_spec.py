"""The `loadtest:` section, the mix from a simulation's traffic, open-loop pacing, the load shape,
and the figures computed from request logs: pure parts of the load tests, no network."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import yaml

from loadtests.capacity import Step, plan_steps, stairs_scenario
from loadtests.context import options_of
from loadtests.metrics import overall, series, window_stats
from loadtests.mix import mix_from_sources, surge_factor
from loadtests.pacing import OpenLoop
from loadtests.record import RequestLog, RequestRecord, read_requests
from loadtests.resources import rss_slope_mb_per_min
from loadtests.spec import LoadtestSpec, LoadtestSpecError, load_loadtest_spec
from scenarios.schema import Event, Seconds, Source

ROOT = Path(__file__).resolve().parents[1]
WHERE = "x.yaml: loadtest"
STOP_CORE = {"at": 1, "action": "stop_core", "duration": 3}


def _section(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "mix": {"agency": {"CONSULTATION": 3}, "employer": {"DIMONA": 1}},
        "stages": [{"duration": "10s", "users": 4, "rate": 20}, {"duration": 5, "users": 8}],
    }
    return {**base, **changes}


def test_a_section_is_validated_and_filled_with_defaults() -> None:
    spec = LoadtestSpec.from_mapping(_section(faults=[{"at": 2, "action": "stop_core", "duration": "1s"}]), WHERE)
    assert spec.duration == 15.0
    assert spec.stages[0].spawn_rate == 4.0 and spec.stages[1].rate is None
    assert spec.mix.user_weights() == {"agency": 0.75, "employer": 0.25}
    assert spec.faults[0].until == 3.0 and spec.faults[0].describe() == "stop_core core"
    assert spec.budget.errors == 0.01 and spec.arrivals == "poisson" and spec.connect == "first_use"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"stages": []}, r"x\.yaml: loadtest\.stages: expected at least one stage"),
        ({"stages": [{"duration": 5, "users": 0}]}, r"loadtest\.stages\[0\]\.users: expected a whole number >= 1"),
        ({"stages": [{"duration": 5, "users": 2, "rate": -1}]}, r"stages\[0\]\.rate: expected a number > 0"),
        ({"stages": [{"duration": "soon", "users": 2}]}, r"stages\[0\]\.duration: expected a duration"),
        ({"mix": {"agency": {"DMFA": 1}}}, r"loadtest\.mix\.agency\.DMFA: unknown key; expected one of"),
        ({"mix": {"robot": {"CONSULTATION": 1}}}, r"loadtest\.mix\.robot: unknown key"),
        ({"mix": {"agency": {"CONSULTATION": 0}}}, r"loadtest\.mix: expected at least one positive weight"),
        ({"faults": [{"at": 1, "action": "kill_host", "duration": 1}]}, r"faults\[0\]\.host: missing"),
        ({"faults": [{"at": 1, "action": "kill_host", "host": "h1", "duration": 1}]}, r"host: expected .* host-0"),
        ({"faults": [{"at": 1, "action": "slow_host", "host": "host-1", "duration": 1}]}, r"service_time_ms: missing"),
        ({"faults": [{"at": 99, "action": "stop_core", "duration": 1}]}, r"faults\[0\]\.at: expected a time before"),
        (
            {
                "faults": [
                    {"at": 1, "action": "stop_core", "duration": 3},
                    {"at": 2, "action": "stop_core", "duration": 1},
                ]
            },
            r"faults\[1\]: overlaps faults\[0\] on the core",
        ),
        ({"budget": {"errors": 2}}, r"budget\.errors: expected a share between 0 and 1"),
        ({"arrivals": "bursty"}, r"arrivals: expected one of poisson, uniform"),
        ({"connect": "later"}, r"loadtest\.connect: expected one of first_use, all"),
        ({"speed": 1}, r"loadtest\.speed: unknown key"),
    ],
)
def test_a_wrong_section_is_refused_naming_the_path(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(LoadtestSpecError, match=message):
        LoadtestSpec.from_mapping(_section(**changes), WHERE)


def test_overrides_make_one_stage_and_drop_faults_after_it() -> None:
    faults = [{"at": 2, "action": "stop_core", "duration": 1}, {"at": 12, "action": "stop_core", "duration": 1}]
    spec = LoadtestSpec.from_mapping(_section(faults=faults), WHERE)
    assert spec.with_overrides() is spec
    one = spec.with_overrides(duration=6.0)
    assert len(one.stages) == 1 and one.stages[0].users == 8 and one.stages[0].rate == 20
    assert [f.at for f in one.faults] == [2.0]
    assert spec.with_overrides(users=3, rate=9.0).stages[0].users == 3


def test_stages_follow_each_other_and_the_shape_stops_after_the_last() -> None:
    spec = LoadtestSpec.from_mapping(_section(), WHERE)
    assert spec.shape_at(0.0) == (4, 4.0)
    assert spec.shape_at(10.5) == (8, 8.0)
    assert spec.shape_at(15.0) is None


def test_shipped_load_tests_are_valid_and_agree_with_the_demo_world() -> None:
    from agencies.spec import load_world_spec

    for path in sorted((ROOT / "scenarios").glob("loadtest_*.yaml")):
        spec = load_loadtest_spec(path)
        assert spec.duration > 0 and spec.mix.user_weights()
        assert load_world_spec(path) == load_world_spec(ROOT / "scenarios" / "demo.yaml"), path.name


def test_the_mix_can_come_from_a_simulation_scenario() -> None:
    spec = LoadtestSpec.from_mapping(_section(mix={"from": "dmfa_quarter_peak.yaml", "at": "2h"}), WHERE)
    assert "dmfa_quarter_peak" in spec.mix.origin
    weights = spec.mix.weights
    assert set(weights) == {"agency", "employer", "citizen"}
    calm = LoadtestSpec.from_mapping(_section(mix={"from": "dmfa_quarter_peak.yaml"}), WHERE).mix.weights
    assert weights["employer"]["DMFA"] == pytest.approx(4 * calm["employer"]["DMFA"])  # the surge at 2 h
    assert weights["employer"]["DIMONA"] == pytest.approx(calm["employer"]["DIMONA"])


def test_sources_map_onto_kinds_of_user() -> None:
    sources = [
        Source(name="c", kind="CONSULTATION", rate=10.0, senders={"portal": 1.0, "cpas": 3.0}),
        Source(name="d", kind="DMFA", rate=2.0, multiplier=2.0),
        Source(name="m", kind="MUTATION", rate=1.0),
    ]
    surge = Event(at=Seconds(10.0), action="surge", source="d", multiplier=3.0, until=Seconds(20.0))
    assert surge_factor([surge], "d", 15.0) == 3.0 and surge_factor([surge], "d", 20.0) == 1.0
    assert mix_from_sources(sources, [surge], 15.0) == {
        "citizen": {"CONSULTATION": 2.5},
        "agency": {"CONSULTATION": 7.5, "MUTATION": 1.0},
        "employer": {"DMFA": 12.0},
    }
    with pytest.raises(LoadtestSpecError, match=r"mix\.from: expected a scenario file"):
        LoadtestSpec.from_mapping(_section(mix={"from": "nowhere.yaml"}), WHERE)


def test_open_loop_keeps_its_schedule_whatever_the_answers_take() -> None:
    loop = OpenLoop(np.random.default_rng(1), poisson=False, max_lag=1.0)
    first = loop.next(100.0, 10.0)
    assert 100.0 <= first.due < 100.1 and not first.dropped
    second = loop.next(100.5, 10.0)  # the answer took 0.5 s: the next send was due 0.1 s after the first
    assert second.due == pytest.approx(first.due + 0.1)
    late = loop.next(102.0, 10.0)  # far behind schedule: dropped, counted as an error
    assert late.dropped
    assert loop.next(103.0, None).due == 103.0  # closed loop: now


def test_poisson_sends_come_at_the_target_rate_on_average() -> None:
    loop = OpenLoop(np.random.default_rng(2), poisson=True, max_lag=1e9)
    dues = [loop.next(0.0, 50.0).due for _ in range(5000)]
    assert 5000 / dues[-1] == pytest.approx(50.0, rel=0.05)


def _record(t: float, ms: float, error: str = "", name: str = "CONSULTATION") -> RequestRecord:
    return RequestRecord(t, name, "CONSULTATION", "agency", ms, 0.0, error, f"m{t}", "CPAS-0001", 1, "", ())


def test_request_logs_round_trip_and_skip_a_cut_line(tmp_path: Path) -> None:
    log = RequestLog(tmp_path)
    records = [_record(2.0, 5.0), _record(1.0, 7.5, "UNAVAILABLE")]
    for r in records:
        log.write(r)
    log.close()
    with log.path.open("a") as f:
        f.write('{"t": 3.0, "n"')  # a process killed in the middle of a line
    assert read_requests(tmp_path) == sorted(records, key=lambda r: r.t)


def test_figures_per_second_and_per_fault_window() -> None:
    records = [_record(100.0 + k * 0.1, 10.0 + k, "" if k % 10 else "OUTCOME_FAILED") for k in range(50)]
    totals = overall(records, 5.0)
    assert totals["requests"] == 50 and totals["failures"] == 5 and totals["per_s"] == 10.0
    assert totals["p50_ms"] == 34.0 and totals["errors"] == {"OUTCOME_FAILED": 5}
    per_s = series(records, 100.0, 5.0)
    assert per_s["ok_per_s"] == [9.0] * 5 and per_s["errors_per_s"] == [1.0] * 5
    windows = window_stats(records, 100.0, 5.0, [{"what": "kill", "from_s": 1.0, "until_s": 2.0}])
    assert windows[0]["requests"] == 10 and windows[1]["what"] == "no fault" and windows[1]["requests"] == 40


def test_a_staircase_starts_with_its_warm_up_and_grows_by_its_factor() -> None:
    steps = plan_steps(100.0, 2.0, 3, 4.0, 2.0)
    assert [s.rate for s in steps] == [100.0, 100.0, 200.0, 400.0] and steps[0].warmup
    assert [(s.from_s, s.until_s) for s in steps] == [(0.0, 2.0), (2.0, 6.0), (6.0, 10.0), (10.0, 14.0)]


def test_the_staircase_is_a_valid_loadtest_section() -> None:
    steps = [Step(50.0, 10, 0.0, 3.0, warmup=True), Step(50.0, 10, 3.0, 6.0)]
    document = stairs_scenario({"seed": 1, "persons": 10, "employers": 1}, steps, 3, 5.0)
    spec = LoadtestSpec.from_mapping(yaml.safe_load(yaml.safe_dump(document))["loadtest"], WHERE)
    assert spec.duration == 6.0 and spec.mix.user_weights() == {"agency": 1.0}


def test_the_memory_slope_leaves_the_start_up_out() -> None:
    t = [float(k) for k in range(100)]
    rss = [50.0 + (200.0 if k < 10 else 0.5 * k) for k in range(100)]  # a start-up bump, then 0.5 MB/s
    assert rss_slope_mb_per_min(t, rss) == pytest.approx(30.0)
    assert rss_slope_mb_per_min(t[:2], rss[:2]) is None
    assert rss_slope_mb_per_min(t, [None] * 100) is None


def test_locust_options_resolve_to_the_shipped_smoke_test_by_default(tmp_path: Path) -> None:
    options = options_of(SimpleNamespace(crossroads_state=str(tmp_path), crossroads_users=5))
    assert options.scenario == ROOT / "scenarios" / "loadtest_smoke.yaml" and options.world == options.scenario
    assert options.out == tmp_path / "loadtest" and options.target == "core"
    assert options.spec().stages[0].users == 5
    with pytest.raises(ValueError, match="--crossroads-state"):
        options_of(SimpleNamespace())


def test_the_orchestrator_does_not_import_locust_which_patches_the_process_on_import() -> None:
    code = (
        "import sys, testbed.loadtest, testbed.commands.loadtest, loadtests.mix;"
        "assert 'locust' not in sys.modules and 'gevent' not in sys.modules, 'imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
