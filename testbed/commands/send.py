"""`crossroads send`: send one exchange as a chosen agency, or many at random, and show what happened.

One exchange: the fields a person names are sent as given; the ones left out are picked from
the world of the network (rebuilt from its scenario, seeded) so that the exchange routes, and
the output says which were picked. The output is JSON: the outcome, the answer (a decoded
ConsultationAnswer, or the status of each delivery), the route (every destination and the
sector hub it went via), the deliberations, and the audit receipt (index, inclusion proof,
verified against the signed checkpoint). A refusal prints its status code, message and audit
index and exits 1.

`--random N` sends N exchanges of every kind drawn by `agencies.samples` (seeded) and prints
counts by kind and outcome.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import secrets
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from google.protobuf.json_format import MessageToDict
from numpy.typing import NDArray
from tqdm import tqdm

from agencies import authorizations as a
from agencies import catalogue as c
from agencies import samples
from agencies.answers import answer
from agencies.columns import day_number, day_of, last_full_quarter
from agencies.employers import JOINT_COMMITTEES
from agencies.world import World
from crossroads.domain import AgencyId, Condition, Dataset, Deliberation, Kind
from crossroads.routing import Routed
from protos import messages_pb2
from testbed.client import (
    DEFAULT_TIMEOUT_S,
    ClientError,
    CoreClient,
    ExchangeRefused,
    Receipt,
    expected_decision,
    load_world,
)

__all__ = [
    "DEFAULT_ATTEMPTS",
    "DEFAULT_CONCURRENCY",
    "FAMILIES",
    "Ask",
    "NoExample",
    "Prepared",
    "WorkerLine",
    "ask_from_args",
    "count_outcomes",
    "prepare",
    "refusal_report",
    "register",
    "reply_report",
    "send_random",
    "with_fresh_id",
]

DEFAULT_ATTEMPTS = 200  # examples drawn before giving up on one that routes
DEFAULT_CONCURRENCY = 8  # senders served at once by --random (one channel each)
FAMILIES = {
    "sickness": messages_pb2.SICKNESS_MATERNITY,
    "accident": messages_pb2.WORK_ACCIDENT,
    "unemployment": messages_pb2.UNEMPLOYMENT,
}
_DIMONA_TYPES = {
    "IN": messages_pb2.IN,
    "OUT": messages_pb2.OUT,
    "UPDATE": messages_pb2.UPDATE,
    "CANCEL": messages_pb2.CANCEL,
}
_REGISTER_CHANGES = a.MUTATION_CHANGES[a.REGISTER_CHANGES]
_HOURS_FULL_TIME = 3800  # 38 h a week, in hundredths of an hour
_GOOD = ("DELIVERED", "QUEUED")


class NoExample(ValueError):
    """The world holds no exchange matching the fields given (the message says which rule)."""


# ------------------------------------------------------------------ what a person asked for


@dataclass(frozen=True, slots=True)
class WorkerLine:
    """One `--worker NISS:WAGE_EUR:DAYS` of a DmfA."""

    niss: str
    wage_cents: int
    days: int

    @classmethod
    def parse(cls, text: str) -> WorkerLine:
        """From "NISS:WAGE_EUR:DAYS", e.g. "85073003328:11250.50:63"; ValueError saying what is wrong."""
        parts = text.split(":")
        if len(parts) != 3:
            raise ValueError(f"expected NISS:WAGE_EUR:DAYS, got {text!r}")
        try:
            return cls(parts[0], round(float(parts[1]) * 100), int(parts[2]))
        except ValueError:
            raise ValueError(f"expected NISS:WAGE_EUR:DAYS with a number of euros and of days, got {text!r}") from None


@dataclass(frozen=True, kw_only=True, slots=True)
class Ask:
    """The exchange a person asked for: None = "pick one from the world"."""

    kind: Kind
    sender: AgencyId | None = None
    niss: str | None = None
    kbo: str | None = None
    dataset: str | None = None
    purpose: str | None = None
    deliberation: str | None = None
    dimona_type: str | None = None
    start: str | None = None
    end: str | None = None
    quarter: str | None = None
    workers: tuple[WorkerLine, ...] = ()
    family: str | None = None
    scenario: int | None = None
    sector: int | None = None
    quality: int | None = None
    phase: int = 0
    change: str | None = None
    fields: tuple[tuple[str, str], ...] = ()
    as_of: str | None = None
    message_id: str | None = None


@dataclass(frozen=True, slots=True)
class Prepared:
    """An envelope ready to send as `sender`; `picked` names the fields drawn from the world."""

    sender: AgencyId
    envelope: messages_pb2.Envelope
    picked: dict[str, str] = field(default_factory=dict)
    note: str = ""


def ask_from_args(args: argparse.Namespace) -> Ask:
    """The `Ask` of parsed `crossroads send KIND ...` arguments."""
    given = vars(args)
    names = {f.name for f in dataclasses.fields(Ask)} - {"kind", "sender", "workers", "fields"}
    values = {name: given[name] for name in names if given.get(name) is not None}
    return Ask(
        kind=Kind[given["kind"].upper()],
        sender=AgencyId(given["sender"]) if given.get("sender") else None,
        workers=tuple(given.get("workers") or ()),
        fields=tuple(given.get("fields") or ()),
        **values,
    )


# ------------------------------------------------------------------ picking from the world


class _Draw:
    """Seeded choices from the world for the fields left out; `picked` records each one made."""

    def __init__(self, world: World, rng: np.random.Generator, as_of: dt.date) -> None:
        self.world = world
        self.rng = rng
        self.as_of = as_of
        self.picked: dict[str, str] = {}
        rows = world.rows
        today = day_number(as_of)
        self._open = (rows.start <= today) & (rows.end >= today)
        self._sector = np.array([ag.sector for ag in world.agencies], dtype=np.int64)[rows.agency]
        self._staffed = np.flatnonzero(np.diff(world.employment.offsets) > 0)

    def pick(self, name: str, value: Any) -> Any:
        self.picked[name] = str(value)
        return value

    def one(self, items: Sequence[Any] | NDArray[Any]) -> Any:
        if len(items) == 0:
            raise NoExample("nothing to choose from")
        return items[int(self.rng.integers(len(items)))]

    def row(self, *, agencies: Sequence[AgencyId] | None = None, sector: int | None = None) -> int | None:
        """A directory row open on the day (at one of `agencies`, in `sector`, when given), if any."""
        mask = self._open
        if agencies is not None:
            wanted = [self.world.agency_index[x] for x in agencies if x in self.world.agency_index]
            mask = mask & np.isin(self.world.rows.agency, wanted)
        if sector is not None:
            mask = mask & (self._sector == sector)
        found: NDArray[np.int64] = np.flatnonzero(mask)
        return int(found[int(self.rng.integers(found.size))]) if found.size else None

    def employer(self) -> int:
        if not self._staffed.size:
            raise NoExample("no employer of this world has a worker")
        return int(self._staffed[int(self.rng.integers(self._staffed.size))])

    def worker(self, employer: int) -> int:
        return int(self.one(self.world.workers_of(employer)))

    def newcomer(self, employer: int) -> int:
        """A person of working age (16-66) who does not work for `employer`."""
        w = self.world
        for _ in range(DEFAULT_ATTEMPTS):
            person = int(self.rng.integers(w.person_count))
            if 16 <= w.ages[person] <= 66 and w.employer_of(person) != employer:
                return person
        return self.worker(employer)

    def person(self) -> int:
        return int(self.rng.integers(self.world.person_count))


def _envelope(kind: Kind, body: Any, as_of: str, **keys: Any) -> messages_pb2.Envelope:
    return messages_pb2.Envelope(kind=int(kind), as_of=as_of, payload=body.SerializeToString(), **keys)  # type: ignore[arg-type]


def _requesters(world: World, d: Deliberation) -> list[AgencyId]:
    return [x for cat in sorted(d.requesters) for x in world.knowledge.by_category.get(cat, ())]


def _allows(world: World, ask: Ask, d: Deliberation) -> bool:
    sender = world.knowledge.agencies.get(ask.sender) if ask.sender else None
    return (
        (ask.dataset is None or d.dataset == ask.dataset)
        and (ask.purpose is None or ask.purpose in d.purposes)
        and (ask.deliberation is None or d.ref == ask.deliberation)
        and (ask.sender is None or (sender is not None and sender.category in d.requesters))
    )


def _asker_and_subject(draw: _Draw, d: Deliberation, ask: Ask) -> tuple[AgencyId, str]:
    """Who asks and about whom, so that deliberation `d` applies (the route check does the rest)."""
    w = draw.world
    source = w.knowledge.sources[d.dataset]
    if d.condition is Condition.OWN_FILES and ask.niss is None:  # a person in the asker's own files
        row = draw.row(agencies=[ask.sender] if ask.sender else _requesters(w, d))
        if row is None:
            raise NoExample(f"nobody who may use deliberation {d.ref} has a file open on {draw.as_of}")
        asker = ask.sender or draw.pick("sender", w.agencies[int(w.rows.agency[row])].id)
        return asker, draw.pick("niss", w.niss(int(w.rows.person[row])))
    if ask.niss is not None:
        holders = [e.agency for e in w.files_of(ask.niss) if e.open_on(draw.as_of)]
        own = [x for x in holders if w.knowledge.agencies[x].category in d.requesters]
        asker = ask.sender or draw.pick("sender", draw.one(own or _requesters(w, d)))
        return asker, ask.niss
    asker = ask.sender or draw.pick("sender", draw.one(_requesters(w, d)))
    row = draw.row(sector=source.sector) if source.source is None else None
    person = int(w.rows.person[row]) if row is not None else draw.person()
    return asker, draw.pick("niss", w.niss(person))


def _consultation(draw: _Draw, ask: Ask, as_of: str) -> Prepared:
    w = draw.world
    if ask.sender and ask.niss and ask.dataset and ask.purpose:  # all named: sent as asked
        sender, niss, dataset, purpose, ref = ask.sender, ask.niss, ask.dataset, ask.purpose, ask.deliberation or ""
    else:
        allowing = [d for d in a.consultation_deliberations(w.knowledge) if _allows(w, ask, d)]
        if not allowing:
            raise NoExample(
                f"no deliberation lets {ask.sender or 'any agency'} obtain {ask.dataset or 'any dataset'} "
                f"for purpose {ask.purpose or 'any'}: name --dataset, --purpose and --niss to send it anyway"
            )
        d: Deliberation = draw.one(allowing)
        dataset = ask.dataset or draw.pick("dataset", d.dataset)
        purpose = ask.purpose or draw.pick("purpose", draw.one(sorted(d.purposes)))
        ref = ask.deliberation or draw.pick("deliberation", d.ref)
        sender, niss = _asker_and_subject(draw, d, ask)
    body = messages_pb2.ConsultationRequest(dataset=dataset)
    env = _envelope(
        Kind.CONSULTATION, body, as_of, subject_niss=niss, dataset=dataset, purpose=purpose, deliberation=ref
    )
    return Prepared(sender, env)


def _declarant(draw: _Draw, ask: Ask) -> AgencyId:
    # the portal files for any employer; --as names a secretariat or the batch channel instead
    return ask.sender or draw.pick("sender", c.PORTAL)


def _employer_and_worker(draw: _Draw, ask: Ask, *, newcomer: bool) -> tuple[int | None, str, str]:
    """The employer (index if in the world), its KBO and the worker's NISS: as given, else drawn."""
    w = draw.world
    j = w.employer_index(ask.kbo) if ask.kbo else None
    if ask.niss is None:
        if ask.kbo is None:
            j = draw.employer()
        if j is None:
            raise NoExample(f"employer {ask.kbo} is not in the world: name the worker with --niss")
        person = draw.newcomer(j) if newcomer else draw.worker(j)
        niss = draw.pick("niss", w.niss(person))
    else:
        niss = ask.niss
        person_index = w.person_index(niss)
        if ask.kbo is None:
            j = w.employer_of(person_index) if person_index is not None else None
            j = draw.employer() if j is None else j
    return j, _kbo(draw, ask, j), niss


