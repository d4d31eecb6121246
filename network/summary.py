"""From replications to results: estimates with 95% confidence intervals, and per-interval series.

Every figure is computed per replication first and then summarised over the replications
(mean and t-based 95% interval), so the interval reflects run-to-run variation of the whole
model. The output is plain JSON-ready data; it holds nothing that depends on the wall clock,
so the same plan and seed give the same summary byte for byte (timings go to `performance`).
It also lists the scenario's service times and latencies, each assumed or calibrated and from
what ("provenance": scenarios.provenance, from the scenario's `sources:`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from crossroads.statistics import estimate, mean, percentile
from network.plan import Plan
from network.recorder import ReplicationResult

__all__ = ["DECLARATION_KINDS", "HISTOGRAM_EDGES", "PERCENTILES", "performance", "series", "summarise"]

PERCENTILES = (50, 90, 95, 99)
# latency histogram bins: log-spaced from 0.1 ms to about 28 h, 8 per decade
HISTOGRAM_EDGES = np.logspace(-4, 5, 73)
DECLARATION_KINDS = ("DIMONA", "DMFA", "DRS")
Json = dict[str, Any]


def _est(values: Sequence[float]) -> Json:
    return estimate([float(v) for v in values]).as_dict()


def _per_rep(results: Sequence[ReplicationResult], f: Callable[[ReplicationResult], float]) -> Json:
    return _est([f(r) for r in results])


def _percentile(latencies: np.ndarray, q: float) -> float:
    return percentile(latencies, q)  # the project's one definition: nearest rank


def _share(part: float, whole: float) -> float:
    return part / whole if whole else math.nan


def _mean(results: Sequence[ReplicationResult], attr: str) -> np.ndarray:
    stacked: np.ndarray = np.mean(np.stack([getattr(r, attr) for r in results]), axis=0)
    return stacked


def _kind(plan: Plan, results: Sequence[ReplicationResult], k: int) -> Json:
    deadline = plan.deadlines[k]
    return {
        "exchanges": _per_rep(results, lambda r: r.created[k]),
        "messages": _per_rep(results, lambda r: r.expected[k]),
        "delivered": _per_rep(results, lambda r: r.delivered[k]),
        "throughput_per_s": _per_rep(results, lambda r: r.delivered[k] / plan.duration),
        "latency_s": {
            "mean": _per_rep(results, lambda r: mean(r.latencies[k])),
            **{f"p{q}": _est([_percentile(r.latencies[k], q) for r in results]) for q in PERCENTILES},
        },
        "deadline_s": deadline,
        "histogram": {
            "edges_s": HISTOGRAM_EDGES.tolist(),
            "share": _histogram([r.latencies[k] for r in results]),
        },
        "availability": _per_rep(results, lambda r: r.on_time[k] / r.expected[k] if r.expected[k] else math.nan),
        "lost": _per_rep(results, lambda r: r.lost[k]),
    }


def _histogram(latencies: Sequence[np.ndarray]) -> list[float]:
    """Share of deliveries per latency bin, all replications pooled (clipped into the outer bins)."""
    edges = HISTOGRAM_EDGES
    counts = sum(np.histogram(np.clip(x, edges[0], edges[-1]), bins=edges)[0] for x in latencies)
    total = float(np.sum(counts))
    return (np.asarray(counts, dtype=float) / total).tolist() if total else [0.0] * (len(edges) - 1)


def _ratios(plan: Plan) -> np.ndarray:
    """Per source: expected arrivals in a year over expected arrivals in the window."""
    return np.array([s.year_expected / s.window_expected if s.window_expected > 0 else 0.0 for s in plan.sources])


def _year_totals(plan: Plan, results: Sequence[ReplicationResult]) -> Json:
    ratio = _ratios(plan)
    declares = np.array([plan.kinds[s.kind] in DECLARATION_KINDS for s in plan.sources])
    headings = np.array([s.headings for s in plan.sources], dtype=float)
    sizes = np.array([s.size for s in plan.sources], dtype=float) * declares
    return {
        "functional_messages_per_year": _per_rep(results, lambda r: float(r.source_functional @ ratio)),
        "employer_declarations_per_year": _per_rep(
            results, lambda r: float((r.source_declarations * declares) @ ratio)
        ),
        "employer_burden_hours_per_year": _per_rep(
            results, lambda r: float((r.source_declarations * headings) @ ratio) * plan.heading_seconds / 3600
        ),
        "declaration_bytes_per_year": _per_rep(results, lambda r: float((r.source_declarations * sizes) @ ratio)),
        "functional_messages_in_window": _per_rep(results, lambda r: float(r.source_functional.sum())),
        "year_scaling": (
            "each source's count in the measured window x its expected arrivals in calendar year "
            f"{plan.start.year} / its expected arrivals in the window (rates, multipliers and profiles "
            "of the scenario; one-off surges are not repeated over the year)"
        ),
    }


def _nodes(plan: Plan, results: Sequence[ReplicationResult]) -> list[Json]:
    out = []
    for i, st in enumerate(plan.stations):
        out.append(
            {
                "id": st.name,
                "class": st.node_class,
                "servers": st.servers,
                "utilisation": _est([r.station_utilisation[i] for r in results]),
                "queue_mean": _est([r.station_queue[i] for r in results]),
                "queue_max": _est([r.station_max_queue[i] for r in results]),
                "served_per_s": _est([r.station_served[i] / plan.duration for r in results]),
                "lost": _est([r.station_lost[i] for r in results]),
            }
        )
    return out


def _sources(plan: Plan, results: Sequence[ReplicationResult]) -> list[Json]:
    return [
        {
            "name": s.name,
            "kind": plan.kinds[s.kind],
            "expected_arrivals_in_window": s.window_expected,
            "expected_arrivals_per_year": s.year_expected,
            "arrivals": _est([r.source_arrivals[i] for r in results]),
            "functional_messages": _est([r.source_functional[i] for r in results]),
            "routes_in_pool": len(s.routes),
            "functional_share_of_pool": sum(rt.functional for rt in s.routes) / len(s.routes),
            "mean_deliveries_per_arrival": sum(len(rt.deliveries) for rt in s.routes) / len(s.routes),
        }
        for i, s in enumerate(plan.sources)
    ]


def summarise(plan: Plan, results: Sequence[ReplicationResult]) -> Json:
    """The results of a run as JSON-ready data (see the module docstring)."""
    results = sorted(results, key=lambda r: r.index)
    groups = {
        g: _est([_share(r.group_on_time[i], r.group_expected[i]) for r in results]) for i, g in enumerate(plan.groups)
    }
    reasons = sorted({k for r in results for k in r.lost_reasons})
    return {
        "scenario": {
            "name": plan.name,
            "description": plan.description,
            "seed": plan.seed,
            "replications": len(results),
            "warmup_s": plan.warmup,
            "duration_s": plan.duration,
            "interval_s": plan.interval,
            "start": plan.start.isoformat(),
        },
        "provenance": [p.as_dict() for p in plan.provenance],
        **_year_totals(plan, results),
        "kinds": {
            name: _kind(plan, results, k) for k, name in enumerate(plan.kinds) if any(r.expected[k] for r in results)
        },
        "availability_by_group": {g: v for g, v in groups.items() if not math.isnan(v["mean"])},
        "nodes": _nodes(plan, results),
        "sources": _sources(plan, results),
        "lost_by_reason": {k: _est([r.lost_reasons.get(k, 0) for r in results]) for k in reasons},
        "unresolved_at_end": _per_rep(results, lambda r: r.unresolved),
        "events": [{"at_s": t, "what": label} for t, label in results[0].events] if results else [],
        "surges": [
            {"from_s": a - plan.warmup, "until_s": None if b is None else b - plan.warmup, "what": w}
            for a, b, w in plan.surges
        ],
        "drawing": plan.drawing,
    }


def series(plan: Plan, results: Sequence[ReplicationResult]) -> Json:
    """Per-interval series, averaged over the replications (seconds from the window's start)."""
    done, latency = _mean(results, "series_done"), _mean(results, "series_latency")
    tracked = [st.name for st in plan.stations if st.tracked]
    classes = list(dict.fromkeys(st.node_class for st in plan.stations))
    spans = np.array([min(plan.interval, plan.duration - i * plan.interval) for i in range(plan.intervals)])
    return {
        "t_s": [i * plan.interval for i in range(plan.intervals)],  # start of each interval
        "t_end_s": plan.duration,
        "throughput_per_s": {k: (done[:, i] / spans).tolist() for i, k in enumerate(plan.kinds) if done[:, i].any()},
        "latency_mean_s": {
            k: np.divide(latency[:, i], done[:, i], out=np.full(len(spans), np.nan), where=done[:, i] > 0).tolist()
            for i, k in enumerate(plan.kinds)
            if done[:, i].any()
        },
        "lost_per_s": (_mean(results, "series_lost") / spans).tolist(),
        "queue": {name: col.tolist() for name, col in zip(tracked, _mean(results, "series_queue").T, strict=True)},
        "utilisation": {
            name: col.tolist() for name, col in zip(tracked, _mean(results, "series_utilisation").T, strict=True)
        },
        "class_queue": {
            c: col.tolist() for c, col in zip(classes, _mean(results, "series_class_queue").T, strict=True)
        },
        "class_utilisation": {
            c: col.tolist() for c, col in zip(classes, _mean(results, "series_class_utilisation").T, strict=True)
        },
    }


def performance(results: Sequence[ReplicationResult], wall_seconds: float, workers: int) -> Json:
    """Wall-clock figures of a run (kept apart from the summary, which must be reproducible)."""
    messages = sum(r.messages for r in results)
    busy = sum(r.wall_seconds for r in results)
    return {
        "wall_seconds": wall_seconds,
        "workers": workers,
        "replication_seconds": [r.wall_seconds for r in sorted(results, key=lambda r: r.index)],
        "messages_simulated": messages,
        "messages_per_second_per_worker": messages / busy if busy else math.nan,
        "messages_per_wall_second": messages / wall_seconds if wall_seconds else math.nan,
    }
