"""The what-if scenario: a YAML file, validated completely before anything runs.

Validate-then-build: `load_scenario` reads the file, checks every key, type and value, fills the
defaults and returns a frozen `Scenario`; nothing is simulated from a file that was refused.
A refusal is a `ScenarioError` (a ValueError) whose message names the file, the YAML path of the
offending value and what was expected there, e.g.

    scenarios/x.yaml: traffic[2].rate: expected a number >= 0, got -3

A scenario may extend another (`extends: baseline_2023.yaml`): see `load_scenario`.

The `world:` section is not validated here: it belongs to the synthetic world, whose own parser
(`agencies.spec.WorldSpec.from_mapping`) is handed in by the caller, so that one place validates
the world and this floor imports nothing of the floors above it.

Times are simulated seconds. Wherever a duration is expected, a number (seconds) or a string with
a unit is accepted: "90s", "15min", "2h", "1d".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, NewType, TypeVar, overload

import yaml

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

# The message kinds, by the names of crossroads.domain.Kind (a test keeps the two in sync; this
# floor may not import the core).
KINDS: tuple[str, ...] = ("CONSULTATION", "DIMONA", "DMFA", "DRS", "INTEGRATION", "DEINTEGRATION", "MUTATION")
# The classes of node of the network built from the synthetic world.
NODE_CLASSES: tuple[str, ...] = ("core", "hub", "agency", "portal", "batch", "secretariat", "authentication")
LINK_CLASSES: tuple[str, ...] = ("core_hub", "core_agency", "hub_agency", "access")
ACTIONS: tuple[str, ...] = ("fail", "restore", "capacity", "surge")

DEFAULT_INTERVAL = Seconds(3600.0)
DEFAULT_POOL = 2048
DEFAULT_START = dt.datetime(2023, 3, 1, 0, 0)
_UNITS = {"s": 1.0, "sec": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


class ScenarioError(ValueError):
    """A scenario refused: the message names the file, the YAML path and what was expected."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where


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


# ------------------------------------------------------------------ readers of YAML values


@dataclass(frozen=True, slots=True)
class _At:
    """Where a value sits: the file and its YAML path."""

    file: str
    path: str = ""

    def key(self, k: str) -> _At:
        return _At(self.file, f"{self.path}.{k}" if self.path else k)

    def index(self, i: int) -> _At:
        return _At(self.file, f"{self.path}[{i}]")

    def __str__(self) -> str:
        return f"{self.file}: {self.path or '(top level)'}"

    def refuse(self, expected: str, got: object) -> ScenarioError:
        return ScenarioError(str(self), f"expected {expected}, got {got!r}")


