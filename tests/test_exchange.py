"""The exchange pipeline in-process: a real directory and outbox, a fake audit log and fake agencies.

The small network is tests/small_network.py, shared with the routing and core-server tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import sqlite3
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc

from crossroads import journal
from crossroads.audit_record import AuditRecord
from crossroads.directory import DirectoryStore
from crossroads.exchange import Exchange, Refusal, redelivery_target
from crossroads.forwarder import AgencyUnavailable
from crossroads.journal import JournalEntry
from crossroads.outbox import Outbox, Redelivery
from protos import messages_pb2 as pb
from tests.small_network import ALICE, BOB, CAROL, EMPLOYER, FILES, KNOWLEDGE

NOW = dt.datetime(2026, 11, 28, 9, 30, tzinfo=dt.UTC)


def consultation(subject: str = ALICE, **fields: Any) -> pb.Envelope:
    """A consultation of ALICE's wages for social integration (the CPAS-1 case)."""
    base: dict[str, Any] = {
        "message_id": "c-1",
        "kind": pb.CONSULTATION,
        "subject_niss": subject,
        "dataset": "wages",
        "purpose": "social_integration",
        "payload": pb.ConsultationRequest(dataset="wages", fields=["gross"]).SerializeToString(),
    }
    base.update(fields)
    return pb.Envelope(**base)


def as_sent(env: pb.Envelope) -> bytes:
    """`env` encoded with its fields in reverse order: valid, but not what re-encoding would give."""
    raw = b"".join(pb.Envelope(**{f.name: value}).SerializeToString() for f, value in reversed(env.ListFields()))
    assert pb.Envelope.FromString(raw) == env and raw != env.SerializeToString()
    return raw


def dmfa(*workers: str, message_id: str = "d-1") -> pb.Envelope:
    lines = [pb.DmfaLine(worker_niss=w, gross_wage_cents=300_000) for w in workers]
    body = pb.DmfaDeclaration(employer_kbo=EMPLOYER, quarter="2026Q3", lines=lines)
    return pb.Envelope(message_id=message_id, kind=pb.DMFA, subject_kbo=EMPLOYER, payload=body.SerializeToString())


def answer_for(forward: pb.Forward) -> pb.AgencyReply:
    """What the test agencies answer: a ConsultationAnswer naming who answered, for any dataset."""
    env = pb.Envelope.FromString(forward.envelope)
    body = pb.ConsultationAnswer(agency=forward.agency, dataset=env.dataset, found=True, fields={"gross": "312000"})
    return pb.AgencyReply(agency=forward.agency, payload=body.SerializeToString(), status="ok")


class FakeAudit:
    """An audit log in memory (the index is the position) whose journal goes to a real store.

    The answers and the outbox parcels are written with `crossroads.journal` into `path`, as
    the real log does, so that the real Outbox reads what the exchange queued.
    """

    def __init__(self, path: Path) -> None:
        self.records: list[AuditRecord] = []
        self.journal: list[JournalEntry | None] = []
        self._conn = sqlite3.connect(path, isolation_level=None)
        self._conn.executescript(journal.SCHEMA)

    async def append(self, record: AuditRecord, entry: JournalEntry | None = None) -> int:
        await asyncio.sleep(0)  # as a real group commit, it yields
        self.records.append(record)
        self.journal.append(entry)
        index = len(self.records) - 1
        if entry is not None:
            with self._conn:
                journal.write_entries(self._conn, [(index, entry)], NOW.isoformat())
        return index

    def answer_at(self, index: int) -> journal.StoredAnswer | None:
        return journal.read_answer(self._conn, index)

    def recent_answers(self, limit: int) -> list[tuple[int, str, str]]:
        return journal.recent_answers(self._conn, limit)

    def close(self) -> None:
        self._conn.close()


