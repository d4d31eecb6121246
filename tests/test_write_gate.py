"""The core's writers of one SQLite file queue at its write gate (crossroads/write_gate.py) instead
of meeting SQLite's busy handler, and the audit writer counts the time it waited there."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from crossroads.audit import AUDIT_DB, AuditLog
from crossroads.audit_store import transaction
from crossroads.write_gate import gate_for
from tests.test_audit_log import record

HELD_S = 0.2


def test_one_file_has_one_gate_whatever_its_name(tmp_path: Path) -> None:
    (tmp_path / "a.sqlite").touch()
    (tmp_path / "link.sqlite").symlink_to(tmp_path / "a.sqlite")
    assert gate_for(tmp_path / "a.sqlite") is gate_for(tmp_path / "link.sqlite")
    assert gate_for(tmp_path / "a.sqlite") is not gate_for(tmp_path / "b.sqlite")


def test_a_writer_waits_at_the_gate_while_another_holds_it(tmp_path: Path) -> None:
    gate = gate_for(tmp_path / "x.sqlite")
    assert not gate.locked()
    waits: list[bool] = []
    order: list[str] = []

    def other() -> None:
        waits.append(gate.locked())  # it finds the first writer inside
        with gate:
            order.append("other")

    with gate:
        thread = threading.Thread(target=other)
        thread.start()
        thread.join(0.05)
        order.append("first")
    thread.join(5)
    assert order == ["first", "other"] and waits == [True]


def test_a_transaction_holds_the_gate_and_leaves_it_on_failure(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "x.sqlite", isolation_level=None)
    conn.execute("CREATE TABLE t(v INTEGER)")
    gate = gate_for(tmp_path / "x.sqlite")
    waits: list[bool] = []

    def other() -> None:
        waits.append(gate.locked())
        with gate:
            pass

    thread = threading.Thread(target=other)
    with transaction(conn, gate):
        conn.execute("INSERT INTO t VALUES (1)")
        thread.start()
        thread.join(0.05)
        assert thread.is_alive()  # the other writer waits for the transaction
    thread.join(5)
    assert waits == [True]
    with pytest.raises(RuntimeError), transaction(conn, gate):
        conn.execute("INSERT INTO t VALUES (2)")
        raise RuntimeError("rolled back")
    assert not gate.locked()
    assert conn.execute("SELECT v FROM t").fetchall() == [(1,)]


def test_the_audit_writer_waits_for_the_files_other_writer_and_counts_it(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path, checkpoint_interval=3600) as log:
        before = log.commit_stats()
        gate = gate_for(tmp_path / AUDIT_DB)
        done = threading.Event()

        def append() -> None:
            log.append_batch_sync([record(1)])
            done.set()

        with gate:  # the outbox's writer, say, holds the file
            thread = threading.Thread(target=append)
            thread.start()
            assert not done.wait(HELD_S)  # the append is not durable while the other writer holds the file
        thread.join(5)
        assert done.is_set()
        waited = log.commit_stats().since(before)
    assert waited.commits == 1 and waited.store_wait_s >= HELD_S * 0.9
