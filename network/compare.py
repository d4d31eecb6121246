"""Comparing two runs: which figures changed, by how much, and whether the change is significant.

Each figure of a run's summary is a mean over independent replications with its standard
deviation; two runs are compared by Welch's two-sample t interval for the difference (B - A).
A difference is called significant when its 95% interval excludes zero.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

from crossroads.statistics import Estimate, compare

__all__ = ["compare_summaries", "outside_intervals"]

Json = dict[str, Any]


def _estimate(d: Mapping[str, Any]) -> Estimate:
    def number(key: str) -> float:
        v = d.get(key)
        return math.nan if v is None else float(v)

    return Estimate(number("mean"), number("ci95"), int(d.get("n") or 0), number("sd"))


def _row(group: str, label: str, a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> Json | None:
    if not a or not b or a.get("mean") is None or b.get("mean") is None:
        return None
    d = compare(_estimate(a), _estimate(b))
    return {
        "group": group,
        "figure": label,
        "a": d.a,
        "b": d.b,
        "diff": d.diff,
        "ci95": d.half_width,
        "relative": d.relative,
        "significant": d.significant,
    }


def _pairs(a: Json, b: Json) -> Iterator[tuple[str, str, Any, Any]]:
    for key in ("functional_messages_per_year", "employer_declarations_per_year", "employer_burden_hours_per_year"):
        yield "year", key, a.get(key), b.get(key)
    for kind in sorted(set(a["kinds"]) | set(b["kinds"])):
        ka, kb = a["kinds"].get(kind, {}), b["kinds"].get(kind, {})
        yield kind, "throughput per s", ka.get("throughput_per_s"), kb.get("throughput_per_s")
        for q in ("mean", "p50", "p95", "p99"):
            yield kind, f"latency {q} (s)", ka.get("latency_s", {}).get(q), kb.get("latency_s", {}).get(q)
        yield kind, "availability", ka.get("availability"), kb.get("availability")
        yield kind, "messages lost", ka.get("lost"), kb.get("lost")
    for group in sorted(set(a["availability_by_group"]) | set(b["availability_by_group"])):
        yield (
            "availability by sector",
            group,
            a["availability_by_group"].get(group),
            b["availability_by_group"].get(group),
        )
    nodes_a = {n["id"]: n for n in a["nodes"] if n["class"] != "agency"}
    nodes_b = {n["id"]: n for n in b["nodes"] if n["class"] != "agency"}
    for node in sorted(set(nodes_a) & set(nodes_b)):
        yield "utilisation", node, nodes_a[node]["utilisation"], nodes_b[node]["utilisation"]


def compare_summaries(a: Json, b: Json) -> Json:
    """The differences B - A of the figures two run summaries share, with their significance."""
    rows = [r for r in (_row(*p) for p in _pairs(a, b)) if r is not None]
    return {
        "a": a["scenario"],
        "b": b["scenario"],
        "rows": rows,
        "significant": sum(r["significant"] for r in rows),
        "method": "Welch two-sample t interval (95%) on the replication means; significant when it excludes 0",
    }


def _figures(summary: Any, path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every estimate (a mapping with "mean" and "ci95") in a summary, with its path."""
    if isinstance(summary, Mapping):
        if "mean" in summary and "ci95" in summary:
            yield path, summary
            return
        for key, value in summary.items():
            yield from _figures(value, f"{path}.{key}" if path else str(key))
    elif isinstance(summary, list):
        for i, value in enumerate(summary):
            label = value.get("id") or value.get("name") if isinstance(value, Mapping) else None
            yield from _figures(value, f"{path}[{label if label is not None else i}]")


def _inside(x: float, e: Mapping[str, Any]) -> bool:
    mean, half = e["mean"], e["ci95"]
    if half is None or mean is None:  # no interval (one replication) or no value (NaN)
        return True
    return bool(abs(x - mean) <= half * (1 + 1e-9) + 1e-12 * max(abs(x), abs(mean)))


def outside_intervals(a: Json, b: Json) -> list[str]:
    """The figures of two summaries of the same scenario where either mean lies outside the
    other's 95% confidence interval (figures without an interval or a value are passed over)."""
    found = dict(_figures(b))
    out = []
    for path, ea in _figures(a):
        eb = found.get(path)
        if eb is None or ea["mean"] is None or eb["mean"] is None:
            continue
        if not (_inside(ea["mean"], eb) and _inside(eb["mean"], ea)):
            out.append(path)
    return out