class FakeAgencies:
    """Every agency, in one object: records each Forward it got; agencies in `down` are unreachable."""

    def __init__(self) -> None:
        self.down: set[str] = set()
        self.got: list[pb.Forward] = []
        self.slow: dict[str, asyncio.Event] = {}  # these agencies answer once their event is set
        self.asked: list[str] = []

    async def deliver_raw(self, destination: str, data: bytes, timeout: float) -> pb.AgencyReply:
        self.asked.append(destination)
        await asyncio.sleep(0)
        if destination in self.slow:
            await self.slow[destination].wait()
        if destination in self.down:
            raise AgencyUnavailable(destination, "UNAVAILABLE: connection refused")
        forward = pb.Forward.FromString(data)
        assert forward.agency == destination
        self.got.append(forward)
        return answer_for(forward)

    def agencies(self) -> list[str]:
        return [f.agency for f in self.got]


@dataclass
class Core:
    exchange: Exchange
    audit: FakeAudit
    agencies: FakeAgencies
    directory: DirectoryStore
    outbox: Outbox


@asynccontextmanager
async def _core(tmp_path: Path) -> AsyncIterator[Core]:
    directory = DirectoryStore.create(tmp_path / "directory.sqlite")
    directory.bulk_load(FILES)
    audit, agencies = FakeAudit(tmp_path / "audit.sqlite"), FakeAgencies()
    outbox = Outbox.open(tmp_path / "audit.sqlite", clock=lambda: NOW)
    exchange = Exchange(
        knowledge=KNOWLEDGE,
        directory=directory,
        audit=audit,
        forwarder=agencies,
        outbox=outbox,
        clock=lambda: NOW,
        forward_deadline=1.0,
        answer_window=1024,
    )
    try:
        yield Core(exchange, audit, agencies, directory, outbox)
    finally:
        await outbox.aclose()
        audit.close()
        directory.close()


_T = TypeVar("_T")


def _run(tmp_path: Path, scenario: Callable[[Core], Coroutine[Any, Any, _T]]) -> _T:
    async def main() -> _T:
        async with _core(tmp_path) as core:
            return await scenario(core)

    return asyncio.run(main())


def _reply(result: pb.ExchangeReply | Refusal) -> pb.ExchangeReply:
    assert isinstance(result, pb.ExchangeReply), result
    return result


def _refusal(result: pb.ExchangeReply | Refusal) -> Refusal:
    assert isinstance(result, Refusal), result
    return result


def test_authorized_consultation_is_answered_with_the_holders_reply(tmp_path: Path) -> None:
    raw = as_sent(consultation())

    async def scenario(core: Core) -> None:
        reply = _reply(await core.exchange.handle(raw, "CPAS-1"))
        assert (reply.message_id, reply.outcome, reply.forwarded) == ("c-1", pb.DELIVERED, True)
        assert reply.deliberation == "08/020" and reply.audit_index == 0
        (delivery,) = reply.deliveries
        assert (delivery.agency, delivery.outcome) == ("ONSS", pb.DELIVERED)
        assert pb.ConsultationAnswer.FromString(delivery.reply).agency == "ONSS"
        (forward,) = core.agencies.got
        assert forward.envelope == raw and forward.sender == "CPAS-1"  # the bytes as sent, not re-encoded
        (record,) = core.audit.records
        assert (record.outcome, record.sender, record.destinations, record.subject_niss) == (
            "DELIVERED",
            "CPAS-1",
            ("ONSS",),
            ALICE,
        )
        assert record.quality == 0 and record.deliberation == "08/020" and record.kind == "CONSULTATION"

    _run(tmp_path, scenario)


def test_a_sector_dataset_goes_to_the_holder_through_its_hub(tmp_path: Path) -> None:
    async def scenario(core: Core) -> None:
        env = consultation(dataset="health_insurance", payload=b"")
        reply = _reply(await core.exchange.handle(env.SerializeToString(), "CPAS-1"))
        assert [(d.agency, d.via) for d in reply.deliveries] == [("MUT-2", "CIN")]
        assert core.agencies.got[0].via == "CIN"

    _run(tmp_path, scenario)


