"""Validation of an envelope before routing: pure, no I/O, no clock (today is passed in).

`check_envelope` turns a parsed `Envelope` from an authenticated sender into the routing keys
of the message (`routing.Request`) or an `Invalid` naming the field path and what is wrong
with it, e.g. ``Invalid("payload.lines[2].worker_niss", "NISS 85031412345 fails its check digits")``.

Per kind, beyond the checks every envelope gets (message_id, kind, identifiers, sizes, as_of):
- CONSULTATION: subject_niss and purpose required; the payload (empty is fine) is a
  ConsultationRequest; the dataset comes from the envelope or the payload, which must agree.
- DIMONA: payload is a DimonaDeclaration with a type; worker (subject_niss or payload.worker_niss)
  and employer (subject_kbo or payload.employer_kbo) required; dates parse.
- DMFA: subject_kbo required; payload is a DmfaDeclaration with 1..MAX_RELATED lines, each with a
  valid worker NISS. The lines give related_niss when the envelope names none.
- DRS: payload is a DrsDeclaration with a family; worker required; event_date parses.
- INTEGRATION / DEINTEGRATION: payload is a DirectoryIntegration with a valid niss, a sector,
  a quality code 0..999 and a start date; a deintegration without an end closes on as_of.
- MUTATION: dataset required; payload is a MutationNotice with a valid niss and a change.
Where the envelope and the payload both name the person or the employer, they must agree.
Declarations without a dataset get their kind's default (DIMONA -> "dimona", DMFA -> "dmfa",
DRS -> "drs_sickness" / "drs_accident" / "drs_unemployment" by family).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TypeVar

from google.protobuf.message import DecodeError
from google.protobuf.message import Message as ProtoMessage

from crossroads.domain import (
    AgencyId,
    Dataset,
    DeliberationRef,
    DirectoryEntry,
    Kind,
    Purpose,
    QualityCode,
    SectorCode,
)
from crossroads.identifiers import Kbo, Niss, kbo_problem, niss_problem
from crossroads.routing import Request
from protos import messages_pb2

__all__ = [
    "DRS_DATASETS",
    "KIND_DATASETS",
    "MAX_MESSAGE_ID",
    "MAX_PAYLOAD_BYTES",
    "MAX_REASON",
    "MAX_RELATED",
    "MAX_TEXT",
    "Invalid",
    "check_envelope",
    "message_id_ok",
]

MAX_MESSAGE_ID = 128
MAX_TEXT = 128  # dataset, purpose, deliberation, sender, change
MAX_PAYLOAD_BYTES = 64 * 1024
MAX_RELATED = 1_000
MAX_REASON = 256  # characters of an Invalid.reason: it quotes the bad value, cut to fit a gRPC status

KIND_DATASETS = {Kind.DIMONA: Dataset("dimona"), Kind.DMFA: Dataset("dmfa")}
DRS_DATASETS = {
    messages_pb2.SICKNESS_MATERNITY: Dataset("drs_sickness"),
    messages_pb2.WORK_ACCIDENT: Dataset("drs_accident"),
    messages_pb2.UNEMPLOYMENT: Dataset("drs_unemployment"),
}
# ASCII: in Python patterns \d also matches other scripts' digits ("٢٠٢٦"), which no date or quarter uses
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_M = TypeVar("_M", bound=ProtoMessage)
_KINDS = frozenset(k.value for k in Kind)


@dataclass(frozen=True, slots=True)
class Invalid:
    """The envelope is refused: `field` is the path of the bad value, `reason` what is wrong."""

    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


class _Refused(Exception):
    """Raised inside the checks, turned into an `Invalid` by `check_envelope`."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(field, reason)
        self.invalid = Invalid(field, _bounded(reason))


def _bounded(reason: str) -> str:
    # reasons quote the bad value: a 20 KB NISS quoted whole made a gRPC status message over the
    # client's 16 KiB metadata limit, and the sender got RESOURCE_EXHAUSTED instead of the reason
    return reason if len(reason) <= MAX_REASON else reason[: MAX_REASON - 1] + "…"


