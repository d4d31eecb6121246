"""Scenario files read and validated: one kit for every section (the scenario, `world:`, `loadtest:`).

Validate-then-build, in three steps:

1. `read_yaml(path)` reads a YAML file into plain data whose mappings and lists remember where
   each entry starts (`MarkedDict`, `MarkedList`: line and column). Timestamps stay strings, as
   in YAML 1.2 and in editors, so what we validate is what the JSON Schema sees.
2. `Document(data, where).validate(Model)` validates with pydantic v2: the section models are
   `scenarios.values.Section`s whose field types say what they expect. The first error becomes
   our refusal.
3. The section's build step turns the model into the frozen domain objects; what it refuses
   (a reference between sections, say) it refuses with `Document.refuse(path, problem)`.

A refusal is a `ScenarioError` (a ValueError) that names the file, the YAML path, what was wrong
and what was expected, then the line and column where the entry starts (and the file, when it is
another one: a scenario that `extends` another holds entries of both):

    scenarios/x.yaml: traffic[2].rate: expected a number >= 0, got int -3 (line 14, column 7)
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import yaml
from pydantic import TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

__all__ = ["Document", "Mark", "MarkedDict", "MarkedList", "ScenarioError", "YamlPath", "merge", "path_text"]
__all__ += ["read_yaml", "shown"]

T = TypeVar("T")
YamlPath = Sequence[str | int]
_MISSING = "missing; this key is required"
_MAPPING_ERRORS = ("model_type", "model_attributes_type", "dict_type", "dataclass_type", "dataclass_args_type")


@dataclass(frozen=True, slots=True)
class Mark:
    """Where an entry starts: file, line and column (both from 1)."""

    file: str
    line: int
    column: int


class ScenarioError(ValueError):
    """A scenario file refused: "WHERE: PROBLEM (line L, column C)", WHERE the file and YAML path.

    `where`, `problem` and `mark` (None when the data came from no file) are kept as attributes.
    """

    def __init__(self, where: str, problem: str, mark: Mark | None = None) -> None:
        at = ""
        if mark is not None:
            other = "" if where.startswith(mark.file) else f" of {mark.file}"
            at = f" (line {mark.line}, column {mark.column}{other})"
        super().__init__(f"{where}: {problem}{at}")
        self.where, self.problem, self.mark = where, problem, mark


class MarkedDict(dict[Any, Any]):
    """A YAML mapping; `mark` is where it starts, `marks[key]` where each entry starts."""

    mark: Mark | None = None
    marks: dict[Any, Mark]


class MarkedList(list[Any]):
    """A YAML list; `mark` is where it starts, `marks[i]` where each item starts."""

    mark: Mark | None = None
    marks: dict[Any, Mark]


def _marked(container: MarkedDict | MarkedList, mark: Mark | None, marks: dict[Any, Mark]) -> Any:
    container.mark, container.marks = mark, marks
    return container


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, timestamps left as strings (the section models parse them)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def read_yaml(path: str | Path, error: type[ScenarioError] = ScenarioError) -> Any:
    """The YAML document in the file at `path`, marked (see `MarkedDict`); None for an empty file.

    Raises `error` naming the file when it cannot be read or is not YAML.
    """
    try:
        loader = _Loader(Path(path).read_text(encoding="utf-8"))
        try:
            node = loader.get_single_node()
            return None if node is None else _data(loader, node, str(path), frozenset())
        finally:
            loader.dispose()
    except OSError as exc:
        raise error(str(path), f"cannot read a YAML scenario: {exc}") from None
    except yaml.YAMLError as exc:
        raise error(f"{path}: (YAML syntax)", str(exc)) from None


def _mark(file: str, node: yaml.Node) -> Mark:
    return Mark(file, node.start_mark.line + 1, node.start_mark.column + 1)


def _data(loader: _Loader, node: yaml.Node, file: str, within: frozenset[int]) -> Any:
    """The value of `node`, its mappings and lists marked; `within`: the nodes it sits in (aliases may loop)."""
    if id(node) in within:
        raise yaml.constructor.ConstructorError(None, None, "found an alias inside itself", node.start_mark)
    within |= {id(node)}
    if isinstance(node, yaml.SequenceNode):
        items = MarkedList(_data(loader, item, file, within) for item in node.value)
        return _marked(items, _mark(file, node), {i: _mark(file, item) for i, item in enumerate(node.value)})
    if not isinstance(node, yaml.MappingNode):
        return loader.construct_object(node, deep=True)
    loader.flatten_mapping(node)  # merge keys (<<: *anchor), as the safe loader reads them
    out = _marked(MarkedDict(), _mark(file, node), {})
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            out[key] = _data(loader, value_node, file, within)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "found an unhashable key", key_node.start_mark
            ) from None
        out.marks[key] = _mark(file, key_node)
    return out


def merge(base: Any, override: Any) -> Any:
    """`override` laid over `base`: mappings merge key by key, lists of named mappings (traffic
    sources) merge item by item on their `name` (new names are appended), anything else replaces.
    Marks follow their entries: a merged entry is where the overriding file wrote it."""
    if isinstance(base, Mapping) and isinstance(override, Mapping):
        out = _marked(MarkedDict(base), getattr(override, "mark", None), {**_marks(base), **_marks(override)})
        for k, v in override.items():
            out[k] = merge(base[k], v) if k in base else v
        return out
    if _named_items(base) and _named_items(override):
        items = {item["name"]: (item, mark) for item, mark in zip(base, _mark_list(base), strict=True)}
        for item, mark in zip(override, _mark_list(override), strict=True):
            items[item["name"]] = (merge(items[item["name"]][0], item) if item["name"] in items else item, mark)
        merged = [item for item, _ in items.values()]
        marks = {i: mark for i, (_, mark) in enumerate(items.values()) if mark is not None}
        return _marked(MarkedList(merged), getattr(override, "mark", None), marks)
    return override


def _marks(container: Any) -> dict[Any, Mark]:
    return dict(getattr(container, "marks", {}))


def _mark_list(items: list[Any]) -> list[Mark | None]:
    marks = _marks(items)
    return [marks.get(i) for i in range(len(items))]


def _named_items(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(i, Mapping) and isinstance(i.get("name"), str) for i in value)


def shown(value: object) -> str:
    """A value as a refusal shows it: numbers with their type ("int -3", "float 2.5", "bool True"),
    the rest as written in Python, cut short ("'many'", "[1, 2]", "None")."""
    if isinstance(value, int | float):
        return f"{type(value).__name__} {value!r}"
    text = repr(dict(value) if isinstance(value, Mapping) else list(value) if isinstance(value, list) else value)
    return text if len(text) <= 80 else text[:77] + "..."


def path_text(path: YamlPath) -> str:
    """A YAML path as refusals write it: keys joined by dots, list items by index, e.g.
    "traffic[2].rate", "network.links[0].latency"."""
    return "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in path).removeprefix(".")


@functools.cache
def _adapter(kind: Any) -> TypeAdapter[Any]:
    return TypeAdapter(kind)


@dataclass(frozen=True, slots=True)
class Document:
    """A YAML document, or one section of it, and where it was found.

    `where` is the file ("x.yaml") for a whole document, "FILE: PATH" for a section
    ("x.yaml: loadtest"); refusals name it, then the YAML path inside `data`.
    """

    data: Any
    where: str
    error: type[ScenarioError] = ScenarioError

    def validate(self, kind: type[T] | TypeAdapter[T]) -> T:
        """`data` validated as `kind` (a model, a dataclass or an adapter); raises `error` for the first problem."""
        adapter = kind if isinstance(kind, TypeAdapter) else _adapter(cast(Any, kind))
        try:
            return adapter.validate_python(self.data)
        except ValidationError as exc:
            raise self._refusal(exc.errors(include_url=False)[0]) from None

    def refuse(self, path: YamlPath, problem: str) -> ScenarioError:
        """The refusal of the entry at `path` (in `data`): raise it."""
        return self.error(self.locate(path), problem, self.mark_of(path))

    def expected(self, path: YamlPath, expected: str, got: object) -> ScenarioError:
        """The refusal "expected EXPECTED, got GOT" of the entry at `path`: raise it."""
        return self.refuse(path, f"expected {expected}, got {shown(got)}")

    def locate(self, path: YamlPath) -> str:
        """`where` followed by `path`, e.g. "x.yaml: traffic[2].rate", "x.yaml: loadtest.stages"."""
        text = path_text(path)
        if ": " not in self.where:
            return f"{self.where}: {text}" if text else self.where
        return self.where + ("" if text.startswith("[") or not text else ".") + text

    def mark_of(self, path: YamlPath) -> Mark | None:
        """Where the entry at `path` starts; where its innermost enclosing entry starts if it is missing."""
        data, mark = self.data, getattr(self.data, "mark", None)
        for step in path:
            marks = getattr(data, "marks", {})
            if step not in marks:
                break
            data, mark = data[step], marks[step]
        return mark

    def _refusal(self, error: ErrorDetails) -> ScenarioError:
        kind, ctx, value = error["type"], error.get("ctx", {}), error["input"]
        path = self._path(error["loc"], keep_last=kind == "missing")
        if kind.startswith("union_tag"):
            ctx = {**ctx, "key": ctx["discriminator"].strip("'")}
        if "key" in ctx:
            path.append(ctx["key"])
        if kind in ("missing", "missing_key", "union_tag_not_found"):
            return self.refuse(path, _MISSING)
        if kind == "unknown_key":
            return self.refuse(path, f"unknown {ctx['noun']}; expected one of: {ctx['allowed']}")
        if kind == "union_tag_invalid":
            expected, value = "one of " + ctx["expected_tags"].replace("'", ""), ctx["tag"]
        elif kind == "literal_error":
            expected = "one of " + ctx["expected"].replace("'", "").replace(" or ", ", ")
        elif kind == "expected":
            expected = ctx["expected"]
        elif kind in _MAPPING_ERRORS:
            expected = "a mapping"
        elif kind in ("list_type", "tuple_type"):
            expected = "a list"
        else:
            expected = error["msg"].removeprefix("Input should be ")
        return self.refuse(path, f"expected {expected}, got {ctx.get('got') or shown(value)}")

    def _path(self, loc: Sequence[str | int], *, keep_last: bool) -> list[str | int]:
        """The YAML path of pydantic's `loc`: steps not in the data (union tags, "[key]") left out."""
        path: list[str | int] = []
        data = self.data
        for i, step in enumerate(loc):
            inside = isinstance(data, Mapping) and step in data
            inside |= isinstance(data, list) and isinstance(step, int) and 0 <= step < len(data)
            if inside:
                path.append(step)
                data = data[step]
            elif keep_last and i == len(loc) - 1:
                path.append(step)
        return path
