"""The scenario file as written: pydantic models of its mappings, and the names it may use.

Validation only: every key, type and value (`scenarios.values`), and what one mapping asks of
itself (exactly one rate, until after at). `scenarios.schema` builds the `Scenario` from a
validated `ScenarioFile`, checking what one section says of another. The models also make the
JSON Schema of the format (`scenario_json_schema`). `world:` and `loadtest:` are typed by the
caller (`ScenarioFile[WorldSpec, LoadtestSection]`): the floors above validate them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.json_schema import GenerateJsonSchema

from scenarios.values import (
    Amount,
    Count,
    DateTime,
    Duration,
    PositiveDuration,
    PositiveNumber,
    Section,
    SignedDuration,
    Text,
    keys,
    length,
    matching,
    number,
    one_of,
    refused,
    whole,
)

# the models (Source, Service, ...) are read by scenarios.schema as `sections.X`
__all__ = ["ACTIONS", "DEFAULT_INTERVAL", "DEFAULT_POOL", "DEFAULT_START", "KINDS", "LINK_CLASSES", "NODE_CLASSES"]
__all__ += ["PER_SECOND", "ScenarioFile", "scenario_json_schema"]

W = TypeVar("W")
L = TypeVar("L")

# The message kinds, by the names of crossroads.domain.Kind (a test keeps the two in sync; this
# floor may not import the core).
KINDS: tuple[str, ...] = ("CONSULTATION", "DIMONA", "DMFA", "DRS", "INTEGRATION", "DEINTEGRATION", "MUTATION")
# The classes of node of the network built from the synthetic world.
NODE_CLASSES: tuple[str, ...] = ("core", "hub", "agency", "portal", "batch", "secretariat", "authentication")
LINK_CLASSES: tuple[str, ...] = ("core_hub", "core_agency", "hub_agency", "access")
ACTIONS: tuple[str, ...] = ("fail", "restore", "capacity", "surge")
DEFAULT_INTERVAL = 3600.0
DEFAULT_POOL = 2048
DEFAULT_START = dt.datetime(2023, 3, 1, 0, 0)
PER_SECOND = {"rate": 1.0, "per_day": 86400.0, "per_year": 365.0 * 86400.0}  # a source's rate, per ...
Servers = Annotated[int, whole(1)]
# a YAML path under network: keys joined by dots, list items by index ("network.links[0].latency")
SourcePath = Annotated[
    str, matching(r"^network(\.[^.\[\]]+|\[\d+\])*$", "a YAML path under network, e.g. network.classes.core.time")
]
SourceText = Annotated[str, matching(r"\S", "a text saying where the number comes from")]


def _positive_sum(values: Any) -> Any:
    if values and sum(values.values() if isinstance(values, Mapping) else values) <= 0:
        raise refused("weights with a positive sum" if isinstance(values, Mapping) else "at least one level > 0")
    return values


_POSITIVE_SUM = AfterValidator(_positive_sum)
Levels = Annotated[tuple[Amount, ...], _POSITIVE_SUM]


def _exactly_one_of(keys: tuple[str, ...]) -> dict[str, Any]:
    """The JSON Schema of "exactly one of `keys`" (validators check it too)."""
    return {"oneOf": [{"required": [k]} for k in keys]}


# ------------------------------------------------------------------ distributions, stations, links
class Exponential(Section):
    """Exponential times (memoryless): their mean only."""

    dist: Literal["exponential"]
    mean: PositiveDuration


class Deterministic(Section):
    """The same time every time."""

    dist: Literal["deterministic"]
    value: Duration


class Lognormal(Section):
    """Lognormal times: their mean and coefficient of variation (standard deviation / mean)."""

    dist: Literal["lognormal"]
    mean: PositiveDuration
    cv: Amount


class Uniform(Section):
    """Times spread evenly between low and high."""

    dist: Literal["uniform"]
    low: Duration
    high: Duration

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        if self.high < self.low:
            raise refused(f"a duration >= {self.low:g} s", key="high", got=f"{self.high:g}")
        return self


Distribution = Annotated[Exponential | Deterministic | Lognormal | Uniform, Field(discriminator="dist")]


class Service(Section):
    """A station: `servers` in parallel, one service `time` per message."""

    servers: Servers
    time: Distribution
    per_work: Mapping[str, Distribution] = {}
    """Service times per message kind ("DMFA") or authentication key ("eid"), instead of `time`."""
    queue_limit: Servers | None = None
    """The longest waiting line; arrivals beyond it are lost (none: unbounded)."""


class NodeService(Section):
    """A named node's station: what is not given comes from its class (agency)."""

    servers: Servers | None = None
    time: Distribution | None = None
    per_work: Mapping[str, Distribution] = {}
    queue_limit: Servers | None = None


class Link(Section):
    """A link: latency per message, loss probability, bandwidth in bytes/s (none: no limit)."""

    latency: Distribution | None = None
    loss: Annotated[float, number(high=1.0)] = 0.0
    bandwidth: PositiveNumber | None = None