def test_without_a_deliberation_it_is_denied_and_audited(tmp_path: Path) -> None:
    async def scenario(core: Core) -> None:
        refusal = _refusal(await core.exchange.handle(consultation(purpose="curiosity").SerializeToString(), "CPAS-1"))
        assert refusal.code == grpc.StatusCode.PERMISSION_DENIED
        assert "no_deliberation" in refusal.message and "curiosity" in refusal.message
        assert core.agencies.got == []
        (record,) = core.audit.records
        assert record.outcome == "DENIED" and "no_deliberation" in record.detail
        assert refusal.audit_index == 0

    _run(tmp_path, scenario)


def test_a_forged_sender_field_is_ignored(tmp_path: Path) -> None:
    async def scenario(core: Core) -> None:
        # CPAS-2 has no file on ALICE; claiming to be CPAS-1 in the envelope changes nothing
        forged = consultation(sender="CPAS-1").SerializeToString()
        refusal = _refusal(await core.exchange.handle(forged, "CPAS-2"))
        assert refusal.code == grpc.StatusCode.PERMISSION_DENIED and "not_in_files" in refusal.message
        record = core.audit.records[-1]
        assert record.sender == "CPAS-2" and "claimed sender 'CPAS-1'" in record.detail
        # and an allowed sender claiming another name is forwarded under its own name
        reply = _reply(await core.exchange.handle(consultation(sender="RN").SerializeToString(), "CPAS-1"))
        assert reply.outcome == pb.DELIVERED and core.agencies.got[0].sender == "CPAS-1"

    _run(tmp_path, scenario)


def test_an_invalid_niss_is_refused_naming_the_field_and_audited(tmp_path: Path) -> None:
    bad = ALICE[:-1] + str((int(ALICE[-1]) + 1) % 10)

    async def scenario(core: Core) -> None:
        refusal = _refusal(await core.exchange.handle(consultation(subject=bad).SerializeToString(), "CPAS-1"))
        assert refusal.code == grpc.StatusCode.INVALID_ARGUMENT
        assert refusal.message.startswith("invalid subject_niss:") and "check digits" in refusal.message
        (record,) = core.audit.records
        assert (record.outcome, record.sender, record.message_id) == ("INVALID", "CPAS-1", "c-1")
        assert core.agencies.got == []

    _run(tmp_path, scenario)


def test_bytes_that_are_no_envelope_are_invalid(tmp_path: Path) -> None:
    async def scenario(core: Core) -> None:
        refusal = _refusal(await core.exchange.handle(b"\xff\xff\xff\xff", "CPAS-1"))
        assert refusal.code == grpc.StatusCode.INVALID_ARGUMENT and "envelope" in refusal.message
        assert core.audit.records[0].outcome == "INVALID"

    _run(tmp_path, scenario)


def test_no_certificate_identity_is_unauthenticated(tmp_path: Path) -> None:
    async def scenario(core: Core) -> None:
        refusal = _refusal(await core.exchange.handle(consultation().SerializeToString(), None))
        assert refusal.code == grpc.StatusCode.UNAUTHENTICATED
        assert core.audit.records[0].outcome == "UNAUTHENTICATED" and core.agencies.got == []

    _run(tmp_path, scenario)


def test_nobody_holding_the_file_is_a_failed_precondition(tmp_path: Path) -> None:
    async def scenario(core: Core) -> None:
        env = consultation(subject=CAROL, dataset="health_insurance", payload=b"")
        # CPAS-1 has no file on CAROL either, so first open one
        await core.exchange.handle(_integration_of(CAROL, "2026-01-01"), "CPAS-1")
        refusal = _refusal(await core.exchange.handle(env.SerializeToString(), "CPAS-1"))
        assert refusal.code == grpc.StatusCode.FAILED_PRECONDITION and "no_holder" in refusal.message
        assert core.audit.records[-1].outcome == "FAILED" and refusal.audit_index == 1

    _run(tmp_path, scenario)


def _integration_of(niss: str, start: str, kind: pb.MessageKind = pb.INTEGRATION, end: str = "") -> bytes:
    body = pb.DirectoryIntegration(niss=niss, sector=17, quality_code=1, phase_code=1, start=start, end=end)
    return pb.Envelope(message_id=f"i-{niss}-{kind}", kind=kind, payload=body.SerializeToString()).SerializeToString()


