"""The what-if scenario: a YAML file, validated completely before anything runs.

Validate-then-build: `load_scenario` reads the file, checks every key, type and value (the models
of `scenarios.sections`), fills the defaults and builds a frozen `Scenario`, checking what one
section says of another; nothing is simulated from a file that was refused. A refusal is a
`ScenarioError` (a ValueError) whose message names the file, the YAML path of the offending
value, what was expected there and where the entry starts, e.g.

    scenarios/x.yaml: traffic[2].rate: expected a number >= 0, got int -3 (line 40, column 5)

A scenario may extend another (`extends: baseline_2023.yaml`): see `load_scenario`.

The `world:` section is not validated here: it belongs to the synthetic world, whose own parser
(`agencies.spec.WorldSpec.from_mapping`) is handed in by the caller, so that one place validates
the world and this floor imports nothing of the floors above it. The same goes for `loadtest:`.
The format is published as a JSON Schema (`scenarios.sections.scenario_json_schema`, `crossroads
schema`), so that an editor completes and checks scenario files.

Times are simulated seconds. Wherever a duration is expected, a number (seconds) or a string with
a unit is accepted: "90s", "15min", "2h", "1d".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, NewType, TypeVar, overload

from scenarios import sections as s
from scenarios.documents import Document, ScenarioError, YamlPath, merge, read_yaml
from scenarios.provenance import Provenance, check_sources, provenance, speed_numbers
from scenarios.sections import ACTIONS, DEFAULT_POOL, DEFAULT_START, KINDS, LINK_CLASSES, NODE_CLASSES, ScenarioFile
from scenarios.values import Duration

__all__ = [
    "ACTIONS",
    "DEFAULT_INTERVAL",
    "DEFAULT_POOL",
    "DEFAULT_START",
    "KINDS",
    "NODE_CLASSES",
    "Deterministic",
    "Distribution",
    "Event",
    "ExplicitNetwork",
    "Exponential",
    "Failure",
    "LinkSpec",
    "Lognormal",
    "Profile",
    "Provenance",
    "Scenario",
    "ScenarioError",
    "Seconds",
    "Service",
    "Source",
    "Uniform",
    "WorldNetwork",
    "load_scenario",
    "merge",
    "parse_duration",
    "parse_scenario",
]

Seconds = NewType("Seconds", float)
W = TypeVar("W")
WorldParser = Callable[[Mapping[str, Any], str], W]
DEFAULT_INTERVAL = Seconds(s.DEFAULT_INTERVAL)


# ------------------------------------------------------------------ the validated scenario


@dataclass(frozen=True, kw_only=True, slots=True)
class Exponential:
    mean: float


@dataclass(frozen=True, kw_only=True, slots=True)
class Deterministic:
    value: float

    @property
    def mean(self) -> float:
        return self.value


@dataclass(frozen=True, kw_only=True, slots=True)
class Lognormal:
    mean: float
    cv: float  # coefficient of variation: standard deviation / mean


@dataclass(frozen=True, kw_only=True, slots=True)
class Uniform:
    low: float
    high: float

    @property
    def mean(self) -> float:
        return (self.low + self.high) / 2


Distribution = Exponential | Deterministic | Lognormal | Uniform
ZERO = Deterministic(value=0.0)


@dataclass(frozen=True, kw_only=True, slots=True)
class Service:
    """How a station works: `servers` in parallel, one service time per message.

    `per_work` overrides the service time for a message kind ("DMFA") or an authentication key
    ("eid"); `queue_limit` bounds the waiting line (None: unbounded; arrivals beyond it are lost).
    """

    servers: int
    time: Distribution
    per_work: Mapping[str, Distribution] = field(default_factory=dict)
    queue_limit: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class LinkSpec:
    """A link: latency per message, loss probability, bandwidth in bytes/s (None: no limit)."""

    latency: Distribution = ZERO
    loss: float = 0.0
    bandwidth: float | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ExplicitNetwork:
    """A network written out station by station (queueing exercises, small what-ifs)."""

    stations: Mapping[str, Service]
    links: Mapping[tuple[str, str], LinkSpec]


@dataclass(frozen=True, kw_only=True, slots=True)
class WorldNetwork:
    """The network built from the synthetic world: one station per node, set per node class.

    `classes` gives every node class its service; `nodes` overrides it for named nodes (agency
    ids, "CORE", "FAS"); `links` per link class; `access` names the agency categories that are
    the portal, the batch channel and the social secretariats.
    """

    classes: Mapping[str, Service]
    nodes: Mapping[str, Service]
    links: Mapping[str, LinkSpec]
    access: Mapping[str, tuple[str, ...]]


@dataclass(frozen=True, kw_only=True, slots=True)
class Profile:
    """Relative intensity by hour of day, day of week (Monday first) and month; each has mean 1."""

    daily: tuple[float, ...] = (1.0,) * 24
    weekly: tuple[float, ...] = (1.0,) * 7
    monthly: tuple[float, ...] = (1.0,) * 12


@dataclass(frozen=True, kw_only=True, slots=True)
class Source:
    """A stream of exchanges arriving as a (time-varying) Poisson process.

    `rate` is the mean number of arrivals per second over a year, before `multiplier` and the
    profile. An explicit network names the `path` of stations; in the world network, `senders`
    weighs the agency categories that send, and the routing decision finds the destinations.
    """

    name: str
    kind: str
    rate: float
    path: tuple[str, ...] = ()
    senders: Mapping[str, float] = field(default_factory=dict)
    datasets: Mapping[str, float] = field(default_factory=dict)
    profile: str | None = None
    multiplier: float = 1.0
    auth: Mapping[str, float] = field(default_factory=dict)  # key -> share, for portal logins
    size: int | None = None  # bytes per message; None: the scenario's size for the kind
    headings: int = 0  # headings the declarant fills in per declaration (burden)
    copies: int = 1  # separate declarations per event (the legacy way: one per institution)


@dataclass(frozen=True, kw_only=True, slots=True)
class Event:
    """A timed change, `at` seconds after the end of the warm-up (negative: during it).

    fail/restore a `node` or a `link` (or every node of a `node_class`, every link of a
    `link_class`); capacity: set `servers`
    of a node or class; surge: multiply `source`'s rate (every source when None) by
    `multiplier` until `until`.
    """

    at: Seconds
    action: Literal["fail", "restore", "capacity", "surge"]
    node: str | None = None
    node_class: str | None = None
    link: tuple[str, str] | None = None
    link_class: str | None = None
    servers: int | None = None
    source: str | None = None
    multiplier: float | None = None
    until: Seconds | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Failure:
    """Random failures: each matching node or link fails after Exp(mtbf) up-time and is repaired
    after Exp(mttr), over and over. Exactly one of node, node_class, link, link_class is set."""

    mtbf: Seconds
    mttr: Seconds
    node: str | None = None
    node_class: str | None = None
    link: tuple[str, str] | None = None
    link_class: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Scenario(Generic[W]):
    name: str
    description: str
    source_file: str
    seed: int
    replications: int
    warmup: Seconds
    duration: Seconds
    interval: Seconds
    start: dt.datetime  # calendar time at the end of the warm-up (the start of the measured window)
    network: ExplicitNetwork | WorldNetwork
    traffic: tuple[Source, ...]
    profiles: Mapping[str, Profile] = field(default_factory=dict)
    deadlines: Mapping[str, Seconds] = field(default_factory=dict)
    sizes: Mapping[str, int] = field(default_factory=dict)
    events: tuple[Event, ...] = ()
    failures: tuple[Failure, ...] = ()
    world: W | None = None
    pool: int = DEFAULT_POOL  # routed exchanges drawn per source from the world
    heading_seconds: float = 0.0  # the declarant's time per heading filled in (burden)
    # every service time and latency the file writes, assumed or calibrated (scenarios.provenance)
    provenance: tuple[Provenance, ...] = ()


# ------------------------------------------------------------------ building the validated file


@overload
def parse_scenario(data: object, file: str) -> Scenario[None]: ...
@overload
def parse_scenario(data: object, file: str, world_parser: WorldParser[W]) -> Scenario[W]: ...
def parse_scenario(data: object, file: str, world_parser: WorldParser[W] | None = None) -> Scenario[W] | Scenario[None]:
    """Validate `data` (a parsed YAML document from `file`) and build the Scenario.

    `world_parser(mapping, where)` validates the `world:` section; it is required when the
    network model is "world". Raises ScenarioError (or the world parser's ValueError).
    """
    doc = Document(data, file)
    valid = doc.validate(ScenarioFile[Any, Any])
    network = _network(doc, valid.network)
    numbers = speed_numbers(valid.network)
    sourced = provenance(numbers, check_sources(doc, valid.sources, numbers))
    explicit = isinstance(network, ExplicitNetwork)
    traffic = tuple(
        _source(doc, ("traffic", i), x, network, tuple(valid.profiles)) for i, x in enumerate(valid.traffic)
    )
    _unique(doc, [x.name for x in traffic])
    stations = tuple(network.stations) if isinstance(network, ExplicitNetwork) else None
    names = _Names(doc, stations, (() if explicit else NODE_CLASSES), tuple(x.name for x in traffic), explicit)
    failures = [(("failures", i), x) for i, x in enumerate(valid.failures)]
    return Scenario(
        **valid.model_dump(include=_AS_WRITTEN),
        source_file=file,
        network=network,
        traffic=traffic,
        profiles={k: Profile(**p.model_dump(exclude_none=True)) for k, p in valid.profiles.items()},
        events=tuple(_event(names, ("events", i), e) for i, e in enumerate(valid.events)),
        failures=tuple(Failure(mtbf=x.mtbf, mttr=x.mttr, **names.targets(at, x)) for at, x in failures),  # type: ignore[arg-type]
        world=_world(doc, valid.world is not None, world_parser, explicit),
        provenance=sourced,
    )


_AS_WRITTEN = {"name", "description", "seed", "replications", "warmup", "duration", "interval", "start"}
_AS_WRITTEN |= {"deadlines", "sizes", "pool", "heading_seconds"}
_FAMILIES: dict[str, Callable[..., Distribution]] = {
    "exponential": Exponential,
    "deterministic": Deterministic,
    "lognormal": Lognormal,
    "uniform": Uniform,
}


def _distribution(written: s.Exponential | s.Deterministic | s.Lognormal | s.Uniform) -> Distribution:
    return _FAMILIES[written.dist](**written.model_dump(exclude={"dist"}))


def _service(written: s.Service | s.NodeService, base: Service | None = None) -> Service:
    """The station `written`; what a node's station leaves out comes from `base`, its class's."""
    per_work = {k: _distribution(d) for k, d in written.per_work.items()}
    return Service(
        servers=written.servers or base.servers,  # type: ignore[union-attr]
        time=base.time if written.time is None else _distribution(written.time),  # type: ignore[union-attr]
        per_work={**(base.per_work if base else {}), **per_work},
        queue_limit=written.queue_limit
        if base is None or "queue_limit" in written.model_fields_set
        else base.queue_limit,
    )


def _link(written: s.Link) -> LinkSpec:
    latency = ZERO if written.latency is None else _distribution(written.latency)
    return LinkSpec(latency=latency, loss=written.loss, bandwidth=written.bandwidth)


def _network(doc: Document, written: s.ExplicitNetwork | s.WorldNetwork) -> ExplicitNetwork | WorldNetwork:
    if isinstance(written, s.ExplicitNetwork):
        names, links = tuple(written.stations), {}
        for i, link in enumerate(written.links):
            start = _choose(doc, ("network", "links", i, "from"), link.start, names)
            links[(start, _choose(doc, ("network", "links", i, "to"), link.end, names))] = _link(link)
        return ExplicitNetwork(stations={k: _service(v) for k, v in written.stations.items()}, links=links)
    classes = {c: _service(written.classes[c]) for c in NODE_CLASSES}
    return WorldNetwork(
        classes=classes,
        nodes={name: _service(node, classes["agency"]) for name, node in written.nodes.items()},
        links={c: _link(written.links[c]) if c in written.links else LinkSpec() for c in LINK_CLASSES},
        access=written.access.model_dump(),
    )


def _source(doc: Document, at: YamlPath, written: s.Source, network: Any, profiles: tuple[str, ...]) -> Source:
    explicit = isinstance(network, ExplicitNetwork)
    for key in ("senders", "datasets", "auth") if explicit else ("path",):
        if key in written.model_fields_set:
            raise doc.refuse(
                (*at, key), f"unknown key in a source of the {'explicit' if explicit else 'world'} network"
            )
    if explicit and not written.path:
        raise doc.expected((*at, "path"), "at least one station", written.path)
    stations = tuple(network.stations) if explicit else ()
    path = tuple(_choose(doc, (*at, "path", i), x, stations) for i, x in enumerate(written.path or ()))
    rate = next(getattr(written, k) / per for k, per in s.PER_SECOND.items() if getattr(written, k) is not None)
    profile = None if written.profile is None else _choose(doc, (*at, "profile"), written.profile, profiles)
    plain = written.model_dump(
        include={"name", "kind", "senders", "datasets", "auth", "multiplier", "size", "headings"}
    )
    return Source(**plain, copies=written.copies, rate=rate, path=path, profile=profile)


@dataclass(frozen=True, slots=True)
class _Names:
    """What events and failures may name. World node ids are known only once the world is built,
    so they are checked then (before the run); explicit stations are checked here."""

    doc: Document
    stations: tuple[str, ...] | None
    classes: tuple[str, ...]
    sources: tuple[str, ...]
    explicit: bool

    def node(self, at: YamlPath, value: str) -> str:
        return value if self.stations is None else _choose(self.doc, at, value, self.stations)

    def targets(self, at: YamlPath, written: s.Target) -> dict[str, Any]:
        """The node, node_class, link and link_class of an Event or a Failure, checked."""
        link, link_class = getattr(written, "link", None), getattr(written, "link_class", None)
        links = ("link",) if self.explicit else LINK_CLASSES
        return {
            "node": None if written.node is None else self.node((*at, "node"), written.node),
            "node_class": None
            if written.node_class is None
            else _choose(self.doc, (*at, "class"), written.node_class, self.classes),
            "link": None if link is None else tuple(self.node((*at, "link", i), n) for i, n in enumerate(link)),
            "link_class": None if link_class is None else _choose(self.doc, (*at, "link_class"), link_class, links),
        }


def _event(names: _Names, at: YamlPath, written: s.Outage | s.Capacity | s.Surge) -> Event:
    if isinstance(written, s.Surge):
        source = None if written.source is None else _choose(names.doc, (*at, "source"), written.source, names.sources)
        until = None if written.until is None else Seconds(written.until)
        return Event(at=Seconds(written.at), action="surge", source=source, multiplier=written.multiplier, until=until)
    servers = written.servers if isinstance(written, s.Capacity) else None
    return Event(at=Seconds(written.at), action=written.action, servers=servers, **names.targets(at, written))


def _choose(doc: Document, at: YamlPath, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise doc.expected(at, "one of " + ", ".join(choices) if choices else "nothing here", value)
    return value


def _unique(doc: Document, names: list[str]) -> None:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            raise doc.expected(("traffic", i, "name"), "a name not used by another source", name)
        seen.add(name)


def _world(doc: Document, given: bool, parser: WorldParser[W] | None, explicit: bool) -> W | None:
    if not given:
        if not explicit:
            raise doc.refuse(("world",), "missing; the world network model is built from a world")
        return None
    if parser is None:
        raise doc.refuse(("world",), "no world parser was given to validate this section")
    return parser(doc.data["world"], doc.locate(("world",)))  # the section as read: its marks locate refusals


def parse_duration(value: object, where: str) -> Seconds:
    """A duration (seconds, or a string with a unit: "90s", "15min", "2h", "1d"), ScenarioError if not."""
    return Seconds(Document(value, where).validate(Duration))  # type: ignore[arg-type]


def _read(path: Path, chain: tuple[Path, ...] = ()) -> tuple[Any, str]:
    """The YAML document at `path` with its `extends:` parents merged under it, and its label."""
    data = read_yaml(path)
    if not isinstance(data, dict) or "extends" not in data:
        return data, str(path)
    doc, parent_name = Document(data, str(path)), data.pop("extends")
    if not isinstance(parent_name, str):
        raise doc.expected(("extends",), "the file name of another scenario, relative to this one", parent_name)
    parent = path.parent / parent_name
    if parent.resolve() in chain or parent.resolve() == path.resolve():
        raise doc.expected(("extends",), "a scenario that does not extend itself (directly or not)", parent_name)
    if not parent.is_file():
        raise doc.expected(("extends",), "the file name of another scenario, relative to this one", parent_name)
    base, base_label = _read(parent, (*chain, path.resolve()))
    return merge(base, data), f"{path} (extends {base_label})"


@overload
def load_scenario(path: str | Path) -> Scenario[None]: ...
@overload
def load_scenario(path: str | Path, world_parser: WorldParser[W]) -> Scenario[W]: ...
def load_scenario(path: str | Path, world_parser: WorldParser[W] | None = None) -> Scenario[W] | Scenario[None]:
    """Read, validate and build the scenario in the YAML file at `path` (see `parse_scenario`).

    A scenario may start from another: `extends: other.yaml` (relative to this file) takes that
    scenario and lays this file over it (see `merge`): e.g. change the start, add events, or give
    a traffic source of the same name a new multiplier.
    """
    data, label = _read(Path(path))
    return parse_scenario(data, label) if world_parser is None else parse_scenario(data, label, world_parser)
