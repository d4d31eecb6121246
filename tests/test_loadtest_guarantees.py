"""The guarantee checks of a load test, on audit trails made by hand: a sound one passes, and each
way of breaking it (a record missing, a record twice, a record elsewhere, a flipped byte, a
delivery lost) is caught and named."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from crossroads.audit import AuditLog
from crossroads.audit_record import AuditRecord
from loadtests.guarantees import (
    AUDIT_RECORDS,
    AUDIT_VERIFIES,
    NOTHING_LOST,
    audit_records_by_message,
    check_audit_records,
    check_audit_store,
    check_budget,
    check_nothing_lost,
    check_state,
    owed,
)
from loadtests.record import RequestRecord
from loadtests.spec import Budget

SENDER = "SSA-0001"
TWO = ("ONSS", "ONEM")


def _audit(
    message_id: str, outcome: str = "DELIVERED", destinations: tuple[str, ...] = ("ONSS", "ONEM")
) -> AuditRecord:
    return AuditRecord(
        time="2026-10-01T08:00:00.000000Z", message_id=message_id, kind="DIMONA", sender=SENDER,
        destinations=destinations, subject_niss="", subject_kbo="", related_niss=(), quality=None,
        deliberation="", outcome=outcome, detail="",
    )  # fmt: skip


def _request(message_id: str, index: int | None, outcome: str = "DELIVERED", **deliveries: str) -> RequestRecord:
    told = tuple(deliveries.items()) or (("ONSS", outcome), ("ONEM", outcome))
    return RequestRecord(1.0, "DIMONA", "DIMONA", "employer", 5.0, 0.0, "", message_id, SENDER, index, outcome, told)


def _consultation(message_id: str) -> RequestRecord:
    answered = (("NR", "DELIVERED"),)
    return RequestRecord(1.0, "CONSULTATION", "CONSULTATION", "agency", 5.0, 0.0, "", message_id, "CPAS-0001", 2,
                         "DELIVERED", answered)  # fmt: skip


@pytest.fixture
def trail(tmp_path: Path) -> tuple[Path, list[RequestRecord]]:
    """A state folder whose audit log holds the records of three acknowledged requests, among others."""
    log = AuditLog.open(tmp_path)
    try:
        indexes = log.append_batch_sync(
            [_audit("other-1"), _audit("lt-r-1"), _audit("lt-r-2", "QUEUED"), _audit("lt-r-3")]
        )
    finally:
        log.close()
    requests = [_request("lt-r-1", indexes[1]), _request("lt-r-2", indexes[2], "QUEUED"), _request("lt-r-3", 3)]
    return tmp_path, requests


def _records(state: Path) -> dict[tuple[str, str], list[tuple[int, AuditRecord]]]:
    log = AuditLog.open(state, read_only=True)
    try:
        return audit_records_by_message(log.iter_leaves())
    finally:
        log.close()


def test_a_sound_trail_passes_every_check(trail: tuple[Path, list[RequestRecord]]) -> None:
    state, requests = trail
    checks = {c.name: c for c in check_state(state, requests)}
    assert checks[AUDIT_RECORDS].ok, checks[AUDIT_RECORDS].detail
    assert checks[AUDIT_RECORDS].figures["acknowledged"] == 3
    assert checks[AUDIT_VERIFIES].ok and checks[AUDIT_VERIFIES].figures["size"] == 4
    assert not checks[NOTHING_LOST].ok  # nobody received anything in this hand-made folder
    assert "other-1" not in {k[1] for k in _records(state)}, "only the load test's messages are looked at"


def test_an_acknowledged_message_without_a_record_is_caught(trail: tuple[Path, list[RequestRecord]]) -> None:
    state, requests = trail
    forged = [*requests, _request("lt-r-9", 7)]
    check = check_audit_records(forged, _records(state))
    assert not check.ok
    assert "lt-r-9: acknowledged with audit index 7 but no audit record" in check.detail


def test_a_duplicated_record_is_caught(trail: tuple[Path, list[RequestRecord]]) -> None:
    state, requests = trail
    log = AuditLog.open(state)
    try:
        log.append_batch_sync([_audit("lt-r-2", "QUEUED")])  # the same exchange audited twice
    finally:
        log.close()
    check = check_audit_records(requests, _records(state))
    assert not check.ok and "lt-r-2: 2 audit records (indexes 2, 4)" in check.detail
    assert check_audit_store(state).ok  # the log itself is intact: only the guarantee is broken


def test_a_record_at_another_index_or_with_another_outcome_is_caught(trail: tuple[Path, list[RequestRecord]]) -> None:
    state, _ = trail
    moved = [_request("lt-r-1", 2)]
    assert "acknowledged with audit index 2, its record is at 1" in check_audit_records(moved, _records(state)).detail
    told_otherwise = [_request("lt-r-2", 2, "DELIVERED")]
    assert "told DELIVERED, audited QUEUED" in check_audit_records(told_otherwise, _records(state)).detail
    elsewhere = [_request("lt-r-3", 3, ONSS="DELIVERED", FEDRIS="DELIVERED")]
    assert "told destinations ['FEDRIS', 'ONSS']" in check_audit_records(elsewhere, _records(state)).detail


def test_a_flipped_byte_in_the_audit_store_fails_verification(trail: tuple[Path, list[RequestRecord]]) -> None:
    state, _ = trail
    assert check_audit_store(state).ok
    with sqlite3.connect(state / "audit.sqlite") as db:
        (leaf,) = db.execute("SELECT leaf FROM leaves WHERE idx = 2").fetchone()
        flipped = bytes(leaf[:10]) + bytes([leaf[10] ^ 0x01]) + bytes(leaf[11:])
        db.execute("UPDATE leaves SET leaf = ? WHERE idx = 2", (flipped,))
    check = check_audit_store(state)
    assert not check.ok and "first bad index 2" in check.detail


def test_nothing_owed_may_be_lost() -> None:
    requests = [
        _request("lt-1", 0, "QUEUED", ONSS="DELIVERED", ONEM="QUEUED"),
        _request("lt-2", 1, "FAILED", ONSS="FAILED", ONEM="QUEUED"),  # one failed: the queued one is still owed
        _consultation("lt-3"),  # consultations are answered at once, never owed
    ]
    due = owed(requests)
    assert [(o.agency, o.message_id) for o in due] == [("ONSS", "lt-1"), ("ONEM", "lt-1"), ("ONEM", "lt-2")]
    delivered = {("ONSS", "lt-1"), ("ONEM", "lt-1")}
    held = check_nothing_lost(due, delivered, pending={("ONEM", "lt-2")})
    assert held.ok and held.figures == {"owed": 3, "delivered": 2, "pending": 1, "lost": 0}
    lost = check_nothing_lost(due, delivered, pending=set())
    assert not lost.ok and "DIMONA lt-2 from SSA-0001 for ONEM" in lost.detail


def test_the_budget_counts_failures_and_latency() -> None:
    within = check_budget(200, 2, 40.0, Budget(errors=0.01, p99_ms=50.0))
    assert [c.ok for c in within] == [True, True]
    over = check_budget(200, 3, 60.0, Budget(errors=0.01, p99_ms=50.0))
    assert [c.ok for c in over] == [False, False] and "3 of 200 requests failed (1.50%" in over[0].detail
    assert not check_budget(0, 0, None, Budget())[0].ok  # a run that sent nothing proves nothing
