"""The scenario format: the JSON Schema an editor checks with, and our own refusals (file, YAML
path, line and column), agree on the shipped scenarios and on broken copies of them."""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from agencies.spec import SpecError, WorldSpec, load_world_spec
from loadtests.spec import LoadtestSpec, LoadtestSpecError, load_loadtest_spec
from scenarios.documents import Document, MarkedDict, ScenarioError, merge, read_yaml
from scenarios.schema import load_scenario, parse_duration, parse_scenario
from testbed.cli import main
from tests.edits import set_at

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
SHIPPED = sorted(SCENARIOS.glob("*.yaml"))
SCHEMA_FILE = SCENARIOS / "scenario.schema.json"


@pytest.fixture(scope="module")
def schema() -> Draft202012Validator:
    document = json.loads(SCHEMA_FILE.read_text())
    Draft202012Validator.check_schema(document)
    return Draft202012Validator(document)


def _load_everything(path: Path) -> None:
    """What the testbed reads of the file at `path`: the simulation scenario, its world, its load test."""
    data = read_yaml(path)
    if {"network", "extends"} & set(data):
        load_scenario(path, WorldSpec.from_mapping)
    if "world" in data:
        load_world_spec(path)
    if "loadtest" in data:
        load_loadtest_spec(path)


# ------------------------------------------------------------------ the published schema
def test_the_committed_schema_is_what_the_command_prints(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert capsys.readouterr().out == SCHEMA_FILE.read_text(), "run: crossroads schema > scenarios/scenario.schema.json"


def test_the_schema_is_shipped_with_the_package_and_named_by_every_scenario() -> None:
    pyproject = (SCENARIOS.parent / "pyproject.toml").read_text()
    assert 'scenarios = ["*.yaml", "*.json"]' in pyproject
    for path in SHIPPED:
        assert path.read_text().startswith("# yaml-language-server: $schema=scenario.schema.json\n"), path.name


def test_the_help_says_how_to_point_an_editor_at_it(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["schema", "--help"])
    assert "# yaml-language-server: $schema=" in capsys.readouterr().out


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_scenario_passes_the_schema(schema: Draft202012Validator, path: Path) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in schema.iter_errors(read_yaml(path))]
    assert not errors, errors
    _load_everything(path)


BROKEN: list[tuple[str, str, Any, str]] = [
    # (shipped file, dotted path, new value or None to delete, what is wrong)
    ("queue_mm1.yaml", "traffic.0.rate", -1.2, "a negative rate"),
    ("queue_mm1.yaml", "seed", "one", "a wrong type"),
    ("queue_mm1.yaml", "replications", None, "a missing required key"),
    ("queue_mm1.yaml", "traffic.0.kind", None, "a missing required key, nested"),
    ("queue_mm1.yaml", "durration", 5, "an unknown key"),
    ("queue_mm1.yaml", "network.stations.server.speed", 3, "an unknown key, nested"),
    ("queue_mm1.yaml", "network.model", "ring", "an unknown network model"),
    ("queue_mm1.yaml", "duration", "3 fortnights", "a duration without a known unit"),
    ("queue_mm1.yaml", "traffic.0.per_day", 100, "two rates for one source"),
    ("queue_tandem.yaml", "network.stations.check.time.dist", "gamma", "an unknown distribution"),
    ("queue_tandem.yaml", "network.links.0.loss", 1.5, "a loss above 1"),
    ("baseline_2023.yaml", "network.classes.hub", None, "a node class left out"),
    ("baseline_2023.yaml", "sizes.TELEGRAM", 10, "an unknown message kind"),
    ("baseline_2023.yaml", "profiles.office.weekly", [1.0, 1.0], "a weekly profile of two days"),
    ("baseline_2023.yaml", "traffic.0.per_year", -5, "a negative yearly volume"),
    ("demo.yaml", "world.seed", None, "a world without its seed"),
    ("demo.yaml", "world.persons", 0, "a world without persons"),
    ("demo.yaml", "world.employed_share", 1.5, "a share above 1"),
    ("demo.yaml", "world.agencies.banks", 3, "an unknown agency category"),
    ("demo.yaml", "world.as_of", "yesterday", "a day that is no ISO date"),
    ("loadtest_smoke.yaml", "loadtest.stages.0.rate", -5, "a negative request rate"),
    ("loadtest_smoke.yaml", "loadtest.stages", [], "no stage"),
    ("loadtest_smoke.yaml", "loadtest.faults.0.action", "explode", "an unknown fault"),
    ("loadtest_smoke.yaml", "loadtest.faults.0.host", "h1", "a host that is no host-N"),
    ("loadtest_smoke.yaml", "loadtest.budget.errors", 2, "an error budget above 1"),
    ("loadtest_smoke.yaml", "loadtest.mix.agency.DMFA", 1, "a kind the agencies do not send"),
    ("loadtest_dmfa_peak.yaml", "loadtest.mix.at", "soon", "a surge time that is no duration"),
    ("eid_rollout.yaml", "traffic.0.multiplier", "double", "a wrong type in a scenario that extends another"),
    ("eid_rollout.yaml", "nmae", "x", "an unknown key in a scenario that extends another"),
    ("sector_hub_outage.yaml", "events.0.action", "explode", "an unknown event in a scenario that extends another"),
    ("queue_tandem.yaml", "sources", {"seed": "measured"}, "a source for a number outside the network"),
    ("queue_tandem.yaml", "sources", {"network.links[0].latency": " "}, "a source that says nothing"),
]