def _kbo(draw: _Draw, ask: Ask, j: int | None) -> str:
    if ask.kbo is not None or j is None:
        return ask.kbo or ""
    return str(draw.pick("kbo", draw.world.kbo(j)))


def _committee(world: World, j: int | None) -> str:
    return JOINT_COMMITTEES[int(world.employers.committee[j])].code if j is not None else ""


def _hired(world: World, j: int | None, niss: str, fallback: str) -> str:
    person = world.person_index(niss)
    if j is None or person is None or world.employer_of(person) != j:
        return fallback
    return day_of(int(world.employment.hired[person])).isoformat()


def _dimona(draw: _Draw, ask: Ask, as_of: str) -> Prepared:
    kind = ask.dimona_type or draw.pick("type", "IN")
    j, kbo, niss = _employer_and_worker(draw, ask, newcomer=kind == "IN")
    start = ask.start or draw.pick("start", as_of if kind == "IN" else _hired(draw.world, j, niss, as_of))
    end = ask.end or (draw.pick("end", as_of) if kind in ("OUT", "UPDATE") else "")
    body = messages_pb2.DimonaDeclaration(
        type=_DIMONA_TYPES[kind],
        employer_kbo=kbo,
        worker_niss=niss,
        start_date=start,
        end_date=end,
        joint_committee=_committee(draw.world, j),
        worker_type="OTH",
    )
    env = _envelope(
        Kind.DIMONA, body, as_of, subject_niss=niss, subject_kbo=kbo, dataset=a.DIMONA, purpose=a.DECLARATION_PURPOSE
    )
    return Prepared(_declarant(draw, ask), env)


