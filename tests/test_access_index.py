"""The audit log's who-accessed index (crossroads.access_index): recent rows, sorted merges, parts."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from crossroads import access_index
from crossroads.audit import AUDIT_DB, AuditLog, AuditLogError, verify_store
from crossroads.audit_record import AuditRecord, audit_time
from crossroads.identifiers import make_niss

PEOPLE = [make_niss(dt.date(1960 + k, 1 + k % 12, 1 + k % 28), k + 1) for k in range(7)]
NOON = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def _record(i: int) -> AuditRecord:
    """Record i is about PEOPLE[i % 7], and also about PEOPLE[(i + 3) % 7] when i is a multiple of 5."""
    related = (PEOPLE[(i + 3) % 7],) if i % 5 == 0 else ()
    return AuditRecord(
        time=audit_time(NOON + dt.timedelta(microseconds=i)),
        message_id=f"m-{i}",
        kind="CONSULTATION",
        sender="onem",
        destinations=("riziv",),
        subject_niss=PEOPLE[i % 7],
        subject_kbo="",
        related_niss=related,
        quality=1,
        deliberation="08/020",
        outcome="DELIVERED",
        detail="",
    )


def _expected(niss: str, size: int) -> list[int]:
    return [i for i in range(size) if niss in _record(i).persons()]


def _rows(state: Path, table: str) -> int:
    with sqlite3.connect(state / AUDIT_DB) as conn:
        (n,) = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(n)


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parts of 16 records and merges every 40 rows, so that a few hundred records cross both many times."""
    monkeypatch.setattr(access_index, "PART_BITS", 4)
    monkeypatch.setattr(access_index, "MERGE_ROWS", 40)


@pytest.mark.usefixtures("small_parts")
def test_lookups_are_the_same_before_and_after_merges_and_across_parts(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path) as log:
        for start in range(0, 300, 7):  # commits of 7 records: merges fall inside batches
            log.append_batch_sync([_record(i) for i in range(start, min(start + 7, 300))])
            size = log.size
            assert all(log.indices_about(n) == _expected(n, size) for n in PEOPLE)
        assert log.indices_about(make_niss(dt.date(1999, 9, 9), 99)) == []
    assert _rows(tmp_path, "access") > 0 and _rows(tmp_path, "access_recent") < access_index.MERGE_ROWS
    assert verify_store(tmp_path, check_index=True).ok
    with AuditLog.open(tmp_path, read_only=True) as log:  # and as read back from the store
        assert all(log.indices_about(n) == _expected(n, 300) for n in PEOPLE)


@pytest.mark.usefixtures("small_parts")
def test_the_count_of_waiting_rows_survives_reopening(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path) as log:
        log.append_batch_sync([_record(i) for i in range(30)])  # 36 rows: below a merge
    assert _rows(tmp_path, "access") == 0
    with AuditLog.open(tmp_path) as log:
        log.append_batch_sync([_record(30)])  # 2 rows more: 38
        assert _rows(tmp_path, "access") == 0
        log.append_batch_sync([_record(31), _record(32)])  # 40: merged
        assert log.indices_about(PEOPLE[0]) == _expected(PEOPLE[0], 33)
    assert _rows(tmp_path, "access_recent") == 0 and _rows(tmp_path, "access") == 40


@pytest.mark.usefixtures("small_parts")
def test_a_row_hidden_in_the_merged_index_is_caught(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path) as log:
        log.append_batch_sync([_record(i) for i in range(100)])
    with sqlite3.connect(tmp_path / AUDIT_DB) as conn:
        deleted = conn.execute("DELETE FROM access WHERE niss = ? AND idx = 5", (PEOPLE[5],)).rowcount
    assert deleted == 1
    assert verify_store(tmp_path).ok  # the tree is intact
    result = verify_store(tmp_path, check_index=True)
    assert not result.ok and "who-accessed" in result.message


def test_a_log_with_the_old_index_is_upgraded_when_opened_for_writing(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path) as log:
        log.append_batch_sync([_record(i) for i in range(50)])
    with sqlite3.connect(tmp_path / AUDIT_DB) as conn:  # as an earlier version left it
        conn.execute(
            "CREATE TABLE persons(niss TEXT NOT NULL, idx INTEGER NOT NULL, PRIMARY KEY (niss, idx)) WITHOUT ROWID"
        )
        conn.execute("INSERT INTO persons SELECT niss, idx FROM access_recent")
        conn.execute("DROP TABLE access_recent")
        conn.execute("DROP TABLE access")
    with pytest.raises(AuditLogError, match="older version"):
        AuditLog.open(tmp_path, read_only=True)
    with AuditLog.open(tmp_path) as log:
        assert all(log.indices_about(n) == _expected(n, 50) for n in PEOPLE)
        log.append_batch_sync([_record(50)])
        assert log.indices_about(PEOPLE[50 % 7]) == _expected(PEOPLE[50 % 7], 51)
    assert verify_store(tmp_path, check_index=True).ok
    with sqlite3.connect(tmp_path / AUDIT_DB) as conn:
        assert conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'persons'").fetchone() is None
