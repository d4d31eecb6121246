"""The guarantees a load test checks after the run, from the request logs and the state folder.

1. Every request the core acknowledged (answered with an audit index: an ExchangeReply, or an
   audited refusal) has exactly one audit record: the leaf at that index is the record of that
   (sender, message id), no other leaf is, and its outcome and destinations are the ones the
   sender was told.
2. The audit store verifies (`crossroads.audit.verify_store`: every leaf hash, tile, checkpoint
   signature, and the latest checkpoint covering every leaf).
3. Nothing owed is lost: every destination of an accepted declaration, (de-)integration or
   mutation (outcome DELIVERED or QUEUED for it) is in that agency's inbox
   (`agencies.inbox.received`), or still held for it in the core's outbox (`crossroads.outbox`).
4. The scenario's budget: the share of failed requests, and the p99 latency if one is set.

Each check is a `Check` (name, ok, what was found); pure functions take plain data, so that a
deliberately broken trail can be checked without a live network.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agencies.inbox import received
from crossroads.audit import AuditLog, verify_store
from crossroads.audit_record import AuditRecord, AuditRecordError
from crossroads.outbox import OutboxItem, outbox_path, read_counts, read_items
from crossroads.outcomes import AuditOutcome
from loadtests.record import RequestRecord
from loadtests.spec import Budget

__all__ = [
    "AUDIT_RECORDS",
    "AUDIT_VERIFIES",
    "ERROR_BUDGET",
    "LATENCY_BUDGET",
    "MESSAGE_ID_PREFIX",
    "NOTHING_LOST",
    "Check",
    "Owed",
    "audit_records",
    "audit_records_by_message",
    "check_audit_records",
    "check_audit_store",
    "check_budget",
    "check_nothing_lost",
    "check_state",
    "drain_outbox",
    "outbox_items",
    "owed",
    "pending",
    "pending_in_outbox",
    "quoted",
    "received_by_agencies",
]

AUDIT_RECORDS = "every acknowledged request has exactly one audit record"
AUDIT_VERIFIES = "audit verify passes"
NOTHING_LOST = "no declaration or mutation owed to an agency is lost"
ERROR_BUDGET = "errors within the budget"
LATENCY_BUDGET = "p99 latency within the budget"
MESSAGE_ID_PREFIX = "lt-"  # every message id a load-test user sends starts so (users.CrossroadsUser)
_EXAMPLES = 5  # problems quoted in a check's detail
_ACCEPTED = frozenset({AuditOutcome.DELIVERED, AuditOutcome.QUEUED})

Key = tuple[str, str]  # (sender, message id): the sender's idempotency key


@dataclass(frozen=True, slots=True)
class Check:
    """One guarantee and whether it held; `detail` says what was found (the first problems, if any)."""

    name: str
    ok: bool
    detail: str
    figures: Mapping[str, float] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "figures": dict(self.figures)}


@dataclass(frozen=True, slots=True)
class Owed:
    """One delivery the core took on: `message_id` (sent by `sender`) for `agency`."""

    agency: str
    sender: str
    message_id: str
    kind: str


def quoted(problems: Sequence[str]) -> str:
    """The first few of `problems`, for a check's detail, and how many more there are."""
    more = f" (and {len(problems) - _EXAMPLES} more)" if len(problems) > _EXAMPLES else ""
    return "; ".join(problems[:_EXAMPLES]) + more


# ---------------------------------------------------------------- 1. one audit record each
def audit_records_by_message(
    leaves: Iterable[tuple[int, bytes]], prefix: str = MESSAGE_ID_PREFIX
) -> dict[Key, list[tuple[int, AuditRecord]]]:
    """The audit records of messages whose id starts with `prefix`, by (sender, message id).

    A leaf that does not decode is kept under the key ("", "<index>") so that it is not ignored.
    """
    marker = f'"message_id":"{prefix}'.encode()
    found: dict[Key, list[tuple[int, AuditRecord]]] = {}
    for index, leaf in leaves:
        if marker not in leaf:  # cheap filter: most leaves of a busy log are not ours
            continue
        try:
            record = AuditRecord.from_leaf(leaf)
        except AuditRecordError:
            found.setdefault(("", str(index)), [])
            continue
        found.setdefault((record.sender, record.message_id), []).append((index, record))
    return found


