"""Where the numbers come from: a scenario's `sources:` says which service times and latencies are
calibrated (and from what); the run's summary and report list every one, the rest assumed."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from agencies.spec import WorldSpec
from scenarios import sections as s
from scenarios.documents import merge, read_yaml
from scenarios.provenance import describe
from scenarios.schema import ScenarioError, load_scenario
from testbed.cli import main
from tests.test_scenario_schema import BASE

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
STATION_A = {
    "servers": 1,
    "time": {"dist": "exponential", "mean": 1.0},
    "per_work": {"DMFA": {"dist": "lognormal", "mean": 2.0, "cv": 0.5}},
}
CALIBRATION = "runs/calibration/calibrated.yaml, core.cpu_ms (2026-12-05)"
# the explicit network of the validation tests, station a with a time per kind too
EXPLICIT = yaml.safe_dump(
    {**BASE, "network": {**BASE["network"], "stations": {**BASE["network"]["stations"], "a": STATION_A}}},
    sort_keys=False,
)
SOURCES_LINE = len(EXPLICIT.splitlines()) + 2  # the first key under `sources:` appended to it


def _sources(path: Path, text: str) -> dict[str, str]:
    path.write_text(text)
    return {p.path: p.source for p in load_scenario(path).provenance}


def _refused(path: Path, text: str) -> str:
    path.write_text(text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    return str(caught.value)


# ------------------------------------------------------------------ the scenario
def test_without_sources_every_number_is_assumed_in_the_order_written(tmp_path: Path) -> None:
    assert _sources(tmp_path / "x.yaml", EXPLICIT) == {
        "network.stations.a.time": "assumed",
        "network.stations.a.per_work.DMFA": "assumed",
        "network.stations.b.time": "assumed",
        "network.links[0].latency": "assumed",
    }


def test_a_source_names_a_number_or_a_section_and_the_most_specific_wins(tmp_path: Path) -> None:
    text = EXPLICIT + (
        "sources:\n"
        "  network.stations: 'calibrated: on our test rig'\n"
        f"  network.stations.a.time: '{CALIBRATION}'\n"
        "  network.links.0: ping over the WAN\n"
    )
    assert _sources(tmp_path / "x.yaml", text) == {
        "network.stations.a.time": f"calibrated: {CALIBRATION}",
        "network.stations.a.per_work.DMFA": "calibrated: on our test rig",
        "network.stations.b.time": "calibrated: on our test rig",
        "network.links[0].latency": "calibrated: ping over the WAN",
    }


def test_the_values_are_rendered_in_a_few_words(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text(EXPLICIT)
    values = [p.value for p in load_scenario(tmp_path / "x.yaml").provenance]
    assert values == [
        "exponential mean 1 s",
        "lognormal mean 2 s, cv 0.5",
        "deterministic 0.5 s",
        "uniform 0.1 to 0.3 s",
    ]
    assert describe(s.Exponential(dist="exponential", mean=0.004)) == "exponential mean 0.004 s"


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("network.stations.c.time", "names no entry of this scenario; expected a path such as network.stations.a.time"),
        ("network.links[1]", "names no entry of this scenario"),
        ("network.stations.a.servers", "names no service time or latency; expected the path of one"),
        ("network.stations.a.time.mean", "names no service time or latency"),
        ("seed", "expected a YAML path under network, e.g. network.classes.core.time, got 'seed'"),
        ("network.links[0]latency", "expected a YAML path under network"),
    ],
)
def test_a_source_for_nothing_is_refused_where_it_is_written(tmp_path: Path, key: str, problem: str) -> None:
    message = _refused(tmp_path / "x.yaml", EXPLICIT + f"sources:\n  {key}: measured\n")
    assert message.startswith(f"{tmp_path / 'x.yaml'}: sources.{key}: {problem}")
    assert message.endswith(f"(line {SOURCES_LINE}, column 3)")


def test_a_source_that_says_nothing_is_refused(tmp_path: Path) -> None:
    message = _refused(tmp_path / "x.yaml", EXPLICIT + "sources:\n  network.stations.a.time: 'calibrated: '\n")
    assert "sources.network.stations.a.time: expected a text saying where the number comes from" in message
    assert message.endswith(f"(line {SOURCES_LINE}, column 3)")


def test_a_world_scenario_that_extends_a_baseline_names_its_calibrated_numbers(tmp_path: Path) -> None:
    shutil.copy(SCENARIOS / "baseline_2023.yaml", tmp_path / "baseline_2023.yaml")
    child = tmp_path / "ours.yaml"
    child.write_text(
        "extends: baseline_2023.yaml\n"
        "sources:\n"
        f"  network.classes.core.per_work.DMFA: '{CALIBRATION}'\n"
        "  network.links: 'calibrated: ping between our sites'\n"
    )
    sources = {p.path: p.source for p in load_scenario(child, WorldSpec.from_mapping).provenance}
    calibrated = {k for k, v in sources.items() if v != "assumed"}
    assert calibrated == {"network.classes.core.per_work.DMFA"} | {
        f"network.links.{c}.latency" for c in ("core_hub", "core_agency", "hub_agency", "access")
    }
    assert sources["network.classes.core.time"] == "assumed"
    assert sources["network.links.access.latency"] == "calibrated: ping between our sites"
    child.write_text(child.read_text() + "  network.nodes.SFP.time: measured\n")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(child, WorldSpec.from_mapping)
    assert "sources.network.nodes.SFP.time: names no entry of this scenario" in str(caught.value)
    assert str(caught.value).endswith("(line 5, column 3)")


# ------------------------------------------------------------------ the shipped scenarios
def _merged(path: Path) -> Any:
    data = read_yaml(path)
    while "extends" in data:
        data = merge(read_yaml(path.parent / data.pop("extends")), data)
    return data


def _distributions(data: Any, at: str = "") -> list[str]:
    """The dotted paths of every mapping with a `dist` key in `data`."""
    if isinstance(data, dict):
        if "dist" in data:
            return [at]
        return [p for k, v in data.items() for p in _distributions(v, f"{at}.{k}".lstrip("."))]
    if isinstance(data, list):
        return [p for i, v in enumerate(data) for p in _distributions(v, f"{at}[{i}]")]
    return []


SIMULATED = [p for p in sorted(SCENARIOS.glob("*.yaml")) if {"network", "extends"} & set(read_yaml(p))]


@pytest.mark.parametrize("path", SIMULATED, ids=lambda p: p.name)
def test_every_number_of_a_shipped_scenario_is_listed_and_assumed(path: Path) -> None:
    provenance = load_scenario(path, WorldSpec.from_mapping).provenance
    assert [p.path for p in provenance] == _distributions(_merged(path)["network"], "network")
    assert provenance and {p.source for p in provenance} == {"assumed"}


# ------------------------------------------------------------------ the run: summary and report
def _row(page: str, path: str) -> list[str]:
    found = re.search(rf"<tr><td>{re.escape(path)}</td>(.*?)</tr>", page)
    assert found, path
    return re.findall(r"<td>(.*?)</td>", found.group(1))


def test_the_summary_and_report_say_which_number_is_calibrated(tmp_path: Path) -> None:
    scenario = tmp_path / "tandem.yaml"
    text = (SCENARIOS / "queue_tandem.yaml").read_text()
    scenario.write_text(text + f"sources:\n  network.stations.check.time: '{CALIBRATION}'\n")
    for out in ("a", "b"):
        args = ["simulate", str(scenario), "--out", str(tmp_path / out), "--replications", "2", "--duration", "5min"]
        assert main([*args, "--quiet"]) == 0
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert [tuple(n.values()) for n in summary["provenance"]] == [
        ("network.stations.intake.time", "exponential mean 0.5 s", "assumed"),
        ("network.stations.check.time", "exponential mean 1.2 s", f"calibrated: {CALIBRATION}"),
        ("network.stations.archive.time", "exponential mean 0.6 s", "assumed"),
        ("network.links[0].latency", "deterministic 0.25 s", "assumed"),
        ("network.links[1].latency", "lognormal mean 0.3 s, cv 0.5", "assumed"),
    ]
    assert all(list(n) == ["path", "value", "source"] for n in summary["provenance"])
    assert (tmp_path / "a" / "summary.json").read_bytes() == (tmp_path / "b" / "summary.json").read_bytes()
    page = (tmp_path / "a" / "report.html").read_text()
    assert "Service times and latencies: 4 assumed, 1 calibrated" in page
    assert page.index("Service times and latencies:") < page.index('<div class="key">')
    assert '<h2 id="provenance">Where the numbers come from</h2>' in page
    assert _row(page, "network.stations.check.time") == ["exponential mean 1.2 s", f"calibrated: {CALIBRATION}"]
    assert _row(page, "network.stations.intake.time") == ["exponential mean 0.5 s", "assumed"]
    assert _row(page, "network.links[1].latency")[1] == "assumed"
    assert "Calibrated: 1 of these 5 numbers" in page