@pytest.mark.parametrize(("name", "path", "value", "what"), BROKEN, ids=[b[3] for b in BROKEN])
def test_broken_scenarios_fail_the_schema_and_our_loader(
    schema: Draft202012Validator, tmp_path: Path, name: str, path: str, value: Any, what: str
) -> None:
    for shipped in SHIPPED:  # a scenario extends others next to it
        shutil.copy(shipped, tmp_path / shipped.name)
    data = yaml.safe_load((SCENARIOS / name).read_text())
    broken = copy.deepcopy(data)
    set_at(broken, path, value)
    (tmp_path / name).write_text(yaml.safe_dump(broken, sort_keys=False))
    assert list(schema.iter_errors(read_yaml(tmp_path / name))), f"the schema let {what} through"
    with pytest.raises(ScenarioError):
        _load_everything(tmp_path / name)


# ------------------------------------------------------------------ our refusals: file, YAML path, line, column
EXPLICIT = """\
name: t
seed: 1
replications: 2
duration: 1h
network:
  model: explicit
  stations:
    a: {servers: 1, time: {dist: exponential, mean: 1.0}}
traffic:
  - name: s
    kind: CONSULTATION
    rate: 3
    path: [a]
"""


def _refusal(path: Path, text: str, load: Callable[[Path], object] = load_scenario) -> ScenarioError:
    path.write_text(text)
    with pytest.raises(ScenarioError) as caught:
        load(path)
    return caught.value


