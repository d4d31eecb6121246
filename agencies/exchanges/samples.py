"""Random valid exchanges drawn from a world, for demos, smoke runs, load tests and fuzzing.

Each sampler takes (world, rng) and returns a `Sample`: the agency that sends it and the
`crossroads.v1.Envelope` it sends (payload = the serialized kind-specific body). A sampler draws
the values that make traffic varied (a DIMONA's type and dates, a DmfA's wages, ...) and has the
exchange put together around them by `asked.fill`. Samples are valid by construction (the
draws of draws.py): the sender is a network agency allowed to send it, the persons and
employers exist, a consultation names a deliberation that allows it (with a person in the
sender's own files when the deliberation demands it), and every sample is routed by
`crossroads.routing.route` (Routed, neither Denied nor Unroutable) on the world's directory as
of `world.spec.as_of`. Same world and same rng state -> same sample.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from agencies import authorizations as a
from agencies import catalogue as c
from agencies.employers import FULL_TIME_HOURS_CENTI
from agencies.exchanges.asked import DEFAULT_DMFA_LINES, DIMONA_TYPES, Ask, WorkerLine, fill
from agencies.exchanges.draws import Draws, NoExchange
from agencies.world import World
from crossroads.domain import AgencyId, Kind
from protos import messages_pb2

__all__ = [
    "DEFAULT_DMFA_LINES",
    "KINDS",
    "Sample",
    "Sampler",
    "citizen_consultation",
    "consultation",
    "deintegration",
    "dimona",
    "dmfa",
    "drs",
    "integration",
    "mutation",
    "sample_any",
    "with_fresh_id",
]

_ATTEMPTS = 50  # deliberations tried before declaring the world unable to give a consultation
_DIMONA_TYPES = tuple(DIMONA_TYPES)  # IN, OUT, UPDATE, CANCEL
_DIMONA_WEIGHTS = (0.45, 0.35, 0.15, 0.05)
_REGISTER_CHANGES = a.MUTATION_CHANGES[a.REGISTER_CHANGES]
_REGISTER_WEIGHTS = (0.15, 0.55, 0.2, 0.1)  # identity, address, household, civil status


@dataclass(frozen=True, slots=True)
class Sample:
    """A valid exchange: the Envelope and the agency that sends it."""

    sender: AgencyId  # who sends it (the identity of its client certificate)
    envelope: messages_pb2.Envelope


def _sample(draws: Draws, ask: Ask) -> Sample:
    """The exchange filled in around `ask`, with a message id drawn."""
    prepared = fill(draws, ask)
    prepared.envelope.message_id = draws.rng.bytes(16).hex()
    prepared.envelope.sender = prepared.sender
    return Sample(prepared.sender, prepared.envelope)


# ---------------------------------------------------------------- consultations
def citizen_consultation(world: World, rng: np.random.Generator) -> Sample:
    """The portal consulting, for a citizen, a dataset of the citizen's own file.

    Without the citizen's FAS assertion, which the sender adds by the clock of the core it
    sends to (crossroads.citizen.Fas.vouch): the core refuses it without one.
    """
    draws = Draws(world, rng)
    dataset = draws.one(a.CITIZEN_DATASETS)
    niss = world.niss(draws.person())
    ask = Ask(kind=Kind.CONSULTATION, sender=c.PORTAL, niss=niss, dataset=dataset, purpose=a.CITIZEN_PURPOSE)
    return _sample(draws, ask)


def consultation(world: World, rng: np.random.Generator) -> Sample:
    """An agency's consultation allowed by a deliberation, about a person the source has a file on.

    Never a citizen's (purpose CITIZEN_PURPOSE): the core wants the citizen's FAS assertion with
    those (crossroads/citizen.py); `citizen_consultation` draws them.
    """
    draws = Draws(world, rng)
    for _ in range(_ATTEMPTS):
        d = draws.one(draws.consultations(citizens=False))
        try:
            return _sample(draws, Ask(kind=Kind.CONSULTATION, deliberation=d.ref))
        except NoExchange:  # nobody to ask about under this one in this world: another deliberation
            continue
    raise NoExchange("no consultation could be drawn from this world")


# ---------------------------------------------------------------- declarations
def dimona(world: World, rng: np.random.Generator) -> Sample:
    """A DIMONA: IN for a person starting soon, OUT/UPDATE/CANCEL for a current worker."""
    draws = Draws(world, rng)
    j = draws.employer()
    kind = _DIMONA_TYPES[int(rng.choice(len(_DIMONA_TYPES), p=_DIMONA_WEIGHTS))]
    worker = draws.newcomer(j) if kind == "IN" else draws.worker(j)
    student = world.ages[worker] < 25 and rng.random() < 0.2
    ask = Ask(
        kind=Kind.DIMONA, sender=draws.declarant(j), kbo=world.kbo(j), niss=world.niss(worker), dimona_type=kind,
        start=draws.days_after(0, 30) if kind == "IN" else None,  # else the day the worker was hired
        end=draws.days_after(0, 60) if kind in ("OUT", "UPDATE") else None, worker_type="STU" if student else "OTH",
    )  # fmt: skip
    return _sample(draws, ask)


def dmfa(world: World, rng: np.random.Generator, *, max_lines: int = DEFAULT_DMFA_LINES) -> Sample:
    """A quarterly DmfA of one employer: a line per worker (at most `max_lines`, drawn at random)."""
    draws = Draws(world, rng)
    j = draws.employer()
    workers = world.workers_of(j)
    if workers.size > max_lines:
        workers = np.sort(rng.choice(workers, size=max_lines, replace=False))
    lines = tuple(_line(world.niss(worker), rng) for worker in workers.tolist())
    return _sample(draws, Ask(kind=Kind.DMFA, sender=draws.declarant(j), kbo=world.kbo(j), workers=lines))


def _line(niss: str, rng: np.random.Generator) -> WorkerLine:
    part_time = rng.random() < 0.25
    wage = int(rng.lognormal(np.log(1_100_000), 0.35) * (0.6 if part_time else 1.0))
    days = int(rng.integers(40, 66))
    return WorkerLine(niss, wage, days, int(rng.integers(1900, 3040)) if part_time else FULL_TIME_HOURS_CENTI)


def drs(world: World, rng: np.random.Generator) -> Sample:
    """A declaration of social risk (sickness, work accident or unemployment) for a current worker."""
    draws = Draws(world, rng)
    j = draws.employer()
    event = draws.days_after(-30, 1)
    fields = (("first_day", event), ("hours_per_week_centi", str(FULL_TIME_HOURS_CENTI)))
    ask = Ask(kind=Kind.DRS, sender=draws.declarant(j), kbo=world.kbo(j), start=event, fields=fields)
    return _sample(draws, ask)


# ---------------------------------------------------------------- the directory and mutations
def integration(world: World, rng: np.random.Generator) -> Sample:
    """An agency opens a file (from today) on a person, in its own sector and a capacity it uses."""
    return _sample(Draws(world, rng), Ask(kind=Kind.INTEGRATION))


def deintegration(world: World, rng: np.random.Generator) -> Sample:
    """An agency closes (as of today) one of its open files."""
    return _sample(Draws(world, rng), Ask(kind=Kind.DEINTEGRATION))


def mutation(world: World, rng: np.random.Generator) -> Sample:
    """A change pushed by its authentic source: the National Register, or ONSS (DmfA attestation)."""
    draws = Draws(world, rng)
    if rng.random() < 0.25:
        return _sample(draws, Ask(kind=Kind.MUTATION, change="dmfa_attestation"))
    change = _REGISTER_CHANGES[int(rng.choice(len(_REGISTER_CHANGES), p=_REGISTER_WEIGHTS))]
    fields = tuple(_register_fields(change, rng).items())
    return _sample(draws, Ask(kind=Kind.MUTATION, change=change, fields=fields))


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


def with_fresh_id(envelope: messages_pb2.Envelope, run: str) -> messages_pb2.Envelope:
    """`envelope` with its message id prefixed by `run`: seeded samples repeat ids from run to run."""
    fresh = messages_pb2.Envelope()
    fresh.CopyFrom(envelope)
    fresh.message_id = f"{run}-{envelope.message_id}"
    return fresh