class StationLink(Link):
    """A link between two stations of an explicit network."""

    start: Text = Field(alias="from")
    end: Text = Field(alias="to")


class ExplicitNetwork(Section):
    """A network written out station by station (queueing exercises, small what-ifs)."""

    model: Literal["explicit"]
    stations: Annotated[Mapping[str, Service], length(1, None, "at least one station", mapping=True)]
    links: tuple[StationLink, ...] = ()


class Access(Section):
    """The agency categories that are the access points of employers and citizens."""

    portal: tuple[Text, ...]
    batch: tuple[Text, ...]
    secretariat: tuple[Text, ...]


class WorldNetwork(Section):
    """The network built from the synthetic world: one station per node, set per node class."""

    model: Literal["world"]
    access: Access
    classes: Annotated[Mapping[str, Service], keys(NODE_CLASSES, "node class", required=True)]
    nodes: Mapping[str, NodeService] = {}
    """Named nodes (agency ids, "CORE", "FAS") whose station differs from their class's."""
    links: Annotated[Mapping[str, Link], keys(LINK_CLASSES, "link class")] = {}


# ------------------------------------------------------------------ traffic
class Profile(Section):
    """Relative intensity by hour of day, day of week (Monday first) and month; each is scaled to mean 1."""

    daily: Annotated[Levels, length(24, 24, "a list of 24 numbers")] | None = None
    weekly: Annotated[Levels, length(7, 7, "a list of 7 numbers")] | None = None
    monthly: Annotated[Levels, length(12, 12, "a list of 12 numbers")] | None = None


class Source(Section):
    """A stream of exchanges arriving as a (time-varying) Poisson process.

    An explicit network names the `path` of stations; in the world network, `senders` weighs the
    agency categories that send, and the routing decision finds the destinations.
    """

    model_config = ConfigDict(json_schema_extra=_exactly_one_of(tuple(PER_SECOND)))

    name: Text
    kind: Annotated[str, one_of(KINDS)]
    rate: Amount | None = None
    """Mean arrivals per second over the year (or per_day, or per_year: exactly one of the three)."""
    per_day: Amount | None = None
    per_year: Amount | None = None
    path: tuple[Text, ...] | None = None
    senders: Annotated[Mapping[str, Amount], _POSITIVE_SUM] = {}
    datasets: Annotated[Mapping[str, Amount], _POSITIVE_SUM] = {}
    auth: Annotated[Mapping[str, Amount], _POSITIVE_SUM] = {}
    """Authentication keys of portal logins and their shares, e.g. {eid: 0.35, itsme: 0.65}."""
    profile: Text | None = None
    multiplier: Amount = 1.0
    size: Count | None = None
    """Bytes per message (none: the scenario's size for the kind)."""
    headings: Count = 0
    """Headings the declarant fills in per declaration (burden)."""
    copies: Servers = 1
    """Separate declarations per event (the legacy way: one per institution)."""

    @model_validator(mode="after")
    def _one_rate(self) -> Source:
        given = [k for k in PER_SECOND if getattr(self, k) is not None]
        if len(given) != 1:
            raise refused("exactly one of rate (per second), per_day, per_year", got=str(given))
        return self


# ------------------------------------------------------------------ events and failures
_TARGETS = ("node", "node_class", "link", "link_class")


def _one_target_schema(schema: dict[str, Any], model: type[Any]) -> None:
    schema.update(_exactly_one_of(tuple(model.target_fields())))


class Target(Section):
    """What an event or a failure hits: exactly one of its target keys."""

    model_config = ConfigDict(json_schema_extra=_one_target_schema)

    node: Text | None = None
    node_class: Annotated[str, one_of(NODE_CLASSES)] | None = Field(None, alias="class")

    @classmethod
    def target_fields(cls) -> dict[str, str]:
        """The YAML keys of the targets, and their attributes."""
        return {f.alias or k: k for k, f in cls.model_fields.items() if k in _TARGETS}

    @model_validator(mode="after")
    def _one_target(self) -> Target:
        chosen = [key for key, attr in self.target_fields().items() if getattr(self, attr) is not None]
        if len(chosen) != 1:
            raise refused("exactly one of " + ", ".join(self.target_fields()), got=str(chosen))
        return self


class LinkTarget(Target):
    link: tuple[Text, Text] | None = None
    """A link as [from, to]."""
    link_class: Annotated[str, one_of((*LINK_CLASSES, "link"))] | None = None
    """Every link of a class ("link" in an explicit network)."""


class Outage(LinkTarget):
    """A node or link (or all of a class) fails, or is restored, `at` seconds after the warm-up."""

    at: SignedDuration
    action: Literal["fail", "restore"]


class Capacity(Target):
    """The `servers` of a node or a node class change `at` seconds after the warm-up."""

    at: SignedDuration
    action: Literal["capacity"]
    servers: Count


