"""The scenario file as written: pydantic models of its mappings, and the names it may use.

Validation only: every key, type and value (`scenarios.values`), and what one mapping asks of
itself (exactly one rate, until after at). `scenarios.schema` builds the `Scenario` from a
validated `ScenarioFile`, checking what one section says of another. The models also make the
JSON Schema of the format. `world:` and `loadtest:` are typed by the caller
(`ScenarioFile[WorldSpec, LoadtestSection]`): they belong to the floors above, which validate them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, ConfigDict, Field, model_validator

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
    number,
    one_of,
    refused,
    whole,
)

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
