"""The pipeline for one exchange: authenticate, validate, route, forward, audit, answer.

`Exchange.handle(raw, peer)` takes the envelope bytes exactly as the sender sent them and the
identity from the sender's verified client certificate, and returns either the
`ExchangeReply` to send or a `Refusal` (gRPC status, message, audit index). It owns no
sockets: the directory, the audit log, the forwarder, the outbox and the clock are given to
it, so the whole pipeline runs in-process in tests.

Steps, for every message:
1. parse the envelope (bytes that are no Envelope are INVALID);
2. `validation.check_envelope` (INVALID: status INVALID_ARGUMENT naming the field);
3. the directory rows of the persons concerned, then `routing.route`
   (Denied: PERMISSION_DENIED naming the rule; Unroutable: FAILED_PRECONDITION, since the
   request is well-formed and allowed but the directory's present state gives it nowhere to
   go, and the same request may succeed once a file is opened);
4. a directory change (integration / deintegration) is applied before forwarding;
5. the exact envelope bytes go to every destination concurrently, each in a `Forward`;
   a consultation's single reply comes back in the ExchangeReply. A declaration or mutation
   whose destination is down (UNAVAILABLE, or no answer before the deadline: agencies dedupe
   on message_id) is QUEUED for that destination; a consultation that gets no answer FAILED;
   a destination that answers with an error FAILED (retrying would not change it);
6. one audit record with the outcome is appended and awaited (durable) before anything is
   acknowledged; the answer and the parcels queued for the outbox commit in the same
   transaction (crossroads.journal): audited, answered and owed, or none of it.
   A consultation whose sender cancels while it is forwarded is still audited (FAILED); a
   declaration or mutation runs to the end (shielded) even if its sender stops waiting;
7. the answer: an ExchangeReply (gRPC OK) for every routed message, whatever its outcome;
   a refusal carries the audit index in trailing metadata "audit-index".

Exactly once (crossroads.idempotency): the key is (sender, message id). A key being handled
makes a second call wait for the first's answer; a key answered before gets the stored answer
again, with the same audit index, and nothing is forwarded or audited twice. Transient
refusals (UNAVAILABLE, RESOURCE_EXHAUSTED), refusals of the message id itself and
consultations their sender cancelled are not remembered: a resend is handled anew.

Outcome of a routed message: FAILED if any destination failed, else QUEUED if any is held in
the outbox, else DELIVERED (also when the rules name no destination, e.g. an integration in
a primary-network sector). `forwarded` is true when at least one destination got the message
or has it waiting in the outbox. Forward.audit_index is 0 on the first attempt (the record,
which holds the outcome, is written after it) and set on redeliveries.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import grpc
from google.protobuf.message import DecodeError

from crossroads.audit_record import AuditRecord, audit_time
from crossroads.citizen import CitizenGate
from crossroads.directory import DirectoryError
from crossroads.domain import AgencyId, DirectoryEntry, Kind, Knowledge
from crossroads.forwarder import AgencyTimeout, AgencyUnavailable, ForwardError
from crossroads.idempotency import Idempotency, Key
from crossroads.journal import Answer, JournalEntry, Parcel, StoredAnswer
from crossroads.outcomes import AuditOutcome
from crossroads.routing import Denied, Destination, Request, Routed, Unroutable, route
from crossroads.validation import MAX_MESSAGE_ID, Invalid, check_envelope, message_id_ok
from protos import messages_pb2

__all__ = [
    "AUDIT_INDEX_KEY",
    "Exchange",
    "Refusal",
    "audit_index_of",
    "redelivery_target",
]

AUDIT_INDEX_KEY = "audit-index"  # trailing metadata of a refusal


def audit_index_of(trailing_metadata: Iterable[tuple[str, str | bytes]] | None) -> int | None:
    """The audit index a refusal carries in its trailing metadata (AUDIT_INDEX_KEY), if any."""
    for key, value in trailing_metadata or ():
        if key == AUDIT_INDEX_KEY:
            return int(value)
    return None


_OK_STATUSES = frozenset({"", "ok", "duplicate"})  # "duplicate": a redelivery it already had
_FAILED, _QUEUED, _DELIVERED = messages_pb2.FAILED, messages_pb2.QUEUED, messages_pb2.DELIVERED
_KIND_VALUES = frozenset(k.value for k in Kind)
_OUTCOME_NAMES = {value: AuditOutcome(messages_pb2.Outcome.Name(value)) for value in (_FAILED, _QUEUED, _DELIVERED)}
# refusals a resend may not get again: the same message may well pass a moment later
_TRANSIENT = frozenset(o.status_code for o in AuditOutcome if o.transient)
_STATUS_BY_VALUE = {code.value[0]: code for code in grpc.StatusCode}


class DirectoryPort(Protocol):
    def files_of_many(self, nisses: Sequence[str]) -> list[DirectoryEntry]: ...
    def integrate(self, entry: DirectoryEntry) -> bool: ...
    def deintegrate(self, entry: DirectoryEntry) -> None: ...


class AuditPort(Protocol):
    async def append(self, record: AuditRecord, journal: JournalEntry | None = None) -> int: ...
    def answer_at(self, index: int) -> StoredAnswer | None: ...
    def recent_answers(self, limit: int) -> list[tuple[int, str, str]]: ...


class ForwarderPort(Protocol):
    async def deliver_raw(self, destination: AgencyId, data: bytes, timeout: float) -> messages_pb2.AgencyReply: ...


class OutboxPort(Protocol):
    def reserve(self, agency: AgencyId) -> int: ...
    def settle(self, parcels: Sequence[Parcel], *, committed: bool) -> None: ...
    def has_backlog(self, agency: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class Refusal:
    """The message is not acknowledged as routed: answer with this gRPC status."""

    code: grpc.StatusCode
    message: str
    audit_index: int | None  # None only when the audit log itself failed


_Answer = messages_pb2.ExchangeReply | Refusal


@dataclass(slots=True)
class _Attempt:
    """What happened to one destination."""

    destination: Destination
    outcome: messages_pb2.Outcome
    reply: bytes = b""
    detail: str = ""
    forward: messages_pb2.Forward | None = None  # kept when the parcel must go to the outbox
    ticket: int = 0  # its place in the agency's line in the outbox


class _Summary:
    """What the attempts of one exchange add up to, in one pass (this runs for every message)."""

    __slots__ = ("agencies", "detail", "forwarded", "outcome", "parcels")

    def __init__(self, attempts: Sequence[_Attempt], message_id: str) -> None:
        agencies: list[str] = []
        details: list[str] = []
        parcels: list[Parcel] = []
        failed = queued = forwarded = False
        for a in attempts:
            agency = a.destination.agency
            agencies.append(agency)
            if a.detail:
                details.append(f"{agency}: {a.detail}")
            if a.outcome == _FAILED:
                failed = True
                continue
            forwarded = True  # delivered, or waiting in the outbox
            if a.outcome == _QUEUED:
                queued = True
                parcels.append(_parcel(a, message_id))
        # FAILED if any destination failed, else QUEUED if any is held in the outbox, else DELIVERED
        self.outcome: messages_pb2.Outcome = _FAILED if failed else _QUEUED if queued else _DELIVERED
        self.forwarded = forwarded
        self.agencies = tuple(agencies)
        self.detail = "; ".join(details)
        self.parcels = tuple(parcels)


class Exchange:
    """One message at a time, many at once: `handle` is safe to run concurrently."""

    def __init__(
        self,
        *,
        knowledge: Knowledge,
        directory: DirectoryPort,
        audit: AuditPort,
        forwarder: ForwarderPort,
        outbox: OutboxPort,
        clock: Callable[[], dt.datetime],
        forward_deadline: float,
        answer_window: int | None = None,
        citizen_gate: CitizenGate | None = None,
    ) -> None:
        """`answer_window`: how many answered message ids are recognised (journal.ANSWER_WINDOW)."""
        self.knowledge = knowledge
        self._directory = directory
        self._audit = audit
        self._forwarder = forwarder
        self._outbox = outbox
        self._clock = clock
        self._deadline = forward_deadline
        self._running_on: set[asyncio.Task[_Answer]] = set()  # see `drain`
        self.citizen_gate = citizen_gate  # None: purpose citizen_access is not checked (in-process tests)
        self._idempotency = Idempotency(audit) if answer_window is None else Idempotency(audit, window=answer_window)

    async def handle(self, raw: bytes, peer: str | None) -> messages_pb2.ExchangeReply | Refusal:
        """Answer one exchange: `raw` are the envelope bytes, `peer` the certificate identity."""
        now = self._clock()
        try:
            env = messages_pb2.Envelope.FromString(raw)
        except DecodeError as exc:
            return await self._invalid(now, messages_pb2.Envelope(), peer or "", Invalid("envelope", str(exc)))
        if peer is None:
            unauthenticated = AuditOutcome.UNAUTHENTICATED
            record = _refused_record(now, env, "", unauthenticated, "no verified client certificate")
            return await self._refuse(record, unauthenticated.status_code, "a client certificate is required")
        message_id = env.message_id
        if not message_id_ok(message_id):  # no key to recognise it by: validation will say why
            return await self._process(now, raw, env, peer)
        return await self._once(now, raw, env, (peer, message_id))

    async def _once(
        self, now: dt.datetime, raw: bytes, env: messages_pb2.Envelope, key: Key
    ) -> messages_pb2.ExchangeReply | Refusal:
        """Handle `env` unless its key was answered or is being handled: then the same answer."""
        register = self._idempotency
        while (pending := register.waiter(key)) is not None:
            await asyncio.wait((pending,))  # not `await pending`: our own cancellation must not be masked
            if not pending.cancelled() and pending.exception() is None:
                return pending.result()  # type: ignore[return-value]  # what `_process` returned
        stored = register.answered(key)
        if stored is not None:
            return _replayed(stored)
        register.begin(key)
        if env.kind != messages_pb2.CONSULTATION:
            # a fan-out half done when the sender stops waiting would be lost for the rest:
            # declarations and mutations run to the end (audited, queued, answer kept) whatever
            # the sender does; `drain` waits for them on stop
            task = asyncio.ensure_future(self._process(now, raw, env, key[0]))
            self._running_on.add(task)
            task.add_done_callback(functools.partial(self._settle, key))
            return await asyncio.shield(task)
        try:
            result = await self._process(now, raw, env, key[0])
        except BaseException as exc:
            register.fail(key, exc)
            raise
        register.end(key, result, _stored_index(result))
        return result

    def _settle(self, key: Key, task: asyncio.Task[_Answer]) -> None:
        """A declaration or mutation ran to its end: its answer is the key's, whoever still waits."""
        self._running_on.discard(task)
        if task.cancelled():
            self._idempotency.fail(key, asyncio.CancelledError())
        elif (error := task.exception()) is not None:
            self._idempotency.fail(key, error)
        else:
            result = task.result()
            self._idempotency.end(key, result, _stored_index(result))

    async def _process(
        self, now: dt.datetime, raw: bytes, env: messages_pb2.Envelope, peer: str
    ) -> messages_pb2.ExchangeReply | Refusal:
        """Validate, authorize, route, forward and audit one message from `peer`."""
        checked = check_envelope(env, AgencyId(peer), now.date())
        if isinstance(checked, Invalid):
            return await self._invalid(now, env, peer, checked)
        decision: Routed | Denied | Unroutable | None = None
        if self.citizen_gate is not None:  # before the directory: an unproven citizen's request reads nothing
            decision = self.citizen_gate.check_exchange(env, checked, now.timestamp())
        if decision is None:
            files = self._directory.files_of_many(checked.subjects) if checked.subjects else []
            decision = route(checked, self.knowledge, files)
        if isinstance(decision, Denied):
            detail = _claimed(env, peer, f"{decision.rule}: {decision.reason}")
            record = _record(now, env, checked, (), None, "", AuditOutcome.DENIED, detail)
            message = f"denied by rule {decision.rule}: {decision.reason}"
            return await self._refuse(record, AuditOutcome.DENIED.status_code, message)
        if isinstance(decision, Unroutable):
            return await self._unroutable(now, env, checked, decision)
        if decision.directory_change is not None:
            try:
                self._apply(checked.kind, decision.directory_change)
            except DirectoryError as exc:
                return await self._unroutable(now, env, checked, Unroutable("directory", str(exc)))
        return await self._complete(now, raw, env, checked, decision)

    async def drain(self, timeout: float) -> bool:
        """Wait (at most `timeout` s) for declarations and mutations whose senders stopped waiting.

        They run on to their audit record and outbox parcels; stop the stores only after this.
        True if none is left.
        """
        if self._running_on:
            await asyncio.wait(set(self._running_on), timeout=timeout)
        return not self._running_on

    async def refuse(self, raw: bytes, peer: str | None, code: grpc.StatusCode, outcome: str, message: str) -> Refusal:
        """Refuse `raw` before it is handled (e.g. revoked certificate, rate limit, overload), audited.

        `outcome` is the audit record's outcome (an `AuditOutcome`); `message`
        goes to the sender with `code` and into the record's detail. Only the envelope's
        bounded raw keys are recorded; bytes that do not parse are recorded with empty keys.
        """
        try:
            env = messages_pb2.Envelope.FromString(raw)
        except DecodeError:
            env = messages_pb2.Envelope()
        record = _refused_record(self._clock(), env, peer or "", outcome, _claimed(env, peer or "", message))
        return await self._refuse(record, code, message, remember=False)

    async def _complete(
        self, now: dt.datetime, raw: bytes, env: messages_pb2.Envelope, request: Request, decision: Routed
    ) -> messages_pb2.ExchangeReply | Refusal:
        deliberation = ",".join(decision.deliberations)
        destinations = decision.destinations
        queueable = request.kind is not Kind.CONSULTATION
        try:
            if len(destinations) == 1:  # the common case: no gather, no extra tasks
                attempts = [await self._forward_one(raw, request.sender, destinations[0], queueable)]
            else:
                attempts = list(
                    await asyncio.gather(*(self._forward_one(raw, request.sender, d, queueable) for d in destinations))
                )
        except asyncio.CancelledError:  # the sender gave up: still log that the data was asked for
            agencies = tuple(d.agency for d in destinations)
            detail = _claimed(env, request.sender, "the sender cancelled before the destination answered")
            await self._audit.append(  # no answer is journaled: the sender got none, a resend is new
                _record(now, env, request, agencies, decision.quality, deliberation, AuditOutcome.FAILED, detail)
            )
            raise
        message_id = env.message_id
        summary = _Summary(attempts, message_id)
        detail = _claimed(env, request.sender, summary.detail)
        outcome = summary.outcome
        record = _record(
            now, env, request, summary.agencies, decision.quality, deliberation, _OUTCOME_NAMES[outcome], detail
        )
        reply = messages_pb2.ExchangeReply(
            message_id=message_id, outcome=outcome, forwarded=summary.forwarded, deliberation=deliberation
        )
        if detail:  # (empty fields are left out: every keyword costs, even "")
            reply.detail = detail
        for attempt in attempts:
            _add_delivery(reply, attempt)
        parcels = summary.parcels
        journal = JournalEntry(request.sender, message_id, Answer(0, reply.SerializeToString()), parcels)
        try:
            index = await self._audit.append(record, journal)
        except Exception as exc:  # nothing is acknowledged without its audit record (and its parcels)
            self._outbox.settle(parcels, committed=False)
            return Refusal(grpc.StatusCode.UNAVAILABLE, f"audit log unavailable, message not accepted: {exc}", None)
        if parcels:
            self._outbox.settle(parcels, committed=True)
        reply.audit_index = index
        return reply

    def _apply(self, kind: Kind, entry: DirectoryEntry) -> None:
        if kind is Kind.DEINTEGRATION:
            self._directory.deintegrate(entry)
        else:
            self._directory.integrate(entry)

    async def _forward_one(self, raw: bytes, sender: str, destination: Destination, queueable: bool) -> _Attempt:
        forward = messages_pb2.Forward(
            agency=destination.agency, sender=sender, envelope=raw, via=destination.via or ""
        )
        if queueable and self._outbox.has_backlog(destination.agency):  # keep per-agency order
            ticket = self._outbox.reserve(destination.agency)
            return _Attempt(
                destination, _QUEUED, detail="queued behind earlier messages", forward=forward, ticket=ticket
            )
        try:
            reply = await self._forwarder.deliver_raw(destination.agency, forward.SerializeToString(), self._deadline)
        except (AgencyUnavailable, AgencyTimeout) as exc:
            if queueable:  # the ticket is taken now, so that what comes after queues behind it
                ticket = self._outbox.reserve(destination.agency)
                return _Attempt(destination, _QUEUED, detail=f"queued: {exc.detail}", forward=forward, ticket=ticket)
            return _Attempt(destination, _FAILED, detail=exc.detail)
        except ForwardError as exc:
            return _Attempt(destination, _FAILED, detail=exc.detail)
        if reply.status not in _OK_STATUSES:
            return _Attempt(destination, _FAILED, reply.payload, f"agency answered status {reply.status!r}")
        return _Attempt(destination, _DELIVERED, reply.payload)

    async def _unroutable(
        self, now: dt.datetime, env: messages_pb2.Envelope, request: Request, decision: Unroutable
    ) -> Refusal:
        detail = _claimed(env, request.sender, f"unroutable ({decision.rule}): {decision.reason}")
        record = _record(now, env, request, (), None, "", AuditOutcome.FAILED, detail)
        message = f"not routable, rule {decision.rule}: {decision.reason}"
        return await self._refuse(record, AuditOutcome.FAILED.status_code, message)

    async def _invalid(self, now: dt.datetime, env: messages_pb2.Envelope, peer: str, invalid: Invalid) -> Refusal:
        record = _refused_record(now, env, peer, AuditOutcome.INVALID, _claimed(env, peer, str(invalid)))
        message = f"invalid {invalid.field}: {invalid.reason}"
        return await self._refuse(
            record, AuditOutcome.INVALID.status_code, message, remember=invalid.field != "message_id"
        )

    async def _refuse(
        self, record: AuditRecord, code: grpc.StatusCode, message: str, *, remember: bool = True
    ) -> Refusal:
        """Audit `record` and refuse; the refusal is the message's answer if `remember` and not transient."""
        journal = None
        if remember and code not in _TRANSIENT and record.sender and record.message_id:
            journal = JournalEntry(record.sender, record.message_id, Answer(code.value[0], message.encode()))
        try:
            index: int | None = await self._audit.append(record, journal)
        except Exception as exc:
            return Refusal(grpc.StatusCode.UNAVAILABLE, f"audit log unavailable: {exc}; {message}", None)
        return Refusal(code, message, index)