def _known_wages(world: World, niss: str) -> tuple[str, int, int]:
    # the wages ONSS answers in a consultation: one story, whoever asks
    wages = answer(world.spec.seed, c.ONSS, a.WAGES, niss, as_of=world.spec.as_of)
    return niss, int(wages["gross_wage_cents"]), int(wages["days_worked"])


def _dmfa_lines(draw: _Draw, j: int | None, kbo: str, ask: Ask) -> list[messages_pb2.DmfaLine]:
    """The lines given with --worker, else one per worker of the employer (at most DEFAULT_DMFA_LINES)."""
    w = draw.world
    if ask.workers:
        declared = [(x.niss, x.wage_cents, x.days) for x in ask.workers]
    elif j is None:
        raise NoExample(f"employer {kbo} is not in the world: give its workers with --worker NISS:WAGE_EUR:DAYS")
    else:
        workers = w.workers_of(j)[: samples.DEFAULT_DMFA_LINES].tolist()
        draw.pick("workers", f"{len(workers)} of the employer's {w.workers_of(j).size} workers in the world")
        declared = [_known_wages(w, w.niss(person)) for person in workers]
    committee = JOINT_COMMITTEES[int(w.employers.committee[j])] if j is not None else None
    code = "015" if committee is not None and committee.manual else "495"  # manual worker or employee
    return [
        messages_pb2.DmfaLine(
            worker_niss=niss,
            worker_code=code,
            gross_wage_cents=wage,
            days_worked=days,
            hours_per_week_centi=_HOURS_FULL_TIME,
            joint_committee=committee.code if committee is not None else "",
        )
        for niss, wage, days in declared
    ]