def audit_records(
    state: Path, prefix: str = MESSAGE_ID_PREFIX, *, leave_out: frozenset[AuditOutcome] = frozenset()
) -> dict[Key, list[tuple[int, AuditRecord]]]:
    """`audit_records_by_message` over the audit log of `state` (opened read-only), without the
    records whose outcome is in `leave_out`."""
    log = AuditLog.open(Path(state), read_only=True)
    try:
        found = audit_records_by_message(log.iter_leaves(), prefix)
    finally:
        log.close()
    if not leave_out:
        return found
    return {key: [(i, r) for i, r in pairs if r.outcome not in leave_out] for key, pairs in found.items()}


def _record_problem(ack: RequestRecord, records: Sequence[tuple[int, AuditRecord]]) -> str | None:
    where = f"{ack.sender} {ack.message_id}"
    if not records:
        return f"{where}: acknowledged with audit index {ack.audit_index} but no audit record"
    if len(records) > 1:
        return f"{where}: {len(records)} audit records (indexes {', '.join(str(i) for i, _ in records)})"
    index, record = records[0]
    if index != ack.audit_index:
        return f"{where}: acknowledged with audit index {ack.audit_index}, its record is at {index}"
    if ack.outcome and record.outcome != ack.outcome:
        return f"{where}: told {ack.outcome}, audited {record.outcome}"
    told = sorted(agency for agency, _ in ack.deliveries)
    if told and sorted(record.destinations) != told:
        return f"{where}: told destinations {told}, audited {sorted(record.destinations)}"
    return None


def check_audit_records(
    requests: Iterable[RequestRecord], records: Mapping[Key, Sequence[tuple[int, AuditRecord]]]
) -> Check:
    """Guarantee 1 over the acknowledged `requests`, given the audit records of their messages."""
    acked = [r for r in requests if r.acknowledged]
    problems = [p for r in acked if (p := _record_problem(r, records.get((r.sender, r.message_id), ()))) is not None]
    undecodable = [k[1] for k, v in records.items() if k[0] == "" and not v]
    problems += [f"leaf {i} is not an audit record" for i in undecodable]
    detail = (
        f"{len(acked)} acknowledged requests, each with exactly one matching audit record"
        if not problems
        else f"{len(problems)} of {len(acked)} acknowledged requests break it: {quoted(problems)}"
    )
    return Check(AUDIT_RECORDS, not problems, detail, {"acknowledged": len(acked), "problems": len(problems)})


# ---------------------------------------------------------------- 2. the store verifies
def check_audit_store(state: Path) -> Check:
    """Guarantee 2: `verify_store` (as `crossroads audit verify`) on the state folder."""
    result = verify_store(Path(state))
    where = "" if result.first_bad_index is None else f" (first bad index {result.first_bad_index})"
    detail = f"{result.size} records verified" if result.ok else f"{result.message}{where}"
    return Check(AUDIT_VERIFIES, result.ok, detail, {"size": result.size})


# ---------------------------------------------------------------- 3. nothing owed is lost
def owed(requests: Iterable[RequestRecord]) -> list[Owed]:
    """Every delivery the core took on: destinations DELIVERED or QUEUED of answered non-consultations.

    Only an ExchangeReply lists deliveries; one destination that FAILED does not release the
    core from the others it queued.
    """
    return [
        Owed(agency, r.sender, r.message_id, r.kind)
        for r in requests
        if r.kind != "CONSULTATION" and r.acknowledged
        for agency, outcome in r.deliveries
        if outcome in _ACCEPTED
    ]


