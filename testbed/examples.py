"""Examples of an exchange a person asks for: the fields named kept as given, the rest picked from the world.

`prepare(world, rng, ask)` turns an `Ask` (the kind, and any of its fields a person named) into
a `Prepared` envelope and the agency that sends it. The fields left out are drawn from the world
(seeded by `rng`) so that the exchange routes: examples are drawn until `expected_decision`
routes one. Fields given are never changed, so a given invalid field is sent as it is and shows
how the core refuses it. `Prepared.picked` names every field that was drawn.

Unlike `agencies.samples`, which draws whole exchanges at random, this module fills in around
what a person fixed (a sender, a NISS, a dataset, a date, ...); `crossroads send` uses it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from agencies import authorizations as a
from agencies import catalogue as c
from agencies import samples
from agencies.answers import answer
from agencies.columns import day_number, day_of, last_full_quarter
from agencies.employers import FULL_TIME_HOURS_CENTI, JOINT_COMMITTEES, JointCommittee
from agencies.world import World
from crossroads.domain import AgencyId, Condition, Dataset, Deliberation, Kind
from crossroads.routing import Routed
from protos import messages_pb2
from testbed.client import expected_decision

__all__ = [
    "DEFAULT_ATTEMPTS",
    "DIMONA_TYPES",
    "FAMILIES",
    "Ask",
    "NoExample",
    "Prepared",
    "WorkerLine",
    "prepare",
]

DEFAULT_ATTEMPTS = 200  # examples drawn before giving up on one that routes
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
_REGISTER_CHANGES = a.MUTATION_CHANGES[a.REGISTER_CHANGES]


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


# ------------------------------------------------------------------ picking from the world


class _Draw:
    """Seeded choices from the world for the fields left out; `picked` records each one made.

    `employer`, `worker` and `newcomer` are `agencies.samples`' draws, their NoSample turned
    into NoExample (which `prepare` catches to draw again).
    """

    def __init__(self, world: World, rng: np.random.Generator, as_of: dt.date) -> None:
        self.world = world
        self.rng = rng
        self.as_of = as_of
        self.picked: dict[str, str] = {}
        rows = world.rows
        today = day_number(as_of)
        self._open = (rows.start <= today) & (rows.end >= today)
        self._sector = np.array([ag.sector for ag in world.agencies], dtype=np.int64)[rows.agency]

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
        try:
            return samples.draw_employer(self.world, self.rng)
        except samples.NoSample as exc:
            raise NoExample(str(exc)) from exc

    def worker(self, employer: int) -> int:
        return samples.draw_worker(self.world, self.rng, employer)

    def newcomer(self, employer: int) -> int:
        """A person of working age (16-66) who does not work for `employer`."""
        return samples.draw_newcomer(self.world, self.rng, employer)

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


def _declared(draw: _Draw, ask: Ask, kind: Kind, body: Any, as_of: str, **keys: Any) -> Prepared:
    """A declaration (DIMONA, DmfA, DRS) of `body`, sent by the declarant; `keys` go on the envelope."""
    env = _envelope(kind, body, as_of, purpose=a.DECLARATION_PURPOSE, **keys)
    # the portal files for any employer; --as names a secretariat or the batch channel instead
    return Prepared(ask.sender or draw.pick("sender", c.PORTAL), env)


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


def _committee(world: World, j: int | None) -> JointCommittee | None:
    """The joint committee of employer `j`; None for an employer not in the world."""
    return JOINT_COMMITTEES[int(world.employers.committee[j])] if j is not None else None


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
    committee = _committee(draw.world, j)
    body = messages_pb2.DimonaDeclaration(
        type=DIMONA_TYPES[kind],
        employer_kbo=kbo,
        worker_niss=niss,
        start_date=start,
        end_date=end,
        joint_committee=committee.code if committee is not None else "",
        worker_type="OTH",
    )
    return _declared(draw, ask, Kind.DIMONA, body, as_of, subject_niss=niss, subject_kbo=kbo, dataset=a.DIMONA)


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
    committee = _committee(w, j)
    code = committee.worker_code if committee is not None else "495"  # white-collar when unknown
    return [
        messages_pb2.DmfaLine(
            worker_niss=niss,
            worker_code=code,
            gross_wage_cents=wage,
            days_worked=days,
            hours_per_week_centi=FULL_TIME_HOURS_CENTI,
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
    related = [x.worker_niss for x in body.lines]
    return _declared(draw, ask, Kind.DMFA, body, as_of, subject_kbo=kbo, related_niss=related, dataset=a.DMFA)


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
    return _declared(draw, ask, Kind.DRS, body, as_of, subject_niss=niss, subject_kbo=kbo, dataset=dataset)


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
