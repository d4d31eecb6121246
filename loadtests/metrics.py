"""The figures of a load test, computed from the request logs: overall, over time, per fault window.

Latencies are Locust's (from each send's due time, see `pacing`), percentiles by the nearest-rank
method (crossroads.statistics). Times are seconds after t0, the start of the load. A request
belongs to the second (or fault window) in which it was due. Availability is the share of requests that succeeded.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from crossroads.statistics import percentile
from loadtests.record import RequestRecord

__all__ = ["PERCENTILES", "overall", "percentile_ms", "series", "window_stats"]

PERCENTILES = (50, 90, 95, 99)


def percentile_ms(latencies: NDArray[np.float64], q: float) -> float | None:
    """The q-th percentile (0-100, nearest rank: crossroads.statistics) of `latencies`; None for none."""
    if latencies.size == 0:
        return None
    return round(percentile(latencies, q), 3)


def _latency(records: Sequence[RequestRecord]) -> dict[str, float | None]:
    ms = np.array([r.ms for r in records], dtype=float)
    figures: dict[str, float | None] = {f"p{q}_ms": percentile_ms(ms, q) for q in PERCENTILES}
    figures["max_ms"] = round(float(ms.max()), 3) if ms.size else None
    return figures


def _counts(records: Sequence[RequestRecord], seconds: float) -> dict[str, Any]:
    failures = sum(1 for r in records if not r.ok)
    return {
        "requests": len(records),
        "failures": failures,
        "availability": None if not records else round(1 - failures / len(records), 6),
        "per_s": round(len(records) / seconds, 3) if seconds > 0 else None,
        "errors": dict(Counter(r.error for r in records if r.error).most_common()),
        **_latency(records),
    }


def overall(records: Sequence[RequestRecord], seconds: float) -> dict[str, Any]:
    """Totals over the run (`seconds` of load) and per Locust name."""
    names = sorted({r.name for r in records})
    return {
        **_counts(records, seconds),
        "acknowledged": sum(1 for r in records if r.acknowledged),
        "outcomes": dict(Counter(r.outcome or "none" for r in records).most_common()),
        "by_name": {n: _counts([r for r in records if r.name == n], seconds) for n in names},
    }


def series(records: Sequence[RequestRecord], t0: float, seconds: float, step: float = 1.0) -> dict[str, Any]:
    """Per `step` seconds: successes and failures per second, latency p50/p99, throughput per name."""
    bins = max(1, math.ceil(seconds / step))
    rows: list[list[RequestRecord]] = [[] for _ in range(bins)]
    for r in records:
        k = int((r.t - t0) // step)
        if 0 <= k < bins:
            rows[k].append(r)
    names = sorted({r.name for r in records})
    return {
        "t_s": [k * step for k in range(bins)],
        "t_end_s": bins * step,
        "ok_per_s": [sum(1 for r in row if r.ok) / step for row in rows],
        "errors_per_s": [sum(1 for r in row if not r.ok) / step for row in rows],
        "p50_ms": [percentile_ms(np.array([r.ms for r in row if r.ok]), 50) for row in rows],
        "p99_ms": [percentile_ms(np.array([r.ms for r in row if r.ok]), 99) for row in rows],
        "per_name_per_s": {n: [sum(1 for r in row if r.name == n) / step for row in rows] for n in names},
    }


def window_stats(
    records: Sequence[RequestRecord], t0: float, seconds: float, windows: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Availability and latency in each fault window, and outside all of them ("no fault")."""
    spans = [(float(w["from_s"]), float(seconds if w["until_s"] is None else w["until_s"])) for w in windows]
    result = []
    for w, (start, end) in zip(windows, spans, strict=True):
        inside = [r for r in records if start <= r.t - t0 < end]
        result.append({"what": w["what"], "from_s": start, "until_s": end, **_counts(inside, end - start)})
    calm = [r for r in records if not any(a <= r.t - t0 < b for a, b in spans)]
    calm_seconds = max(0.0, seconds - sum(b - a for a, b in spans))
    result.append({"what": "no fault", "from_s": None, "until_s": None, **_counts(calm, calm_seconds)})
    return result
