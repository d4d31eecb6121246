"""Waiting for the live network to go quiet before a level is measured.

A level past the knee leaves work behind it: exchanges the core admitted still run to their
audit record after their senders gave up, and the notices it could not forward in time wait in
the outbox, redelivered seconds later. The next level, measured at once, measured that too: in a
`bench model` calibration (2026-12-07) the 100/s level right after 1,139/s had a p99 of 205 ms
in one round and 12-13 ms in the two others. The model starts every level from an idle network,
so the live one must too: before each level, `settle` waits until every watched process (the core,
each host) spent at most `quiet_share` of a core over the last `window_s` (loadtests.cpu: a
process gone or restarted is not judged), or `timeout_s` passed
(then it says so and the level goes ahead: a network that never goes quiet is a finding, not a
reason to stop the run).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loadtests.cpu import Snapshot, usage

__all__ = ["QUIET_SHARE", "TIMEOUT_S", "WINDOW_S", "Settled", "settle"]

QUIET_SHARE = 0.05  # of one core: an idle core's telemetry and outbox loop spend less
WINDOW_S = 0.5
TIMEOUT_S = 30.0  # a ceiling: the longest drain seen after an overloaded level is a few seconds


@dataclass(frozen=True, slots=True)
class Settled:
    """How long the network took to go quiet, whether it did before the timeout, and the busiest
    watched process's share of a core over the last window."""

    waited_s: float
    quiet: bool
    busiest: float

    def as_dict(self) -> dict[str, Any]:
        return {"waited_s": round(self.waited_s, 3), "quiet": self.quiet, "busiest": round(self.busiest, 4)}


def settle(
    read: Callable[[], Snapshot],
    *,
    quiet_share: float = QUIET_SHARE,
    window_s: float = WINDOW_S,
    timeout_s: float = TIMEOUT_S,
    sleep: Callable[[float], None] = time.sleep,
) -> Settled:
    """Wait until each process `read()` snapshots (loadtests.cpu.snapshot of the watched pids)
    spent at most `quiet_share` of a core in the last `window_s`, or until `timeout_s` have
    passed; see the module doc."""
    first = before = read()
    while True:
        sleep(window_s)
        after = read()
        shares = [u.utilisation for u in usage(before, after).values() if u is not None]
        busiest, waited = max(shares, default=0.0), after.at - first.at
        if busiest <= quiet_share or waited >= timeout_s:
            return Settled(waited, busiest <= quiet_share, busiest)
        before = after
