"""The knowledge part of the directory survives a trip through its JSON file exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crossroads.domain import (
    Agency,
    AgencyId,
    Category,
    Condition,
    Dataset,
    DatasetSource,
    Deliberation,
    DeliberationRef,
    Knowledge,
    MutationRule,
    Purpose,
    Reach,
    SectorCode,
)
from crossroads.knowledge_io import KnowledgeFileError, dump_knowledge, load_knowledge

KNOWLEDGE = Knowledge.build(
    agencies=[
        Agency(AgencyId("ONSS"), "Office national de sécurité sociale", Category("primary"), SectorCode(1)),
        Agency(AgencyId("SPPIS"), "SPP Intégration sociale", Category("hub"), SectorCode(17)),
        Agency(AgencyId("CPAS-1"), "CPAS de Namur", Category("cpas"), SectorCode(17), AgencyId("SPPIS")),
        Agency(AgencyId("PORTAL"), "portal", Category("access_point"), SectorCode(0)),
    ],
    sources=[
        DatasetSource(Dataset("wages"), SectorCode(1), AgencyId("ONSS")),
        DatasetSource(Dataset("social_aid"), SectorCode(17)),
        DatasetSource(
            Dataset("dmfa"), SectorCode(1), AgencyId("ONSS"), frozenset({Category("access_point"), Category("primary")})
        ),
    ],
    deliberations=[
        Deliberation(
            DeliberationRef("08/020"),
            frozenset({Category("cpas"), Category("hub")}),
            Dataset("wages"),
            frozenset({Purpose("social_integration"), Purpose("control")}),
            Condition.OWN_FILES,
        ),
        Deliberation(DeliberationRef("03/050"), frozenset({Category("primary")}), Dataset("dmfa"), frozenset()),
    ],
    mutation_rules=[
        MutationRule(SectorCode(5), "household", Reach.LAST_COMPETENT, head_of_household_only=True),
        MutationRule(SectorCode(5), "*", Reach.ALL_KNOWN),
    ],
)


def test_round_trip_is_exact(tmp_path: Path) -> None:
    path = tmp_path / "knowledge.json"
    dump_knowledge(KNOWLEDGE, path)
    loaded = load_knowledge(path)
    assert loaded == KNOWLEDGE
    assert loaded.by_category == KNOWLEDGE.by_category and loaded.by_dataset == KNOWLEDGE.by_dataset


def test_file_is_readable_and_stable(tmp_path: Path) -> None:
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    dump_knowledge(KNOWLEDGE, first)
    dump_knowledge(load_knowledge(first), second)
    assert first.read_bytes() == second.read_bytes()
    text = first.read_text(encoding="utf-8")
    assert '"condition": "own_files"' in text and "sécurité" in text


def _corrupt(tmp_path: Path, change: str) -> Path:
    path = tmp_path / "knowledge.json"
    dump_knowledge(KNOWLEDGE, path)
    data = json.loads(path.read_text(encoding="utf-8"))
    if change == "sector":
        data["agencies"][2]["sector"] = "17"
    elif change == "condition":
        data["deliberations"][1]["condition"] = "sometimes"
    elif change == "version":
        data["version"] = 99
    elif change == "requesters":
        data["deliberations"][0]["requesters"] = ["cpas", 3]
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ("sector", "$.agencies[2].sector"),
        ("condition", "$.deliberations[1].condition"),
        ("version", "$.version"),
        ("requesters", "$.deliberations[0].requesters[1]"),
    ],
)
def test_a_bad_value_is_refused_naming_its_json_path(tmp_path: Path, change: str, where: str) -> None:
    with pytest.raises(KnowledgeFileError, match=r"knowledge\.json: " + where.replace("$", r"\$").replace("[", r"\[")):
        load_knowledge(_corrupt(tmp_path, change))


def test_a_missing_file_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(KnowledgeFileError, match=r"nothing\.json"):
        load_knowledge(tmp_path / "nothing.json")