def _dmfa(draw: _Draw, ask: Ask, as_of: str) -> Prepared:
    w = draw.world
    j = w.employer_index(ask.kbo) if ask.kbo else draw.employer()
    kbo = _kbo(draw, ask, j)
    quarter = ask.quarter or draw.pick("quarter", last_full_quarter(draw.as_of))
    body = messages_pb2.DmfaDeclaration(employer_kbo=kbo, quarter=quarter, lines=_dmfa_lines(draw, j, kbo, ask))
    env = _envelope(
        Kind.DMFA,
        body,
        as_of,
        subject_kbo=kbo,
        related_niss=[x.worker_niss for x in body.lines],
        dataset=a.DMFA,
        purpose=a.DECLARATION_PURPOSE,
    )
    return Prepared(_declarant(draw, ask), env)


def _drs(draw: _Draw, ask: Ask, as_of: str) -> Prepared:
    family = ask.family or draw.pick("family", draw.one(sorted(FAMILIES)))
    dataset, scenarios = a.DRS_DATASETS[FAMILIES[family]]
    if ask.scenario is not None and ask.scenario not in scenarios:
        raise NoExample(f"{family} has scenarios {', '.join(map(str, scenarios))}; got {ask.scenario}")
    scenario = ask.scenario if ask.scenario is not None else draw.pick("scenario", draw.one(scenarios))
    _, kbo, niss = _employer_and_worker(draw, ask, newcomer=False)
    event = ask.start or draw.pick("event_date", as_of)
    body = messages_pb2.DrsDeclaration(
        family=FAMILIES[family],
        scenario=scenario,
        employer_kbo=kbo,
        worker_niss=niss,
        event_date=event,
        fields=dict(ask.fields) or {"first_day": event},
    )
    env = _envelope(
        Kind.DRS, body, as_of, subject_niss=niss, subject_kbo=kbo, dataset=dataset, purpose=a.DECLARATION_PURPOSE
    )
    return Prepared(_declarant(draw, ask), env)


def _file_row(draw: _Draw, ask: Ask) -> int | None:
    """An open file at the sender (or anyone) to take the agency and quality code from; the file
    itself when closing one on a given person."""
    w = draw.world
    at = [ask.sender] if ask.sender is not None else None
    person = w.person_index(ask.niss) if ask.niss is not None and ask.kind is Kind.DEINTEGRATION else None
    if person is None:
        return draw.row(agencies=at, sector=ask.sector)
    rows = w.rows.rows_of(person)
    mine = [r for r in range(rows.start, rows.stop) if at is None or w.agencies[int(w.rows.agency[r])].id in at]
    return int(draw.one(mine)) if mine else None


def _integration(draw: _Draw, ask: Ask, as_of: str) -> Prepared:
    """An integration (open a file) or, for Kind.DEINTEGRATION, the closing of an open one."""
    w = draw.world
    closing = ask.kind is Kind.DEINTEGRATION
    row = _file_row(draw, ask)
    if ask.sender is None and row is None:
        raise NoExample(f"no agency has an open file{f' in sector {ask.sector}' if ask.sector else ''}")
    sender = ask.sender or draw.pick("sender", w.agencies[int(w.rows.agency[row])].id)
    agency = w.knowledge.agencies.get(sender)
    sector = ask.sector if ask.sector is not None else draw.pick("sector", agency.sector if agency else 0)
    known = int(w.rows.quality[row]) if row is not None else 0
    quality = ask.quality if ask.quality is not None else draw.pick("quality", known)
    if ask.niss is not None:
        niss = ask.niss
    elif closing and row is not None:
        niss = draw.pick("niss", w.niss(int(w.rows.person[row])))
    else:
        niss = draw.pick("niss", w.niss(draw.person()))
    opened = day_of(int(w.rows.start[row])).isoformat() if closing and row is not None else as_of
    body = messages_pb2.DirectoryIntegration(
        niss=niss,
        sector=sector,
        quality_code=quality,
        phase_code=ask.phase,
        start=ask.start or draw.pick("start", opened),
        end=ask.end or (draw.pick("end", as_of) if closing else ""),
    )
    return Prepared(sender, _envelope(ask.kind, body, as_of, subject_niss=niss))


