"""The house plan, checked: floors, no import cycle, one owner of child processes.

Floors (docs/CONTRACTS.md): a package imports only from floors below it (or from itself; two
packages of one floor do not import each other).
Imports are read from the source with `ast`, at any depth (an import inside a function is an
import too), so a package cannot reach up by deferring it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
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
PROCESS_OWNER = "testbed/processes.py"


def _sources() -> Iterator[tuple[str, Path]]:
    for package in FLOORS:
        for path in sorted((ROOT / package).rglob("*.py")):
            if not path.name.endswith(("_pb2.py", "_pb2_grpc.py")):
                yield _module_of(path), path


def _module_of(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(module: str, path: Path) -> Iterator[str]:
    """Every module that `path` imports (absolute or relative): for `from P import m`, both P and
    P.m (one of them is a module); `_graph` keeps those that are ours."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def _graph() -> nx.DiGraph:
    ours = dict(_sources())
    graph = nx.DiGraph()
    graph.add_nodes_from(ours)
    for module, path in ours.items():
        targets = {t for t in _imports(module, path) if t in ours and t != module}
        # `from P import m` with m a module of P depends on P.m, not on P's __init__
        targets -= {t.rpartition(".")[0] for t in targets}
        for target in targets:
            graph.add_edge(module, target)
    return graph


def test_no_package_imports_from_a_floor_above_it() -> None:
    up = [
        f"{a} (floor {FLOORS[a.split('.')[0]]}) imports {b} (floor {FLOORS[b.split('.')[0]]})"
        for a, b in _graph().edges
        if a.split(".")[0] != b.split(".")[0] and FLOORS[b.split(".")[0]] >= FLOORS[a.split(".")[0]]
    ]
    assert up == []


def test_no_import_cycle() -> None:
    cycles = [sorted(c) for c in nx.strongly_connected_components(_graph()) if len(c) > 1]
    assert cycles == []


def test_one_module_starts_child_processes() -> None:
    starters = sorted(
        str(path.relative_to(ROOT))
        for module, path in _sources()
        if any(name == "subprocess" or name.startswith("subprocess.") for name in _imports(module, path))
    )
    assert starters == [PROCESS_OWNER]


def test_no_command_imports_another_command() -> None:
    from testbed.cli import COMMAND_MODULES

    commands = {f"testbed.commands.{name}" for name in COMMAND_MODULES}
    graph = _graph()
    assert commands <= set(graph.nodes)
    crossing = sorted(f"{a} imports {b}" for a, b in graph.edges if a in commands and b in commands)
    assert crossing == []
