"""The house plan holds: a package imports only from floors below it, and no module imports
itself back through others (loadtests/mix.py and loadtests/spec.py once did)."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[1]
FLOORS = {
    "protos": 1,
    "scenarios": 1,
    "reports": 1,
    "crossroads": 2,
    "agencies": 3,
    "network": 4,
    "loadtests": 4,
    "testbed": 5,
}


def _imports() -> nx.DiGraph:
    """Module -> module it imports, for the project's own modules (imports inside functions too)."""
    graph = nx.DiGraph()
    for package in FLOORS:
        for source in (ROOT / package).rglob("*.py"):
            module = ".".join(source.relative_to(ROOT).with_suffix("").parts)
            graph.add_node(module)
            for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                graph.add_edges_from((module, n) for n in names if n.split(".")[0] in FLOORS)
    return graph


def test_packages_import_only_from_floors_below() -> None:
    upward = []
    for a, b in _imports().edges:
        pa, pb = a.split(".")[0], b.split(".")[0]
        if pa != pb and FLOORS[pb] >= FLOORS[pa]:
            upward.append(f"{a} -> {b}")
    assert not upward


def test_no_import_cycles() -> None:
    assert not list(nx.simple_cycles(_imports()))
