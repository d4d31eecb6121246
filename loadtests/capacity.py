"""The capacity search: step the open-loop rate up, and find the highest the target sustains.

One Locust run climbs a staircase of target rates (a short warm-up first, so that connections
are open), `factor` times higher at each step. A step is sustained when the requests due in it
(its first second left out: the rate just changed) were answered with a p99 latency within the
limit, failed in no more than `max_errors` of cases, and came at no less than `min_share` of the
target rate (an open loop that cannot keep its rate is overloaded too). The capacity is the
highest rate sustained.

Pure planning and arithmetic; `testbed.loadtest.capacity_benchmark` runs it against the core and
the raw one-hop proxy in one live network.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from loadtests.metrics import percentile_ms
from loadtests.record import RequestRecord

__all__ = [
    "DEFAULT_MAX_ERRORS",
    "DEFAULT_MIN_SHARE",
    "DEFAULT_P99_MS",
    "SETTLE_S",
    "Step",
    "capacity_of",
    "evaluate",
    "median_capacity",
    "plan_steps",
    "stairs_scenario",
]

DEFAULT_P99_MS = 50.0
DEFAULT_MAX_ERRORS = 0.01
DEFAULT_MIN_SHARE = 0.9
USERS_PER_RATE = 0.1  # users per request/s of target: 10 sends a second each, a user per ~10 ms answer in flight
MIN_USERS = 10
SETTLE_S = 1.0  # the first second of a step is not judged: the rate just changed


@dataclass(frozen=True, slots=True)
class Step:
    """One step of the staircase: `rate` requests/s with `users` users, from `from_s` to `until_s`."""

    rate: float
    users: int
    from_s: float
    until_s: float
    warmup: bool = False


def _users(rate: float) -> int:
    return max(MIN_USERS, math.ceil(rate * USERS_PER_RATE))


def plan_steps(start_rate: float, factor: float, count: int, step_s: float, warmup_s: float) -> list[Step]:
    """A warm-up at `start_rate` for `warmup_s`, then `count` steps of `step_s`, each `factor` x higher."""
    if start_rate <= 0 or factor <= 1 or count < 1 or step_s <= SETTLE_S:
        raise ValueError("expected start_rate > 0, factor > 1, count >= 1 and step_s > 1 s")
    steps = [Step(start_rate, _users(start_rate), 0.0, warmup_s, warmup=True)] if warmup_s > 0 else []
    t = warmup_s
    for k in range(count):
        rate = round(start_rate * factor**k, 1)
        steps.append(Step(rate, _users(rate), t, t + step_s))
        t += step_s
    return steps


def stairs_scenario(world: Mapping[str, Any], steps: Sequence[Step], seed: int, timeout_s: float) -> dict[str, Any]:
    """The YAML document of the staircase: `world` as given, routed consultations only."""
    return {
        "world": dict(world),
        "loadtest": {
            "seed": seed,
            "mix": {"agency": {"CONSULTATION": 1}},
            "stages": [
                {"duration": s.until_s - s.from_s, "users": s.users, "spawn_rate": s.users, "rate": s.rate}
                for s in steps
            ],
            "timeout": timeout_s,
            "max_lag": timeout_s,
            "budget": {"errors": 1.0},
            "drain": 5,
            "connect": "all",  # steady connections: the staircase measures the exchanges, not first contacts
        },
    }


def evaluate(
    records: Sequence[RequestRecord],
    t0: float,
    steps: Sequence[Step],
    *,
    p99_ms: float = DEFAULT_P99_MS,
    max_errors: float = DEFAULT_MAX_ERRORS,
    min_share: float = DEFAULT_MIN_SHARE,
) -> list[dict[str, Any]]:
    """The figures of each step that is not the warm-up, and whether it was sustained."""
    result = []
    for s in (s for s in steps if not s.warmup):
        start, end = s.from_s + SETTLE_S, s.until_s
        inside = [r for r in records if start <= r.t - t0 < end]
        failures = sum(1 for r in inside if not r.ok)
        p99 = percentile_ms(np.array([r.ms for r in inside], dtype=float), 99)
        achieved = len(inside) / (end - start)
        errors = failures / len(inside) if inside else 1.0
        sustained = bool(inside) and p99 is not None and p99 <= p99_ms and errors <= max_errors
        result.append(
            {
                "rate": s.rate,
                "users": s.users,
                "achieved_per_s": round(achieved, 2),
                "answered_per_s": round((len(inside) - failures) / (end - start), 2),
                "p50_ms": percentile_ms(np.array([r.ms for r in inside], dtype=float), 50),
                "p99_ms": p99,
                "errors": round(errors, 5),
                "sustained": sustained and achieved >= min_share * s.rate,
            }
        )
    return result


def capacity_of(evaluated: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The step of the highest rate sustained (None if none was).

    Not "the last before the first failure": on a shared machine a burst of someone else's work
    can fail one low step; a rate beyond the capacity is not sustained by luck, since the
    backlog of an open loop only grows.
    """
    sustained = [step for step in evaluated if step["sustained"]]
    return dict(max(sustained, key=lambda step: step["rate"])) if sustained else None


def median_capacity(climbs: Sequence[Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
    """The median over several climbs of the capacity each found (a climb that sustained nothing
    counts as 0): {"rps": median or None, "p99_ms": of a climb at the median, "each": sorted rates}."""
    found = [capacity_of(c) for c in climbs]
    rates = sorted(f["rate"] if f else 0.0 for f in found)
    median = rates[len(rates) // 2] if rates else 0.0
    chosen = next((f for f in found if f and f["rate"] == median), None)
    p99 = chosen.get("p99_ms") if chosen else None
    return {"rps": median or None, "p99_ms": p99, "each": [r or None for r in rates]}
