"""Reports: self-contained HTML with embedded figures; the what-if comparison; the CLI that writes them."""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest

from agencies.world import World
from network.compare import compare_summaries
from network.replications import run_replications
from network.run import clean_json, load
from network.summary import series, summarise
from network.world_plan import plan_world
from reports.compare import build_comparison
from reports.html import build_report, fmt, fmt_estimate
from scenarios.schema import Seconds
from testbed.cli import main

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
PNG = b"\x89PNG\r\n\x1a\n"


def _images(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def _self_contained(page: str) -> None:
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r'(src|href)="(https?:)?//', page), "no external resources"
    assert "<script" not in page


@pytest.fixture(scope="module")
def world_run() -> tuple[dict[str, Any], dict[str, Any]]:
    # the outage scenario on a small world, at 2% of the national traffic, for three hours
    # (the hub fails after two): the report's figures need no more
    scenario = load(SCENARIOS / "sector_hub_outage.yaml")
    assert scenario.world is not None
    small = dataclasses.replace(scenario.world, persons=20_000, employers=400)
    traffic = tuple(dataclasses.replace(s, multiplier=s.multiplier * 0.02) for s in scenario.traffic)
    scenario = dataclasses.replace(
        scenario, world=small, pool=200, replications=2, traffic=traffic, duration=Seconds(3 * 3600)
    )
    plan = plan_world(scenario, World.build(small))
    results = run_replications(plan)
    return clean_json(summarise(plan, results)), clean_json(series(plan, results))


def test_the_report_of_a_world_run_is_one_self_contained_page(world_run: tuple[dict[str, Any], dict[str, Any]]) -> None:
    summary, data = world_run
    page = build_report(summary, data)
    _self_contained(page)
    images = _images(page)
    assert len(images) == 5 and all(i.startswith(PNG) for i in images)
    for heading in (
        "The network",
        "How long messages take",
        "Over time",
        "Availability per sector",
        "The busiest nodes",
    ):
        assert f"<h2>{heading}</h2>" in page
    assert page.count('class="why"') == 5  # an explanation beside every figure
    assert "CIN" in page and "fail" in page  # the outage is listed among the events


def test_a_shipped_scenario_says_its_numbers_are_assumed(world_run: tuple[dict[str, Any], dict[str, Any]]) -> None:
    summary, data = world_run
    numbers = summary["provenance"]
    assert len(numbers) == 16 and {n["source"] for n in numbers} == {"assumed"}
    assert {"path": "network.nodes.CIN.time", "value": "lognormal mean 0.015 s, cv 0.8", "source": "assumed"} in numbers
    page = build_report(summary, data)
    assert "Service times and latencies: 16 assumed, 0 calibrated" in page
    assert '<h2 id="provenance">Where the numbers come from</h2>' in page
    assert "is an assumption, not a measurement" in page and "<code>crossroads calibrate</code>" in page
    assert page.count("<td>assumed</td>") == 16
    older = build_report({k: v for k, v in summary.items() if k != "provenance"}, data)
    assert "This run's summary does not say" in older and "Service times and latencies:" not in older


def test_the_outage_shows_in_the_availability_of_its_sector(world_run: tuple[dict[str, Any], dict[str, Any]]) -> None:
    summary, _ = world_run
    groups = summary["availability_by_group"]
    health = next(v for k, v in groups.items() if k.startswith("health"))
    others = [v["mean"] for k, v in groups.items() if not k.startswith("health") and v["mean"] is not None]
    assert health["mean"] < min(others)


def test_number_formats() -> None:
    assert fmt(1234567.0) == "1,234,567" and fmt(0.012345) == "0.0123" and fmt(None) == "-"
    assert fmt_estimate({"mean": 2.5, "ci95": 0.126}) == "2.50 ± 0.13"
    assert fmt_estimate({"mean": None}) == "-"


def _simulate(out: Path, *extra: str) -> int:
    scenario = str(SCENARIOS / "queue_tandem.yaml")
    return main(
        ["simulate", scenario, "--out", str(out), "--replications", "3", "--duration", "15min", "--quiet", *extra]
    )


def test_simulate_writes_a_reproducible_run_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _simulate(tmp_path / "a") == 0
    assert "report: " in capsys.readouterr().out
    for name in ("summary.json", "series.json", "series.csv", "performance.json", "scenario.yaml", "report.html"):
        assert (tmp_path / "a" / name).is_file(), name
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert {"functional_messages_per_year", "employer_declarations_per_year"} <= set(summary)
    assert len(summary["provenance"]) == 5 and {n["source"] for n in summary["provenance"]} == {"assumed"}
    assert _simulate(tmp_path / "b") == 0
    assert (tmp_path / "a" / "summary.json").read_bytes() == (tmp_path / "b" / "summary.json").read_bytes()
    assert (tmp_path / "a" / "series.json").read_bytes() == (tmp_path / "b" / "series.json").read_bytes()
    _self_contained((tmp_path / "a" / "report.html").read_text())


def test_compare_flags_what_changed_and_only_that(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _simulate(tmp_path / "a") == 0
    assert _simulate(tmp_path / "b", "--seed", "99") == 0
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "a"), "--out", str(tmp_path / "same")]) == 0
    same = json.loads((tmp_path / "same" / "comparison.json").read_text())
    assert same["significant"] == 0 and same["rows"]
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    page = (tmp_path / "b" / "compare" / "comparison.html").read_text()
    _self_contained(page)
    assert len(_images(page)) == 3


def test_compare_detects_a_real_change() -> None:
    def summary(mean_latency: float, sd: float) -> dict[str, Any]:
        est = {"mean": mean_latency, "ci95": 0.0, "n": 5, "sd": sd}
        kind = {"throughput_per_s": est, "latency_s": {"mean": est}, "availability": est, "lost": est}
        return {"scenario": {"name": "x"}, "kinds": {"DMFA": kind}, "availability_by_group": {}, "nodes": []}

    rows = compare_summaries(summary(1.0, 0.05), summary(1.5, 0.05))["rows"]
    assert rows and all(r["significant"] for r in rows)
    rows = compare_summaries(summary(1.0, 0.5), summary(1.05, 0.5))["rows"]
    assert not any(r["significant"] for r in rows)
    page = build_comparison(
        {"rows": rows, "method": "m"}, summary(1, 1) | {"surges": []}, summary(1, 1), _flat(), _flat()
    )
    _self_contained(page)


def _flat() -> dict[str, Any]:
    return {"t_s": [0.0], "t_end_s": 60.0, "throughput_per_s": {"DMFA": [1.0]}, "lost_per_s": [0.0]}


def test_a_refused_scenario_says_why_and_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((SCENARIOS / "queue_mm1.yaml").read_text().replace("replications: 10", "replications: many"))
    assert main(["simulate", str(bad), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    assert f"{bad}: replications: expected a whole number >= 1, got 'many'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_overrides_are_checked(tmp_path: Path) -> None:
    assert main(["simulate", str(SCENARIOS / "queue_mm1.yaml"), "--out", str(tmp_path), "--replications", "0"]) == 2
