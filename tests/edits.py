"""Edits of parsed YAML documents, for tests that break a valid document in one place."""

from __future__ import annotations

from typing import Any


def set_at(data: Any, path: str, value: Any) -> None:
    """Set the value at a dotted path of `data` (list items by index); value None deletes it."""
    *parents, last = path.split(".")
    node: Any = data
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    key: Any = int(last) if isinstance(node, list) else last
    if value is None:
        del node[key]
    else:
        node[key] = value