def message_id_ok(message_id: str) -> bool:
    """Whether `message_id` is a usable idempotency key: 1..MAX_MESSAGE_ID printable characters."""
    return 0 < len(message_id) <= MAX_MESSAGE_ID and message_id.isprintable()


def check_envelope(env: messages_pb2.Envelope, sender: AgencyId, today: dt.date) -> Request | Invalid:
    """The routing keys of `env` from the authenticated `sender`, or what is wrong with it.

    `today` stands for an empty `as_of`. `env.sender` is not read: identity comes from the
    certificate. Never raises.
    """
    try:
        return _check(env, sender, today)
    except _Refused as refused:
        return refused.invalid


def _check(env: messages_pb2.Envelope, sender: AgencyId, today: dt.date) -> Request:
    _check_common(env)
    as_of = _date(env.as_of, "as_of") if env.as_of else today
    kind = Kind(env.kind)
    request = Request(
        kind=kind,
        sender=sender,
        dataset=Dataset(env.dataset),
        purpose=Purpose(env.purpose),
        as_of=as_of,
        subjects=_subjects(env.subject_niss, env.related_niss),
        kbo=Kbo(env.subject_kbo) if env.subject_kbo else None,
        deliberation=DeliberationRef(env.deliberation) if env.deliberation else None,
    )
    return _BY_KIND[kind](env, request)


def _check_common(env: messages_pb2.Envelope) -> None:
    if not env.message_id:
        raise _Refused("message_id", "required")
    if not message_id_ok(env.message_id):
        raise _Refused("message_id", f"must be 1..{MAX_MESSAGE_ID} printable characters")
    if env.kind not in _KINDS:
        raise _Refused("kind", f"unknown message kind {env.kind}; expected one of {[k.name for k in Kind]}")
    for name in ("dataset", "purpose", "deliberation", "sender"):
        _text(getattr(env, name), name)
    if len(env.payload) > MAX_PAYLOAD_BYTES:
        raise _Refused("payload", f"{len(env.payload)} bytes, more than {MAX_PAYLOAD_BYTES}")
    if len(env.related_niss) > MAX_RELATED:
        raise _Refused("related_niss", f"{len(env.related_niss)} persons, more than {MAX_RELATED}")
    if env.subject_niss:
        _niss(env.subject_niss, "subject_niss")
    if env.subject_kbo:
        _kbo(env.subject_kbo, "subject_kbo")
    for i, niss in enumerate(env.related_niss):
        _niss(niss, f"related_niss[{i}]")


def _text(value: str, field: str) -> None:
    if len(value) > MAX_TEXT or not value.isprintable():
        raise _Refused(field, f"must be at most {MAX_TEXT} printable characters")


def _niss(value: str, field: str) -> Niss:
    problem = niss_problem(value) if value.isascii() else _not_ascii(value, "NISS", 11)
    if problem is not None:
        raise _Refused(field, problem)
    return Niss(value)


def _kbo(value: str, field: str) -> Kbo:
    problem = kbo_problem(value) if value.isascii() else _not_ascii(value, "KBO number", 10)
    if problem is not None:
        raise _Refused(field, problem)
    return Kbo(value)


def _not_ascii(value: str, what: str, digits: int) -> str:
    # niss_problem / kbo_problem accept any Unicode digit ("٨٥٠٣١٤١٢٣٠٢" passes) and raise on
    # superscripts ("²"): identifiers are ASCII digits, so they never see anything else
    return f"{what} must be {digits} ASCII digits, got {value[:32]!r}"


def _date(value: str, field: str) -> dt.date:
    if not _ISO_DATE.fullmatch(value):
        raise _Refused(field, f"expected an ISO date YYYY-MM-DD, got {value!r}")
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise _Refused(field, f"{value!r} is not a date: {exc}") from None


def _required(value: str, field: str, kind: Kind) -> str:
    if not value:
        raise _Refused(field, f"required for {kind.name}")
    return value