def test_an_integration_opens_the_file_that_a_consultation_then_relies_on(tmp_path: Path) -> None:
    def ask(n: int) -> bytes:  # each attempt is a new message: a message id is answered once
        return consultation(subject=BOB, message_id=f"c-{n}").SerializeToString()

    async def scenario(core: Core) -> None:
        assert _refusal(await core.exchange.handle(ask(1), "CPAS-2")).code == grpc.StatusCode.PERMISSION_DENIED
        reply = _reply(await core.exchange.handle(_integration_of(BOB, "2026-11-01"), "CPAS-2"))
        assert reply.outcome == pb.DELIVERED and [d.agency for d in reply.deliveries] == ["SPPIS"]
        assert core.audit.records[-1].quality == 1
        assert _reply(await core.exchange.handle(ask(2), "CPAS-2")).outcome == pb.DELIVERED
        closing = _integration_of(BOB, "2026-11-01", pb.DEINTEGRATION, end="2026-11-27")
        assert _reply(await core.exchange.handle(closing, "CPAS-2")).outcome == pb.DELIVERED
        assert _refusal(await core.exchange.handle(ask(3), "CPAS-2")).code == grpc.StatusCode.PERMISSION_DENIED
        # closing it again, as a new message: there is no open file left to close
        again = pb.Envelope.FromString(closing)
        again.message_id += "-again"
        refusal = _refusal(await core.exchange.handle(again.SerializeToString(), "CPAS-2"))
        assert refusal.code == grpc.StatusCode.FAILED_PRECONDITION


def test_dmfa_is_fanned_out_to_exactly_the_agencies_the_deliberations_name(tmp_path: Path) -> None:
    raw = as_sent(dmfa(ALICE, BOB))

    async def scenario(core: Core) -> None:
        reply = _reply(await core.exchange.handle(raw, "PORTAL"))
        # the collector, every primary (03/050, no condition), the health funds with an open file (03/051)
        assert sorted(core.agencies.agencies()) == ["MUT-1", "MUT-2", "ONEM", "ONSS"]
        assert [d.agency for d in reply.deliveries] == ["ONSS", "ONEM", "MUT-2", "MUT-1"]
        assert reply.outcome == pb.DELIVERED and reply.deliberation == "03/050,03/051"
        assert all(f.envelope == raw for f in core.agencies.got)
        record = core.audit.records[0]
        assert record.subject_kbo == EMPLOYER and record.related_niss == (ALICE, BOB) and record.subject_niss == ""

    _run(tmp_path, scenario)


def test_a_mutation_reaches_every_agency_with_the_person_in_its_files_by_sector_rules(tmp_path: Path) -> None:
    def notice(change: str) -> bytes:
        body = pb.MutationNotice(niss=ALICE, change=change, effective_date="2026-11-28")
        env = pb.Envelope(
            message_id=f"mut-{change}", kind=pb.MUTATION, dataset="identity", payload=body.SerializeToString()
        )
        return env.SerializeToString()

    async def scenario(core: Core) -> None:
        identity = _reply(await core.exchange.handle(notice("identity"), "RN"))
        # family funds: every fund that knows or knew her; others: the open files
        assert [d.agency for d in identity.deliveries] == ["MUT-2", "FA-1", "FA-2", "CPAS-1"]
        address = _reply(await core.exchange.handle(notice("address"), "RN"))
        # family funds: only the last competent one
        assert [d.agency for d in address.deliveries] == ["MUT-2", "FA-2", "CPAS-1"]
        assert (
            _refusal(await core.exchange.handle(notice("identity"), "ONSS")).code == grpc.StatusCode.PERMISSION_DENIED
        )

    _run(tmp_path, scenario)


