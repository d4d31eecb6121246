"""A radial tree layout of the network for the report.

The core sits in the middle; its children go on the first ring, each with an angle in
proportion to the square root of the size of its subtree (so that a named institution with no
members still gets room beside a hub of 581), their children on the second ring within that angle.
Large categories of agencies hanging directly under the core (the ~1,600 local bodies, ...)
are gathered behind an invisible point on the first ring, like a secondary network behind its
hub, so that the drawing shows the structure rather than a disc of 2,000 spokes.

Computed directly from the tree (linear time, deterministic), not by a force-directed layout,
which would take minutes for 3,000 nodes and differ from run to run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

__all__ = ["GROUP_FROM", "grouped_children", "radial_layout"]

GROUP_FROM = 10  # agencies of one category directly under the root gathered behind one point


def _sizes(children: Mapping[str, Sequence[str]], root: str) -> dict[str, int]:
    sizes: dict[str, int] = {}
    order = [root]
    for node in order:  # breadth-first; then sizes bottom-up
        order.extend(children.get(node, ()))
    for node in reversed(order):
        sizes[node] = 1 + sum(sizes[c] for c in children.get(node, ()))
    return sizes


def radial_layout(children: Mapping[str, Sequence[str]], root: str) -> dict[str, tuple[float, float]]:
    """(x, y) of every node of the tree given as parent -> children: depth d on the ring of radius d."""
    sizes = _sizes(children, root)
    positions = {root: (0.0, 0.0)}
    stack = [(root, 0.0, 2 * math.pi, 0)]
    while stack:
        node, low, high, depth = stack.pop()
        kids = children.get(node, ())
        total = sum(math.sqrt(sizes[c]) for c in kids)
        angle = low
        for child in kids:
            share = (high - low) * math.sqrt(sizes[child]) / total
            middle = angle + share / 2
            positions[child] = ((depth + 1) * math.cos(middle), (depth + 1) * math.sin(middle))
            stack.append((child, angle, angle + share, depth + 1))
            angle += share
    return positions


def grouped_children(parents: Mapping[str, str | None], category: Mapping[str, str], root: str) -> dict[str, list[str]]:
    """The layout tree: parent -> children, with large categories under the root behind a virtual node."""
    under_root: dict[str, list[str]] = {}
    children: dict[str, list[str]] = {}
    for node, parent in parents.items():
        if parent is None:
            continue
        if parent == root:
            under_root.setdefault(category[node], []).append(node)
        else:
            children.setdefault(parent, []).append(node)
    top = children.setdefault(root, [])
    for cat, members in under_root.items():
        if len(members) >= GROUP_FROM:
            virtual = f"\x00{cat}"
            top.append(virtual)
            children[virtual] = members
        else:
            top.extend(members)
    return children
