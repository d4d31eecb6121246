"""A staircase of routed consultations as a Locust load test: the rates, and the scenario document.

A warm-up at the first rate (so that connections are open), then steps `factor` times higher;
`stairs_scenario` writes them as the `loadtest:` section of a scenario that Locust runs
(testbed/bench/soak.py soaks at one steady rate this way). Pure planning; the capacity
benchmark's staircase is open-loop load from loadtests/loadgen.py (testbed/bench/capacity.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["SETTLE_S", "Step", "plan_steps", "stairs_scenario"]

USERS_PER_RATE = 0.1  # users per request/s of target: 10 sends a second each, a user per ~10 ms answer in flight
MIN_USERS = 10
SETTLE_S = 1.0  # a step must be longer than this: its first second, the rate just changed


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
