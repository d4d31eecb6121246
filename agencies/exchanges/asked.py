"""An exchange filled in around the fields given: those kept as given, the rest drawn from the world.

`fill(draws, ask)` builds the Envelope of an `Ask` (the kind, and any of its fields) and names the
agency that sends it, drawing what was left out with the draws of draws.py; it is the one place
each kind of exchange is put together. The samplers (samples.py) fill in around values they drew
at random; `crossroads send` around the fields a person named, through `prepare(world, rng,
ask)`, which draws until `expected_decision` routes the exchange. Fields given are never
changed, so a given invalid field is sent as it is and shows how the core refuses it.
`Prepared.picked` names every field that was drawn.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agencies import authorizations as a
from agencies import catalogue as c
from agencies.answers import answer
from agencies.columns import day_of, last_full_quarter
from agencies.employers import FULL_TIME_HOURS_CENTI
from agencies.exchanges.decision import expected_decision
from agencies.exchanges.draws import Draws, NoExchange
from agencies.world import World
from crossroads.domain import AgencyId, Dataset, Deliberation, Kind
from crossroads.routing import Routed
from protos import messages_pb2

__all__ = [
    "DEFAULT_ATTEMPTS",
    "DEFAULT_DMFA_LINES",
    "DIMONA_TYPES",
    "FAMILIES",
    "Ask",
    "Prepared",
    "WorkerLine",
    "fill",
    "prepare",
]

DEFAULT_ATTEMPTS = 200  # examples drawn before giving up on one that routes
DEFAULT_DMFA_LINES = 200  # a DmfA drawn from the world declares at most this many workers (bounds message size)
FAMILIES = {
    "sickness": messages_pb2.SICKNESS_MATERNITY,
    "accident": messages_pb2.WORK_ACCIDENT,
    "unemployment": messages_pb2.UNEMPLOYMENT,
}
DIMONA_TYPES = {
    "IN": messages_pb2.IN,
    "OUT": messages_pb2.OUT,
    "UPDATE": messages_pb2.UPDATE,
    "CANCEL": messages_pb2.CANCEL,
}


# ------------------------------------------------------------------ what a person asked for


@dataclass(frozen=True, slots=True)
class WorkerLine:
    """One `--worker NISS:WAGE_EUR:DAYS` of a DmfA."""

    niss: str
    wage_cents: int
    days: int
    hours_centi: int = FULL_TIME_HOURS_CENTI  # hours a week, in hundredths

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
    worker_type: str = "OTH"  # of a DIMONA: OTH, or STU for a student
    start: str | None = None
    end: str | None = None
    quarter: str | None = None
    workers: tuple[WorkerLine, ...] = ()
    family: str | None = None
    scenario: int | None = None
    sector: int | None = None
    quality: int | None = None
    phase: int | None = None  # None: the file's own when closing one, else 0
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


def _envelope(kind: Kind, body: Any, as_of: str, **keys: Any) -> messages_pb2.Envelope:
    """The Envelope of `kind` carrying `body` (serialized), with the routing `keys` given."""
    payload = body.SerializeToString(deterministic=True)  # map fields in key order: the same bytes in every process
    return messages_pb2.Envelope(kind=int(kind), as_of=as_of, payload=payload, **keys)  # type: ignore[arg-type]


# ------------------------------------------------------------------ consultations


def _allows(world: World, ask: Ask, d: Deliberation) -> bool:
    sender = world.knowledge.agencies.get(ask.sender) if ask.sender else None
    return (
        (ask.dataset is None or d.dataset == ask.dataset)
        and (ask.purpose is None or ask.purpose in d.purposes)
        and (ask.deliberation is None or d.ref == ask.deliberation)
        and (ask.sender is None or (sender is not None and sender.category in d.requesters))
    )


def _asker(draw: Draws, d: Deliberation, ask: Ask) -> tuple[AgencyId, str]:
    """Who asks and about whom under deliberation `d`, keeping the sender and NISS given."""
    w = draw.world
    if ask.niss is None:
        found = draw.asker_and_subject(d, ask.sender)
        if found is None:
            raise NoExchange(f"nobody who may use deliberation {d.ref} finds a person to ask about on {draw.day}")
        return ask.sender or draw.pick("sender", found[0]), draw.pick("niss", w.niss(found[1]))
    # about a person given: preferably an asker with a file open on them
    holders = [e.agency for e in w.files_of(ask.niss) if e.open_on(draw.day)]
    own = [x for x in holders if w.knowledge.agencies[x].category in d.requesters]
    return ask.sender or draw.pick("sender", draw.one(own or [w.agencies[k].id for k in draw.requesters(d)])), ask.niss


def _consultation(draw: Draws, ask: Ask, as_of: str) -> Prepared:
    if ask.sender and ask.niss and ask.dataset and ask.purpose:  # all named: sent as asked
        sender, niss, dataset, purpose, ref = ask.sender, ask.niss, ask.dataset, ask.purpose, ask.deliberation or ""
    else:
        allowing = [d for d in draw.consultations() if _allows(draw.world, ask, d)]
        if not allowing:
            raise NoExchange(
                f"no deliberation lets {ask.sender or 'any agency'} obtain {ask.dataset or 'any dataset'} "
                f"for purpose {ask.purpose or 'any'}: name --dataset, --purpose and --niss to send it anyway"
            )
        d = draw.one(allowing)
        dataset = ask.dataset or draw.pick("dataset", d.dataset)
        purpose = ask.purpose or draw.pick("purpose", draw.one(sorted(d.purposes)))
        ref = ask.deliberation or draw.pick("deliberation", d.ref)
        sender, niss = _asker(draw, d, ask)
    body = messages_pb2.ConsultationRequest(dataset=dataset)
    keys = {"subject_niss": niss, "dataset": dataset, "purpose": purpose, "deliberation": ref}
    return Prepared(sender, _envelope(Kind.CONSULTATION, body, as_of, **keys))


# ------------------------------------------------------------------ declarations


def _declared(draw: Draws, ask: Ask, kind: Kind, body: Any, as_of: str, **keys: Any) -> Prepared:
    """A declaration (DIMONA, DmfA, DRS) of `body`, sent by the declarant; `keys` go on the envelope."""
    env = _envelope(kind, body, as_of, purpose=a.DECLARATION_PURPOSE, **keys)
    # the portal files for any employer; --as names a secretariat or the batch channel instead
    return Prepared(ask.sender or draw.pick("sender", c.PORTAL), env)


def _employer_and_worker(draw: Draws, ask: Ask, *, newcomer: bool) -> tuple[int | None, str, str]:
    """The employer (index if in the world), its KBO and the worker's NISS: as given, else drawn."""
    w = draw.world
    j = w.employer_index(ask.kbo) if ask.kbo else None
    if ask.niss is None:
        if ask.kbo is None:
            j = draw.employer()
        if j is None:
            raise NoExchange(f"employer {ask.kbo} is not in the world: name the worker with --niss")
        person = draw.newcomer(j) if newcomer else draw.worker(j)
        niss: str = draw.pick("niss", w.niss(person))
    else:
        niss = ask.niss
        person_index = w.person_index(niss)
        if ask.kbo is None:
            j = w.employer_of(person_index) if person_index is not None else None
            j = draw.employer() if j is None else j
    return j, _kbo(draw, ask, j), niss


