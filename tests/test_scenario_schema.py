"""Scenario validation: shipped scenarios load; mistakes are refused naming file, YAML path and what was expected."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from agencies.spec import SpecError, WorldSpec
from crossroads.domain import Kind
from scenarios.schema import (
    KINDS,
    Deterministic,
    ExplicitNetwork,
    Exponential,
    Lognormal,
    ScenarioError,
    Uniform,
    WorldNetwork,
    load_scenario,
    parse_duration,
    parse_scenario,
)
from tests.edits import set_at

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
FILE = "x.yaml"

BASE: dict[str, Any] = {
    "name": "t",
    "seed": 1,
    "replications": 3,
    "duration": "1h",
    "network": {
        "model": "explicit",
        "stations": {
            "a": {"servers": 1, "time": {"dist": "exponential", "mean": 1.0}},
            "b": {"servers": 2, "time": {"dist": "deterministic", "value": 0.5}},
        },
        "links": [{"from": "a", "to": "b", "latency": {"dist": "uniform", "low": 0.1, "high": 0.3}}],
    },
    "traffic": [{"name": "s", "kind": "CONSULTATION", "rate": 0.5, "path": ["a", "b"]}],
}


def _with(path: str, value: Any) -> dict[str, Any]:
    """BASE with the value at a dotted path (list items by index) replaced; value None deletes it."""
    data = copy.deepcopy(BASE)
    set_at(data, path, value)
    return data


def _refused(data: Any, *fragments: str) -> str:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data, FILE)
    message = str(info.value)
    assert message.startswith(f"{FILE}: "), message
    for f in fragments:
        assert f in message, message
    return message


def _shipped() -> list[Path]:
    """The simulation scenarios (demo.yaml, national.yaml and the load tests' files hold other things)."""
    found = sorted(
        p for p in SCENARIOS.glob("*.yaml") if {"network", "extends"} & set(yaml.safe_load(p.read_text()) or {})
    )
    return found


def test_the_scenarios_the_issue_asks_for_are_shipped() -> None:
    wanted = {"baseline_2023", "baseline_2007", "dmfa_quarter_peak", "sector_hub_outage", "legacy_vs_once_only"}
    wanted |= {"eid_rollout", "national_day", "queue_mm1", "queue_mmc", "queue_tandem"}
    assert wanted <= {p.stem for p in _shipped()}


def test_kinds_are_the_cores_kinds() -> None:
    assert tuple(k.name for k in Kind) == KINDS


@pytest.mark.parametrize("path", _shipped(), ids=lambda p: p.name)
def test_every_shipped_scenario_is_valid(path: Path) -> None:
    scenario = load_scenario(path, WorldSpec.from_mapping)
    assert scenario.name == path.stem
    assert scenario.description, "every shipped scenario explains itself"
    assert "#" in path.read_text(), "every shipped scenario file has comments"


def test_a_valid_scenario_is_built_with_defaults() -> None:
    s = parse_scenario(BASE, FILE)
    assert s.duration == 3600.0 and s.warmup == 0.0 and s.interval == 3600.0
    assert isinstance(s.network, ExplicitNetwork)
    assert s.network.stations["a"].time == Exponential(mean=1.0)
    assert s.network.stations["b"].time == Deterministic(value=0.5)
    assert s.network.links[("a", "b")].latency == Uniform(low=0.1, high=0.3)
    assert s.traffic[0].rate == 0.5 and s.traffic[0].path == ("a", "b")


@pytest.mark.parametrize(
    ("path", "value", "where", "expected"),
    [
        ("replications", "ten", "replications", "a whole number >= 1"),
        ("replications", 0, "replications", "a whole number >= 1"),
        ("seed", True, "seed", "a whole number"),
        ("duration", -5, "duration", "a duration > 0"),
        ("duration", "3 fortnights", "duration", "a number with a unit"),
        ("traffic.0.rate", -3, "traffic[0].rate", "a number >= 0"),
        ("traffic.0.kind", "TELEGRAM", "traffic[0].kind", "one of CONSULTATION"),
        ("traffic.0.path", ["a", "nowhere"], "traffic[0].path[1]", "one of a, b"),
        ("network.stations.a.servers", 0, "network.stations.a.servers", ">= 1"),
        ("network.stations.a.time", {"dist": "gamma", "mean": 1}, "network.stations.a.time.dist", "exponential"),
        ("network.stations.a.time", {"dist": "exponential", "mean": 0}, "network.stations.a.time.mean", "> 0"),
        ("network.links.0.loss", 1.5, "network.links.0.loss".replace(".0.", "[0]."), "<= 1"),
        ("network.links.0.latency", {"dist": "uniform", "low": 2, "high": 1}, "latency.high", ">= 2"),
        ("network.model", "ring", "network.model", "one of explicit, world"),
    ],
)
def test_wrong_values_are_refused_with_their_path(path: str, value: Any, where: str, expected: str) -> None:
    _refused(_with(path, value), where, expected)


def test_unknown_keys_are_refused_with_the_allowed_ones() -> None:
    message = _refused({**BASE, "durration": 5}, "durration", "unknown key", "duration")
    assert "expected one of" in message
    _refused(_with("network.stations.a.speed", 3), "network.stations.a.speed", "unknown key")


def test_missing_keys_are_refused() -> None:
    _refused(_with("traffic", None), "traffic", "required")
    _refused(_with("traffic.0.rate", None), "traffic[0]", "exactly one of rate")


def test_events_are_checked() -> None:
    fail = {"at": "10min", "action": "fail", "node": "nowhere"}
    _refused({**BASE, "events": [fail]}, "events[0].node", "one of a, b")
    _refused({**BASE, "events": [{"at": 5, "action": "explode", "node": "a"}]}, "events[0].action")
    surge = {"at": "2h", "until": "1h", "action": "surge", "multiplier": 2}
    _refused({**BASE, "events": [surge]}, "events[0].until", "a time after at")
    _refused({**BASE, "events": [{"at": 5, "action": "capacity", "node": "a"}]}, "events[0].servers", "missing")
    ok = parse_scenario({**BASE, "events": [{"at": "-5min", "action": "fail", "link": ["a", "b"]}]}, FILE)
    assert ok.events[0].at == -300.0 and ok.events[0].link == ("a", "b")


def test_the_world_section_is_validated_by_the_worlds_own_parser() -> None:
    world = {
        **BASE,
        "network": {
            "model": "world",
            "access": {"portal": ["portal"], "batch": ["batch_channel"], "secretariat": ["social_secretariat"]},
            "classes": {
                c: {"servers": 1, "time": {"dist": "exponential", "mean": 0.01}}
                for c in ("core", "hub", "agency", "portal", "batch", "secretariat", "authentication")
            },
        },
        "traffic": [{"name": "s", "kind": "MUTATION", "rate": 1, "datasets": {"register_changes": 1}}],
        "world": {"seed": 1, "persons": -4, "employers": 1},
    }
    with pytest.raises(SpecError) as info:
        parse_scenario(world, FILE, WorldSpec.from_mapping)
    assert f"{FILE}: world.persons" in str(info.value)
    world["world"] = {"seed": 1, "persons": 100, "employers": 10}
    s = parse_scenario(world, FILE, WorldSpec.from_mapping)
    assert isinstance(s.world, WorldSpec) and s.world.persons == 100
    assert isinstance(s.network, WorldNetwork) and s.network.classes["core"].servers == 1
    _refused({k: v for k, v in world.items() if k != "world"}, "world", "missing")


def test_node_overrides_keep_the_class_values_they_do_not_set() -> None:
    s = load_scenario(SCENARIOS / "baseline_2023.yaml", WorldSpec.from_mapping)
    assert isinstance(s.network, WorldNetwork)
    assert s.network.nodes["SFP"].servers == 8
    assert s.network.nodes["SFP"].time == s.network.classes["agency"].time


def test_yaml_syntax_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ScenarioError, match=r"bad\.yaml: \(YAML syntax\)"):
        load_scenario(bad)


@pytest.mark.parametrize(
    ("text", "seconds"), [(90, 90.0), ("90s", 90.0), ("15min", 900.0), ("2h", 7200.0), ("1.5d", 129600.0)]
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text, "here") == seconds


def test_lognormal_needs_its_coefficient_of_variation() -> None:
    _refused(
        _with("network.stations.a.time", {"dist": "lognormal", "mean": 1}), "network.stations.a.time.cv", "required"
    )
    s = parse_scenario(_with("network.stations.a.time", {"dist": "lognormal", "mean": 1, "cv": 0.5}), FILE)
    assert isinstance(s.network, ExplicitNetwork) and s.network.stations["a"].time == Lognormal(mean=1.0, cv=0.5)


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12))
def test_any_unknown_top_level_key_is_named(key: str) -> None:
    if key in BASE or key in (
        "description",
        "warmup",
        "interval",
        "start",
        "world",
        "profiles",
        "deadlines",
        "sizes",
        "events",
        "failures",
        "pool",
        "heading_seconds",
    ):
        return
    _refused({**BASE, key: 1}, f"{FILE}: {key}: unknown key")
