"""What a crash may not cost, checked on the state folder once the network is quiet.

1. every acknowledged declaration or mutation is in each destination's inbox
   (`agencies.inbox.received`) or still held for it in the core's outbox;
2. every acknowledged message id has exactly one audit record, at the index, with the outcome
   and destinations the sender was told (records of transient refusals, THROTTLED or SHED,
   which asked the sender to send again, are not acknowledgments and are not counted);
3. the audit store verifies (`crossroads.audit.verify_store`, as `crossroads audit verify`);
4. every signed head after a restart is consistent with the last one seen before the kill;
5. every message sent was acknowledged in the end (re-sent with its id after each crash);
6. per agency, notices arrived in the order they were acknowledged: when the core acknowledged
   A (for agency X) before B was sent, X received A before B. This is the order the core can
   promise (queued items go out one at a time in the order they were queued, and a new one
   queues behind an agency's backlog); two messages in flight at once have no order between
   them. It covers the queued items and the directly delivered ones alike.
Checks 1-3 are those of a load test (`loadtests.guarantees`), given these acknowledgments.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from agencies.inbox import Received, received
from crossroads.audit_record import AuditRecord
from crossroads.outbox import OutboxItem
from crossroads.outcomes import AuditOutcome
from loadtests import guarantees
from loadtests.crash.heads import Restart
from loadtests.crash.load import Ack
from loadtests.guarantees import (
    Check,
    Key,
    check_audit_records,
    check_audit_store,
    check_nothing_lost,
    outbox_items,
    owed,
    quoted,
)

__all__ = [
    "ALL_ACKNOWLEDGED",
    "CONSISTENT",
    "IN_ORDER",
    "TRANSIENT_OUTCOMES",
    "Verdict",
    "audit_records",
    "check_all_acknowledged",
    "check_consistency",
    "check_order",
    "check_run",
    "held_in_outbox",
    "inbox_order",
]

CONSISTENT = "every checkpoint after a restart is consistent with the last one before it"
ALL_ACKNOWLEDGED = "every message sent was acknowledged (re-sent with its id after each crash)"
IN_ORDER = "per agency, notices arrived in the order they were acknowledged"
TRANSIENT_OUTCOMES = frozenset(o for o in AuditOutcome if o.transient)  # refusals that ask the sender to send again


# ---------------------------------------------------------------- reading the state folder
def held_in_outbox(items: Iterable[OutboxItem]) -> set[tuple[str, str]]:
    """(agency, message id) of the items not delivered: pending, or kept as dead letters to replay."""
    return {(i.agency, i.message_id) for i in items if i.delivered is None}


def inbox_order(rows: Iterable[Received]) -> dict[str, list[str]]:
    """Per agency, the message ids of `rows` (from `agencies.inbox.received`), in the order they first arrived."""
    order: dict[str, list[str]] = {}
    for row in rows:
        order.setdefault(row.agency, []).append(row.message_id)
    return order


def audit_records(state: Path, prefix: str) -> dict[Key, list[tuple[int, AuditRecord]]]:
    """The audit records of the messages whose id starts with `prefix`, by (sender, message id),
    without the records of transient refusals (see the module doc)."""
    return guarantees.audit_records(state, prefix, leave_out=TRANSIENT_OUTCOMES)


# ---------------------------------------------------------------- the checks of a crash
def check_consistency(restarts: Sequence[Restart]) -> Check:
    """Check 4: the restarts whose head after did not prove consistent with the head before."""
    bad = [f"kill {r.kill}: {r.problem}" for r in restarts if r.problem]
    detail = (
        f"{len(restarts)} consistency proofs across restarts verified"
        if not bad
        else f"{len(bad)} of {len(restarts)} restarts break it: {quoted(bad)}"
    )
    return Check(CONSISTENT, not bad, detail, {"checked": len(restarts), "problems": len(bad)})


def check_all_acknowledged(sent: int, unacknowledged: Sequence[str]) -> Check:
    """Check 5: no message was given up on."""
    detail = (
        f"all {sent} messages acknowledged"
        if not unacknowledged
        else f"{len(unacknowledged)} of {sent} never acknowledged: {quoted(unacknowledged)}"
    )
    return Check(ALL_ACKNOWLEDGED, not unacknowledged, detail, {"sent": sent, "unacknowledged": len(unacknowledged)})


def _order_problems(agency: str, acks: Sequence[Ack], arrived: Sequence[str]) -> tuple[list[str], int]:
    """The inversions at one agency, and how many messages had an earlier-acknowledged one to follow."""
    position = {m: i for i, m in enumerate(arrived)}
    items = sorted((a for a in acks if a.message_id in position), key=lambda a: a.acked)
    acked_at = [a.acked for a in items]
    latest: list[Ack] = []  # latest[j]: of items[: j + 1], the one that arrived last
    for a in items:
        latest.append(a if not latest or position[a.message_id] > position[latest[-1].message_id] else latest[-1])
    problems, checked = [], 0
    for b in items:
        j = bisect.bisect_left(acked_at, b.sent)  # items[:j] were acknowledged before b was sent
        if j == 0:
            continue
        checked += 1
        a = latest[j - 1]
        if position[a.message_id] > position[b.message_id]:
            problems.append(
                f"{agency}: {a.message_id} was acknowledged before {b.message_id} was sent, arrived after it"
            )
    return problems, checked


def check_order(acks: Sequence[Ack], inbox: Mapping[str, Sequence[str]]) -> Check:
    """Check 6 over the acknowledged notices and each agency's inbox order (see the module doc).

    Messages not (yet) in an inbox are left to check 1.
    """
    by_id = {a.message_id: a for a in acks}
    per_agency: dict[str, list[Ack]] = {}
    for o in owed(a.request_record() for a in acks):
        per_agency.setdefault(o.agency, []).append(by_id[o.message_id])
    problems: list[str] = []
    checked = 0
    for agency, items in sorted(per_agency.items()):
        found, count = _order_problems(agency, items, inbox.get(agency, ()))
        problems += found
        checked += count
    queued = sum(1 for a in acks for _, outcome in a.deliveries if outcome == AuditOutcome.QUEUED)
    figures = {"agencies": len(per_agency), "checked": checked, "queued": queued, "inversions": len(problems)}
    if problems:
        return Check(
            IN_ORDER, False, f"{len(problems)} notices overtook one acknowledged before: {quoted(problems)}", figures
        )
    detail = (
        f"{checked} notices at {len(per_agency)} agencies arrived after all acknowledged before them ({queued} queued)"
    )
    return Check(IN_ORDER, True, detail, figures)


# ---------------------------------------------------------------- all of it
@dataclass(frozen=True, slots=True)
class Verdict:
    """The checks of a run, and the counts that go into crash.json."""

    checks: list[Check]
    figures: dict[str, int]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def broken(self) -> list[str]:
        return [c.name for c in self.checks if not c.ok]


def check_run(
    state: Path, acks: Sequence[Ack], unacknowledged: Sequence[str], sent: int, restarts: Sequence[Restart], prefix: str
) -> Verdict:
    """Every check on a quiet network's state folder (the core stopped, or idle with its outbox drained)."""
    requests = [a.request_record() for a in acks]
    records = audit_records(state, prefix)
    items = outbox_items(state)
    arrived = received(Path(state))
    nothing_lost = check_nothing_lost(
        owed(requests), {(r.agency, r.message_id) for r in arrived}, held_in_outbox(items)
    )
    checks = [
        nothing_lost,
        check_audit_records(requests, records),
        check_audit_store(Path(state)),
        check_consistency(restarts),
        check_all_acknowledged(sent, unacknowledged),
        check_order(acks, inbox_order(arrived)),
    ]
    unrecorded = sum(1 for a in acks if not records.get((a.sender, a.message_id)))
    figures = {
        "lost": int(nothing_lost.figures["lost"]) + unrecorded,
        "lost_deliveries": int(nothing_lost.figures["lost"]),
        "acknowledged_without_record": unrecorded,
        "duplicated_records": sum(max(0, len(found) - 1) for found in records.values()),
        "outbox_items": len(items),
        "outbox_held_at_end": sum(1 for i in items if i.delivered is None),
        "outbox_dead_letters": sum(1 for i in items if i.dead is not None),
        "redeliveries_deduped": sum(r.deliveries - 1 for r in arrived),
    }
    return Verdict(checks, figures)