def _mutation(draw: _Draw, ask: Ask, as_of: str) -> Prepared:
    w = draw.world
    attestation = ask.change == "dmfa_attestation" or ask.dataset == a.DMFA_ATTESTATIONS
    change = ask.change or draw.pick("change", "dmfa_attestation" if attestation else draw.one(_REGISTER_CHANGES))
    dataset = ask.dataset or draw.pick("dataset", a.DMFA_ATTESTATIONS if attestation else a.REGISTER_CHANGES)
    source = w.knowledge.sources.get(Dataset(dataset))
    sender = ask.sender or draw.pick("sender", source.source if source and source.source else c.NR)
    fields = dict(ask.fields)
    if ask.niss is not None:
        niss = ask.niss
    elif attestation:
        j = draw.employer()
        niss = draw.pick("niss", w.niss(draw.worker(j)))
        fields = fields or {"employer_kbo": w.kbo(j), "quarter": last_full_quarter(draw.as_of)}
    else:  # someone with files somewhere, so that the change reaches somebody
        row = draw.row()
        niss = draw.pick("niss", w.niss(int(w.rows.person[row]) if row is not None else draw.person()))
    body = messages_pb2.MutationNotice(niss=niss, change=change, effective_date=as_of, fields=fields)
    env = _envelope(Kind.MUTATION, body, as_of, subject_niss=niss, dataset=dataset, purpose=a.MUTATION_PURPOSE)
    return Prepared(sender, env)


_BUILDERS: dict[Kind, Callable[[_Draw, Ask, str], Prepared]] = {
    Kind.CONSULTATION: _consultation,
    Kind.DIMONA: _dimona,
    Kind.DMFA: _dmfa,
    Kind.DRS: _drs,
    Kind.INTEGRATION: _integration,
    Kind.DEINTEGRATION: _integration,
    Kind.MUTATION: _mutation,
}


def _as_of(ask: Ask, world: World) -> tuple[str, dt.date]:
    text = ask.as_of or world.spec.as_of.isoformat()
    try:
        return text, dt.date.fromisoformat(text)
    except ValueError:  # sent as given: the core says what is wrong with it
        return text, world.spec.as_of


def prepare(world: World, rng: np.random.Generator, ask: Ask, *, attempts: int = DEFAULT_ATTEMPTS) -> Prepared:
    """The envelope of `ask`, with the fields left out picked from `world` so that it routes.

    Fields given are kept as given (a given invalid NISS is sent, and refused by the core). When
    something is picked, examples are drawn from `rng` until `expected_decision` routes one, up
    to `attempts`; if none does, the last is returned with a `note` saying so. Raises NoExample
    when the fields given rule out every example (e.g. no deliberation allows them).
    """
    as_of, day = _as_of(ask, world)
    draw = _Draw(world, rng, day)
    prepared: Prepared | None = None
    problem = NoExample(f"no {ask.kind.name} example was found with the fields given")
    message_id = ask.message_id or f"send-{uuid.uuid4().hex}"
    for _ in range(attempts):
        draw.picked = {}
        try:
            tried = _BUILDERS[ask.kind](draw, ask, as_of)
        except NoExample as exc:  # this draw led nowhere; another may not
            problem = exc
            continue
        tried.envelope.message_id = message_id
        tried.envelope.sender = tried.sender  # informational: the core reads the certificate
        prepared = dataclasses.replace(tried, picked=dict(draw.picked))
        if not prepared.picked or isinstance(expected_decision(world, prepared.sender, prepared.envelope), Routed):
            break
    else:
        if prepared is None:
            raise problem
        prepared = dataclasses.replace(prepared, note="no example that routes was found with the fields given")
    assert prepared is not None  # the loop ran at least once and broke with one
    return prepared


# ------------------------------------------------------------------ reports


_BODIES: dict[int, type[Any]] = {
    Kind.CONSULTATION: messages_pb2.ConsultationRequest,
    Kind.DIMONA: messages_pb2.DimonaDeclaration,
    Kind.DRS: messages_pb2.DrsDeclaration,
    Kind.INTEGRATION: messages_pb2.DirectoryIntegration,
    Kind.DEINTEGRATION: messages_pb2.DirectoryIntegration,
    Kind.MUTATION: messages_pb2.MutationNotice,
}


def _body(env: messages_pb2.Envelope) -> dict[str, Any]:
    if Kind(env.kind) is Kind.DMFA:  # hundreds of lines: their sums say enough
        dmfa = messages_pb2.DmfaDeclaration.FromString(env.payload)
        total = sum(x.gross_wage_cents for x in dmfa.lines)
        return {
            "employerKbo": dmfa.employer_kbo,
            "quarter": dmfa.quarter,
            "lines": len(dmfa.lines),
            "grossWageEurTotal": round(total / 100, 2),
        }
    body = _BODIES.get(env.kind)
    if body is None:
        return {}
    return MessageToDict(body.FromString(env.payload))


def _envelope_json(env: messages_pb2.Envelope) -> dict[str, Any]:
    return {
        "message_id": env.message_id,
        "kind": messages_pb2.MessageKind.Name(env.kind),
        "subject_niss": env.subject_niss,
        "subject_kbo": env.subject_kbo,
        "related_niss": len(env.related_niss),
        "dataset": env.dataset,
        "purpose": env.purpose,
        "deliberation": env.deliberation,
        "as_of": env.as_of,
        "body": _body(env),
    }


