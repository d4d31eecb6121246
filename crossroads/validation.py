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
import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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
from crossroads.routing import Request, request_of
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
_ISO_LENGTH = len("2026-11-28")
_M = TypeVar("_M", bound=ProtoMessage)
# a dict lookup: calling Kind(value) goes through EnumMeta.__call__, several times slower
_KIND_OF = {k.value: k for k in Kind}


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
    certificate. Never raises. When several things are wrong, the first found is reported: the
    checks every envelope gets come first, in the order of `_read`, then the kind's.
    """
    try:
        fields = _read(env, sender, today)
        return _BY_KIND[fields.kind](fields)
    except _Refused as refused:
        return refused.invalid


@dataclass(slots=True)
class _Fields:
    """The envelope's fields that every kind uses, checked, each read from the message once.

    Every read of a protobuf field builds a new Python object: this runs once per message on the
    core's one thread, so the values are read once here and passed on.
    """

    kind: Kind
    sender: AgencyId
    as_of: dt.date
    dataset: str
    purpose: str
    deliberation: str
    subject: str
    kbo: str
    related: Sequence[str]
    payload: bytes

    def request(
        self,
        dataset: str,
        subjects: tuple[Niss, ...],
        kbo: Kbo | None,
        change: str = "",
        integration: DirectoryEntry | None = None,
    ) -> Request:
        """The routing keys, built once with their final values (a frozen dataclass is slow to build)."""
        deliberation = DeliberationRef(self.deliberation) if self.deliberation else None
        return request_of(
            self.kind, self.sender, Dataset(dataset), Purpose(self.purpose), self.as_of,
            subjects, kbo, deliberation, change, integration,
        )  # fmt: skip


def _read(env: messages_pb2.Envelope, sender: AgencyId, today: dt.date) -> _Fields:
    """The checks every envelope gets, in the order they are reported: ids, kind, texts, sizes, as_of."""
    message_id = env.message_id
    if not message_id:
        raise _Refused("message_id", "required")
    if not message_id_ok(message_id):
        raise _Refused("message_id", f"must be 1..{MAX_MESSAGE_ID} printable characters")
    kind = _KIND_OF.get(env.kind)
    if kind is None:
        raise _Refused("kind", f"unknown message kind {env.kind}; expected one of {[k.name for k in Kind]}")
    dataset, purpose, deliberation = env.dataset, env.purpose, env.deliberation
    # inline and without the names, which only a refusal needs: this runs for every message
    texts = (dataset, purpose, deliberation, env.sender)
    for value in texts:
        if len(value) > MAX_TEXT or not value.isprintable():
            for name, each in zip(_TEXT_FIELDS, texts, strict=True):  # refuses the first bad one
                _text(each, name)
    payload = env.payload
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise _Refused("payload", f"{len(payload)} bytes, more than {MAX_PAYLOAD_BYTES}")
    related = env.related_niss
    if len(related) > MAX_RELATED:
        raise _Refused("related_niss", f"{len(related)} persons, more than {MAX_RELATED}")
    subject, kbo = env.subject_niss, env.subject_kbo
    if subject:
        _niss(subject, "subject_niss")
    if kbo:
        _kbo(kbo, "subject_kbo")
    if related:  # iterating a repeated field costs about 0.1 us even when it is empty
        for i, niss in enumerate(related):
            _niss(niss, f"related_niss[{i}]")
    as_of = env.as_of
    day = _date(as_of, "as_of") if as_of else today
    return _Fields(kind, sender, day, dataset, purpose, deliberation, subject, kbo, related, payload)


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
    # only texts of an ISO date's length go through the cache, which so stays a few KB whatever is sent
    parsed = _iso_date(value) if len(value) == _ISO_LENGTH else _not_iso(value)
    if isinstance(parsed, str):
        raise _Refused(field, parsed)
    return parsed


# Most envelopes name the same few dates (as_of is usually today): a bounded cache of the
# result (the date, or what is wrong with the text) saves the pattern match and the parse.
@functools.lru_cache(maxsize=1024)
def _iso_date(value: str) -> dt.date | str:
    """The date `value` names, or what is wrong with it (without the field)."""
    if not _ISO_DATE.fullmatch(value):
        return _not_iso(value)
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        return f"{value!r} is not a date: {exc}"


def _not_iso(value: str) -> str:
    return f"expected an ISO date YYYY-MM-DD, got {value!r}"


def _required(value: str, field: str, kind: Kind) -> str:
    if not value:
        raise _Refused(field, f"required for {kind.name}")
    return value


def _subjects(subject: str, related: Sequence[str]) -> tuple[Niss, ...]:
    """The subject first, then the related persons, each once."""
    if not related:  # the common case, one person or none: nothing to de-duplicate
        return (Niss(subject),) if subject else ()
    persons = [subject, *related] if subject else related
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


def _consultation(f: _Fields) -> Request:
    kind = f.kind
    _required(f.subject, "subject_niss", kind)
    _required(f.purpose, "purpose", kind)
    body = _parse(f.payload, messages_pb2.ConsultationRequest, kind)
    dataset = _agree(f.dataset, body.dataset, "dataset", "payload.dataset")
    _text(_required(dataset, "dataset (or payload.dataset)", kind), "payload.dataset")
    names = body.fields
    if names:  # iterating a repeated field costs about 0.1 us even when it is empty
        for i, name in enumerate(names):
            _text(name, f"payload.fields[{i}]")
    return f.request(dataset, _subjects(f.subject, f.related), Kbo(f.kbo) if f.kbo else None)


def _dimona(f: _Fields) -> Request:
    body = _parse(f.payload, messages_pb2.DimonaDeclaration, f.kind)
    declared = body.type
    if declared not in _DIMONA_TYPES:
        raise _Refused("payload.type", "required: one of IN, OUT, UPDATE, CANCEL")
    worker = _person(f.subject, body.worker_niss, "payload.worker_niss", f.kind)
    employer = _employer(f.kbo, body.employer_kbo, "payload.employer_kbo", f.kind, required=True)
    start, end = body.start_date, body.end_date
    if declared == messages_pb2.IN or start:
        _date(_required(start, "payload.start_date", f.kind), "payload.start_date")
    if declared == messages_pb2.OUT or end:
        _date(_required(end, "payload.end_date", f.kind), "payload.end_date")
    return f.request(f.dataset or KIND_DATASETS[Kind.DIMONA], _subjects(worker, f.related), employer)


def _dmfa(f: _Fields) -> Request:
    kind = f.kind
    employer = _employer(f.kbo, "", "subject_kbo", kind, required=True)
    body = _parse(f.payload, messages_pb2.DmfaDeclaration, kind)
    if body.employer_kbo:
        _kbo(body.employer_kbo, "payload.employer_kbo")
        _agree(f.kbo, body.employer_kbo, "subject_kbo", "payload.employer_kbo")
    if body.quarter and not _QUARTER.fullmatch(body.quarter):
        raise _Refused("payload.quarter", f"expected a quarter like 2026Q3, got {body.quarter!r}")
    lines = body.lines
    if not 1 <= len(lines) <= MAX_RELATED:
        raise _Refused("payload.lines", f"a DmfA declares 1..{MAX_RELATED} worker lines, got {len(lines)}")
    named = set(f.related)  # checked already: a worker also named there is not checked twice (~0.5 us each)
    workers: list[Niss] = []
    for i, line in enumerate(lines):
        niss = line.worker_niss
        workers.append(Niss(niss) if niss in named else _niss(niss, f"payload.lines[{i}].worker_niss"))
    return f.request(f.dataset or KIND_DATASETS[Kind.DMFA], _subjects(f.subject, f.related or workers), employer)


def _drs(f: _Fields) -> Request:
    body = _parse(f.payload, messages_pb2.DrsDeclaration, f.kind)
    default = DRS_DATASETS.get(body.family)
    if default is None:
        raise _Refused("payload.family", "required: one of SICKNESS_MATERNITY, WORK_ACCIDENT, UNEMPLOYMENT")
    worker = _person(f.subject, body.worker_niss, "payload.worker_niss", f.kind)
    employer = _employer(f.kbo, body.employer_kbo, "payload.employer_kbo", f.kind, required=False)
    event = body.event_date
    if event:
        _date(event, "payload.event_date")
    return f.request(f.dataset or default, _subjects(worker, f.related), employer)


def _integration(f: _Fields) -> Request:
    body = _parse(f.payload, messages_pb2.DirectoryIntegration, f.kind)
    niss = _person(f.subject, body.niss, "payload.niss", f.kind)
    sector, quality, first, last = body.sector, body.quality_code, body.start, body.end
    if sector < 0:
        raise _Refused("payload.sector", f"a sector code is not negative, got {sector}")
    if not 0 <= quality <= 999:
        raise _Refused("payload.quality_code", f"expected 000..999, got {quality}")
    start = _date(_required(first, "payload.start", f.kind), "payload.start")
    end = _date(last, "payload.end") if last else None
    if f.kind is Kind.DEINTEGRATION and end is None:
        end = f.as_of  # closing a file without a date closes it on the day of the exchange
    if end is not None and end < start:
        raise _Refused("payload.end" if last else "as_of", f"{end.isoformat()} is before start {first}")
    entry = DirectoryEntry(niss, SectorCode(sector), f.sender, QualityCode(quality), body.phase_code, start, end)
    return f.request(f.dataset, (niss,), Kbo(f.kbo) if f.kbo else None, integration=entry)


def _mutation(f: _Fields) -> Request:
    _required(f.dataset, "dataset", f.kind)
    body = _parse(f.payload, messages_pb2.MutationNotice, f.kind)
    niss = _person(f.subject, body.niss, "payload.niss", f.kind)
    change = body.change
    _text(_required(change, "payload.change", f.kind), "payload.change")
    if body.effective_date:
        _date(body.effective_date, "payload.effective_date")
    return f.request(f.dataset, _subjects(niss, f.related), Kbo(f.kbo) if f.kbo else None, change=change)


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


_TEXT_FIELDS = ("dataset", "purpose", "deliberation", "sender")
_DIMONA_TYPES = frozenset({messages_pb2.IN, messages_pb2.OUT, messages_pb2.UPDATE, messages_pb2.CANCEL})
_QUARTER = re.compile(r"\d{4}Q[1-4]", re.ASCII)
_BY_KIND: dict[Kind, Callable[[_Fields], Request]] = {
    Kind.CONSULTATION: _consultation,
    Kind.DIMONA: _dimona,
    Kind.DMFA: _dmfa,
    Kind.DRS: _drs,
    Kind.INTEGRATION: _integration,
    Kind.DEINTEGRATION: _integration,
    Kind.MUTATION: _mutation,
}
