"""Random valid exchanges drawn from a world, for demos, smoke runs and load tests.

Each sampler takes (world, rng) and returns a `Sample`: the agency that sends it and the
`crossroads.v1.Envelope` it sends (payload = the serialized kind-specific body). Samples are
valid by construction: the sender is a network agency allowed to send it, the persons and
employers exist, a consultation names a deliberation that allows it (with a person in the
sender's own files when the deliberation demands it), and every sample is routed by
`crossroads.routing.route` (Routed, neither Denied nor Unroutable) on the world's directory
as of `world.spec.as_of`. Same world and same rng state -> same sample.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from agencies import authorizations as a
from agencies import catalogue as c
from agencies.columns import day_number, day_of, last_full_quarter
from agencies.employers import FULL_TIME_HOURS_CENTI, JOINT_COMMITTEES
from agencies.world import World
from crossroads.domain import AgencyId, Condition, Deliberation, DeliberationRef, Kind, SectorCode
from protos import messages_pb2

__all__ = [
    "DEFAULT_DMFA_LINES",
    "KINDS",
    "NoSample",
    "Sample",
    "Sampler",
    "consultation",
    "deintegration",
    "dimona",
    "dmfa",
    "draw_employer",
    "draw_newcomer",
    "draw_worker",
    "drs",
    "integration",
    "mutation",
    "sample_any",
]

DEFAULT_DMFA_LINES = 200  # a sample DmfA carries at most this many workers' lines (bounds message size)
_BATCH = 512  # rows drawn at once when looking for a row that fits
_TRIES = 200  # batches before giving up on one choice and drawing another
_ATTEMPTS = 50  # choices (deliberation, ...) before declaring the world unable to give a sample
_BATCH_CHANNEL_FROM = 50  # employers with this many workers or more file through the batch channel
_SECRETARIATS = next(g for g in c.NUMBERED if g.category == c.CAT_SECRETARIAT)


@dataclass(frozen=True, slots=True)
class Sample:
    sender: AgencyId  # who sends it (the identity of its client certificate)
    envelope: messages_pb2.Envelope


class NoSample(RuntimeError):
    """The world holds no exchange of the kind asked (e.g. no employer has any worker)."""


# ---------------------------------------------------------------- per-world lookup tables
@dataclass(frozen=True, slots=True, eq=False)
class _Index:
    sector: NDArray[np.int64]  # per agency index
    consultations: tuple[Deliberation, ...]
    requester_mask: dict[DeliberationRef, NDArray[np.bool_]]  # per deliberation ref: which agencies may ask
    requester_ids: dict[DeliberationRef, tuple[AgencyId, ...]]
    staffed: NDArray[np.int64]  # employers with at least one worker
    today: int


_INDEXES: weakref.WeakKeyDictionary[World, _Index] = weakref.WeakKeyDictionary()


def _index(world: World) -> _Index:
    found = _INDEXES.get(world)
    if found is None:
        found = _INDEXES[world] = _make_index(world)
    return found


def _make_index(world: World) -> _Index:
    categories = np.array([ag.category for ag in world.agencies], dtype=object)
    # an agency's consultations: a citizen's (through the portal) needs the citizen's FAS assertion
    asked = (d for d in a.consultation_deliberations(world.knowledge) if a.CITIZEN_PURPOSE not in d.purposes)
    consultations = tuple(sorted(asked, key=lambda d: d.ref))
    masks = {d.ref: np.isin(categories, sorted(d.requesters)) for d in consultations}
    ids = {ref: tuple(world.agencies[k].id for k in np.flatnonzero(m)) for ref, m in masks.items()}
    return _Index(
        sector=np.array([ag.sector for ag in world.agencies], dtype=np.int64),
        consultations=consultations,
        requester_mask=masks,
        requester_ids=ids,
        staffed=np.flatnonzero(np.diff(world.employment.offsets) > 0),
        today=day_number(world.spec.as_of),
    )


def _open_rows(world: World, rng: np.random.Generator, agencies: NDArray[np.bool_] | None) -> NDArray[np.int64]:
    """Candidate directory rows open today (at an agency in `agencies`, if given), in draw order."""
    rows, today = world.rows, _index(world).today
    if rows.count == 0:
        return np.empty(0, dtype=np.int64)
    for _ in range(_TRIES):
        drawn = rng.integers(0, rows.count, _BATCH)
        ok = (rows.start[drawn] <= today) & (rows.end[drawn] >= today)
        if agencies is not None:
            ok &= agencies[rows.agency[drawn]]
        if ok.any():
            hits: NDArray[np.int64] = drawn[ok]
            return hits
    return np.empty(0, dtype=np.int64)


def _has_open_file(world: World, person: int, sector: SectorCode) -> bool:
    r = world.rows.rows_of(person)
    ix = _index(world)
    agencies = world.rows.agency[r.start : r.stop]
    open_ = (world.rows.start[r.start : r.stop] <= ix.today) & (world.rows.end[r.start : r.stop] >= ix.today)
    return bool((open_ & (ix.sector[agencies] == sector)).any())


def _envelope(world: World, rng: np.random.Generator, sender: AgencyId, kind: Kind, **fields: object) -> Sample:
    envelope = messages_pb2.Envelope(
        message_id=rng.bytes(16).hex(),
        kind=int(kind),  # type: ignore[arg-type]
        sender=sender,
        as_of=world.spec.as_of.isoformat(),
        **fields,  # type: ignore[arg-type]
    )
    return Sample(sender, envelope)


# ---------------------------------------------------------------- consultations
def citizen_consultation(world: World, rng: np.random.Generator) -> Sample:
    """The portal consulting, for a citizen, a dataset of the citizen's own file.

    Without the citizen's FAS assertion, which the sender adds by the clock of the core it
    sends to (crossroads.citizen.Fas.vouch): the core refuses it without one.
    """
    dataset = a.CITIZEN_DATASETS[int(rng.integers(len(a.CITIZEN_DATASETS)))]
    envelope = messages_pb2.Envelope(
        message_id=rng.bytes(16).hex(),
        kind=messages_pb2.CONSULTATION,
        sender=c.PORTAL,
        subject_niss=world.niss(int(rng.integers(world.person_count))),
        dataset=dataset,
        purpose=a.CITIZEN_PURPOSE,
        payload=messages_pb2.ConsultationRequest(dataset=dataset).SerializeToString(),
        as_of=world.spec.as_of.isoformat(),
    )
    return Sample(c.PORTAL, envelope)


def consultation(world: World, rng: np.random.Generator) -> Sample:
    """An agency's consultation allowed by a deliberation, about a person the source has a file on.

    Never a citizen's (purpose CITIZEN_PURPOSE): the core wants the citizen's FAS assertion with
    those (crossroads/citizen.py); `citizen_consultation` draws them.
    """
    ix = _index(world)
    for _ in range(_ATTEMPTS):
        d = ix.consultations[int(rng.integers(len(ix.consultations)))]
        found = _asker_and_subject(world, rng, d)
        if found is not None:
            sender, person = found
            purpose = sorted(d.purposes)[int(rng.integers(len(d.purposes)))]
            body = messages_pb2.ConsultationRequest(dataset=d.dataset)
            return _envelope(
                world, rng, sender, Kind.CONSULTATION, subject_niss=world.niss(person), dataset=d.dataset,
                purpose=purpose, deliberation=d.ref, payload=body.SerializeToString(),
            )  # fmt: skip
    raise NoSample("no consultation could be drawn from this world")


def _asker_and_subject(world: World, rng: np.random.Generator, d: Deliberation) -> tuple[AgencyId, int] | None:
    source = world.knowledge.sources[d.dataset]
    holder_sector = source.sector if source.source is None else None
    ix = _index(world)
    if d.condition is Condition.NONE:
        senders = ix.requester_ids[d.ref]
        sender = senders[int(rng.integers(len(senders)))]
        if holder_sector is None:
            return sender, int(rng.integers(world.person_count))
        in_sector = ix.sector == holder_sector
        rows = _open_rows(world, rng, in_sector)
        return (sender, int(world.rows.person[rows[0]])) if rows.size else None
    # own files: a person in the asker's own open files, whom the source also has a file on
    for row in _open_rows(world, rng, ix.requester_mask[d.ref]).tolist():
        person = int(world.rows.person[row])
        if holder_sector is None or _has_open_file(world, person, holder_sector):
            return world.agencies[int(world.rows.agency[row])].id, person
    return None


# ---------------------------------------------------------------- declarations
def draw_employer(world: World, rng: np.random.Generator) -> int:
    """An employer with at least one worker (NoSample if the world has none)."""
    staffed = _index(world).staffed
    if not staffed.size:
        raise NoSample("no employer of this world has a worker")
    return int(staffed[int(rng.integers(staffed.size))])


def draw_worker(world: World, rng: np.random.Generator, employer: int) -> int:
    """One of `employer`'s workers."""
    workers = world.workers_of(employer)
    return int(workers[int(rng.integers(workers.size))])