def _head(prepared: Prepared, seed: int | None) -> dict[str, Any]:
    report: dict[str, Any] = {
        "kind": messages_pb2.MessageKind.Name(prepared.envelope.kind),
        "sender": prepared.sender,
        "picked": prepared.picked,
    }
    if seed is not None:
        report["seed"] = seed
    if prepared.note:
        report["note"] = prepared.note
    report["envelope"] = _envelope_json(prepared.envelope)
    return report


def _answer(reply: messages_pb2.ExchangeReply) -> dict[str, Any] | None:
    if not reply.deliveries or not reply.deliveries[0].reply:
        return None
    found = messages_pb2.ConsultationAnswer.FromString(reply.deliveries[0].reply)
    return {"agency": found.agency, "dataset": found.dataset, "found": found.found, "fields": dict(found.fields)}


def reply_report(
    prepared: Prepared, reply: messages_pb2.ExchangeReply, receipt: Receipt | None, *, seed: int | None = None
) -> dict[str, Any]:
    """The JSON report of a routed exchange: outcome, answer or deliveries, route, deliberations, receipt."""
    route = [
        {"agency": d.agency, "via": d.via or None, "outcome": messages_pb2.Outcome.Name(d.outcome), "detail": d.detail}
        for d in reply.deliveries
    ]
    report = _head(prepared, seed)
    report |= {
        "outcome": messages_pb2.Outcome.Name(reply.outcome),
        "forwarded": reply.forwarded,
        "deliberations": [r for r in reply.deliberation.split(",") if r],
        "route": route,
    }
    if Kind(prepared.envelope.kind) is Kind.CONSULTATION:
        report["answer"] = _answer(reply)
    else:
        report["deliveries"] = dict(Counter(d["outcome"] for d in route))
    report["detail"] = reply.detail
    report["audit"] = receipt.as_json() if receipt else {"index": reply.audit_index}
    return report


def refusal_report(
    prepared: Prepared, refused: ExchangeRefused, receipt: Receipt | None, *, seed: int | None = None
) -> dict[str, Any]:
    """The JSON report of a refused exchange: status code, message, audit index and receipt."""
    report = _head(prepared, seed)
    report |= {
        "outcome": "REFUSED",
        "status": refused.code.name,
        "message": refused.details,
        "audit_index": refused.audit_index,
        "audit": receipt.as_json() if receipt else None,
    }
    return report


# ------------------------------------------------------------------ sending


def _receipt(client: CoreClient, index: int | None, message_id: str) -> Receipt | None:
    return None if index is None else client.receipt(index, message_id=message_id)


def _send_one(state: Path, prepared: Prepared, timeout_s: float, seed: int | None) -> tuple[int, dict[str, Any]]:
    env = prepared.envelope
    with CoreClient.connect(state, prepared.sender, timeout_s=timeout_s) as client:
        try:
            reply = client.exchange(env)
        except ExchangeRefused as refused:
            return 1, refusal_report(
                prepared, refused, _receipt(client, refused.audit_index, env.message_id), seed=seed
            )
        receipt = client.receipt(reply.audit_index, message_id=env.message_id)
    code = 0 if messages_pb2.Outcome.Name(reply.outcome) in _GOOD else 1
    return code, reply_report(prepared, reply, receipt, seed=seed)


def with_fresh_id(envelope: messages_pb2.Envelope, run: str) -> messages_pb2.Envelope:
    """`envelope` with its message id prefixed by `run`: seeded samples repeat ids from run to run."""
    fresh = messages_pb2.Envelope()
    fresh.CopyFrom(envelope)
    fresh.message_id = f"{run}-{envelope.message_id}"
    return fresh


def _outcome(client: CoreClient, envelope: messages_pb2.Envelope) -> str:
    try:
        return messages_pb2.Outcome.Name(client.exchange(envelope).outcome)
    except ExchangeRefused as refused:
        return str(refused.code.name)


def _send_batch(
    state: Path,
    sender: AgencyId,
    batch: Sequence[tuple[Kind, messages_pb2.Envelope]],
    timeout_s: float,
    tick: Callable[[], None],
) -> list[tuple[Kind, str]]:
    outcomes = []
    with CoreClient.connect(state, sender, timeout_s=timeout_s) as client:
        for kind, envelope in batch:
            outcomes.append((kind, _outcome(client, envelope)))
            tick()
    return outcomes


def count_outcomes(outcomes: Iterable[tuple[Kind, str]], per_kind: int, seed: int) -> dict[str, Any]:
    """{"CONSULTATION": {"DELIVERED": n, ...}, ..., "totals": {...}}: every kind, in kind order."""
    by_kind: dict[str, Counter[str]] = {kind.name: Counter() for kind in samples.KINDS}
    for kind, outcome in outcomes:
        by_kind[kind.name][outcome] += 1
    overall: Counter[str] = Counter()
    for counts in by_kind.values():
        overall.update(counts)
    report: dict[str, Any] = {name: dict(counts) for name, counts in by_kind.items()}
    report["totals"] = {"sent": sum(overall.values()), "by_outcome": dict(overall), "per_kind": per_kind, "seed": seed}
    return report