def _kbo(draw: Draws, ask: Ask, j: int | None) -> str:
    if ask.kbo is not None or j is None:
        return ask.kbo or ""
    return str(draw.pick("kbo", draw.world.kbo(j)))


def _employee(draw: Draws, j: int | None, niss: str) -> int | None:
    """The person of `niss` if they work for employer `j`."""
    person = draw.world.person_index(niss)
    return person if j is not None and person is not None and draw.world.employer_of(person) == j else None


def _dimona(draw: Draws, ask: Ask, as_of: str) -> Prepared:
    kind = ask.dimona_type or draw.pick("type", "IN")
    j, kbo, niss = _employer_and_worker(draw, ask, newcomer=kind == "IN")
    person = None if kind == "IN" else _employee(draw, j, niss)  # the period an OUT, UPDATE or CANCEL is about
    start = ask.start or draw.pick("start", as_of if person is None else draw.hired(person))
    end = ask.end or (draw.pick("end", as_of) if kind in ("OUT", "UPDATE") else "")
    committee = draw.committee(j)
    body = messages_pb2.DimonaDeclaration(
        type=DIMONA_TYPES[kind],
        employer_kbo=kbo,
        worker_niss=niss,
        start_date=start,
        end_date=end,
        joint_committee=committee.code if committee is not None else "",
        worker_type=ask.worker_type,
        period_id="" if person is None else f"{(int(kbo) * 1_000_003 + int(niss)) % 10**12:012d}",
    )
    return _declared(draw, ask, Kind.DIMONA, body, as_of, subject_niss=niss, subject_kbo=kbo, dataset=a.DIMONA)