def draw_newcomer(world: World, rng: np.random.Generator, employer: int) -> int:
    """A person of working age (16-66) not working for `employer`; a worker of it if there is none."""
    for _ in range(_TRIES):
        person = int(rng.integers(world.person_count))
        if 16 <= world.ages[person] <= 66 and world.employment.employer[person] != employer:
            return person
    return draw_worker(world, rng, employer)


def _declarant(world: World, employer: int) -> AgencyId:
    """Who files for the employer: its social secretariat, else the portal (or batch channel, if large)."""
    secretariat = int(world.employers.secretariat[employer])
    if secretariat >= 0:
        return _SECRETARIATS.agency_id(secretariat)
    return c.BATCH if world.workers_of(employer).size >= _BATCH_CHANNEL_FROM else c.PORTAL


def _committee(world: World, employer: int) -> str:
    return JOINT_COMMITTEES[int(world.employers.committee[employer])].code


def _days_after(world: World, rng: np.random.Generator, low: int, high: int) -> str:
    return day_of(_index(world).today + int(rng.integers(low, high))).isoformat()


def dimona(world: World, rng: np.random.Generator) -> Sample:
    """A DIMONA: IN for a person starting soon, OUT/UPDATE/CANCEL for a current worker."""
    j = draw_employer(world, rng)
    kind = int(rng.choice([messages_pb2.IN, messages_pb2.OUT, messages_pb2.UPDATE, messages_pb2.CANCEL],
                          p=[0.45, 0.35, 0.15, 0.05]))  # fmt: skip
    worker = draw_newcomer(world, rng, j) if kind == messages_pb2.IN else draw_worker(world, rng, j)
    body = messages_pb2.DimonaDeclaration(
        type=kind,  # type: ignore[arg-type]
        employer_kbo=world.kbo(j),
        worker_niss=world.niss(worker),
        joint_committee=_committee(world, j),
        worker_type="STU" if world.ages[worker] < 25 and rng.random() < 0.2 else "OTH",
    )
    if kind == messages_pb2.IN:
        body.start_date = _days_after(world, rng, 0, 30)
    else:
        body.start_date = day_of(int(world.employment.hired[worker])).isoformat()
        body.period_id = f"{(int(world.kbo(j)) * 1_000_003 + int(world.niss(worker))) % 10**12:012d}"
        if kind in (messages_pb2.OUT, messages_pb2.UPDATE):
            body.end_date = _days_after(world, rng, 0, 60)
    return _envelope(
        world, rng, _declarant(world, j), Kind.DIMONA, subject_niss=body.worker_niss, subject_kbo=body.employer_kbo,
        dataset=a.DIMONA, purpose=a.DECLARATION_PURPOSE, payload=body.SerializeToString(),
    )  # fmt: skip


