"""What a value of a scenario file may be: the field types of every section's models.

Each type is `Annotated[python type, ...]` whose constraints say, in the words of our refusals,
what they expect ("a whole number >= 1"); a value they refuse is reported as "expected <that>,
got <the value>" (`scenarios.documents`). The same constraints go into the JSON Schema of the
format, so an editor checks what `crossroads simulate` checks.

One rule for numbers in every section: a number is a YAML integer or float, never a boolean or
a string, and it is finite: NaN and infinity are refused everywhere (no field allows them). A
whole number is a YAML integer (not 2.0, not true). A duration is seconds, or a string with a
unit: "90s", "15min", "2h", "1.5d".
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any

from annotated_types import Ge, GroupedMetadata, Gt, Le
from pydantic import (
    AfterValidator,
    AllowInfNan,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    Strict,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
    WrapValidator,
    model_validator,
)
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

__all__ = [
    "Amount",
    "Count",
    "DateTime",
    "Duration",
    "PositiveDuration",
    "PositiveNumber",
    "Section",
    "Share",
    "SignedDuration",
    "Text",
    "duration",
    "iso_date",
    "keys",
    "length",
    "matching",
    "number",
    "one_of",
    "refused",
    "seconds",
    "whole",
]

UNITS = {"s": 1.0, "sec": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = r"(-?)\s*((?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*(s|sec|min|h|d)?\s*"
_DATETIME = r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:Z|[+-]\d{2}:?\d{2})?"


def refused(expected: str, *, key: str | None = None, got: str | None = None) -> PydanticCustomError:
    """The error a validator raises: "expected EXPECTED, got GOT (or the value)", at `key` if given."""
    ctx = {"expected": expected, **({"key": key} if key else {}), **({"got": got} if got is not None else {})}
    return PydanticCustomError("expected", "expected {expected}", ctx)


def _expecting(phrase: str) -> WrapValidator:
    """Whatever the inner validation refuses is refused as "expected PHRASE" (for leaf values only)."""

    def wrap(value: Any, handler: Callable[[Any], Any]) -> Any:
        try:
            return handler(value)
        except ValidationError:
            raise refused(phrase) from None

    return WrapValidator(wrap)


class _Group(GroupedMetadata):
    """Several constraints as one item of `Annotated[...]`."""

    def __init__(self, *items: object) -> None:
        self.items = items

    def __iter__(self) -> Iterator[object]:
        return iter(self.items)


def whole(low: int = 0, high: int | None = None) -> _Group:
    """A whole number in low..high (no upper bound when high is None)."""
    if high is None:
        return _Group(Strict(), Ge(low), _expecting(f"a whole number >= {low}"))
    return _Group(Strict(), Ge(low), Le(high), _expecting(f"an integer {low}..{high:,}"))


def number(low: float = 0.0, *, above: bool = False, high: float | None = None, phrase: str | None = None) -> _Group:
    """A finite number >= low (> low when `above`), <= high when given; `phrase` names it otherwise."""
    limits = (Gt(low) if above else Ge(low), *(() if high is None else (Le(high),)))
    bound = f"{'>' if above else '>='} {low:g}" + ("" if high is None else f" and <= {high:g}")
    return _Group(Strict(), AllowInfNan(False), *limits, _expecting(phrase or f"a number {bound}"))


def seconds(value: object) -> object:
    """A duration written with a unit ("90s", "15min", "2h", "-5min") in seconds; other values as they are."""
    match = re.fullmatch(_DURATION, value) if isinstance(value, str) else None
    if match is None:
        return value
    sign, figure, unit = match.groups()
    return float(sign + figure) * UNITS[unit or "s"]


def duration(*, above: bool = False, signed: bool = False) -> _Group:
    """Seconds: a number, or a string with a unit s, min, h or d; >= 0 (> 0 when `above`) unless `signed`."""
    limits = () if signed else (Gt(0) if above else Ge(0),)
    figure = {"type": "number"} if signed else {"type": "number", ("exclusiveMinimum" if above else "minimum"): 0}
    text = {"type": "string", "pattern": f"^{_DURATION if signed else _DURATION.removeprefix('(-?)')}$"}
    bound = "" if signed else " > 0 s" if above else " >= 0 s"
    phrase = f"a duration{bound} (seconds, or a number with a unit s, min, h or d)"
    return _Group(
        BeforeValidator(seconds),
        Strict(),
        AllowInfNan(False),
        *limits,
        WithJsonSchema({"anyOf": [figure, text]}),
        _expecting(phrase),
    )


def one_of(choices: tuple[str, ...]) -> _Group:
    """One of the strings `choices`."""

    def check(value: str) -> str:
        if value not in choices:
            raise ValueError(value)
        return value

    return _Group(
        Strict(),
        AfterValidator(check),
        WithJsonSchema({"enum": list(choices)}),
        _expecting("one of " + ", ".join(choices)),
    )


def matching(pattern: str, phrase: str) -> _Group:
    """A string matching the regular expression `pattern`."""
    return _Group(StringConstraints(strict=True, pattern=pattern), _expecting(phrase))


def _date(value: object) -> object:
    return dt.date.fromisoformat(value) if isinstance(value, str) and re.fullmatch(r"[\d-]+", value) else value


def iso_date(low: dt.date, high: dt.date) -> _Group:
    """A day between low and high: a date, or an ISO string YYYY-MM-DD."""
    pattern = WithJsonSchema({"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"})
    phrase = f"an ISO date (YYYY-MM-DD) between {low} and {high}"
    return _Group(BeforeValidator(_date), Strict(), Ge(low), Le(high), pattern, _expecting(phrase))


def _datetime(value: object) -> object:
    if isinstance(value, str) and re.fullmatch(_DATETIME, value):
        value = dt.datetime.fromisoformat(value)
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)
    return dt.datetime(value.year, value.month, value.day) if isinstance(value, dt.date) else value


@dataclass(frozen=True, eq=False)
class _Check:
    """A check of the value as written, before pydantic reads it; `schema` is added to its JSON Schema."""

    check: Callable[[Any], Any]
    schema: Mapping[str, Any]

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_before_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> dict[str, Any]:
        return {**handler(schema), **self.schema}


def _known_keys(names: tuple[str, ...], noun: str, required: bool, value: Any) -> Any:
    if not isinstance(value, Mapping):
        return value
    for key in value:
        if key not in names:
            ctx = {"key": key, "noun": noun, "allowed": ", ".join(sorted(names))}
            raise PydanticCustomError("unknown_key", "unknown {noun}; expected one of: {allowed}", ctx)
    for key in names if required else ():
        if key not in value:
            raise PydanticCustomError("missing_key", "missing", {"key": key})
    return value


def keys(names: tuple[str, ...], noun: str = "key", *, required: bool = False) -> _Check:
    """A mapping whose keys are `names` (all of them when `required`); an unknown key is refused
    naming the allowed ones ("unknown NOUN; expected one of: ...")."""
    schema = {"propertyNames": {"enum": list(names)}, **({"required": list(names)} if required else {})}
    return _Check(partial(_known_keys, names, noun, required), schema)


def _sized(low: int, high: int | None, phrase: str, value: Any) -> Any:
    if isinstance(value, list | Mapping) and not low <= len(value) <= (len(value) if high is None else high):
        raise refused(phrase)
    return value


def length(low: int, high: int | None, phrase: str, *, mapping: bool = False) -> _Check:
    """A list (a mapping when `mapping`) of low..high items (no upper bound when high is None)."""
    what = "Properties" if mapping else "Items"
    schema = {f"min{what}": low, **({} if high is None else {f"max{what}": high})}
    return _Check(partial(_sized, low, high, phrase), schema)


class Section(BaseModel):
    """A mapping of a scenario file with known keys: an unknown one is refused naming the allowed ones.

    Attribute docstrings become the descriptions an editor shows from the JSON Schema.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True, defer_build=True)

    @model_validator(mode="before")
    @classmethod
    def _known(cls, data: Any) -> Any:
        return _known_keys(tuple(f.alias or n for n, f in cls.model_fields.items()), "key", False, data)


Text = Annotated[str, Strict(), _expecting("a string")]
DateTime = Annotated[
    dt.datetime,
    BeforeValidator(_datetime),
    Strict(),
    WithJsonSchema({"type": "string", "pattern": f"^{_DATETIME}$"}),
    _expecting("an ISO date or date-time, e.g. 2023-03-01T00:00"),
]
Count = Annotated[int, whole()]
Amount = Annotated[float, number()]
PositiveNumber = Annotated[float, number(above=True)]
Share = Annotated[float, number(high=1.0, phrase="a share between 0 and 1")]
Duration = Annotated[float, duration()]
PositiveDuration = Annotated[float, duration(above=True)]
SignedDuration = Annotated[float, duration(signed=True)]  # negative: before the start it counts from
