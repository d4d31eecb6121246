"""Exactly once: a message id sent twice is processed once and answered the same both times.

In-process pipeline (tests/test_exchange.py's fixture: fake agencies, a real outbox), and the
real audit log for what must survive a restart: the answer and the parcels commit with the
audit record, in one transaction.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
from pathlib import Path

import grpc
import pytest

from crossroads import journal
from crossroads.audit import AuditLog
from crossroads.audit_record import AuditRecord
from crossroads.directory import DirectoryStore
from crossroads.exchange import Exchange, Refusal
from crossroads.idempotency import Idempotency
from crossroads.journal import Answer, JournalEntry
from crossroads.outbox import Outbox, outbox_path
from protos import messages_pb2 as pb
from tests.small_network import ALICE, FILES, KNOWLEDGE
from tests.test_exchange import NOW, Core, FakeAgencies, _refusal, _reply, _run, consultation, dmfa


def test_a_resent_consultation_is_answered_the_same_without_asking_again(tmp_path: Path) -> None:
    raw = consultation().SerializeToString()

    async def scenario(core: Core) -> None:
        first = _reply(await core.exchange.handle(raw, "CPAS-1"))
        again = _reply(await core.exchange.handle(raw, "CPAS-1"))
        assert again == first and first.outcome == pb.DELIVERED
        assert len(core.audit.records) == 1 and core.agencies.asked == ["ONSS"]
        # the key is (sender, message id): another sender's same id is another message
        other = await core.exchange.handle(raw, "CPAS-2")
        assert isinstance(other, Refusal) and len(core.audit.records) == 2

    _run(tmp_path, scenario)


def test_concurrent_duplicates_wait_for_the_first_and_get_its_answer(tmp_path: Path) -> None:
    raw = consultation().SerializeToString()

    async def scenario(core: Core) -> None:
        core.agencies.slow["ONSS"] = asyncio.Event()
        calls = [asyncio.create_task(core.exchange.handle(raw, "CPAS-1")) for _ in range(5)]
        while not core.agencies.asked:
            await asyncio.sleep(0)
        core.agencies.slow["ONSS"].set()
        replies = [_reply(r) for r in await asyncio.gather(*calls)]
        assert all(r == replies[0] for r in replies)
        assert core.agencies.asked == ["ONSS"] and len(core.audit.records) == 1

    _run(tmp_path, scenario)


def test_a_refusal_is_the_answer_too_and_is_audited_once(tmp_path: Path) -> None:
    raw = consultation(purpose="curiosity").SerializeToString()

    async def scenario(core: Core) -> None:
        first = _refusal(await core.exchange.handle(raw, "CPAS-1"))
        again = _refusal(await core.exchange.handle(raw, "CPAS-1"))
        assert first.code == grpc.StatusCode.PERMISSION_DENIED and again == first
        assert [r.outcome for r in core.audit.records] == ["DENIED"]

    _run(tmp_path, scenario)


def test_a_queued_declaration_resent_is_not_queued_twice(tmp_path: Path) -> None:
    raw = dmfa(ALICE).SerializeToString()

    async def scenario(core: Core) -> None:
        core.agencies.down.add("ONEM")
        first = _reply(await core.exchange.handle(raw, "PORTAL"))
        again = _reply(await core.exchange.handle(raw, "PORTAL"))
        assert again == first and first.outcome == pb.QUEUED
        (held,) = core.outbox.pending("ONEM")
        assert held.audit_index == first.audit_index and len(core.audit.records) == 1

    _run(tmp_path, scenario)


def test_an_id_that_left_the_window_is_handled_anew(tmp_path: Path) -> None:
    async def scenario(core: Core) -> None:
        small = Exchange(
            knowledge=KNOWLEDGE,
            directory=core.directory,
            audit=core.audit,
            forwarder=core.agencies,
            outbox=core.outbox,
            clock=lambda: NOW,
            forward_deadline=1.0,
            answer_window=2,
        )
        sends = [consultation(message_id=f"c-{k}").SerializeToString() for k in range(3)]
        for raw in sends:
            _reply(await small.handle(raw, "CPAS-1"))
        _reply(await small.handle(sends[2], "CPAS-1"))  # in the window: remembered
        assert len(core.audit.records) == 3
        _reply(await small.handle(sends[0], "CPAS-1"))  # pushed out by the two after it
        assert len(core.audit.records) == 4

    _run(tmp_path, scenario)


class _FailingAudit:
    """An audit log whose next `failures` commits fail."""

    def __init__(self, log: AuditLog, failures: int) -> None:
        self.log, self.failures = log, failures

    async def append(self, record: AuditRecord, journal: JournalEntry | None = None) -> int:
        if self.failures:
            self.failures -= 1
            raise OSError("disk I/O error")
        return await self.log.append(record, journal)

    def __getattr__(self, name: str) -> object:
        return getattr(self.log, name)


def _exchange(
    state: Path, audit: object, agencies: FakeAgencies, outbox: Outbox, directory: DirectoryStore
) -> Exchange:
    return Exchange(
        knowledge=KNOWLEDGE,
        directory=directory,
        audit=audit,  # type: ignore[arg-type]
        forwarder=agencies,
        outbox=outbox,
        clock=lambda: NOW,
        forward_deadline=1.0,
        answer_window=1024,
    )


@pytest.mark.parametrize("audit_fails", [False, True])
def test_answers_and_parcels_survive_a_restart_with_their_record(tmp_path: Path, audit_fails: bool) -> None:
    """The answer and the parcels commit with the audit record: after a restart, a resend gets the same answer.

    If that commit fails, nothing is acknowledged, nothing is owed, and a resend is handled anew.
    """
    raw = dmfa(ALICE).SerializeToString()
    directory = DirectoryStore.create(tmp_path / "directory.sqlite")
    directory.bulk_load(FILES)
    agencies = FakeAgencies()
    agencies.down.add("ONEM")

    async def first_run() -> pb.ExchangeReply | Refusal:
        log = AuditLog.open(tmp_path)
        outbox = Outbox.open(outbox_path(tmp_path), clock=lambda: NOW)
        audit = _FailingAudit(log, failures=1 if audit_fails else 0)
        try:
            return await _exchange(tmp_path, audit, agencies, outbox, directory).handle(raw, "PORTAL")
        finally:
            await outbox.aclose()
            await log.aclose()

    async def second_run() -> tuple[pb.ExchangeReply | Refusal, int, int]:
        log = AuditLog.open(tmp_path)
        outbox = Outbox.open(outbox_path(tmp_path), clock=lambda: NOW + dt.timedelta(minutes=1))
        try:
            again = await _exchange(tmp_path, log, agencies, outbox, directory).handle(raw, "PORTAL")
            return again, log.size, len(outbox.pending("ONEM"))
        finally:
            await outbox.aclose()
            await log.aclose()

    first = asyncio.run(first_run())
    again, size, held = asyncio.run(second_run())
    directory.close()
    if audit_fails:
        assert isinstance(first, Refusal) and first.code == grpc.StatusCode.UNAVAILABLE
        assert isinstance(again, pb.ExchangeReply) and again.outcome == pb.QUEUED
        assert (size, held) == (1, 1)  # handled anew, once
    else:
        assert isinstance(first, pb.ExchangeReply) and again == first
        assert (size, held) == (1, 1)


def test_answers_older_than_the_window_are_pruned(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "audit.sqlite", isolation_level=None)
    conn.executescript(journal.SCHEMA)
    for first in range(0, 3 * 4096, 512):
        entries = [(i, JournalEntry("S", f"m-{i}", Answer(0, b"r"))) for i in range(first, first + 512)]
        with conn:
            journal.write_entries(conn, entries, "t", keep=5000)
    (count, oldest) = conn.execute("SELECT count(*), min(idx) FROM answers").fetchone()
    assert 5000 <= count <= 5000 + 4096 + 512 and oldest >= 3 * 4096 - 5000 - 4096 - 512
    assert journal.recent_answers(conn, 2) == [
        (3 * 4096 - 2, "S", f"m-{3 * 4096 - 2}"),
        (3 * 4096 - 1, "S", f"m-{3 * 4096 - 1}"),
    ]
    conn.close()


def test_a_window_must_hold_at_least_one_message(tmp_path: Path) -> None:
    class NoAnswers:
        def answer_at(self, index: int) -> None:
            return None

        def recent_answers(self, limit: int) -> list[tuple[int, str, str]]:
            return []

    with pytest.raises(ValueError, match="at least one"):
        Idempotency(NoAnswers(), window=0)

    async def two_answers() -> tuple[object, object]:
        register = Idempotency(NoAnswers(), window=1)
        register.begin(("ONSS", "m-1"))
        register.begin(("ONSS", "m-2"))
        first, second = register.waiter(("ONSS", "m-1")), register.waiter(("ONSS", "m-2"))
        assert first is not None and second is not None and register.waiter(("ONSS", "m-3")) is None
        register.end(("ONSS", "m-1"), "a", 7)
        register.end(("ONSS", "m-2"), "b", 8)  # pushes m-1 out of the window of one
        assert register.waiter(("ONSS", "m-1")) is None  # answered: no longer in flight
        return first.result(), second.result()

    assert asyncio.run(two_answers()) == ("a", "b")


def test_a_declaration_whose_sender_gave_up_runs_on_and_a_resend_gets_its_answer(tmp_path: Path) -> None:
    raw = dmfa(ALICE).SerializeToString()

    async def scenario(core: Core) -> None:
        core.agencies.slow["ONEM"] = asyncio.Event()
        first = asyncio.create_task(core.exchange.handle(raw, "PORTAL"))
        while "ONEM" not in core.agencies.asked:
            await asyncio.sleep(0)
        first.cancel()  # the sender stops waiting; the fan-out must not stop half done
        resend = asyncio.create_task(core.exchange.handle(raw, "PORTAL"))
        await asyncio.sleep(0.01)
        assert not resend.done() and not await core.exchange.drain(0.01)
        core.agencies.slow["ONEM"].set()
        reply = _reply(await resend)
        assert await core.exchange.drain(1.0) and first.cancelled()
        assert reply.outcome == pb.DELIVERED and len(core.audit.records) == 1
        assert sorted(core.agencies.asked) == ["MUT-2", "ONEM", "ONSS"]

    _run(tmp_path, scenario)
