"""When the faults of a load test happen: their timeline, and when each really began and ended.

The faults themselves (kill and restart an agency host, freeze the core, slow a host) are
applied to the running processes by testbed.faults; this module holds what the load-test
summary, report and guarantees need to know of them, with no process in sight.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from loadtests.spec import Fault

__all__ = ["CORE", "FaultWindow", "schedule"]

CORE = "core"  # the target named by a fault on the core (stop_core)


@dataclass(slots=True)
class FaultWindow:
    """When a fault really began and ended (UNIX times); `ended` is None if it never ended."""

    fault: Fault
    started: float
    ended: float | None = None
    detail: str = ""

    def as_json(self, t0: float) -> dict[str, object]:
        """Seconds after `t0`, for summaries and figures."""
        return {
            "what": self.fault.describe(),
            "action": self.fault.action,
            "target": self.fault.host or CORE,
            "from_s": round(self.started - t0, 3),
            "until_s": None if self.ended is None else round(self.ended - t0, 3),
            "planned_from_s": self.fault.at,
            "planned_until_s": self.fault.until,
            "detail": self.detail,
        }


def schedule(faults: Sequence[Fault]) -> list[tuple[float, bool, int]]:
    """(seconds after t0, is the start, fault number) of every start and end, in time order."""
    steps = [(f.at, True, i) for i, f in enumerate(faults)] + [(f.until, False, i) for i, f in enumerate(faults)]
    return sorted(steps, key=lambda s: (s[0], s[1]))  # at one instant, ends first: a process is back before the next