def test_an_agency_that_is_down_gets_it_later_from_the_outbox_in_order(tmp_path: Path) -> None:
    first, second = dmfa(ALICE, message_id="d-1").SerializeToString(), dmfa(BOB, message_id="d-2").SerializeToString()

    async def scenario(core: Core) -> None:
        core.agencies.down.add("ONEM")
        reply = _reply(await core.exchange.handle(first, "PORTAL"))
        assert reply.outcome == pb.QUEUED and reply.forwarded
        outcomes = {d.agency: d.outcome for d in reply.deliveries}
        assert outcomes == {"ONSS": pb.DELIVERED, "ONEM": pb.QUEUED, "MUT-2": pb.DELIVERED}
        assert core.audit.records[0].outcome == "QUEUED"
        (held,) = core.outbox.pending("ONEM")
        forward = pb.Forward.FromString(held.with_index())
        assert (forward.envelope, forward.audit_index, forward.sender) == (first, reply.audit_index, "PORTAL")
        # ONEM is back, but its backlog is not yet delivered: the next one queues behind it
        core.agencies.down.clear()
        later = _reply(await core.exchange.handle(second, "PORTAL"))
        assert {d.agency: d.outcome for d in later.deliveries}["ONEM"] == pb.QUEUED
        redelivery = Redelivery(core.outbox, redelivery_target(core.agencies, 1.0), initial=0.01, maximum=0.05)
        redelivery.start()
        async with asyncio.timeout(10):
            while core.outbox.counts().pending:
                await asyncio.sleep(0.01)
        await redelivery.stop()
        to_onem = [f for f in core.agencies.got if f.agency == "ONEM"]
        assert [f.envelope for f in to_onem] == [first, second]
        assert [f.audit_index for f in to_onem] == [0, 1]

    _run(tmp_path, scenario)


def test_a_consultation_of_an_agency_that_is_down_fails_and_is_not_queued(tmp_path: Path) -> None:
    async def scenario(core: Core) -> None:
        core.agencies.down.add("ONSS")
        reply = _reply(await core.exchange.handle(consultation().SerializeToString(), "CPAS-1"))
        assert (reply.outcome, reply.forwarded) == (pb.FAILED, False)
        assert "UNAVAILABLE" in reply.deliveries[0].detail and core.audit.records[0].outcome == "FAILED"
        assert core.outbox.counts().pending == 0

    _run(tmp_path, scenario)


def test_many_exchanges_at_once_each_get_their_own_answer(tmp_path: Path) -> None:
    async def scenario(core: Core) -> None:
        envs = [consultation(message_id=f"c-{i}").SerializeToString() for i in range(50)]
        replies = await asyncio.gather(*(core.exchange.handle(raw, "CPAS-1") for raw in envs))
        assert sorted(_reply(r).message_id for r in replies) == sorted(f"c-{i}" for i in range(50))
        assert sorted(_reply(r).audit_index for r in replies) == list(range(50))

    _run(tmp_path, scenario)


async def _until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(10):
        while not condition():
            await asyncio.sleep(0.001)


def test_a_consultation_the_sender_cancels_is_still_audited(tmp_path: Path) -> None:
    async def scenario(core: Core) -> None:
        core.agencies.slow["ONSS"] = asyncio.Event()
        call = asyncio.ensure_future(core.exchange.handle(consultation().SerializeToString(), "CPAS-1"))
        await _until(lambda: "ONSS" in core.agencies.asked)
        call.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await call
        (record,) = core.audit.records
        assert (record.outcome, record.destinations) == ("FAILED", ("ONSS",)) and "cancelled" in record.detail

    _run(tmp_path, scenario)


def test_a_declaration_runs_to_the_end_when_the_sender_stops_waiting(tmp_path: Path) -> None:
    async def scenario(core: Core) -> None:
        core.agencies.slow["ONEM"] = asyncio.Event()
        call = asyncio.ensure_future(core.exchange.handle(dmfa(ALICE).SerializeToString(), "PORTAL"))
        await _until(lambda: "ONEM" in core.agencies.asked)
        call.cancel()
        core.agencies.slow["ONEM"].set()
        await _until(lambda: len(core.audit.records) == 1)
        assert core.audit.records[0].outcome == "DELIVERED"
        assert sorted(core.agencies.agencies()) == ["MUT-2", "ONEM", "ONSS"]

    _run(tmp_path, scenario)
