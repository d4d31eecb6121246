"""Compile a scenario of the world network (model: world) into a Plan.

Every node of the graph (network/graph.py) becomes a station served as its node class says
(or as the scenario's `nodes` override for it), every edge a link of its link class. Each
traffic source gets a pool of routes: requests drawn from the world (agencies/exchanges/traffic.py),
each decided by the core's own `crossroads.routing.route()`, and turned into paths:

  submit     sender -> ... -> core (citizens start at the authentication service, FAS); the
             sender's node serves it only if it is an access point (portal, batch channel,
             social secretariat) or FAS: an agency's own station models the work of answering
  deliveries core -> [hub ->] destination, one per destination of the decision;
             for a consultation the answer continues back: destination -> core -> sender
             (served at the sender only if an access point, like the submit leg).
  refused    (Denied / Unroutable) a single delivery core -> sender carrying the refusal;
             not a functional message.
A routed decision without destinations (an integration applied by the core alone) ends at the
core and counts as one functional message.

The pool is drawn from its own stream, SeedSequence([seed, POOL_STREAM]), the same for all
replications; replications differ in which pool entries arrive when.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from agencies import sectors
from agencies.exchanges import Drawn, RequestMaker
from agencies.world import World
from crossroads.domain import Kind
from crossroads.routing import Decision, Routed, route
from network.compile import actions, common, failures, message_classes, resolve, service_times, source_plan
from network.graph import AUTHENTICATION, CORE, Network, build_graph
from network.layout import grouped_children, radial_layout
from network.plan import NO_LINK, Hop, LinkPlan, Plan, Route, StationPlan, passing
from scenarios.schema import Event, Scenario, ScenarioError, Service, WorldNetwork

__all__ = ["POOL_STREAM", "WorldPlanner", "plan_world", "sector_label"]

POOL_STREAM = 0x504F4F4C  # "POOL": the pools' stream is apart from every replication's
SERVING_ENDS = frozenset({"portal", "batch", "secretariat", "authentication"})


def sector_label(code: int | None) -> str:
    """A readable name of a sector code of the world (agencies/sectors.py), e.g. "social integration (17)"."""
    if code is None:
        return "network"
    for name, value in vars(sectors).items():
        if name.startswith("SECTOR_") and value == code:
            return f"{name[7:].lower().replace('_', ' ')} ({code})"
    return f"sector {code}"


class WorldPlanner:
    """The network of one world under one scenario, and how a decision becomes a Route."""

    def __init__(self, scenario: Scenario[Any], world: World) -> None:
        network = scenario.network
        assert isinstance(network, WorldNetwork), "plan_world needs network model: world"
        self.scenario, self.world, self.spec = scenario, world, network
        self._check_access(network.access)
        self.requests = RequestMaker(world)
        self.net: Network = build_graph(world.agencies, network.access)
        self.index = {name: i for i, name in enumerate(self.net.nodes)}
        edges = list(self.net.graph.edges)
        self.links = {**{(a, b): i for i, (a, b) in enumerate(edges)}, **{(b, a): i for i, (a, b) in enumerate(edges)}}
        self.edges = edges
        sector_of = {n: self.net.graph.nodes[n]["sector"] for n in self.net.nodes}
        self.groups = tuple(dict.fromkeys(sector_label(sector_of[n]) for n in self.net.nodes))
        self.group_of = {n: self.groups.index(sector_label(sector_of[n])) for n in self.net.nodes}
        for name in network.nodes:
            if name not in self.index:
                raise ScenarioError(
                    f"{scenario.source_file}: network.nodes.{name}", "no node of that name in the world network"
                )

    def _check_access(self, access: Mapping[str, tuple[str, ...]]) -> None:
        known = self.world.knowledge.by_category
        for cls, categories in access.items():
            for c in categories:
                if c not in known:
                    raise ScenarioError(
                        f"{self.scenario.source_file}: network.access.{cls}",
                        f"no agency category {c!r}; known: {', '.join(sorted(known))}",
                    )

    # ---------------------------------------------------------------- paths

    def _served_at(self, node: str, end: bool) -> int:
        """The station code of `node` as a path's first or last hop: only access points and the
        authentication service serve what their own users send and receive; an agency's own
        requests and the answers it gets back are not its station's work."""
        i = self.index[node]
        return i if not end or self.net.node_class(node) in SERVING_ENDS else passing(i)

    def hops(self, nodes: Sequence[str], *, sender_first: bool = False, sender_last: bool = False) -> tuple[Hop, ...]:
        """The hops of a path through `nodes`; the sender at either end is served only if an access point."""
        first: list[Hop] = [(NO_LINK, self._served_at(nodes[0], sender_first))]
        rest = [(self.links[(a, b)], self.index[b]) for a, b in itertools.pairwise(nodes)]
        if sender_last and rest:
            rest[-1] = (rest[-1][0], self._served_at(nodes[-1], True))
        return tuple(first + rest)

    def to_route(self, drawn: Drawn, decision: Decision, start: str) -> Route:
        """The Route of one decided request; `start` is the node the exchange enters at."""
        request = drawn.request
        sender = str(request.sender)
        submit = self.hops(self.net.to_core(start), sender_first=True)
        back = self.net.from_core(sender)
        if not isinstance(decision, Routed):
            refusal = self.hops(back, sender_last=True)
            return Route(submit=submit, deliveries=(refusal,), groups=(self.group_of[sender],), functional=False)
        if not decision.destinations:
            return Route(submit=submit, groups=(self.group_of[sender],))
        paths = []
        for d in decision.destinations:
            out = self.net.from_core(str(d.agency))
            if d.via is not None and out[1] != d.via:
                raise AssertionError(f"the graph reaches {d.agency} via {out[1]}, the decision says via {d.via}")
            paths.append(
                out + self.net.to_core(str(d.agency))[1:] + back[1:] if request.kind is Kind.CONSULTATION else out
            )
        groups = tuple(self.group_of[str(d.agency)] for d in decision.destinations)
        answered = request.kind is Kind.CONSULTATION
        return Route(submit=submit, deliveries=tuple(self.hops(p, sender_last=answered) for p in paths), groups=groups)

    # ---------------------------------------------------------------- pools

    def decided(self, index: int) -> list[tuple[Drawn, Decision]]:
        """Source `index`'s pool: `scenario.pool` requests drawn from the world, each with route()'s decision.

        The stream of source i is child i of SeedSequence([seed, POOL_STREAM]).
        """
        src = self.scenario.traffic[index]
        self.requests.check(src, f"{self.scenario.source_file}: traffic[{index}]")
        seq = np.random.SeedSequence([self.scenario.seed, POOL_STREAM]).spawn(len(self.scenario.traffic))[index]
        rng = np.random.default_rng(seq)
        out = []
        for _ in range(self.scenario.pool):
            drawn = self.requests.draw(src, rng)
            out.append((drawn, route(drawn.request, self.world.knowledge, drawn.files)))
        return out

    def pools(self) -> list[tuple[Route, ...]]:
        """For every source, its pool of decided requests as Routes."""
        out = []
        for i, src in enumerate(self.scenario.traffic):
            start = AUTHENTICATION if src.auth else None
            out.append(
                tuple(self.to_route(d, decision, start or str(d.request.sender)) for d, decision in self.decided(i))
            )
        return out

    # ---------------------------------------------------------------- stations and links

    def station(self, name: str, classes: Sequence[tuple[int, str]]) -> StationPlan:
        cls = self.net.node_class(name)
        service: Service = self.spec.nodes.get(name) or self.spec.classes[cls]
        return StationPlan(
            name=name,
            node_class=cls,
            servers=service.servers,
            times=service_times(service, classes),
            queue_limit=service.queue_limit,
            tracked=cls != "agency",
        )

    def link(self, a: str, b: str) -> LinkPlan:
        link_class = self.net.link_class(a, b)
        return LinkPlan(ends=(self.index[a], self.index[b]), link_class=link_class, spec=self.spec.links[link_class])

    def targets(self, event: Event, where: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
        by_class: dict[str, list[int]] = {}
        for name, i in self.index.items():
            by_class.setdefault(self.net.node_class(name), []).append(i)
        by_link_class: dict[str, list[int]] = {}
        for i, (a, b) in enumerate(self.edges):
            by_link_class.setdefault(self.net.link_class(a, b), []).append(i)
        classes = {c: tuple(v) for c, v in by_class.items()}
        return resolve(event, where, self.index, classes, self.links, {c: tuple(v) for c, v in by_link_class.items()})

    def drawing(self) -> dict[str, object]:
        """Positions (radial tree from the core) and classes of the nodes, for the report."""
        graph = self.net.graph
        parents = {n: (p[-2] if len(p) > 1 else None) for n, p in ((n, self.net.from_core(n)) for n in self.net.nodes)}
        category = {n: str(graph.nodes[n]["category"]) for n in self.net.nodes}
        positions = radial_layout(grouped_children(parents, category, CORE), CORE)
        return {
            "nodes": [
                {
                    "id": n,
                    "class": self.net.node_class(n),
                    "x": round(positions[n][0], 4),
                    "y": round(positions[n][1], 4),
                    "parent": parents[n],
                }
                for n in self.net.nodes
            ],
        }


def plan_world(scenario: Scenario[Any], world: World) -> Plan:
    """The Plan of a world-network scenario on `world` (ScenarioError for names the world lacks)."""
    planner = WorldPlanner(scenario, world)
    classes = message_classes(scenario.traffic)
    pools = planner.pools()
    return Plan(
        **common(scenario),
        classes=classes,
        stations=tuple(planner.station(n, classes) for n in planner.net.nodes),
        links=tuple(planner.link(a, b) for a, b in planner.edges),
        sources=tuple(source_plan(scenario, i, pools[i], classes) for i in range(len(scenario.traffic))),
        groups=planner.groups,
        actions=actions(scenario, planner.targets),
        failures=failures(scenario, planner.targets),
        drawing=planner.drawing(),
    )
