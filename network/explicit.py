"""Compile a scenario whose network is written out station by station (model: explicit).

The queueing exercises (M/M/1, M/M/c, tandem Jackson networks) and small what-ifs use it: each
source sends every message along its fixed `path`; there is no routing decision.
"""

from __future__ import annotations

import itertools
from typing import Any

from network.compile import actions, common, failures, message_classes, resolve, service_times, source_plan
from network.plan import NO_LINK, Hop, LinkPlan, Plan, Route, StationPlan
from scenarios.schema import Event, ExplicitNetwork, Scenario

__all__ = ["plan_explicit"]


def plan_explicit(scenario: Scenario[Any]) -> Plan:
    """The Plan of a scenario with an explicit network (ScenarioError if its events name unknown parts)."""
    network = scenario.network
    assert isinstance(network, ExplicitNetwork), "plan_explicit needs network model: explicit"
    names = list(network.stations)
    index = {name: i for i, name in enumerate(names)}
    classes = message_classes(scenario.traffic)
    stations = tuple(
        StationPlan(
            name=name,
            node_class="station",
            servers=service.servers,
            times=service_times(service, classes),
            queue_limit=service.queue_limit,
        )
        for name, service in network.stations.items()
    )
    link_index = {ends: i for i, ends in enumerate(network.links)}
    links = tuple(
        LinkPlan(ends=(index[a], index[b]), link_class="link", spec=spec) for (a, b), spec in network.links.items()
    )

    def path(stops: tuple[str, ...]) -> tuple[Hop, ...]:
        hops = [(NO_LINK, index[stops[0]])]
        hops += [(link_index.get((a, b), NO_LINK), index[b]) for a, b in itertools.pairwise(stops)]
        return tuple(hops)

    def targets(event: Event, where: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
        every_link = {"link": tuple(range(len(links)))}
        return resolve(event, where, index, {"station": tuple(range(len(names)))}, link_index, every_link)

    sources = tuple(
        source_plan(scenario, i, (Route(submit=path(src.path), groups=(index[src.path[-1]],)),), classes)
        for i, src in enumerate(scenario.traffic)
    )
    return Plan(
        **common(scenario),
        classes=classes,
        stations=stations,
        links=links,
        sources=sources,
        groups=tuple(names),
        actions=actions(scenario, targets),
        failures=failures(scenario, targets),
        drawing={"nodes": [{"id": n, "class": "station"} for n in names], "edges": [list(e) for e in network.links]},
    )