def test_a_refusal_names_file_path_line_and_column(tmp_path: Path) -> None:
    error = _refusal(tmp_path / "x.yaml", EXPLICIT.replace("rate: 3", "rate: -3"))
    assert (
        str(error) == f"{tmp_path / 'x.yaml'}: traffic[0].rate: expected a number >= 0, got int -3 (line 12, column 5)"
    )
    assert error.mark is not None and (error.mark.line, error.mark.column) == (12, 5)
    assert error.where == f"{tmp_path / 'x.yaml'}: traffic[0].rate"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("    rate: 3", "    rate: 3\n    colour: red"),
            "traffic[0].colour: unknown key; expected one of: auth, copies",
        ),
        (("path: [a]", "path: [a, b]"), "traffic[0].path[1]: expected one of a, got 'b' (line 13, column 15)"),
        (
            ("{dist: exponential, mean: 1.0}", "{dist: gamma}"),
            "network.stations.a.time.dist: expected one of exponential",
        ),
        (
            ("{dist: exponential, mean: 1.0}", "{dist: lognormal, mean: 1}"),
            "stations.a.time.cv: missing; this key is required",
        ),
        (("seed: 1", "seed: .inf"), "seed: expected a whole number >= 0, got float inf (line 2, column 1)"),
        (
            ("    rate: 3", "    rate: .nan"),
            "traffic[0].rate: expected a number >= 0, got float nan (line 12, column 5)",
        ),
    ],
)
def test_each_kind_of_mistake_is_located(tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    assert expected in str(_refusal(tmp_path / "x.yaml", EXPLICIT.replace(*change)))


def test_a_missing_key_is_located_at_the_mapping_that_lacks_it(tmp_path: Path) -> None:
    error = _refusal(tmp_path / "x.yaml", EXPLICIT.replace("    kind: CONSULTATION\n", ""))
    assert str(error).endswith("traffic[0].kind: missing; this key is required (line 10, column 5)")


def test_a_scenario_that_extends_another_names_the_file_each_entry_comes_from(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(EXPLICIT.replace("rate: 3", "rate: -3"))
    error = _refusal(tmp_path / "child.yaml", "extends: base.yaml\nseed: 2\n")
    assert f"child.yaml (extends {tmp_path / 'base.yaml'}): traffic[0].rate: expected a number >= 0" in str(error)
    assert str(error).endswith(f"(line 12, column 5 of {tmp_path / 'base.yaml'})")
    fixed = _refusal(tmp_path / "child.yaml", "extends: base.yaml\nseed: -2\ntraffic: [{name: s, rate: 1}]\n")
    assert str(fixed).endswith("seed: expected a whole number >= 0, got int -2 (line 2, column 1)")


def test_world_and_loadtest_sections_are_located_too(tmp_path: Path) -> None:
    world = "world:\n  seed: 1\n  persons: 10\n  employers: 2\n  agencies: {cpas: -1}\n"
    error = _refusal(tmp_path / "w.yaml", world, load_world_spec)
    assert isinstance(error, SpecError)
    assert (
        str(error)
        == f"{tmp_path / 'w.yaml'}: world.agencies.cpas: expected an integer 1..9,999, got int -1 (line 5, column 14)"
    )
    section = "loadtest:\n  mix: {agency: {CONSULTATION: 1}}\n  stages:\n    - {duration: 5s, users: 2, rate: -1}\n"
    error = _refusal(tmp_path / "l.yaml", section, load_loadtest_spec)
    assert isinstance(error, LoadtestSpecError)
    assert str(error).endswith("l.yaml: loadtest.stages[0].rate: expected a number > 0, got int -1 (line 4, column 32)")


def test_yaml_syntax_errors_name_the_file_and_line(tmp_path: Path) -> None:
    error = _refusal(tmp_path / "bad.yaml", "name: t\nseed: [1\n")
    assert str(error).startswith(f"{tmp_path / 'bad.yaml'}: (YAML syntax): ") and "line 3" in str(error)
    assert "alias inside itself" in str(_refusal(tmp_path / "loop.yaml", "a: &x [1, *x]\n"))


# ------------------------------------------------------------------ one rule for numbers, in every section
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), True, "3"])
def test_every_section_refuses_what_is_no_finite_number(bad: object) -> None:
    scenario = yaml.safe_load(EXPLICIT)
    scenario["traffic"][0]["rate"] = bad
    with pytest.raises(ScenarioError, match=r"x\.yaml: traffic\[0\]\.rate: expected a number >= 0"):
        parse_scenario(scenario, "x.yaml")
    with pytest.raises(SpecError, match="expected a share between 0 and 1"):
        WorldSpec.from_mapping({"seed": 1, "persons": 10, "employers": 1, "bis_share": bad}, "x.yaml: world")
    stages = [{"duration": 1, "users": 1, "rate": bad}]
    with pytest.raises(LoadtestSpecError, match="expected a number > 0"):
        LoadtestSpec.from_mapping({"mix": {"agency": {"CONSULTATION": 1}}, "stages": stages}, "x.yaml: loadtest")
    if bad != "3":  # "3" is a duration: 3 seconds
        with pytest.raises(ScenarioError, match="--duration: expected a duration"):
            parse_duration(bad, "--duration")


# ------------------------------------------------------------------ the kit
def test_reading_keeps_marks_and_leaves_timestamps_as_strings(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text("start: 2023-03-14T10:00:00\nitems:\n  - {a: 1}\n")
    data = read_yaml(tmp_path / "t.yaml")
    assert data == {"start": "2023-03-14T10:00:00", "items": [{"a": 1}]}
    doc = Document(data, "t.yaml")
    marks = [doc.mark_of(["start"]), doc.mark_of(["items", 0, "a"])]
    assert [(m.line, m.column) for m in marks if m is not None] == [(1, 1), (3, 6)]
    assert doc.locate(["items", 0, "a"]) == "t.yaml: items[0].a"
    assert Document({}, "t.yaml: world").locate(["agencies", "cpas"]) == "t.yaml: world.agencies.cpas"


def test_a_merge_keeps_where_each_entry_was_written(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text("traffic:\n  - {name: s, rate: 1}\n  - {name: t, rate: 2}\n")
    (tmp_path / "c.yaml").write_text("traffic:\n  - {name: t, rate: 5}\n")
    merged = merge(read_yaml(tmp_path / "b.yaml"), read_yaml(tmp_path / "c.yaml"))
    assert isinstance(merged, MarkedDict)
    assert merged == {"traffic": [{"name": "s", "rate": 1}, {"name": "t", "rate": 5}]}
    doc = Document(merged, "c.yaml")
    assert doc.mark_of(["traffic", 0, "rate"]).file.endswith("b.yaml")  # type: ignore[union-attr]
    assert doc.mark_of(["traffic", 1, "rate"]).file.endswith("c.yaml")  # type: ignore[union-attr]
