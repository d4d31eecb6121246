"""Samples drawn from the demo world are valid exchanges: the routing decision routes every one."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from agencies import catalogue as c
from agencies.authorizations import DECLARANTS
from agencies.exchanges.samples import KINDS, Sample, consultation, dmfa, sample_any
from agencies.spec import load_world_spec
from agencies.world import World
from crossroads.domain import (
    AgencyId,
    Condition,
    Dataset,
    DeliberationRef,
    DirectoryEntry,
    Kind,
    Purpose,
    QualityCode,
    SectorCode,
)
from crossroads.identifiers import Kbo, Niss, kbo_problem, niss_problem
from crossroads.routing import Denied, Request, Routed, route
from protos import messages_pb2

DEMO = Path(__file__).resolve().parents[1] / "scenarios" / "demo.yaml"
PER_KIND = 500  # 3,500 samples in all


@pytest.fixture(scope="module")
def world() -> World:
    return World.build(load_world_spec(DEMO))


def _date(text: str) -> dt.date | None:
    return dt.date.fromisoformat(text) if text else None


def _request(sample: Sample) -> Request:
    """The routing keys of a sample, read from its envelope the straightforward way."""
    env = sample.envelope
    kind = Kind(env.kind)
    subjects = ((Niss(env.subject_niss),) if env.subject_niss else ()) + tuple(Niss(n) for n in env.related_niss)
    change, integration = "", None
    if kind is Kind.MUTATION:
        change = messages_pb2.MutationNotice.FromString(env.payload).change
    if kind in (Kind.INTEGRATION, Kind.DEINTEGRATION):
        body = messages_pb2.DirectoryIntegration.FromString(env.payload)
        start = _date(body.start)
        assert start is not None
        integration = DirectoryEntry(
            Niss(body.niss), SectorCode(body.sector), sample.sender, QualityCode(body.quality_code),
            body.phase_code, start, _date(body.end),
        )  # fmt: skip
    as_of = _date(env.as_of)
    assert as_of is not None
    return Request(
        kind=kind,
        sender=AgencyId(sample.sender),
        dataset=Dataset(env.dataset),
        purpose=Purpose(env.purpose),
        as_of=as_of,
        subjects=subjects,
        kbo=Kbo(env.subject_kbo) if env.subject_kbo else None,
        deliberation=DeliberationRef(env.deliberation) if env.deliberation else None,
        change=change,
        integration=integration,
    )


def _route(world: World, sample: Sample) -> object:
    request = _request(sample)
    files = [f for niss in request.subjects for f in world.files_of(niss)]
    return route(request, world.knowledge, files)


@pytest.fixture(scope="module")
def drawn(world: World) -> list[Sample]:
    rng = np.random.default_rng(20261128)
    return [KINDS[kind](world, rng) for kind in KINDS for _ in range(PER_KIND)]


def test_every_kind_has_a_sampler() -> None:
    assert set(KINDS) == set(Kind)


def test_every_sample_is_routed(world: World, drawn: list[Sample]) -> None:
    refused: Counter[tuple[str, str, str]] = Counter()
    for sample in drawn:
        decision = _route(world, sample)
        if not isinstance(decision, Routed):
            refused[(Kind(sample.envelope.kind).name, type(decision).__name__, getattr(decision, "rule", ""))] += 1
    assert not refused, refused


def test_consultations_and_declarations_reach_somebody(world: World, drawn: list[Sample]) -> None:
    for sample in drawn:
        if Kind(sample.envelope.kind) in (Kind.CONSULTATION, Kind.DIMONA, Kind.DMFA, Kind.DRS):
            decision = _route(world, sample)
            assert isinstance(decision, Routed) and decision.destinations, sample


def test_samples_carry_valid_identifiers_and_unique_message_ids(world: World, drawn: list[Sample]) -> None:
    for sample in drawn:
        env = sample.envelope
        assert sample.sender in world.knowledge.agencies and env.sender == sample.sender
        assert env.as_of == world.spec.as_of.isoformat()
        for niss in [env.subject_niss, *env.related_niss]:
            if niss:
                assert niss_problem(niss) is None and world.person_index(niss) is not None
        if env.subject_kbo:
            assert kbo_problem(env.subject_kbo) is None and world.employer_index(env.subject_kbo) is not None
    assert len({s.envelope.message_id for s in drawn}) == len(drawn)


def test_declarations_come_from_declarants(world: World, drawn: list[Sample]) -> None:
    declarations = [s for s in drawn if Kind(s.envelope.kind) in (Kind.DIMONA, Kind.DMFA, Kind.DRS)]
    categories = Counter(world.knowledge.agencies[s.sender].category for s in declarations)
    assert set(categories) <= DECLARANTS
    assert categories[c.CAT_SECRETARIAT] > categories[c.CAT_PORTAL] > 0


def test_consultations_spread_over_datasets_and_own_files_hold(world: World, drawn: list[Sample]) -> None:
    consultations = [s for s in drawn if Kind(s.envelope.kind) is Kind.CONSULTATION]
    assert len({s.envelope.dataset for s in consultations}) >= 8
    refs = {d.ref: d for d in world.knowledge.deliberations}
    for sample in consultations:
        d = refs[DeliberationRef(sample.envelope.deliberation)]
        assert world.knowledge.agencies[sample.sender].category in d.requesters
        if d.condition is Condition.OWN_FILES:
            files = world.files_of(sample.envelope.subject_niss)
            assert any(f.agency == sample.sender and f.open_on(world.spec.as_of) for f in files)


def test_another_sender_without_the_file_is_denied(world: World) -> None:
    """The routing check is real: the same consultation from a CPAS without the file is refused."""
    rng = np.random.default_rng(4)
    for _ in range(200):
        sample = consultation(world, rng)
        if world.knowledge.agencies[sample.sender].category == c.CAT_CPAS:
            break
    else:
        pytest.fail("no CPAS consultation drawn")
    files = world.files_of(sample.envelope.subject_niss)
    stranger = next(a.id for a in world.agencies if a.category == c.CAT_CPAS and all(f.agency != a.id for f in files))
    decision = _route(world, dataclasses.replace(sample, sender=stranger))
    assert isinstance(decision, Denied) and decision.rule == "not_in_files"


def test_a_dmfa_lists_the_employers_workers(world: World) -> None:
    rng = np.random.default_rng(8)
    sample = dmfa(world, rng, max_lines=3)
    body = messages_pb2.DmfaDeclaration.FromString(sample.envelope.payload)
    j = world.employer_index(body.employer_kbo)
    assert j is not None and 1 <= len(body.lines) <= 3
    workers = {world.niss(int(i)) for i in world.workers_of(j)}
    assert {line.worker_niss for line in body.lines} <= workers
    assert list(sample.envelope.related_niss) == [line.worker_niss for line in body.lines]


def test_samples_are_deterministic_per_seed(world: World) -> None:
    def draw(seed: int) -> list[bytes]:
        rng = np.random.default_rng(seed)
        return [sample_any(world, rng).envelope.SerializeToString() for _ in range(50)]

    assert draw(1) == draw(1)
    assert draw(1) != draw(2)
    kinds = Counter(Kind(sample_any(world, np.random.default_rng(k)).envelope.kind) for k in range(200))
    assert set(kinds) == set(Kind)
