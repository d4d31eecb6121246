"""Where a calibration network's forwards went: each host's share, and how its notices spread
over its agencies (the model's `host.shares` and `host.notice_spread`).

Counted in the network's audit log, from each record's destinations and the agencies
STATE/hosts.json gives each host. A notice is a record of any kind but the consultations: the
outbox keeps it per agency when the agency's host is down, and what comes after it for the same
agency queues behind it, so how many agencies share a host's notices sets how much queues.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from crossroads.audit import AuditLog
from crossroads.domain import Kind

__all__ = ["CONSULTATIONS", "Forwards", "count_forwards", "forwards_of"]

# the kinds whose sender waits for the agency's answer: never queued (crossroads/exchange.py)
CONSULTATIONS = frozenset({Kind.CONSULTATION.name})


@dataclass(frozen=True)
class Forwards:
    """Each host's share of the forwards (by host index), over `total` forwards, and per host
    the shares of its notices per agency, largest first (`[1.0]` for a host that got none)."""

    shares: tuple[float, ...]
    total: int
    notice_spread: tuple[tuple[float, ...], ...]
    notices: int


def count_forwards(hosts: Sequence[Collection[str]], records: Iterable[tuple[str, Iterable[str]]]) -> Forwards:
    """`Forwards` of `records` ((kind, destinations) each) to `hosts` (each host's agencies)."""
    host_of = {agency: k for k, agencies in enumerate(hosts) for agency in agencies}
    per_host = [0] * len(hosts)
    notices: list[Counter[str]] = [Counter() for _ in hosts]
    for kind, destinations in records:
        for agency in destinations:
            k = host_of.get(agency)
            if k is None:
                continue
            per_host[k] += 1
            if kind not in CONSULTATIONS:
                notices[k][agency] += 1
    total = sum(per_host)
    spread = tuple(tuple(n / sum(c.values()) for _, n in c.most_common()) if c else (1.0,) for c in notices)
    shares = tuple(c / total for c in per_host) if total else ()
    return Forwards(shares, total, spread, sum(sum(c.values()) for c in notices))


def forwards_of(state: Path) -> Forwards:
    """`Forwards` of the audit log of the network whose state folder is `state`."""
    hosts = [h["agencies"] for h in json.loads((state / "hosts.json").read_text())["hosts"]]

    def records() -> Iterable[tuple[str, list[str]]]:
        with AuditLog.open(state, read_only=True) as log:
            for _, leaf in log.iter_leaves(0):
                record = json.loads(leaf)
                yield record.get("kind", ""), record.get("destinations", ())

    return count_forwards(hosts, records())
