"""`crossroads calibrate` then `validate`, short and small (CI): a tiny world, two hosts, levels of
two seconds. What is checked is that the loop runs and says what it must (the model and where its
numbers came from, per level the predicted and measured figures and their signed errors, the
what-ifs, the goals), not how accurate it is: accuracy is a benchmark."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from agencies.spec import SMALL_WORLD
from scenarios.calibrated import load_calibrated
from testbed.calibration.calibrate import read_levels
from testbed.calibration.estimate import below_knee
from testbed.calibration.measure import LivePlan
from testbed.calibration.validate import ValidationPlan, validate
from testbed.calibration.whatifs import WhatIfs
from testbed.cli import main

pytestmark = pytest.mark.slow

SCENARIO: dict[str, Any] = {
    "world": dict(SMALL_WORLD),
    "loadtest": {
        "seed": 5,
        "mix": {"agency": {"CONSULTATION": 6, "MUTATION": 2}, "employer": {"DIMONA": 2}},
        "stages": [{"duration": "2s", "users": 2, "spawn_rate": 2, "rate": 10}],
    },
}
# never measured again for the hypervisor's sake (--stolen-limit 100): the test's length stays bounded;
# a warm-up of a second
SHORT = ["--seconds", "2", "--warmup", "0.5", "--hosts", "2", "--stolen-limit", "100", "--warm", "1", "--quiet"]
ERRORS = {"throughput", "mean_ms", "p50_ms", "p90_ms", "p99_ms", "core_cpu_points"}


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("calibrate")
    scenario = folder / "tiny.yaml"
    scenario.write_text(yaml.safe_dump(SCENARIO))
    said = io.StringIO()  # what went wrong, in the assertion: a module fixture's captured stderr may not be shown
    with contextlib.redirect_stderr(said):
        rates = ["--rates", "30,60", "--repeats", "2"]  # each rate in two rounds: the machine's speed read in each
        code = main(["calibrate", "--scenario", str(scenario), "--out", str(folder / "cal"), *rates, *SHORT])
    assert code == 0, said.getvalue()
    return folder / "cal" / "calibrated.yaml"


def test_calibrate_writes_a_model_whose_every_number_says_where_it_came_from(calibrated: Path) -> None:
    model = load_calibrated(calibrated)
    assert model.levels == [30, 60] and model.hosts == 2 and model.cpus >= 1
    assert model.core.cpu_ms > 0 and model.host.cpu_ms > 0 and model.commit.fixed_ms > 0
    # each host's share of the forwards, counted in the calibration network's audit log
    assert len(model.host.shares) == 2 and sum(model.host.shares) == pytest.approx(1.0, abs=1e-3)
    assert "forwards in the calibration's audit log" in calibrated.read_text()
    # its notices' spread over its agencies, and a host's start-up CPU, measured as the network came up
    assert len(model.host.notice_spread) == 2 and all(sum(s) == pytest.approx(1.0, abs=1e-3)
                                                      for s in model.host.notice_spread)  # fmt: skip
    assert model.host.startup_cpu_ms > 0 and "the median host's CPU when the network was up" in calibrated.read_text()
    numbers = [
        line for line in calibrated.read_text().splitlines() if re.match(r"\s+\w+: -?[\d.]+(e-?\d+)?\s", line + " ")
    ]
    assert numbers and all("# " in line for line in numbers), [line for line in numbers if "# " not in line]
    levels = json.loads((calibrated.parent / "calibration.json").read_text())["levels"]
    assert [lv["rate"] for lv in levels] == [30, 60] and all(lv["telemetry"]["exchanges"] > 0 for lv in levels)
    for level in levels:  # the machine's CPU over each measured window: busy, idle and stolen by the hypervisor
        shares = level["machine"]
        assert shares["busy"] > 0 and shares["busy"] + shares["idle"] + shares["stolen"] == pytest.approx(1, abs=1e-3)
        assert shares["seconds"] >= 2.0 and level["stolen_attempts"] == []
        assert shares["probe_ms"] > 0  # how fast the machine ran the speed probe's work meanwhile
        # the network was let go quiet before it (its processes watched for at least one window)
        assert level["settled"]["waited_s"] >= 0.5 and set(level["settled"]) == {"waited_s", "quiet", "busiest"}


def test_validate_writes_predictions_measurements_errors_and_the_report(calibrated: Path, tmp_path: Path) -> None:
    plan = ValidationPlan(
        live=LivePlan(scenario=calibrated.parent.parent / "tiny.yaml", hosts=2, seconds=2.0, warmup_s=0.5, repeats=2,
                      stolen_limit=1.0, warm_s=0.0),
        held_out=(45.0,), knee=False, replications=2, anchor=True,
        whatifs=WhatIfs(rate=40.0, kill_at_s=0.3, kill_s=1.0, stop_at_s=0.3, stop_s=0.5, slow_ms=5.0),
    )  # fmt: skip
    result = validate(calibrated, tmp_path / "val", plan, say=lambda _: None)
    saved = json.loads((tmp_path / "val" / "validation.json").read_text())
    assert saved["levels"] == json.loads(json.dumps(result["levels"]))
    (level,) = saved["levels"]
    assert level["rate"] == 45.0 and set(level["error"]) == ERRORS
    assert level["measured"]["throughput"] > 0 and level["predicted"]["throughput"] > 0
    low, high = level["predicted"]["ci"]["mean_ms"]
    assert low <= level["predicted"]["mean_ms"] <= high
    expected = (level["predicted"]["mean_ms"] - level["measured"]["mean_ms"]) / level["measured"]["mean_ms"]
    assert level["error"]["mean_ms"] == pytest.approx(expected, abs=1e-3)
    assert [w["name"] for w in saved["whatifs"]] == ["host killed", "core stopped", "slow agencies"]
    killed = saved["whatifs"][0]
    assert set(killed["error"]) == {"effect_mean_ms", "failed", "queued"} and killed["faults"]
    for whatif in saved["whatifs"][:2]:  # each fault where it was planned in the measured window
        (fault,) = whatif["faults"]
        assert abs(fault["from_s"] - fault["planned_from_s"]) < 0.5, fault
        # ... and read over time: its phases in both worlds, and a mean latency per half second
        assert [p["name"] for p in whatif["phases"]] == ["before", "during", "after", "later"]
        assert whatif["phases"][1]["from_s"] == fault["from_s"] and whatif["phases"][1]["measured"]["mean_ms"] > 0
        assert len(whatif["timeline"]["measured"]) == len(whatif["timeline"]["predicted_baseline"]) == 4
    assert "phases" not in saved["whatifs"][2]  # slow agencies: no fault window
    assert [len(w["rounds"]) for w in saved["whatifs"]] == [2, 2, 2]  # each what-if in two rounds
    # the host killed in round 1 serves again in round 2's baseline: each round's kill fails requests of its own
    assert all(r["failed"] > 0 for r in killed["rounds"]), killed["rounds"]
    assert all(r["generator_us"] > 0 and r["baseline_generator_us"] > 0 for r in killed["rounds"])  # the speed of each
    # the noise an effect is measured with: each round's two baselines (before the stop, before the kill)
    noise = killed["noise"]
    stop_bases = [r["baseline_mean_ms"] for r in saved["whatifs"][1]["rounds"]]
    kill_bases = [r["baseline_mean_ms"] for r in killed["rounds"]]
    nulls = [pytest.approx(k - s, abs=1e-3) for s, k in zip(stop_bases, kill_bases, strict=True)]
    assert noise["null_effects_ms"] == nulls
    assert noise["rounds"] == 2
    assert all(w["noise"] == noise and isinstance(w["resolved"], bool) for w in saved["whatifs"])
    assert set(saved["whatifs_resolved"]) == {"goal", "worst", "met", "within_noise"}
    # each judged count's own noise, from its rounds (the host kill's only: the others count none)
    failed = killed["count_noise"]["failed"]
    assert set(killed["count_noise"]) == {"failed", "queued"} and failed["rounds"] == 2
    assert failed["counts"] == [pytest.approx(r["failed"], abs=0.05) for r in killed["rounds"]]
    assert [w["count_noise"] for w in saved["whatifs"][1:]] == [{}, {}]
    assert saved["knee"] is None and not saved["goals"]["knee"]["met"]
    drift = saved["drift"]  # the calibration level nearest 45/s measured again first
    assert drift["rate"] in (30, 60) and drift["now"]["throughput"] > 0 and set(drift["change"]) == ERRORS
    # measured in two rounds (control, 45/s, control, 45/s): each figure is the repetitions' median
    assert len(level["repetitions"]) == 2 and len(drift["repetitions"]) == 2
    assert all(0 <= r["stolen"] <= 1 for r in level["repetitions"])  # the hypervisor's share of each round
    means = sorted(r["mean_ms"] for r in level["repetitions"])
    assert level["measured"]["mean_ms"] == pytest.approx(sum(means) / 2)
    assert set(saved["goals"]) == {"throughput", "mean_ms", "p99_ms", "core_cpu_points", "knee", "whatifs"}
    # a second model, anchored to the machine of now by the control, predicts beside the calibrated one
    anchored = saved["anchored"]
    assert anchored["anchor"]["rate"] == drift["rate"] and 0.5 <= anchored["anchor"]["cpu"] <= 2.0
    assert set(anchored["anchor"]["delay"]) == {"p50", "p90", "p99"} and set(anchored["goals"]) == set(saved["goals"])
    assert set(level["anchored"]["error"]) == ERRORS and level["anchored"]["predicted"]["throughput"] > 0
    assert all(rep["probe_ms"] > 0 for rep in level["repetitions"])  # the machine's speed in each round
    assert all(rep["generator_us"] > 0 for rep in level["repetitions"])  # and the generator's CPU a request
    # the calibration measured each rate twice: the machine's speed in each round is read against the
    # rates that held (on a busy machine a 2-second level of a tiny world can miss the p99 limit)
    held = [lv["rate"] for lv in below_knee(read_levels(calibrated))]
    at_speed = saved["at_speed"]
    assert held and [r["rate"] for r in at_speed["reference"]] == held
    assert set(at_speed["goals"]) == {"mean_ms", "p99_ms"}
    assert level["at_speed"]["ratio"] > 0 and set(level["at_speed"]["error"]) == {"mean_ms", "p50_ms", "p99_ms"}
    page = (tmp_path / "val" / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "worst error at the calibration&#x27;s speed" in page