class RefusedByAgency(Exception):
    """An agency answered a redelivery with a status other than ok."""


def redelivery_target(forwarder: ForwarderPort, deadline: float) -> Callable[[AgencyId, bytes], Awaitable[None]]:
    """The `deliver` callable the outbox's `Redelivery` needs: raises unless the agency took it."""

    async def deliver(agency: AgencyId, forward: bytes) -> None:
        reply = await forwarder.deliver_raw(agency, forward, deadline)
        if reply.status not in _OK_STATUSES:
            raise RefusedByAgency(f"{agency} answered status {reply.status!r}")

    return deliver


def _claimed(env: messages_pb2.Envelope, peer: str, detail: str) -> str:
    """`detail`, plus what the envelope claimed as sender when that is not the certificate's."""
    if env.sender and env.sender != peer:
        claim = f"envelope claimed sender {env.sender[:MAX_MESSAGE_ID]!r}"
        return f"{detail}; {claim}" if detail else claim
    return detail


def _record(
    now: dt.datetime,
    env: messages_pb2.Envelope,
    request: Request,
    destinations: tuple[str, ...],
    quality: int | None,
    deliberation: str,
    outcome: str,
    detail: str,
) -> AuditRecord:
    persons = request.subjects
    if request.kind is Kind.DMFA and not env.subject_niss:  # a DmfA is about an employer and its workers
        subject, related = "", persons
    else:
        subject, related = (persons[0], persons[1:]) if persons else ("", ())
    return AuditRecord(
        time=audit_time(now),
        message_id=env.message_id,
        kind=request.kind.name,
        sender=request.sender,
        destinations=destinations,
        subject_niss=subject,
        subject_kbo=request.kbo or "",
        related_niss=tuple(related),
        quality=quality,
        deliberation=deliberation,
        outcome=outcome,
        detail=detail,
    )


