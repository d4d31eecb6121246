"""The modelled network as a networkx graph, built from the synthetic world.

Nodes: the crossroads core ("CORE"), the federal authentication service ("FAS", in front of the
portal), and one node per agency of the world, classed as
  hub          the sector hub of a secondary network (an agency others name as their hub)
  portal, batch, secretariat   the access points of employers and citizens (by category, from
               the scenario's `access` table)
  agency       every other institution.
Edges: a member of a secondary network hangs under its hub ("hub_agency"), a hub under the
core ("core_hub"), an access point under the core ("access"), every other agency under the core
("core_agency"); FAS hangs off the portal ("access").

The network is a tree (a star of stars), so every path goes through the core: paths are the
single-source shortest paths from the core, computed once and cached (no all-pairs table).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import networkx as nx

from crossroads.domain import Agency, AgencyId

__all__ = ["AUTHENTICATION", "CORE", "Network", "build_graph"]

CORE = "CORE"
AUTHENTICATION = "FAS"


class Network:
    """The graph with its cached paths through the core."""

    def __init__(self, graph: nx.Graph) -> None:
        self.graph = graph
        self.nodes: tuple[str, ...] = tuple(graph.nodes)
        self._from_core: dict[str, list[str]] = nx.single_source_shortest_path(graph, CORE)

    def from_core(self, node: str) -> tuple[str, ...]:
        """The path core -> node (core first)."""
        return tuple(self._from_core[node])

    def to_core(self, node: str) -> tuple[str, ...]:
        """The path node -> core (core last)."""
        return tuple(reversed(self._from_core[node]))

    def node_class(self, node: str) -> str:
        return str(self.graph.nodes[node]["node_class"])

    def link_class(self, a: str, b: str) -> str:
        return str(self.graph.edges[a, b]["link_class"])


def _classes(agencies: Sequence[Agency], access: Mapping[str, tuple[str, ...]]) -> dict[AgencyId, str]:
    hubs = {a.hub for a in agencies if a.hub is not None}
    by_category = {category: cls for cls, categories in access.items() for category in categories}
    return {a.id: "hub" if a.id in hubs else by_category.get(a.category, "agency") for a in agencies}


def build_graph(agencies: Sequence[Agency], access: Mapping[str, tuple[str, ...]]) -> Network:
    """The network of these agencies; `access` maps portal/batch/secretariat to agency categories."""
    classes = _classes(agencies, access)
    graph = nx.Graph()
    graph.add_node(CORE, node_class="core", sector=None, category="core")
    graph.add_node(AUTHENTICATION, node_class="authentication", sector=None, category="authentication")
    for a in agencies:
        graph.add_node(a.id, node_class=classes[a.id], sector=int(a.sector), category=str(a.category))
    portals = []
    for a in agencies:
        cls = classes[a.id]
        if a.hub is not None and a.hub in classes:
            graph.add_edge(a.id, a.hub, link_class="hub_agency")
        else:
            link = {"hub": "core_hub", "agency": "core_agency"}.get(cls, "access")
            graph.add_edge(a.id, CORE, link_class=link)
        if cls == "portal":
            portals.append(a.id)
    for p in portals:
        graph.add_edge(AUTHENTICATION, p, link_class="access")
    if not portals:
        graph.add_edge(AUTHENTICATION, CORE, link_class="access")
    return Network(graph)