def send_random(
    state: Path,
    world: World,
    *,
    per_kind: int,
    seed: int,
    concurrency: int = DEFAULT_CONCURRENCY,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    progress: bool = True,
) -> dict[str, Any]:
    """Send `per_kind` exchanges of every kind drawn by `agencies.samples` with `seed`; count the outcomes.

    The samples are drawn first (deterministic per world and seed), then sent sender by sender
    (one channel each, `concurrency` senders at once). Message ids get a prefix fresh for each
    run, so that agencies do not take a second run for redeliveries of the first.
    """
    rng = np.random.default_rng(seed)
    run = uuid.uuid4().hex[:8]
    batches: dict[AgencyId, list[tuple[Kind, messages_pb2.Envelope]]] = defaultdict(list)
    for _ in range(per_kind):
        for kind, sampler in samples.KINDS.items():
            sample = sampler(world, rng)
            batches[sample.sender].append((kind, with_fresh_id(sample.envelope, run)))
    total = per_kind * len(samples.KINDS)
    lock = threading.Lock()
    with tqdm(total=total, desc="send", unit="msg", file=sys.stderr, disable=not progress) as bar:

        def tick() -> None:
            with lock:
                bar.update()

        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            futures = [pool.submit(_send_batch, state, s, b, timeout_s, tick) for s, b in batches.items()]
            outcomes = [o for f in as_completed(futures) for o in f.result()]
    return count_outcomes(outcomes, per_kind, seed)


# ------------------------------------------------------------------ the command

_HELP = """\
Send one exchange to the crossroads core of a running network, as one agency (its certificate
from STATE/pki), and print JSON: the outcome, the answer (a consultation's ConsultationAnswer,
else each delivery's status), the route (every destination and the sector hub it went via),
the deliberations that allowed it, and the audit receipt (the record's index, its inclusion
proof and whether it verifies against the checkpoint signed with STATE/keys/audit.pub).

Fields left out are picked from the network's world (rebuilt from its scenario, seeded by
--seed) so that the exchange routes; "picked" in the output names them. Fields given are sent
as given, so an invalid one shows how the core refuses it. A refusal prints its status code,
message and audit index, and exits 1.

  crossroads send --state DIR consultation
  crossroads send --state DIR --as ONEM consultation --dataset health_insurance
  crossroads send --state DIR dimona --type OUT
  crossroads send --state DIR --random 20 --seed 7

Exit codes: 0 delivered or queued; 1 refused or failed; 2 bad use (no network, no example).
"""

_KIND_HELP = {
    "consultation": "ask the agency holding a dataset about a person (default sender: one a deliberation allows)",
    "dimona": "declare the start (IN), end (OUT), change or cancellation of an employment (default sender: PORTAL)",
    "dmfa": "file an employer's quarterly wages and working time, fanned out (default sender: PORTAL)",
    "drs": "declare a social risk: sickness, work accident, unemployment (default sender: PORTAL)",
    "integration": "open a file on a person in the sender's sector of the reference directory",
    "deintegration": "close a file on a person in the reference directory",
    "mutation": "push a change about a person to every agency with the person in its files "
    "(default sender: the dataset's authentic source, NR or ONSS)",
}