def _refused_record(now: dt.datetime, env: messages_pb2.Envelope, peer: str, outcome: str, detail: str) -> AuditRecord:
    """The record of a message refused before it was understood: only bounded, raw keys."""
    kind = Kind(env.kind).name if env.kind in _KIND_VALUES else str(env.kind)
    return AuditRecord(
        time=audit_time(now),
        message_id=env.message_id[:MAX_MESSAGE_ID],
        kind=kind,
        sender=peer,
        destinations=(),
        subject_niss=env.subject_niss[:32],
        subject_kbo=env.subject_kbo[:32],
        related_niss=(),
        quality=None,
        deliberation=env.deliberation[:MAX_MESSAGE_ID],
        outcome=outcome,
        detail=detail,
    )


def _parcel(attempt: _Attempt, message_id: str) -> Parcel:
    assert attempt.forward is not None
    return Parcel(attempt.destination.agency, message_id, attempt.forward.SerializeToString(), attempt.ticket)  # type: ignore[arg-type]


def _replayed(stored: StoredAnswer) -> messages_pb2.ExchangeReply | Refusal:
    """The answer first given to a message, as it was given (its audit index included)."""
    if stored.answer.code == 0:
        reply = messages_pb2.ExchangeReply.FromString(stored.answer.body)
        reply.audit_index = stored.index
        return reply
    return Refusal(_STATUS_BY_VALUE[stored.answer.code], stored.answer.body.decode(), stored.index)


def _stored_index(result: messages_pb2.ExchangeReply | Refusal) -> int | None:
    """The audit index whose journal holds `result` as the message's answer; None if not kept."""
    if isinstance(result, Refusal):
        return None if result.code in _TRANSIENT else result.audit_index
    return result.audit_index


def _add_delivery(reply: messages_pb2.ExchangeReply, attempt: _Attempt) -> None:
    """Add what happened at `attempt`'s destination to `reply` (built in place: no copy of a Delivery)."""
    destination = attempt.destination
    delivery = reply.deliveries.add(agency=destination.agency, outcome=attempt.outcome, reply=attempt.reply)
    if destination.via:
        delivery.via = destination.via
    if attempt.detail:
        delivery.detail = attempt.detail
