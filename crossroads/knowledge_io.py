"""The knowledge part of the reference directory as a readable JSON file (DIR/knowledge.json).

The world builder writes it with `dump_knowledge`; the core reads it with `load_knowledge`
when it starts. The round trip is exact: `load_knowledge(p) == k` after `dump_knowledge(k, p)`
(sets are written sorted, so the file is also stable for a given `Knowledge`).

Layout (version 1):
    {"version": 1,
     "agencies": [{"id", "name", "category", "sector", "hub"}, ...],
     "sources": [{"dataset", "sector", "source", "declarants": [...]}, ...],
     "deliberations": [{"ref", "requesters": [...], "dataset", "purposes": [...], "condition"}, ...],
     "mutation_rules": [{"sector", "change", "reach", "head_of_household_only"}, ...]}
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from crossroads.atomic_file import write_json_atomic
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

__all__ = [
    "FORMAT_VERSION",
    "KnowledgeFileError",
    "dump_knowledge",
    "knowledge_from_json",
    "knowledge_to_json",
    "load_knowledge",
]

FORMAT_VERSION = 1
_T = TypeVar("_T")


class KnowledgeFileError(ValueError):
    """The knowledge file does not hold a valid knowledge part; the message names the JSON path."""


def knowledge_to_json(knowledge: Knowledge) -> dict[str, Any]:
    """The JSON-ready form of `knowledge` (derived indexes are rebuilt on load, not written)."""
    return {
        "version": FORMAT_VERSION,
        "agencies": [
            {"id": a.id, "name": a.name, "category": a.category, "sector": a.sector, "hub": a.hub}
            for a in knowledge.agencies.values()
        ],
        "sources": [
            {"dataset": s.dataset, "sector": s.sector, "source": s.source, "declarants": sorted(s.declarants)}
            for s in knowledge.sources.values()
        ],
        "deliberations": [
            {
                "ref": d.ref,
                "requesters": sorted(d.requesters),
                "dataset": d.dataset,
                "purposes": sorted(d.purposes),
                "condition": d.condition.value,
            }
            for d in knowledge.deliberations
        ],
        "mutation_rules": [
            {
                "sector": r.sector,
                "change": r.change,
                "reach": r.reach.value,
                "head_of_household_only": r.head_of_household_only,
            }
            for r in knowledge.mutation_rules
        ],
    }


def dump_knowledge(knowledge: Knowledge, path: Path) -> None:
    """Write `knowledge` to `path` as indented JSON, atomically (a reader never sees half a file)."""
    write_json_atomic(path, knowledge_to_json(knowledge), indent=1)


def load_knowledge(path: Path) -> Knowledge:
    """Read the knowledge part written by `dump_knowledge`.

    Raises `KnowledgeFileError` naming the file and the JSON path of the first bad value.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise KnowledgeFileError(f"{path}: cannot read knowledge: {exc}") from exc
    try:
        return knowledge_from_json(data)
    except KnowledgeFileError as exc:
        raise KnowledgeFileError(f"{path}: {exc}") from exc


def knowledge_from_json(data: object) -> Knowledge:
    """Build a `Knowledge` from its JSON form; raises `KnowledgeFileError` at the first bad value."""
    if not isinstance(data, Mapping):
        raise KnowledgeFileError("$: expected an object")
    if data.get("version") != FORMAT_VERSION:
        raise KnowledgeFileError(f"$.version: expected {FORMAT_VERSION}, got {data.get('version')!r}")
    return Knowledge.build(
        agencies=_each(data, "agencies", _agency),
        sources=_each(data, "sources", _source),
        deliberations=_each(data, "deliberations", _deliberation),
        mutation_rules=_each(data, "mutation_rules", _rule),
    )


def _each(data: Mapping[str, Any], key: str, parse: Callable[[_Obj], _T]) -> list[_T]:
    items = data.get(key, [])
    if not isinstance(items, list):
        raise KnowledgeFileError(f"$.{key}: expected a list")
    return [parse(_Obj(item, f"$.{key}[{i}]")) for i, item in enumerate(items)]


class _Obj:
    """One JSON object being read, with typed getters that name the JSON path on failure."""

    def __init__(self, value: object, where: str) -> None:
        if not isinstance(value, Mapping):
            raise KnowledgeFileError(f"{where}: expected an object")
        self.value: Mapping[str, Any] = value
        self.where = where

    def _get(self, key: str, kind: type[_T]) -> _T:
        value = self.value.get(key)
        # bool is an int in Python: do not accept true as a sector code
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise KnowledgeFileError(f"{self.where}.{key}: expected {kind.__name__}, got {value!r}")
        return value

    def text(self, key: str) -> str:
        return self._get(key, str)

    def optional_text(self, key: str) -> str | None:
        return None if self.value.get(key) is None else self.text(key)

    def number(self, key: str) -> int:
        return self._get(key, int)

    def flag(self, key: str) -> bool:
        return self._get(key, bool)

    def texts(self, key: str) -> list[str]:
        items = self._get(key, list)
        for i, item in enumerate(items):
            if not isinstance(item, str):
                raise KnowledgeFileError(f"{self.where}.{key}[{i}]: expected str, got {item!r}")
        return items

    def choice(self, key: str, kind: type[_E]) -> _E:
        value = self.text(key)
        try:
            return kind(value)
        except ValueError:
            allowed = ", ".join(repr(m.value) for m in kind)
            raise KnowledgeFileError(f"{self.where}.{key}: expected one of {allowed}, got {value!r}") from None


_E = TypeVar("_E", Condition, Reach)


def _agency(o: _Obj) -> Agency:
    hub = o.optional_text("hub")
    return Agency(
        AgencyId(o.text("id")),
        o.text("name"),
        Category(o.text("category")),
        SectorCode(o.number("sector")),
        AgencyId(hub) if hub is not None else None,
    )


def _source(o: _Obj) -> DatasetSource:
    source = o.optional_text("source")
    return DatasetSource(
        Dataset(o.text("dataset")),
        SectorCode(o.number("sector")),
        AgencyId(source) if source is not None else None,
        frozenset(Category(c) for c in o.texts("declarants")),
    )


def _deliberation(o: _Obj) -> Deliberation:
    return Deliberation(
        DeliberationRef(o.text("ref")),
        frozenset(Category(c) for c in o.texts("requesters")),
        Dataset(o.text("dataset")),
        frozenset(Purpose(p) for p in o.texts("purposes")),
        o.choice("condition", Condition),
    )


def _rule(o: _Obj) -> MutationRule:
    return MutationRule(
        SectorCode(o.number("sector")),
        o.text("change"),
        o.choice("reach", Reach),
        o.flag("head_of_household_only"),
    )