def dmfa(world: World, rng: np.random.Generator, *, max_lines: int = DEFAULT_DMFA_LINES) -> Sample:
    """A quarterly DmfA of one employer: a line per worker (at most `max_lines`, drawn at random)."""
    j = draw_employer(world, rng)
    workers = world.workers_of(j)
    if workers.size > max_lines:
        workers = np.sort(rng.choice(workers, size=max_lines, replace=False))
    committee = JOINT_COMMITTEES[int(world.employers.committee[j])]
    body = messages_pb2.DmfaDeclaration(employer_kbo=world.kbo(j), quarter=last_full_quarter(world.spec.as_of))
    for worker in workers.tolist():
        part_time = rng.random() < 0.25
        body.lines.add(
            worker_niss=world.niss(worker),
            worker_code=committee.worker_code,
            gross_wage_cents=int(rng.lognormal(np.log(1_100_000), 0.35) * (0.6 if part_time else 1.0)),
            days_worked=int(rng.integers(40, 66)),
            hours_per_week_centi=int(rng.integers(1900, 3040)) if part_time else FULL_TIME_HOURS_CENTI,
            joint_committee=committee.code,
        )
    return _envelope(
        world, rng, _declarant(world, j), Kind.DMFA, subject_kbo=body.employer_kbo,
        related_niss=[line.worker_niss for line in body.lines], dataset=a.DMFA, purpose=a.DECLARATION_PURPOSE,
        payload=body.SerializeToString(),
    )  # fmt: skip


def drs(world: World, rng: np.random.Generator) -> Sample:
    """A declaration of social risk (sickness, work accident or unemployment) for a current worker."""
    family = int(rng.integers(1, 4))
    dataset, scenarios = a.DRS_DATASETS[family]
    j = draw_employer(world, rng)
    worker = draw_worker(world, rng, j)
    event = _days_after(world, rng, -30, 1)
    body = messages_pb2.DrsDeclaration(
        family=family,  # type: ignore[arg-type]
        scenario=scenarios[int(rng.integers(len(scenarios)))],
        employer_kbo=world.kbo(j),
        worker_niss=world.niss(worker),
        event_date=event,
        fields={"first_day": event, "hours_per_week_centi": str(FULL_TIME_HOURS_CENTI)},
    )
    return _envelope(
        world, rng, _declarant(world, j), Kind.DRS, subject_niss=body.worker_niss, subject_kbo=body.employer_kbo,
        dataset=dataset, purpose=a.DECLARATION_PURPOSE, payload=body.SerializeToString(),
    )  # fmt: skip