class Surge(Section):
    """The rate of `source` (of every source when none) is multiplied from `at` until `until`."""

    at: SignedDuration
    action: Literal["surge"]
    multiplier: Amount
    source: Text | None = None
    until: SignedDuration | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Surge:
        if self.until is not None and self.until <= self.at:
            raise refused(f"a time after at ({self.at:g} s)", key="until", got=f"{self.until:g}")
        return self


Event = Annotated[Outage | Capacity | Surge, Field(discriminator="action")]


class Failure(LinkTarget):
    """Random failures: up for Exp(mtbf), down for Exp(mttr), over and over."""

    mtbf: PositiveDuration
    mttr: PositiveDuration


# ------------------------------------------------------------------ the whole file
class ScenarioFile(Section, Generic[W, L]):
    """A what-if scenario: the network, its traffic and what happens to it; times in seconds or
    with a unit ("90s", "15min", "2h", "1d"). A file holding only `world:` (and `loadtest:`) is
    a world for the live network and its load tests."""

    name: Text
    description: Text = ""
    seed: Count
    replications: Servers
    warmup: Duration = 0.0
    """Simulated time before the measured window (the network starts empty)."""
    duration: PositiveDuration
    """The measured window."""
    interval: PositiveDuration = DEFAULT_INTERVAL
    """The width of one interval of the time series."""
    start: DateTime = DEFAULT_START
    """Calendar time at the end of the warm-up (the start of the measured window)."""
    pool: Servers = DEFAULT_POOL
    """Routed exchanges drawn per source from the world."""
    heading_seconds: Duration = 0.0
    """The declarant's time per heading filled in (burden)."""
    world: W | None = None
    """The synthetic world the messages are about."""
    network: Annotated[ExplicitNetwork | WorldNetwork, Field(discriminator="model")]
    deadlines: Annotated[Mapping[str, PositiveDuration], keys(KINDS, "kind")] = {}
    """Per message kind: the time within which a message counts as available."""
    sizes: Annotated[Mapping[str, Count], keys(KINDS, "kind")] = {}
    """Per message kind: bytes per message."""
    profiles: Mapping[str, Profile] = {}
    traffic: tuple[Source, ...]
    events: tuple[Event, ...] = ()
    failures: tuple[Failure, ...] = ()
    loadtest: L | None = None
    """What a live load test of this world sends, how hard, and what breaks."""
    sources: Mapping[SourcePath, SourceText] = Field({}, json_schema_extra={"additionalProperties": False})
    """Where numbers of the network come from: the YAML path of a service time or latency (or of a
    section holding some, e.g. network.links) -> a text, e.g. "calibrated: runs/cal/calibrated.yaml,
    core.cpu_ms (2026-12-05)". The report calls them calibrated, every other one assumed."""


# ------------------------------------------------------------------ the format as a JSON Schema
class _Untitled(GenerateJsonSchema):
    """No "title" on every property: editors show the descriptions."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def _overlay(schema: Any) -> Any:
    """`schema` with nothing required, for a file that `extends` another: it sets only what it changes."""
    if isinstance(schema, list):
        return [_overlay(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key == "$ref":
            out[key] = value.replace("#/$defs/", "#/$defs/overlay.")
        elif key not in ("required", "dependentRequired", "discriminator", "minItems", "minProperties"):
            out["anyOf" if key == "oneOf" else key] = _overlay(value)
    return out


def scenario_json_schema(file_model: type[BaseModel]) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a scenario file, from `file_model`: a `ScenarioFile` whose
    world and load-test sections are typed, e.g. `ScenarioFile[WorldSpec, LoadtestSection]`.

    A file with `extends:` is an overlay: the same keys, none required. Any other file holds a
    whole simulation scenario, or only the sections without which nothing simulates (`world:`,
    `loadtest:`): one of the simulation keys brings the others that are required.
    """
    whole = file_model.model_json_schema(schema_generator=_Untitled)
    required = whole.pop("required")
    whole["title"] = "A scenario file of the crossroads testbed"
    whole["dependentRequired"] = {key: required for key in whole["properties"] if key not in ("world", "loadtest")}
    defs = {**whole.pop("$defs"), "ScenarioFile": whole}
    overlays = {f"overlay.{name}": _overlay(schema) for name, schema in defs.items()}
    overlay = overlays["overlay.ScenarioFile"]
    overlay["properties"] = {"extends": _EXTENDS, **overlay["properties"]}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$comment": "Generated by `crossroads schema`: do not edit.",
        "title": whole["title"],
        "if": {"required": ["extends"]},
        "then": {"$ref": "#/$defs/overlay.ScenarioFile"},
        "else": {"$ref": "#/$defs/ScenarioFile"},
        "$defs": defs | overlays,
    }


_EXTENDS = {
    "type": "string",
    "description": "The scenario this one starts from (a file name relative to this file); this file is laid over it.",
}
