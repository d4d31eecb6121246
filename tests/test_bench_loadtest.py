"""`crossroads bench capacity|soak`: the staircase and the soak wired end to end on a tiny world, the
memory trend that judges "flat", and the core's memory diagnostics. Never their speed."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from crossroads.diagnostics import (
    DUMP_ENV,
    TRACEMALLOC_ENV,
    MemoryDiagnostics,
    install_from_env,
    read_dump,
    summarise_dump,
)
from loadtests.level_figures import could_not_offer
from loadtests.report import soak_text
from loadtests.resources import memory_trend
from testbed.bench.capacity import _knee, _stops, capacity_text, sustained
from testbed.bench.goals import BenchError
from testbed.bench.soak import SOAK_SHARE, soak_rate
from testbed.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY_WORLD = {
    "world": {
        "seed": 5,
        "persons": 2000,
        "employers": 100,
        "agencies": {
            "cpas": 4,
            "health_insurance_funds": 2,
            "family_allowance_funds": 1,
            "unemployment_payment_bodies": 1,
            "social_secretariats": 1,
            "sector_funds": 1,
            "regional_bodies": 1,
            "local_bodies": 2,
            "public_mission_bodies": 1,
        },
    }
}
# a staircase of two short steps from 30/s (a judged second holds ~30 requests: a few late ones do not
# fail the step's 90 % of the rate), and a p99 limit no shared machine misses: wiring, not speed
STAIRS = ["--repeats", "1", "--max-steps", "2", "--step-s", "2", "--warmup-s", "1", "--start-rate", "30"]
STAIRS += ["--p99-ms", "5000", "--processes", "1", "--point-s", "1"]


# ------------------------------------------------------------------ the memory trend


def test_a_warm_up_that_levels_off_is_flat_and_its_growth_is_still_reported() -> None:
    t = [float(s) for s in range(0, 601)]
    rss = [100.0 + min(s, 120.0) / 4 for s in range(0, 601)]  # +30 MB over two minutes, then level
    trend = memory_trend(t, rss, 600.0)
    assert trend is not None and trend.flat
    assert trend.slope_mb_per_min == pytest.approx(0.0, abs=1e-9)
    assert trend.total_growth_mb == pytest.approx(30.0) and trend.second_half_growth_mb == pytest.approx(0.0)
    assert (trend.start_mb, trend.end_mb) == (100.0, 130.0)


def test_steady_growth_in_the_second_half_is_not_flat() -> None:
    t = [float(s) for s in range(-20, 640)]  # start-up and drain samples around a 600 s load
    rss = [500.0 if s < 0 or s > 600 else 100.0 + 2.0 * s / 60 for s in range(-20, 640)]
    trend = memory_trend(t, rss, 600.0, threshold=1.0)
    assert trend is not None and not trend.flat
    assert trend.slope_mb_per_min == pytest.approx(2.0)
    assert trend.total_growth_mb == pytest.approx(20.0)  # the samples outside the load are left out
    assert memory_trend(t, rss, 600.0, threshold=2.5).flat  # type: ignore[union-attr]


def test_a_process_without_samples_in_the_second_half_has_no_trend() -> None:
    assert memory_trend([0.0, 1.0, 2.0, 3.0], [10.0, None, None, None], 4.0) is None
    assert memory_trend([0.0, 10.0], [10.0, 11.0], 10.0) is None


# ------------------------------------------------------------------ the core's memory diagnostics


def test_a_snapshot_says_where_memory_is_and_what_grew(tmp_path: Path) -> None:
    diagnostics = MemoryDiagnostics(tmp_path / "dump.jsonl", top=5)
    gc.collect()  # earlier tests' garbage, which a collection between the snapshots would count as shrinkage
    gc.disable()
    try:
        diagnostics.start()
        kept = [bytearray(100) for _ in range(5000)]  # objects the collector does not track: only counted by type
        kept_tracked = [[k] for k in range(5000)]
        diagnostics.dump("later")
        diagnostics.close()
    finally:
        gc.enable()
    snapshots = read_dump(tmp_path / "dump.jsonl")
    assert [s["why"] for s in snapshots] == ["start", "later", "exit"]
    later = snapshots[1]
    assert later["rss_mb"] > 0 and later["sqlite_mb"] is not None and later["malloc_mb"]["in_use"] > 0
    assert later["object_growth"]["list"] == pytest.approx(5000, abs=100)  # other lists come and go meanwhile
    assert "top_growth" not in later  # tracemalloc was not asked for
    summary = summarise_dump(snapshots)
    assert summary is not None and summary["snapshots"] == 2  # the exit snapshot is left out
    assert summary["objects"] == pytest.approx(5000, abs=500) and summary["until_s"] >= summary["from_s"]
    del kept, kept_tracked


def test_the_environment_switches_the_diagnostics_on_with_sigusr1_and_exit_snapshots(tmp_path: Path) -> None:
    dump = tmp_path / "core.jsonl"
    code = (
        "import os, signal; from crossroads.diagnostics import install_from_env; install_from_env();"
        "kept = [bytes(1000 + k % 7) for k in range(20000)]; os.kill(os.getpid(), signal.SIGUSR1)"
    )
    env = dict(os.environ, **{DUMP_ENV: str(dump), TRACEMALLOC_ENV: "1"})
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    snapshots = read_dump(dump)
    assert [s["why"] for s in snapshots] == ["start", "SIGUSR1", "exit"]
    grown = snapshots[1]["top_growth"][0]
    assert grown["where"].startswith("<string>:1") and grown["growth_kb"] > 15_000  # 20,000 x ~1 KB


def test_without_the_environment_variable_nothing_is_installed(tmp_path: Path) -> None:
    assert install_from_env({}) is None
    with pytest.raises(ValueError, match="CROSSROADS_TRACEMALLOC"):
        install_from_env({DUMP_ENV: str(tmp_path / "d.jsonl"), TRACEMALLOC_ENV: "many"})
    assert not (tmp_path / "d.jsonl").exists()


# ------------------------------------------------------------------ summaries and the soak's rate


def _soak(core_slope: float, host_slope: float) -> dict[str, Any]:
    def trend(slope: float) -> dict[str, Any]:
        return {"start_mb": 100.0, "end_mb": 120.0, "total_growth_mb": 20.0, "second_half_growth_mb": 5.0 * slope,
                "slope_mb_per_min": slope, "threshold_mb_per_min": 1.0, "flat": slope < 1.0}  # fmt: skip

    return {
        "rate": 350.0, "duration_s": 600.0, "answered_per_s": 349.5, "p50_ms": 9.0, "p99_ms": 40.0, "errors": 0,
        "guarantees_ok": True, "flat_threshold_mb_per_min": 1.0, "core_slope_mb_per_min": core_slope,
        "core_flat": core_slope < 1.0, "hosts_max_slope_mb_per_min": host_slope, "hosts_flat": host_slope < 1.0,
        "memory": {"core": trend(core_slope), "host-0": trend(host_slope), "locust": None},
        "load_average": {"before": [0.5, 0.5, 0.5], "after": [1.5, 1.0, 0.7]}, "core_breakdown": None,
    }  # fmt: skip


def test_the_soak_summary_states_each_slope_and_the_verdict_against_the_threshold() -> None:
    text = soak_text(_soak(core_slope=3.25, host_slope=0.04))
    assert "flat means < 1 MB/min" in text
    assert "core NOT flat, hosts flat (steepest host 0.04 MB/min)" in text
    core_line = next(line for line in text.splitlines() if line.strip().startswith("core "))
    assert "+3.25 MB/min" in core_line and "NOT flat" in core_line
    assert "locust    no samples in the second half" in text


def _step(
    rate: float, p99_ms: float | None, *, errors: int = 0, answered: float = 1.0, limited: bool = False
) -> dict[str, Any]:
    return {"rate": rate, "p99_ms": p99_ms, "sent": 100, "errors": errors, "offered_per_s": rate,
            "achieved_per_s": answered * rate, "lag_p99_ms": 1.0,
            "limited_by": ["sent_rate"] if limited else []}  # fmt: skip


def test_a_step_holds_only_with_its_tail_its_errors_and_its_answers_within_bounds() -> None:
    assert sustained(_step(100.0, 49.0), 50.0) and not sustained(_step(100.0, 51.0), 50.0)
    assert not sustained(_step(100.0, None), 50.0)  # nothing answered
    assert sustained(_step(100.0, 10.0, errors=1), 50.0) and not sustained(_step(100.0, 10.0, errors=2), 50.0)
    assert not sustained(_step(100.0, 10.0, answered=0.9), 50.0)  # a backlog that only grows


def test_a_knee_is_the_highest_step_held_and_says_what_ended_the_climb() -> None:
    noisy = [_step(100.0, 10.0), _step(120.0, 80.0), _step(144.0, 20.0), _step(172.8, 90.0), _step(207.4, 95.0)]
    assert not _stops(noisy[:2], 50.0) and _stops(noisy, 50.0)  # one failed step is not the end of a climb
    assert _knee(noisy, 50.0) == {"rps": 144.0, "limit": "p99"}
    ceiling = [_step(100.0, 10.0), _step(120.0, 12.0, limited=True)]
    assert _stops(ceiling, 50.0) and _knee(ceiling, 50.0) == {"rps": 100.0, "limit": "generator"}
    assert _knee([_step(100.0, 10.0)], 50.0)["limit"] == "top of the staircase"
    lagging = _step(100.0, 10.0) | {"limited_by": ["send_lag"], "lag_p99_ms": 8.0}
    assert not could_not_offer(lagging) and could_not_offer(lagging | {"limited_by": ["send_lag", "sent_rate"]})


def test_the_soak_runs_at_seventy_percent_of_the_core_capacity_or_not_at_all() -> None:
    assert soak_rate({"core_rps": 500.0}) == pytest.approx(SOAK_SHARE * 500.0) == pytest.approx(350.0)
    with pytest.raises(BenchError, match="sustained no rate"):
        soak_rate({"core_rps": None})


def test_bench_capacity_and_soak_help_name_their_figures(capsys: pytest.CaptureFixture[str]) -> None:
    for which, figures in (("capacity", ["core_rps", "proxy_rps", "ratio"]), ("soak", ["core_slope_mb_per_min"])):
        with pytest.raises(SystemExit):
            main(["bench", which, "--help"])
        out = capsys.readouterr().out
        assert all(f in out for f in figures), which


# ------------------------------------------------------------------ end to end on a tiny world


@pytest.fixture(scope="module")
def soaked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """`crossroads bench soak` without --rate on a tiny world: a capacity run first, then the soak."""
    folder = tmp_path_factory.mktemp("bench-soak")
    world = folder / "tiny.yaml"
    world.write_text(yaml.safe_dump(TINY_WORLD))
    out, capture = folder / "run", folder / "stdout.txt"
    argv = ["bench", "soak", "--out", str(out), "--scenario", str(world), "--minutes", "0.15", *STAIRS]
    with capture.open("w") as sink, contextlib.redirect_stdout(sink):
        assert main(argv) == 0
    return out, capture.read_text().splitlines()


@pytest.mark.slow
def test_bench_soak_measures_the_capacity_first_and_soaks_at_seventy_percent(soaked: tuple[Path, list[str]]) -> None:
    out, lines = soaked
    capacity = json.loads((out / "capacity" / "capacity.json").read_text())
    assert [len(capacity["climbs"][0]["steps"][target]) for target in ("core", "proxy")] == [2, 2]
    assert capacity["core_rps"] and capacity["proxy_rps"]  # with a 5 s p99 limit, a 36/s step is sustained
    assert capacity["ratio"] == pytest.approx(capacity["core_rps"] / capacity["proxy_rps"], abs=1e-3)
    core_step, proxy_step = (capacity["climbs"][0]["steps"][target][-1]["cpu"] for target in ("core", "proxy"))
    assert set(core_step) == {"core", "host"} and set(proxy_step) == {"proxy", "host"}  # what the CPU went to
    assert {"main", "audit-writer"} <= set(core_step["core"]["threads"])
    assert [p["fraction"] for p in capacity["points"]] == [0.25, 0.5, 0.75]
    assert all(set(p["added_ms"]) == {"p50_ms", "p90_ms", "p99_ms", "mean_ms"} for p in capacity["points"])
    breakdown = capacity["points"][1]["breakdown"]  # where the core path's time went, from its telemetry
    assert breakdown["exchanges"] > 0 and breakdown["forward_ms"] > 0 and breakdown["commit_ms"] > 0
    assert 0 < breakdown["mean_sync_ms"] <= breakdown["mean_commit_ms"]  # the COMMIT is part of a commit
    assert breakdown["handle_ms"] == pytest.approx(
        breakdown["forward_ms"] + breakdown["commit_ms"] + breakdown["own_ms"], abs=0.01
    )
    last = json.loads(lines[-1])
    assert last["rate"] == pytest.approx(round(SOAK_SHARE * capacity["core_rps"], 1))
    assert "ratio" in (out / "capacity" / "capacity.txt").read_text()
    assert capacity_text(capacity).splitlines()[0] in lines  # the summary for people comes before the JSON


@pytest.mark.slow
def test_bench_soak_reports_every_process_memory_slope_and_holds_the_guarantees(
    soaked: tuple[Path, list[str]],
) -> None:
    out, lines = soaked
    soak = json.loads((out / "soak" / "soak.json").read_text())
    assert soak["guarantees_ok"] and soak["errors"] == 0 and soak["duration_s"] == pytest.approx(9.0)
    assert {"core", "host-0", "host-1", "locust"} <= set(soak["memory"])
    core = soak["memory"]["core"]
    assert core["flat"] == (core["slope_mb_per_min"] < soak["flat_threshold_mb_per_min"] == 1.0)
    assert soak["core_slope_mb_per_min"] == core["slope_mb_per_min"] and soak["core_flat"] == core["flat"]
    hosts = [m["slope_mb_per_min"] for name, m in soak["memory"].items() if name.startswith("host-")]
    assert soak["hosts_max_slope_mb_per_min"] == max(hosts)
    text = (out / "soak" / "soak.txt").read_text()
    assert text.strip() == soak_text(soak) and "core " in text and "host-0" in text
    assert json.loads(lines[-1])["core_flat"] == soak["core_flat"]
    assert (out / "soak" / "report.html").exists()


@pytest.mark.slow
def test_bench_capacity_given_the_proxys_capacity_measures_only_the_points(tmp_path: Path) -> None:
    """`--proxy-capacity` skips the climbs: both paths at each of --fractions of it, nothing else."""
    world = tmp_path / "tiny.yaml"
    world.write_text(yaml.safe_dump(TINY_WORLD))
    out, capture = tmp_path / "run", tmp_path / "stdout.txt"
    argv = ["bench", "capacity", "--out", str(out), "--scenario", str(world), *STAIRS]
    with capture.open("w") as sink, contextlib.redirect_stdout(sink):
        assert main([*argv, "--proxy-capacity", "40", "--fractions", "0.5"]) == 0
    capacity = json.loads((out / "capacity" / "capacity.json").read_text())
    assert capacity["climbs"] == [] and capacity["core_rps"] is None and capacity["ratio"] is None
    assert capacity["proxy_rps"] == 40 and capacity["proxy_rps_given"]
    [point] = capacity["points"]
    assert point["fraction"] == 0.5 and point["rate"] == 20
    assert point["core"]["p50_ms"] > 0 and point["proxy"]["p50_ms"] > 0 and point["breakdown"]["exchanges"] > 0
    lines = capture.read_text().splitlines()
    assert lines[0].startswith("capacity not measured") and json.loads(lines[-1])["ratio"] is None
    with pytest.raises(SystemExit):  # a capacity of 0 is refused by the parser, not met by a division
        main([*argv, "--proxy-capacity", "0"])