def _common(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """The options of every form. Also given to each kind, so they may come after its name; there
    they default to "absent" so that they never overwrite the same option given before the kind."""

    def add(*names: str, **options: Any) -> None:
        if not top:
            options["default"] = argparse.SUPPRESS
        parser.add_argument(*names, **options)

    add("--state", metavar="DIR", type=Path, help="state folder of the running network")
    add("--as", dest="sender", metavar="AGENCY", help="send as this agency (e.g. ONEM, CPAS-0042)")
    add("--seed", type=int, help="seed of the picks (default: fresh, printed)")
    add(
        "--scenario-file",
        type=Path,
        metavar="FILE",
        help="the scenario the network was brought up with (default: found by the world's fingerprint)",
    )
    add(
        "--timeout",
        type=float,
        metavar="S",
        default=DEFAULT_TIMEOUT_S,
        help=f"seconds per call (default {DEFAULT_TIMEOUT_S})",
    )


def _field(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _worker(text: str) -> WorkerLine:
    try:
        return WorkerLine.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _kind_options(name: str, p: argparse.ArgumentParser) -> None:
    if name in ("consultation", "dimona", "drs", "integration", "deintegration", "mutation"):
        p.add_argument("--niss", help="the person's NISS (11 digits; sent as given)")
    if name in ("dimona", "dmfa", "drs"):
        p.add_argument("--kbo", help="the employer's KBO number (10 digits)")
    if name == "consultation":
        p.add_argument("--dataset", help="e.g. identity, wages, health_insurance, unemployment, family_allowance")
        p.add_argument("--purpose", help="e.g. social_integration, unemployment_benefits, health_insurance")
        p.add_argument("--deliberation", metavar="REF", help="the deliberation relied on, e.g. 03/005")
    elif name == "dimona":
        p.add_argument("--type", dest="dimona_type", choices=sorted(_DIMONA_TYPES), help="default IN")
        p.add_argument("--start", metavar="DATE", help="start of the employment (ISO date)")
        p.add_argument("--end", metavar="DATE", help="end of the employment (OUT, UPDATE)")
    elif name == "dmfa":
        p.add_argument("--quarter", help="e.g. 2026Q3 (default: the last full quarter)")
        p.add_argument(
            "--worker",
            dest="workers",
            type=_worker,
            nargs="+",
            action="extend",
            metavar="NISS:WAGE_EUR:DAYS",
            help="a worker line (default: the employer's workers in the world)",
        )
    elif name == "drs":
        p.add_argument("--family", choices=sorted(FAMILIES), help="the risk family")
        p.add_argument("--scenario", type=int, metavar="N", help="the scenario number within the family")
        p.add_argument("--event-date", dest="start", metavar="DATE", help="the day of the event")
    elif name in ("integration", "deintegration"):
        p.add_argument("--sector", type=int, help="sector code (must be the sender's), e.g. 4 health, 17 CPAS")
        p.add_argument("--quality", type=int, help="quality code: 902 provisional, 000 definitive, 001-900")
        p.add_argument("--phase", type=int, help="phase code (default 0)")
        p.add_argument("--start", metavar="DATE", help="the day the file opens")
        p.add_argument("--end", metavar="DATE", help="the day the file closes")
    else:
        p.add_argument("--change", help=f"e.g. {', '.join(_REGISTER_CHANGES)}, dmfa_attestation")
        p.add_argument("--dataset", help=f"{a.REGISTER_CHANGES} or {a.DMFA_ATTESTATIONS} (default: by change)")
    if name in ("drs", "mutation"):
        p.add_argument(
            "--field",
            dest="fields",
            type=_field,
            action="append",
            metavar="KEY=VALUE",
            help="a field of the declaration or notice (repeatable)",
        )
    p.add_argument("--as-of", metavar="DATE", help="the day the exchange is about (default: the world's day)")
    p.add_argument("--message-id", help="the idempotency key (default: fresh)")


def register(sub: Any) -> None:
    """Add `send` and its kinds to the `crossroads` sub-commands."""
    send = sub.add_parser(
        "send",
        help="send one exchange as an agency (or --random N) and show route, answer and receipt",
        description=_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(send, top=True)
    send.add_argument("--random", type=int, metavar="N", help="send N exchanges of every kind, drawn at random")
    send.add_argument(
        "--concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        help=f"--random: senders served at once (default {DEFAULT_CONCURRENCY})",
    )
    send.add_argument("--no-progress", action="store_true", help="--random: no progress bar on stderr")
    kinds = send.add_subparsers(dest="kind", metavar="KIND")
    for name, text in _KIND_HELP.items():
        kind = kinds.add_parser(name, help=text, description=text)
        _common(kind, top=False)
        _kind_options(name, kind)
    send.set_defaults(func=run_send)


def _fail(message: str) -> int:
    print(f"crossroads send: {message}", file=sys.stderr)
    return 2


def _run_random(args: argparse.Namespace, world: World, seed: int) -> int:
    if args.kind:
        return _fail("--random draws every kind: name no kind with it")
    if args.random < 1:
        return _fail(f"--random needs a positive count, got {args.random}")
    started = time.perf_counter()
    report = send_random(
        args.state,
        world,
        per_kind=args.random,
        seed=seed,
        concurrency=args.concurrency,
        timeout_s=args.timeout,
        progress=not args.no_progress,
    )
    report["totals"]["seconds"] = round(time.perf_counter() - started, 3)
    print(json.dumps(report, indent=2))
    bad = {k: n for k, n in report["totals"]["by_outcome"].items() if k not in _GOOD}
    return 1 if bad else 0


def run_send(args: argparse.Namespace) -> int:
    if args.state is None:
        return _fail("--state DIR is required (the folder given to crossroads up)")
    if args.random is None and not args.kind:
        return _fail(
            "name a kind (consultation, dimona, dmfa, drs, integration, deintegration, mutation) or --random N"
        )
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    try:
        world = load_world(args.state, args.scenario_file)
        if args.random is not None:
            return _run_random(args, world, seed)
        prepared = prepare(world, np.random.default_rng(seed), ask_from_args(args))
        code, report = _send_one(args.state, prepared, args.timeout, seed)
    except (ClientError, NoExample) as exc:
        return _fail(str(exc))
    except grpc.RpcError as exc:  # the core went away between the exchange and its receipt
        return _fail(f"the core stopped answering: {exc}")
    print(json.dumps(report, indent=2, ensure_ascii=False))
    if report["outcome"] == "REFUSED":
        where = f" (audit record {report['audit_index']})" if report["audit_index"] is not None else ""
        print(f"crossroads send: refused, {report['status']}: {report['message']}{where}", file=sys.stderr)
    return code