def _known_wages(world: World, niss: str) -> WorkerLine:
    # the wages ONSS answers in a consultation: one story, whoever asks
    wages = answer(world.spec.seed, c.ONSS, a.WAGES, niss, as_of=world.spec.as_of)
    return WorkerLine(niss, int(wages["gross_wage_cents"]), int(wages["days_worked"]))


def _dmfa_lines(draw: Draws, j: int | None, kbo: str, ask: Ask) -> list[messages_pb2.DmfaLine]:
    """The lines given with --worker, else one per worker of the employer (at most DEFAULT_DMFA_LINES)."""
    w = draw.world
    if ask.workers:
        declared = list(ask.workers)
    elif j is None:
        raise NoExchange(f"employer {kbo} is not in the world: give its workers with --worker NISS:WAGE_EUR:DAYS")
    else:
        workers = w.workers_of(j)[:DEFAULT_DMFA_LINES].tolist()
        draw.pick("workers", f"{len(workers)} of the employer's {w.workers_of(j).size} workers in the world")
        declared = [_known_wages(w, w.niss(person)) for person in workers]
    committee = draw.committee(j)
    code = committee.worker_code if committee is not None else "495"  # white-collar when unknown
    return [
        messages_pb2.DmfaLine(
            worker_niss=x.niss,
            worker_code=code,
            gross_wage_cents=x.wage_cents,
            days_worked=x.days,
            hours_per_week_centi=x.hours_centi,
            joint_committee=committee.code if committee is not None else "",
        )
        for x in declared
    ]


def _dmfa(draw: Draws, ask: Ask, as_of: str) -> Prepared:
    j = draw.world.employer_index(ask.kbo) if ask.kbo else draw.employer()
    kbo = _kbo(draw, ask, j)
    quarter = ask.quarter or draw.pick("quarter", last_full_quarter(draw.day))
    body = messages_pb2.DmfaDeclaration(employer_kbo=kbo, quarter=quarter, lines=_dmfa_lines(draw, j, kbo, ask))
    related = [x.worker_niss for x in body.lines]
    return _declared(draw, ask, Kind.DMFA, body, as_of, subject_kbo=kbo, related_niss=related, dataset=a.DMFA)


def _drs(draw: Draws, ask: Ask, as_of: str) -> Prepared:
    family = ask.family or draw.pick("family", draw.one(sorted(FAMILIES)))
    dataset, scenarios = a.DRS_DATASETS[FAMILIES[family]]
    if ask.scenario is not None and ask.scenario not in scenarios:
        raise NoExchange(f"{family} has scenarios {', '.join(map(str, scenarios))}; got {ask.scenario}")
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
    return _declared(draw, ask, Kind.DRS, body, as_of, subject_niss=niss, subject_kbo=kbo, dataset=dataset)


# ------------------------------------------------------------------ the directory and mutations


def _file_row(draw: Draws, ask: Ask) -> int | None:
    """An open file at the sender (or anyone) to take the agency and quality code from; the file
    itself when closing one on a given person."""
    w = draw.world
    at = [ask.sender] if ask.sender is not None else None
    person = w.person_index(ask.niss) if ask.niss is not None and ask.kind is Kind.DEINTEGRATION else None
    if person is None:
        return draw.row(draw.agencies(at, ask.sector))
    rows = w.rows.rows_of(person)
    mine = [r for r in range(rows.start, rows.stop) if at is None or w.agencies[int(w.rows.agency[r])].id in at]
    return int(draw.one(mine)) if mine else None