def _mapping(value: object, at: _At, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise at.refuse("a mapping", value)
    for k in value:
        if k not in required and k not in optional:
            allowed = ", ".join(sorted((*required, *optional)))
            raise ScenarioError(str(at.key(str(k))), f"unknown key; expected one of: {allowed}")
    for k in required:
        if k not in value:
            raise ScenarioError(str(at.key(k)), "missing; this key is required")
    return dict(value)


def _free_mapping(value: object, at: _At) -> dict[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise at.refuse("a mapping with names as keys", value)
    return dict(value)


def _list(value: object, at: _At) -> list[Any]:
    if not isinstance(value, list):
        raise at.refuse("a list", value)
    return value


def _number(value: object, at: _At, *, low: float = 0.0, strict: bool = False, high: float | None = None) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and value == value
    if ok and (value > low if strict else value >= low) and (high is None or value <= high):  # type: ignore[operator]
        return float(value)  # type: ignore[arg-type]
    bound = f"> {low:g}" if strict else f">= {low:g}"
    raise at.refuse(f"a number {bound}" + (f" and <= {high:g}" if high is not None else ""), value)


def _integer(value: object, at: _At, *, low: int = 0) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= low:
        return value
    raise at.refuse(f"a whole number >= {low}", value)


def _text(value: object, at: _At, choices: tuple[str, ...] | None = None) -> str:
    """A string; one of `choices` unless they are None (an empty tuple allows nothing)."""
    if not isinstance(value, str) or (choices is not None and value not in choices):
        expected = "a string" if choices is None else "one of " + ", ".join(choices) if choices else "nothing here"
        raise at.refuse(expected, value)
    return value


def _duration(value: object, at: _At, *, low: float = 0.0, strict: bool = False) -> Seconds:
    if isinstance(value, str):
        number = value.rstrip("abcdefghijklmnopqrstuvwxyz").strip()
        unit = value[len(value.rstrip("abcdefghijklmnopqrstuvwxyz")) :]
        try:
            value = float(number) * _UNITS[unit or "s"]
        except (KeyError, ValueError):
            raise at.refuse("a duration: seconds, or a number with a unit s, min, h or d", value) from None
    expected = at.refuse(f"a duration {'>' if strict else '>='} {low:g} s", value)
    try:
        return Seconds(_number(value, at, low=low, strict=strict))
    except ScenarioError:
        raise expected from None


def _signed_duration(value: object, at: _At) -> Seconds:
    if isinstance(value, str) and value.startswith("-"):
        return Seconds(-_duration(value[1:], at))
    if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
        return Seconds(-_duration(-value, at))
    return _duration(value, at)


def _datetime(value: object, at: _At) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value).replace(tzinfo=None)
        except ValueError:
            pass
    raise at.refuse("an ISO date or date-time, e.g. 2023-03-01T00:00", value)


# ------------------------------------------------------------------ the parts of a scenario


def _distribution(value: object, at: _At) -> Distribution:
    families = ("exponential", "deterministic", "lognormal", "uniform")
    if not isinstance(value, Mapping) or "dist" not in value:
        raise at.refuse("a distribution: a mapping with dist: " + ", ".join(families), value)
    family = _text(value["dist"], at.key("dist"), families)
    if family == "exponential":
        m = _mapping(value, at, ("dist", "mean"))
        return Exponential(mean=_duration(m["mean"], at.key("mean"), strict=True))
    if family == "deterministic":
        m = _mapping(value, at, ("dist", "value"))
        return Deterministic(value=_duration(m["value"], at.key("value")))
    if family == "lognormal":
        m = _mapping(value, at, ("dist", "mean", "cv"))
        return Lognormal(mean=_duration(m["mean"], at.key("mean"), strict=True), cv=_number(m["cv"], at.key("cv")))
    m = _mapping(value, at, ("dist", "low", "high"))
    low = _duration(m["low"], at.key("low"))
    return Uniform(low=low, high=_duration(m["high"], at.key("high"), low=low))


def _service(value: object, at: _At, base: Service | None = None) -> Service:
    keys = ("servers", "time", "per_work", "queue_limit")
    m = _mapping(value, at, () if base else ("servers", "time"), keys if base else keys[2:])
    per_work = {
        str(k): _distribution(v, at.key("per_work").key(str(k)))
        for k, v in _free_mapping(m.get("per_work", {}), at.key("per_work")).items()
    }
    limit = m.get("queue_limit", base.queue_limit if base else None)
    return Service(
        servers=_integer(m["servers"], at.key("servers"), low=1) if "servers" in m else base.servers,  # type: ignore[union-attr]
        time=_distribution(m["time"], at.key("time")) if "time" in m else base.time,  # type: ignore[union-attr]
        per_work={**(base.per_work if base else {}), **per_work},
        queue_limit=None if limit is None else _integer(limit, at.key("queue_limit"), low=1),
    )


def _link(value: object, at: _At) -> LinkSpec:
    m = _mapping(value, at, (), ("latency", "loss", "bandwidth", "from", "to"))
    bandwidth = m.get("bandwidth")
    return LinkSpec(
        latency=_distribution(m["latency"], at.key("latency")) if "latency" in m else ZERO,
        loss=_number(m.get("loss", 0.0), at.key("loss"), high=1.0),
        bandwidth=None if bandwidth is None else _number(bandwidth, at.key("bandwidth"), strict=True),
    )


def _explicit_network(value: object, at: _At) -> ExplicitNetwork:
    m = _mapping(value, at, ("model", "stations"), ("links",))
    stations = {
        name: _service(spec, at.key("stations").key(name))
        for name, spec in _free_mapping(m["stations"], at.key("stations")).items()
    }
    if not stations:
        raise at.key("stations").refuse("at least one station", m["stations"])
    links: dict[tuple[str, str], LinkSpec] = {}
    for i, item in enumerate(_list(m.get("links", []), at.key("links"))):
        where = at.key("links").index(i)
        ends = _mapping(item, where, ("from", "to"), ("latency", "loss", "bandwidth"))
        a = _text(ends["from"], where.key("from"), tuple(stations))
        b = _text(ends["to"], where.key("to"), tuple(stations))
        links[(a, b)] = _link(item, where)
    return ExplicitNetwork(stations=stations, links=links)


def _world_network(value: object, at: _At) -> WorldNetwork:
    m = _mapping(value, at, ("model", "classes", "access"), ("nodes", "links"))
    classes = _mapping(m["classes"], at.key("classes"), NODE_CLASSES)
    services = {c: _service(classes[c], at.key("classes").key(c)) for c in NODE_CLASSES}
    nodes = {
        name: _service(spec, at.key("nodes").key(name), base=services["agency"])
        for name, spec in _free_mapping(m.get("nodes", {}), at.key("nodes")).items()
    }
    links = _mapping(m.get("links", {}), at.key("links"), (), LINK_CLASSES)
    access = _mapping(m["access"], at.key("access"), ("portal", "batch", "secretariat"))
    return WorldNetwork(
        classes=services,
        nodes=nodes,
        links={c: _link(links[c], at.key("links").key(c)) if c in links else LinkSpec() for c in LINK_CLASSES},
        access={
            c: tuple(
                _text(x, at.key("access").key(c).index(i)) for i, x in enumerate(_list(v, at.key("access").key(c)))
            )
            for c, v in access.items()
        },
    )


def _network(value: object, at: _At) -> ExplicitNetwork | WorldNetwork:
    if not isinstance(value, Mapping) or "model" not in value:
        raise at.refuse("a mapping with model: explicit or world", value)
    model = _text(value["model"], at.key("model"), ("explicit", "world"))
    return _explicit_network(value, at) if model == "explicit" else _world_network(value, at)


def _levels(value: object, at: _At, n: int) -> tuple[float, ...]:
    items = _list(value, at)
    if len(items) != n:
        raise at.refuse(f"a list of {n} numbers", value)
    levels = tuple(_number(x, at.index(i)) for i, x in enumerate(items))
    if sum(levels) <= 0:
        raise at.refuse("at least one level > 0", value)
    return levels


def _profile(value: object, at: _At) -> Profile:
    m = _mapping(value, at, (), ("daily", "weekly", "monthly"))
    spans = {"daily": 24, "weekly": 7, "monthly": 12}
    return Profile(**{k: _levels(m[k], at.key(k), n) for k, n in spans.items() if k in m})


def _weights(value: object, at: _At) -> dict[str, float]:
    weights = {k: _number(v, at.key(k)) for k, v in _free_mapping(value, at).items()}
    if weights and sum(weights.values()) <= 0:
        raise at.refuse("weights with a positive sum", value)
    return weights


def _rate(m: Mapping[str, Any], at: _At) -> float:
    given = [k for k in ("rate", "per_day", "per_year") if k in m]
    if len(given) != 1:
        raise ScenarioError(str(at), f"expected exactly one of rate (per second), per_day, per_year; got {given}")
    per = {"rate": 1.0, "per_day": 86400.0, "per_year": 365.0 * 86400.0}[given[0]]
    return _number(m[given[0]], at.key(given[0])) / per


def _source(value: object, at: _At, network: ExplicitNetwork | WorldNetwork, profiles: Mapping[str, Profile]) -> Source:
    optional = ("rate", "per_day", "per_year", "profile", "multiplier", "size", "headings", "copies")
    if isinstance(network, ExplicitNetwork):
        m = _mapping(value, at, ("name", "kind", "path"), optional)
        stations = tuple(network.stations)
        path = tuple(
            _text(s, at.key("path").index(i), stations) for i, s in enumerate(_list(m["path"], at.key("path")))
        )
        if not path:
            raise at.key("path").refuse("at least one station", m["path"])
        extra: dict[str, Any] = {"path": path}
    else:
        m = _mapping(value, at, ("name", "kind"), (*optional, "senders", "datasets", "auth"))
        extra = {
            "senders": _weights(m.get("senders", {}), at.key("senders")),
            "datasets": _weights(m.get("datasets", {}), at.key("datasets")),
            "auth": _weights(m.get("auth", {}), at.key("auth")),
        }
    profile = m.get("profile")
    return Source(
        name=_text(m["name"], at.key("name")),
        kind=_text(m["kind"], at.key("kind"), KINDS),
        rate=_rate(m, at),
        profile=None if profile is None else _text(profile, at.key("profile"), tuple(profiles)),
        multiplier=_number(m.get("multiplier", 1.0), at.key("multiplier")),
        size=None if m.get("size") is None else _integer(m["size"], at.key("size")),
        headings=_integer(m.get("headings", 0), at.key("headings")),
        copies=_integer(m.get("copies", 1), at.key("copies"), low=1),
        **extra,
    )


def _event(value: object, at: _At, names: _Names) -> Event:
    if not isinstance(value, Mapping) or "action" not in value:
        raise at.refuse("a mapping with action: " + ", ".join(ACTIONS), value)
    action = _text(value["action"], at.key("action"), ACTIONS)
    links = ("link", "link_class")
    targets = {"fail": ("node", "class", *links), "restore": ("node", "class", *links), "capacity": ("node", "class")}
    if action == "surge":
        m = _mapping(value, at, ("at", "action", "multiplier"), ("source", "until"))
        source = None if m.get("source") is None else _text(m["source"], at.key("source"), names.sources)
        start = _signed_duration(m["at"], at.key("at"))
        until = None if m.get("until") is None else _signed_duration(m["until"], at.key("until"))
        if until is not None and until <= start:
            raise at.key("until").refuse(f"a time after at ({start:g} s)", m["until"])
        multiplier = _number(m["multiplier"], at.key("multiplier"))
        return Event(at=start, action="surge", source=source, multiplier=multiplier, until=until)
    m = _mapping(
        value, at, ("at", "action"), (*targets[action], "servers") if action == "capacity" else targets[action]
    )
    chosen = [k for k in targets[action] if k in m]
    if len(chosen) != 1:
        raise ScenarioError(str(at), f"expected exactly one of {', '.join(targets[action])}; got {chosen}")
    servers = _integer(m["servers"], at.key("servers")) if action == "capacity" and "servers" in m else None
    if action == "capacity" and servers is None:
        raise ScenarioError(str(at.key("servers")), "missing; a capacity change sets servers")
    return Event(
        at=_signed_duration(m["at"], at.key("at")),
        action=action,  # type: ignore[arg-type]
        node=names.node(m["node"], at.key("node")) if "node" in m else None,
        node_class=_text(m["class"], at.key("class"), names.classes) if "class" in m else None,
        link=names.link(m["link"], at.key("link")) if "link" in m else None,
        link_class=_text(m["link_class"], at.key("link_class"), names.link_classes) if "link_class" in m else None,
        servers=servers,
    )


def _failure(value: object, at: _At, names: _Names) -> Failure:
    targets = ("node", "class", "link", "link_class")
    m = _mapping(value, at, ("mtbf", "mttr"), targets)
    if sum(k in m for k in targets) != 1:
        raise ScenarioError(str(at), f"expected exactly one of {', '.join(targets)}")
    return Failure(
        node=names.node(m["node"], at.key("node")) if "node" in m else None,
        node_class=_text(m["class"], at.key("class"), names.classes) if "class" in m else None,
        link=names.link(m["link"], at.key("link")) if "link" in m else None,
        link_class=_text(m["link_class"], at.key("link_class"), names.link_classes) if "link_class" in m else None,
        mtbf=_duration(m["mtbf"], at.key("mtbf"), strict=True),
        mttr=_duration(m["mttr"], at.key("mttr"), strict=True),
    )


@dataclass(frozen=True, slots=True)
class _Names:
    """What events and failures may name. World node ids are known only once the world is built,
    so they are checked then (before the run); explicit stations are checked here."""

    stations: tuple[str, ...] | None
    classes: tuple[str, ...]
    sources: tuple[str, ...]
    link_classes: tuple[str, ...] = LINK_CLASSES

    def node(self, value: object, at: _At) -> str:
        return _text(value, at, self.stations)

    def link(self, value: object, at: _At) -> tuple[str, str]:
        ends = _list(value, at)
        if len(ends) != 2:
            raise at.refuse("a link as a list of two node names [from, to]", value)
        return self.node(ends[0], at.index(0)), self.node(ends[1], at.index(1))


# ------------------------------------------------------------------ the whole file

_TOP_REQUIRED = ("name", "seed", "replications", "duration", "network", "traffic")
_TOP_OPTIONAL = (
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
    "loadtest",  # the load-test part: validated by loadtests.spec when the scenario is load-tested
)


@overload
def parse_scenario(data: object, file: str) -> Scenario[None]: ...
@overload
def parse_scenario(data: object, file: str, world_parser: WorldParser[W]) -> Scenario[W]: ...
def parse_scenario(data: object, file: str, world_parser: WorldParser[W] | None = None) -> Scenario[W] | Scenario[None]:
    """Validate `data` (a parsed YAML document from `file`) and build the Scenario.

    `world_parser(mapping, where)` validates the `world:` section; it is required when the
    network model is "world". Raises ScenarioError (or the world parser's ValueError).
    """
    at = _At(file)
    m = _mapping(data, at, _TOP_REQUIRED, _TOP_OPTIONAL)
    network = _network(m["network"], at.key("network"))
    profiles = {
        k: _profile(v, at.key("profiles").key(k))
        for k, v in _free_mapping(m.get("profiles", {}), at.key("profiles")).items()
    }
    traffic = tuple(
        _source(v, at.key("traffic").index(i), network, profiles)
        for i, v in enumerate(_list(m["traffic"], at.key("traffic")))
    )
    _unique([s.name for s in traffic], at.key("traffic"))
    explicit = isinstance(network, ExplicitNetwork)
    names = _Names(
        tuple(network.stations) if isinstance(network, ExplicitNetwork) else None,
        () if explicit else NODE_CLASSES,
        tuple(s.name for s in traffic),
        ("link",) if explicit else LINK_CLASSES,
    )
    return Scenario(
        name=_text(m["name"], at.key("name")),
        description=_text(m.get("description", ""), at.key("description")),
        source_file=file,
        seed=_integer(m["seed"], at.key("seed")),
        replications=_integer(m["replications"], at.key("replications"), low=1),
        warmup=_duration(m.get("warmup", 0), at.key("warmup")),
        duration=_duration(m["duration"], at.key("duration"), strict=True),
        interval=_duration(m.get("interval", DEFAULT_INTERVAL), at.key("interval"), strict=True),
        start=_datetime(m.get("start", DEFAULT_START), at.key("start")),
        network=network,
        traffic=traffic,
        profiles=profiles,
        deadlines={
            k: _duration(v, at.key("deadlines").key(k), strict=True) for k, v in _kind_map(m, "deadlines", at).items()
        },
        sizes={k: _integer(v, at.key("sizes").key(k)) for k, v in _kind_map(m, "sizes", at).items()},
        events=tuple(
            _event(v, at.key("events").index(i), names)
            for i, v in enumerate(_list(m.get("events", []), at.key("events")))
        ),
        failures=tuple(
            _failure(v, at.key("failures").index(i), names)
            for i, v in enumerate(_list(m.get("failures", []), at.key("failures")))
        ),
        world=_world(m, at, world_parser, explicit),
        pool=_integer(m.get("pool", DEFAULT_POOL), at.key("pool"), low=1),
        heading_seconds=_duration(m.get("heading_seconds", 0), at.key("heading_seconds")),
    )


def _kind_map(m: Mapping[str, Any], key: str, at: _At) -> dict[str, Any]:
    return _mapping(m.get(key, {}), at.key(key), (), KINDS)


def _unique(names: list[str], at: _At) -> None:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            raise at.index(i).key("name").refuse("a name not used by another source", name)
        seen.add(name)


def _world(m: Mapping[str, Any], at: _At, parser: WorldParser[W] | None, explicit: bool) -> W | None:
    if "world" not in m:
        if not explicit:
            raise ScenarioError(str(at.key("world")), "missing; the world network model is built from a world")
        return None
    if parser is None:
        raise ScenarioError(str(at.key("world")), "no world parser was given to validate this section")
    return parser(m["world"], str(at.key("world")))


def parse_duration(value: object, where: str) -> Seconds:
    """A duration (seconds, or a string with a unit: "90s", "15min", "2h", "1d"), ScenarioError if not."""
    return _duration(value, _At(where))


def merge(base: Any, override: Any) -> Any:
    """`override` laid over `base`: mappings merge key by key, lists of named mappings (traffic
    sources) merge item by item on their `name` (new names are appended), anything else replaces."""
    if isinstance(base, Mapping) and isinstance(override, Mapping):
        out = dict(base)
        for k, v in override.items():
            out[k] = merge(base[k], v) if k in base else v
        return out
    if _named_items(base) and _named_items(override):
        out_items = {item["name"]: item for item in base}
        for item in override:
            out_items[item["name"]] = merge(out_items[item["name"]], item) if item["name"] in out_items else item
        return list(out_items.values())
    return override


def _named_items(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(i, Mapping) and isinstance(i.get("name"), str) for i in value)


def _read(path: Path, chain: tuple[Path, ...] = ()) -> tuple[Any, str]:
    """The YAML document at `path` with its `extends:` parents merged under it, and its label."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ScenarioError(f"{path}: (YAML syntax)", str(e)) from None
    if not isinstance(data, Mapping) or "extends" not in data:
        return data, str(path)
    at = _At(str(path), "extends")
    parent = path.parent / _text(data["extends"], at)
    if parent.resolve() in chain or parent.resolve() == path.resolve():
        raise at.refuse("a scenario that does not extend itself (directly or not)", data["extends"])
    if not parent.is_file():
        raise at.refuse("the file name of another scenario, relative to this one", data["extends"])
    base, base_label = _read(parent, (*chain, path.resolve()))
    child = {k: v for k, v in data.items() if k != "extends"}
    return merge(base, child), f"{path} (extends {base_label})"


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