def check_nothing_lost(due: Sequence[Owed], delivered: set[tuple[str, str]], pending: set[tuple[str, str]]) -> Check:
    """Guarantee 3: each owed (agency, message id) is delivered, or still pending in the outbox."""
    lost = [o for o in due if (o.agency, o.message_id) not in delivered and (o.agency, o.message_id) not in pending]
    waiting = sum(1 for o in due if (o.agency, o.message_id) not in delivered)
    figures = {"owed": len(due), "delivered": len(due) - waiting, "pending": waiting - len(lost), "lost": len(lost)}
    if lost:
        examples = [f"{o.kind} {o.message_id} from {o.sender} for {o.agency}" for o in lost]
        return Check(NOTHING_LOST, False, f"{len(lost)} of {len(due)} deliveries lost: {quoted(examples)}", figures)
    detail = f"{len(due)} deliveries owed: {len(due) - waiting} delivered, {waiting} still held in the outbox"
    return Check(NOTHING_LOST, True, detail, figures)


def received_by_agencies(state: Path) -> set[tuple[str, str]]:
    """(agency, message id) of everything the agency hosts of `state` stored in their inboxes."""
    return {(r.agency, r.message_id) for r in received(Path(state))}


def outbox_items(state: Path, which: str = "all") -> list[OutboxItem]:
    """The items of the core's outbox in `state` (`which`: "all", "pending", "dead" or "delivered",
    as `crossroads.outbox.read_items`); none when there is no store yet."""
    path = outbox_path(Path(state))
    return read_items(path, state=which) if path.exists() else []


def pending(items: Iterable[OutboxItem]) -> int:
    """How many of `items` the core is still trying to deliver (neither delivered nor dead)."""
    return sum(1 for i in items if i.delivered is None and i.dead is None)


def pending_in_outbox(state: Path) -> set[tuple[str, str]]:
    """(agency, message id) of everything the core's outbox still holds (not yet delivered)."""
    return {(item.agency, item.message_id) for item in outbox_items(state, "pending")}


# ---------------------------------------------------------------- 4. the budget
def check_budget(requests: int, failures: int, p99_ms: float | None, budget: Budget) -> list[Check]:
    """Guarantee 4: the failed share within `budget.errors`; the p99 within `budget.p99_ms` if set."""
    share = failures / requests if requests else 0.0
    checks = [
        Check(
            ERROR_BUDGET,
            requests > 0 and share <= budget.errors,
            f"{failures} of {requests} requests failed ({share:.2%}; budget {budget.errors:.2%})"
            if requests
            else "no request was made",
            {"requests": requests, "failures": failures, "share": share},
        )
    ]
    if budget.p99_ms is not None:
        ok = p99_ms is not None and p99_ms <= budget.p99_ms
        checks.append(
            Check(LATENCY_BUDGET, ok, f"p99 {p99_ms} ms; budget {budget.p99_ms:g} ms", {"p99_ms": p99_ms or 0})
        )
    return checks


# ---------------------------------------------------------------- all of it, on a state folder
def check_state(state: Path, requests: Sequence[RequestRecord]) -> list[Check]:
    """Guarantees 1-3 on the state folder of a network that has stopped (or is idle)."""
    state = Path(state)
    return [
        check_audit_records(requests, audit_records(state)),
        check_audit_store(state),
        check_nothing_lost(owed(requests), received_by_agencies(state), pending_in_outbox(state)),
    ]


# ---------------------------------------------------------------- before the checks
def drain_outbox(state: Path, timeout: float, poll: float = 0.25) -> tuple[int, float]:
    """Wait (at most `timeout` s) for the running core to empty its outbox; (still pending, seconds waited).

    The core redelivers on its own as agencies come back; this only watches the count.
    """
    path = outbox_path(state)
    if not path.exists():
        return 0, 0.0
    started = time.monotonic()
    while (pending := read_counts(path).pending) and time.monotonic() - started < timeout:
        time.sleep(poll)
    return pending, time.monotonic() - started