def _subjects(subject: str, related: Iterable[str]) -> tuple[Niss, ...]:
    """The subject first, then the related persons, each once."""
    persons = [subject, *related] if subject else list(related)
    return tuple(Niss(n) for n in dict.fromkeys(persons))


def _agree(in_envelope: str, in_payload: str, envelope_field: str, payload_field: str) -> str:
    """The value both name (either may be empty); they must agree when both are set."""
    if in_envelope and in_payload and in_envelope != in_payload:
        raise _Refused(payload_field, f"{in_payload!r} differs from {envelope_field} {in_envelope!r}")
    return in_envelope or in_payload


def _parse(payload: bytes, body: type[_M], kind: Kind) -> _M:
    message = body()
    try:
        message.ParseFromString(payload)
    except DecodeError as exc:
        raise _Refused("payload", f"not a {body.DESCRIPTOR.name} ({kind.name} payload): {exc}") from None
    return message


def _consultation(env: messages_pb2.Envelope, request: Request) -> Request:
    kind = request.kind
    _required(env.subject_niss, "subject_niss", kind)
    _required(env.purpose, "purpose", kind)
    body = _parse(env.payload, messages_pb2.ConsultationRequest, kind)
    dataset = _agree(env.dataset, body.dataset, "dataset", "payload.dataset")
    _text(_required(dataset, "dataset (or payload.dataset)", kind), "payload.dataset")
    for i, name in enumerate(body.fields):
        _text(name, f"payload.fields[{i}]")
    return request if dataset == env.dataset else replace(request, dataset=Dataset(dataset))


def _dimona(env: messages_pb2.Envelope, request: Request) -> Request:
    body = _parse(env.payload, messages_pb2.DimonaDeclaration, request.kind)
    if body.type not in _DIMONA_TYPES:
        raise _Refused("payload.type", "required: one of IN, OUT, UPDATE, CANCEL")
    worker = _person(env.subject_niss, body.worker_niss, "payload.worker_niss", request.kind)
    employer = _employer(env.subject_kbo, body.employer_kbo, "payload.employer_kbo", request.kind, required=True)
    if body.type == messages_pb2.IN or body.start_date:
        _date(_required(body.start_date, "payload.start_date", request.kind), "payload.start_date")
    if body.type == messages_pb2.OUT or body.end_date:
        _date(_required(body.end_date, "payload.end_date", request.kind), "payload.end_date")
    return replace(
        request,
        dataset=Dataset(env.dataset) if env.dataset else KIND_DATASETS[Kind.DIMONA],
        subjects=_subjects(worker, env.related_niss),
        kbo=employer,
    )


def _dmfa(env: messages_pb2.Envelope, request: Request) -> Request:
    kind = request.kind
    employer = _employer(env.subject_kbo, "", "subject_kbo", kind, required=True)
    body = _parse(env.payload, messages_pb2.DmfaDeclaration, kind)
    if body.employer_kbo:
        _kbo(body.employer_kbo, "payload.employer_kbo")
        _agree(env.subject_kbo, body.employer_kbo, "subject_kbo", "payload.employer_kbo")
    if body.quarter and not _QUARTER.fullmatch(body.quarter):
        raise _Refused("payload.quarter", f"expected a quarter like 2026Q3, got {body.quarter!r}")
    if not 1 <= len(body.lines) <= MAX_RELATED:
        raise _Refused("payload.lines", f"a DmfA declares 1..{MAX_RELATED} worker lines, got {len(body.lines)}")
    workers = [_niss(line.worker_niss, f"payload.lines[{i}].worker_niss") for i, line in enumerate(body.lines)]
    return replace(
        request,
        dataset=Dataset(env.dataset) if env.dataset else KIND_DATASETS[Kind.DMFA],
        subjects=_subjects(env.subject_niss, env.related_niss or workers),
        kbo=employer,
    )


