"""What both network models share when a scenario is compiled into a Plan.

Message classes, service times per class, sources' arrival segments and year scaling, timed
actions and random failures resolved to station and link indices.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from network.plan import Action, FailurePlan, Route, SourcePlan
from network.profiles import Clock, segments, window_expected, year_expected
from scenarios.schema import KINDS, Distribution, Event, Scenario, ScenarioError, Service, Source

__all__ = [
    "Targets",
    "actions",
    "common",
    "deadlines",
    "drain",
    "failures",
    "message_classes",
    "resolve",
    "service_times",
    "source_plan",
    "surges",
]

DEFAULT_SIZE = 2048  # bytes of a message whose kind has no size in the scenario


def message_classes(sources: Sequence[Source]) -> tuple[tuple[int, str], ...]:
    """Every (kind index, authentication key) a source can emit, in a stable order."""
    found: dict[tuple[int, str], None] = {}
    for s in sources:
        for key in s.auth or {"": 1.0}:
            found[(KINDS.index(s.kind), key)] = None
    return tuple(found)


def service_times(service: Service, classes: Sequence[tuple[int, str]]) -> tuple[Distribution, ...]:
    """A station's service time per message class: by authentication key, else kind, else default."""
    per = service.per_work
    return tuple(per.get(key) or per.get(KINDS[kind]) or service.time for kind, key in classes)


def deadlines(scenario: Scenario[Any]) -> tuple[float | None, ...]:
    return tuple(scenario.deadlines.get(k) for k in KINDS)


def surges(scenario: Scenario[Any]) -> tuple[tuple[float, float | None, str], ...]:
    """(from, until, label) of every surge, in simulated time: for marking the report's figures."""
    return tuple(
        (
            scenario.warmup + e.at,
            None if e.until is None else scenario.warmup + e.until,
            f"surge x{e.multiplier:g}" + (f" of {e.source}" if e.source else ""),
        )
        for e in scenario.events
        if e.action == "surge"
    )


def common(scenario: Scenario[Any]) -> dict[str, Any]:
    """The Plan fields that come straight from the scenario, whatever its network model."""
    return {
        "name": scenario.name,
        "description": scenario.description,
        "seed": scenario.seed,
        "replications": scenario.replications,
        "warmup": scenario.warmup,
        "duration": scenario.duration,
        "interval": scenario.interval,
        "drain": drain(scenario),
        "start": scenario.start,
        "deadlines": deadlines(scenario),
        "surges": surges(scenario),
        "heading_seconds": scenario.heading_seconds,
        "provenance": scenario.provenance,
    }


def drain(scenario: Scenario[Any]) -> float:
    """How long to follow window messages after the window: the longest deadline, else the duration."""
    return max(scenario.deadlines.values(), default=scenario.duration)


def source_plan(
    scenario: Scenario[Any], index: int, routes: tuple[Route, ...], classes: Sequence[tuple[int, str]]
) -> SourcePlan:
    """Compile traffic source `index` of `scenario` with its pool of routes."""
    src = scenario.traffic[index]
    clock = Clock(scenario.start, scenario.warmup)
    horizon = scenario.warmup + scenario.duration + drain(scenario)
    profile = scenario.profiles.get(src.profile) if src.profile else None
    rate = src.rate * src.multiplier
    surges = [e for e in scenario.events if e.action == "surge"]
    parts = segments(src.name, rate, profile, surges, clock, horizon)
    kind = KINDS.index(src.kind)
    auth = src.auth or {"": 1.0}
    return SourcePlan(
        name=src.name,
        kind=kind,
        classes=tuple(classes.index((kind, key)) for key in auth),
        class_weights=tuple(auth.values()),
        segments=parts,
        routes=routes,
        size=src.size if src.size is not None else scenario.sizes.get(src.kind, DEFAULT_SIZE),
        copies=src.copies,
        headings=src.headings,
        window_expected=window_expected(parts, scenario.warmup, scenario.warmup + scenario.duration),
        year_expected=year_expected(rate, profile, scenario.start.year),
    )


Targets = Callable[[Event, str], tuple[tuple[int, ...], tuple[int, ...]]]  # event -> (stations, links)


def actions(scenario: Scenario[Any], targets: Targets) -> tuple[Action, ...]:
    """The scenario's fail/restore/capacity events at simulated times, resolved by `targets`."""
    out = []
    for i, e in enumerate(scenario.events):
        if e.action == "surge":
            continue
        where = f"{scenario.source_file}: events[{i}]"
        stations, links = targets(e, where)
        what = e.node or (
            f"every {e.node_class or e.link_class}"
            if e.node_class or e.link_class
            else "link " + " - ".join(e.link or ())
        )
        label = f"{what}: {e.action}" + (f" to {e.servers} servers" if e.action == "capacity" else "")
        out.append(
            Action(
                at=scenario.warmup + e.at,
                op=e.action,
                label=label,
                stations=stations,
                links=links,
                servers=e.servers or 0,
            )
        )
    return tuple(sorted(out, key=lambda a: a.at))


def failures(scenario: Scenario[Any], targets: Targets) -> tuple[FailurePlan, ...]:
    out: list[FailurePlan] = []
    for i, f in enumerate(scenario.failures):
        probe = Event(
            at=scenario.warmup,
            action="fail",
            node=f.node,
            node_class=f.node_class,
            link=f.link,
            link_class=f.link_class,
        )
        stations, links = targets(probe, f"{scenario.source_file}: failures[{i}]")
        out.extend(FailurePlan(station=s, mtbf=f.mtbf, mttr=f.mttr) for s in stations)
        out.extend(FailurePlan(link=k, mtbf=f.mtbf, mttr=f.mttr) for k in links)
    return tuple(out)


def resolve(
    event: Event,
    where: str,
    nodes: Mapping[str, int],
    classes: Mapping[str, tuple[int, ...]],
    links: Mapping[tuple[str, str], int],
    link_classes: Mapping[str, tuple[int, ...]],
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The station and link indices an event names, or ScenarioError naming what is unknown."""
    if event.node is not None:
        if event.node not in nodes:
            raise ScenarioError(f"{where}.node", f"no node {event.node!r} in this network")
        return (nodes[event.node],), ()
    if event.node_class is not None:
        return classes.get(event.node_class, ()), ()
    if event.link_class is not None:
        return (), link_classes.get(event.link_class, ())
    assert event.link is not None
    found = [links[e] for e in (event.link, event.link[::-1]) if e in links]
    if not found:
        raise ScenarioError(f"{where}.link", f"no link between {event.link[0]!r} and {event.link[1]!r}")
    return (), tuple(found)