# ---------------------------------------------------------------- the directory
def integration(world: World, rng: np.random.Generator) -> Sample:
    """An agency opens a file (from today) on a person, in its own sector and a capacity it uses."""
    rows = _open_rows(world, rng, None)
    if not rows.size:
        raise NoSample("the directory of this world is empty")
    row = int(rows[0])
    agency = world.agencies[int(world.rows.agency[row])]
    person = int(rng.integers(world.person_count))
    body = messages_pb2.DirectoryIntegration(
        niss=world.niss(person), sector=agency.sector, quality_code=int(world.rows.quality[row]),
        phase_code=0, start=world.spec.as_of.isoformat(),
    )  # fmt: skip
    return _envelope(world, rng, agency.id, Kind.INTEGRATION, subject_niss=body.niss, payload=body.SerializeToString())


def deintegration(world: World, rng: np.random.Generator) -> Sample:
    """An agency closes (as of today) one of its open files."""
    rows = _open_rows(world, rng, None)
    if not rows.size:
        raise NoSample("the directory of this world is empty")
    row = int(rows[0])
    agency = world.agencies[int(world.rows.agency[row])]
    body = messages_pb2.DirectoryIntegration(
        niss=world.niss(int(world.rows.person[row])), sector=agency.sector, quality_code=int(world.rows.quality[row]),
        phase_code=int(world.rows.phase[row]), start=day_of(int(world.rows.start[row])).isoformat(),
        end=world.spec.as_of.isoformat(),
    )  # fmt: skip
    return _envelope(
        world, rng, agency.id, Kind.DEINTEGRATION, subject_niss=body.niss, payload=body.SerializeToString()
    )


# ---------------------------------------------------------------- mutations
_REGISTER_CHANGES = ("identity", "address", "household", "civil_status")
_REGISTER_WEIGHTS = (0.15, 0.55, 0.2, 0.1)


def mutation(world: World, rng: np.random.Generator) -> Sample:
    """A change pushed by its authentic source: the National Register, or ONSS (DmfA attestation)."""
    today = world.spec.as_of
    if rng.random() < 0.75:
        change = _REGISTER_CHANGES[int(rng.choice(len(_REGISTER_CHANGES), p=_REGISTER_WEIGHTS))]
        person = int(rng.integers(world.person_count))
        sender, dataset, fields = c.NR, a.REGISTER_CHANGES, _register_fields(change, rng)
    else:
        change, j = "dmfa_attestation", draw_employer(world, rng)
        person = draw_worker(world, rng, j)
        sender, dataset = c.ONSS, a.DMFA_ATTESTATIONS
        fields = {"employer_kbo": world.kbo(j), "quarter": last_full_quarter(today)}
    body = messages_pb2.MutationNotice(
        niss=world.niss(person), change=change, effective_date=today.isoformat(), fields=fields
    )
    return _envelope(
        world,
        rng,
        sender,
        Kind.MUTATION,
        subject_niss=body.niss,
        dataset=dataset,
        purpose=a.MUTATION_PURPOSE,
        payload=body.SerializeToString(),
    )


def _register_fields(change: str, rng: np.random.Generator) -> dict[str, str]:
    if change == "address":
        return {"postal_code": str(int(rng.integers(1000, 10000)))}
    if change == "household":
        return {"members": str(int(rng.integers(1, 7)))}
    if change == "civil_status":
        return {"civil_status": ("married", "legally_cohabiting", "divorced", "widowed")[int(rng.integers(4))]}
    return {"surname_changed": "true"}


# ---------------------------------------------------------------- any kind
Sampler = Callable[[World, np.random.Generator], Sample]

KINDS: Mapping[Kind, Sampler] = {
    Kind.CONSULTATION: consultation,
    Kind.DIMONA: dimona,
    Kind.DMFA: dmfa,
    Kind.DRS: drs,
    Kind.INTEGRATION: integration,
    Kind.DEINTEGRATION: deintegration,
    Kind.MUTATION: mutation,
}


def sample_any(world: World, rng: np.random.Generator, kind: Kind | None = None) -> Sample:
    """A sample of `kind`, or of a kind drawn uniformly when `kind` is None."""
    if kind is None:
        kind = tuple(KINDS)[int(rng.integers(len(KINDS)))]
    return KINDS[kind](world, rng)