def _drs(env: messages_pb2.Envelope, request: Request) -> Request:
    body = _parse(env.payload, messages_pb2.DrsDeclaration, request.kind)
    default = DRS_DATASETS.get(body.family)
    if default is None:
        raise _Refused("payload.family", "required: one of SICKNESS_MATERNITY, WORK_ACCIDENT, UNEMPLOYMENT")
    worker = _person(env.subject_niss, body.worker_niss, "payload.worker_niss", request.kind)
    employer = _employer(env.subject_kbo, body.employer_kbo, "payload.employer_kbo", request.kind, required=False)
    if body.event_date:
        _date(body.event_date, "payload.event_date")
    return replace(
        request,
        dataset=Dataset(env.dataset) if env.dataset else default,
        subjects=_subjects(worker, env.related_niss),
        kbo=employer,
    )


def _integration(env: messages_pb2.Envelope, request: Request) -> Request:
    body = _parse(env.payload, messages_pb2.DirectoryIntegration, request.kind)
    niss = _person(env.subject_niss, body.niss, "payload.niss", request.kind)
    if body.sector < 0:
        raise _Refused("payload.sector", f"a sector code is not negative, got {body.sector}")
    if not 0 <= body.quality_code <= 999:
        raise _Refused("payload.quality_code", f"expected 000..999, got {body.quality_code}")
    start = _date(_required(body.start, "payload.start", request.kind), "payload.start")
    end = _date(body.end, "payload.end") if body.end else None
    if request.kind is Kind.DEINTEGRATION and end is None:
        end = request.as_of  # closing a file without a date closes it on the day of the exchange
    if end is not None and end < start:
        raise _Refused("payload.end" if body.end else "as_of", f"{end.isoformat()} is before start {body.start}")
    entry = DirectoryEntry(
        niss, SectorCode(body.sector), request.sender, QualityCode(body.quality_code), body.phase_code, start, end
    )
    return replace(request, subjects=(niss,), integration=entry)


def _mutation(env: messages_pb2.Envelope, request: Request) -> Request:
    _required(env.dataset, "dataset", request.kind)
    body = _parse(env.payload, messages_pb2.MutationNotice, request.kind)
    niss = _person(env.subject_niss, body.niss, "payload.niss", request.kind)
    _text(_required(body.change, "payload.change", request.kind), "payload.change")
    if body.effective_date:
        _date(body.effective_date, "payload.effective_date")
    return replace(request, subjects=_subjects(niss, env.related_niss), change=body.change)


def _person(in_envelope: str, in_payload: str, payload_field: str, kind: Kind) -> Niss:
    """The person a declaration is about: named in the envelope, the payload, or both."""
    if in_payload:
        _niss(in_payload, payload_field)
    niss = _agree(in_envelope, in_payload, "subject_niss", payload_field)
    return Niss(_required(niss, f"subject_niss (or {payload_field})", kind))


def _employer(in_envelope: str, in_payload: str, payload_field: str, kind: Kind, *, required: bool) -> Kbo | None:
    if in_payload:
        _kbo(in_payload, payload_field)
    kbo = _agree(in_envelope, in_payload, "subject_kbo", payload_field)
    if required:
        where = "subject_kbo" if payload_field == "subject_kbo" else f"subject_kbo (or {payload_field})"
        _required(kbo, where, kind)
    return Kbo(kbo) if kbo else None


_DIMONA_TYPES = frozenset({messages_pb2.IN, messages_pb2.OUT, messages_pb2.UPDATE, messages_pb2.CANCEL})
_QUARTER = re.compile(r"\d{4}Q[1-4]", re.ASCII)
_BY_KIND: dict[Kind, Callable[[messages_pb2.Envelope, Request], Request]] = {
    Kind.CONSULTATION: _consultation,
    Kind.DIMONA: _dimona,
    Kind.DMFA: _dmfa,
    Kind.DRS: _drs,
    Kind.INTEGRATION: _integration,
    Kind.DEINTEGRATION: _integration,
    Kind.MUTATION: _mutation,
}