def _integration(draw: Draws, ask: Ask, as_of: str) -> Prepared:
    """An integration (open a file) or, for Kind.DEINTEGRATION, the closing of an open one."""
    w = draw.world
    closing = ask.kind is Kind.DEINTEGRATION
    row = _file_row(draw, ask)
    if ask.sender is None and row is None:
        raise NoExchange(f"no agency has an open file{f' in sector {ask.sector}' if ask.sector else ''}")
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
    known_file = closing and row is not None
    opened = day_of(int(w.rows.start[row])).isoformat() if known_file else as_of
    phase = ask.phase if ask.phase is not None else int(w.rows.phase[row]) if known_file else 0
    body = messages_pb2.DirectoryIntegration(
        niss=niss,
        sector=sector,
        quality_code=quality,
        phase_code=phase,
        start=ask.start or draw.pick("start", opened),
        end=ask.end or (draw.pick("end", as_of) if closing else ""),
    )
    return Prepared(sender, _envelope(ask.kind, body, as_of, subject_niss=niss))


def _mutation(draw: Draws, ask: Ask, as_of: str) -> Prepared:
    w = draw.world
    attestation = ask.change == "dmfa_attestation" or ask.dataset == a.DMFA_ATTESTATIONS
    pushed = a.DMFA_ATTESTATIONS if attestation else a.REGISTER_CHANGES
    change = ask.change or draw.pick("change", draw.mutation_change(pushed))
    dataset = ask.dataset or draw.pick("dataset", pushed)
    sender = ask.sender or draw.pick("sender", draw.authentic_source(Dataset(dataset)))
    fields = dict(ask.fields)
    if ask.niss is not None:
        niss = ask.niss
    elif attestation:
        j = draw.employer()
        niss = draw.pick("niss", w.niss(draw.worker(j)))
        fields = fields or {"employer_kbo": w.kbo(j), "quarter": last_full_quarter(draw.day)}
    else:  # someone with files somewhere, so that the change reaches somebody
        row = draw.row()
        niss = draw.pick("niss", w.niss(int(w.rows.person[row]) if row is not None else draw.person()))
    body = messages_pb2.MutationNotice(niss=niss, change=change, effective_date=as_of, fields=fields)
    keys = {"subject_niss": niss, "dataset": dataset, "purpose": a.MUTATION_PURPOSE}
    return Prepared(sender, _envelope(Kind.MUTATION, body, as_of, **keys))


_BUILDERS: dict[Kind, Callable[[Draws, Ask, str], Prepared]] = {
    Kind.CONSULTATION: _consultation,
    Kind.DIMONA: _dimona,
    Kind.DMFA: _dmfa,
    Kind.DRS: _drs,
    Kind.INTEGRATION: _integration,
    Kind.DEINTEGRATION: _integration,
    Kind.MUTATION: _mutation,
}


def fill(draws: Draws, ask: Ask) -> Prepared:
    """One exchange of `ask`: the fields given kept, the others drawn with `draws` (named in `draws.picked`).

    Not checked for routing (`prepare` is) and without message id. NoExchange when this draw
    found nothing that fits the fields given (another draw may).
    """
    return _BUILDERS[ask.kind](draws, ask, ask.as_of or draws.day.isoformat())


def _day(ask: Ask, world: World) -> dt.date:
    try:
        return dt.date.fromisoformat(ask.as_of) if ask.as_of else world.spec.as_of
    except ValueError:  # sent as given: the core says what is wrong with it
        return world.spec.as_of


def prepare(world: World, rng: np.random.Generator, ask: Ask, *, attempts: int = DEFAULT_ATTEMPTS) -> Prepared:
    """The envelope of `ask`, with the fields left out picked from `world` so that it routes.

    Fields given are kept as given (a given invalid NISS is sent, and refused by the core). When
    something is picked, examples are drawn from `rng` until `expected_decision` routes one, up
    to `attempts`; if none does, the last is returned with a `note` saying so. Raises NoExchange
    when the fields given rule out every example (e.g. no deliberation allows them).
    """
    day = _day(ask, world)
    prepared: Prepared | None = None
    problem = NoExchange(f"no {ask.kind.name} example was found with the fields given")
    message_id = ask.message_id or f"send-{uuid.uuid4().hex}"
    for _ in range(attempts):
        draw = Draws(world, rng, day)
        try:
            tried = fill(draw, ask)
        except NoExchange as exc:  # this draw led nowhere; another may not
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
