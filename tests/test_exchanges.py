"""The generator of world exchanges (agencies/exchanges): its contract, over seeded draws.

- every sample of every kind is routed by `crossroads.routing.route` on the world's directory
  (through the core's own validation: `expected_decision`), over thousands of draws;
- an exchange filled in around given fields keeps every field given, valid or not;
- `prepare` routes what it fills in; the simulation's routing keys are refused only for the
  reasons the model means (nobody holds the person, the sender has nobody in its files).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agencies.exchanges import Ask, Draws, NoExchange, RequestMaker, Sample, expected_decision, fill, prepare, samples
from agencies.exchanges.asked import DIMONA_TYPES, FAMILIES, WorkerLine
from agencies.spec import load_world_spec
from agencies.world import World
from crossroads.domain import AgencyId, Kind
from crossroads.routing import Routed, route
from crossroads.validation import MAX_RELATED
from network.run import load
from protos import messages_pb2
from scenarios.schema import Source

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
PER_KIND = 2_000  # samples drawn of each kind
FILLED = 120  # asks filled in per kind, each with a random part of its fields given
_BODIES: dict[Kind, type[Any]] = {
    Kind.CONSULTATION: messages_pb2.ConsultationRequest,
    Kind.DIMONA: messages_pb2.DimonaDeclaration,
    Kind.DMFA: messages_pb2.DmfaDeclaration,
    Kind.DRS: messages_pb2.DrsDeclaration,
    Kind.INTEGRATION: messages_pb2.DirectoryIntegration,
    Kind.DEINTEGRATION: messages_pb2.DirectoryIntegration,
    Kind.MUTATION: messages_pb2.MutationNotice,
}


@pytest.fixture(scope="module")
def world() -> World:
    return World.build(load_world_spec(SCENARIOS / "demo.yaml"))


def _body(envelope: messages_pb2.Envelope) -> Any:
    return _BODIES[Kind(envelope.kind)].FromString(envelope.payload)


# ------------------------------------------------------------------ samples


@pytest.mark.parametrize("kind", list(Kind), ids=lambda k: k.name)
def test_every_sample_is_routed_by_the_cores_decision(world: World, kind: Kind) -> None:
    rng = np.random.default_rng(1000 + kind)
    refused: Counter[str] = Counter()
    for _ in range(PER_KIND):
        sample = samples.KINDS[kind](world, rng)
        assert Kind(sample.envelope.kind) is kind and sample.envelope.sender == sample.sender
        decision = expected_decision(world, sample.sender, sample.envelope)
        if not isinstance(decision, Routed):
            refused[f"{type(decision).__name__} {decision.rule}: {decision.reason}"] += 1
    assert not refused, refused.most_common(3)


def test_samples_and_traffic_are_the_same_for_the_same_rng_state(world: World) -> None:
    def drawn(seed: int) -> list[bytes]:
        rng = np.random.default_rng(seed)
        return [samples.sample_any(world, rng).envelope.SerializeToString() for _ in range(100)]

    assert drawn(5) == drawn(5) != drawn(6)
    source = Source(name="s", kind="CONSULTATION", rate=1.0, senders={"cpas": 1.0})
    maker = RequestMaker(world)
    a, b = np.random.default_rng(7), np.random.default_rng(7)
    assert [maker.draw(source, a) for _ in range(50)] == [maker.draw(source, b) for _ in range(50)]


_DIGEST = """
import hashlib, sys
from pathlib import Path
import numpy as np
for name in sys.argv[1:]:
    __import__(name)  # other modules loaded first: other addresses, other hash orders
from agencies.exchanges import samples
from agencies.spec import load_world_spec
from agencies.world import World
world = World.build(load_world_spec(Path("scenarios/demo.yaml")))
rng, digest = np.random.default_rng(9), hashlib.sha256()
for _ in range(300):
    digest.update(samples.sample_any(world, rng).envelope.SerializeToString(deterministic=True))
print(digest.hexdigest())
"""


def test_the_same_rng_state_gives_the_same_bytes_in_every_process() -> None:
    def digest(salt: str, *preloaded: str) -> str:
        env = {**os.environ, "PYTHONHASHSEED": salt}
        command = [sys.executable, "-c", _DIGEST, *preloaded]
        return subprocess.run(command, check=True, env=env, cwd=SCENARIOS.parent, capture_output=True, text=True).stdout

    assert digest("1") == digest("2", "network.run") == digest("3", "json", "network.recorder")


# ------------------------------------------------------------------ filling in around given fields


# where each field of an Ask is found in what was filled in
_READ: dict[str, Callable[[messages_pb2.Envelope, Any], object]] = {
    "sender": lambda env, body: env.sender,
    "dataset": lambda env, body: env.dataset,
    "purpose": lambda env, body: env.purpose,
    "deliberation": lambda env, body: env.deliberation,
    "kbo": lambda env, body: env.subject_kbo,
    "as_of": lambda env, body: env.as_of,
    "message_id": lambda env, body: env.message_id,
    "dimona_type": lambda env, body: messages_pb2.DimonaType.Name(body.type),
    "quarter": lambda env, body: body.quarter,
    "workers": lambda env, body: tuple(
        WorkerLine(x.worker_niss, x.gross_wage_cents, x.days_worked, x.hours_per_week_centi) for x in body.lines
    ),
    "family": lambda env, body: next(name for name, value in FAMILIES.items() if value == body.family),
    "scenario": lambda env, body: body.scenario,
    "change": lambda env, body: body.change,
    "fields": lambda env, body: tuple(sorted(body.fields.items())),
    "sector": lambda env, body: body.sector,
    "quality": lambda env, body: body.quality_code,
    "phase": lambda env, body: body.phase_code,
    "worker_type": lambda env, body: body.worker_type,
}


def _read(field: str, kind: Kind, env: messages_pb2.Envelope, body: Any) -> Any:
    if field == "niss":
        return body.worker_niss if kind in (Kind.DIMONA, Kind.DRS) else env.subject_niss
    if field in ("start", "end"):  # of the employment, the event or the file
        names = {Kind.DIMONA: ("start_date", "end_date"), Kind.DRS: ("event_date", "")}.get(kind, ("start", "end"))
        return getattr(body, names[field == "end"])
    return _READ[field](env, body)


_COMMON = ("sender", "as_of", "message_id")
_FIELDS: dict[Kind, tuple[str, ...]] = {
    Kind.CONSULTATION: ("niss", "dataset", "purpose", "deliberation"),
    Kind.DIMONA: ("kbo", "niss", "dimona_type", "worker_type", "start", "end"),
    Kind.DMFA: ("kbo", "quarter", "workers"),
    Kind.DRS: ("kbo", "niss", "family", "scenario", "start", "fields"),
    Kind.INTEGRATION: ("niss", "sector", "quality", "phase", "start", "end"),
    Kind.DEINTEGRATION: ("niss", "sector", "quality", "phase", "start", "end"),
    Kind.MUTATION: ("niss", "dataset", "change", "fields"),
}


def _ask_of(sample: Sample) -> Ask:
    """Every field of `sample` as an Ask names it."""
    env, body = sample.envelope, _body(sample.envelope)
    kind = Kind(env.kind)
    named = {name: _read(name, kind, env, body) for name in (*_COMMON, *_FIELDS[kind])}
    return Ask(kind=kind, **{name: value for name, value in named.items() if value not in ("", None, ())})


# values a person might give that the world would not have drawn (some invalid: sent as given)
_ODD = {
    "quarter": "1999Q4",
    "start": "2001-02-03",
    "end": "2001-02-04",
    "as_of": "2026-02-30",
    "message_id": "given-id",
    "purpose": "not_a_purpose",
    "deliberation": "99/999",
}


def _given(rng: np.random.Generator, full: Ask, named: set[str]) -> Ask:
    """A random part of the fields `named` of `full`, now and then replaced by an odd value."""
    kept = {name: getattr(full, name) for name in sorted(named) if rng.random() < 0.5}
    for name in kept.keys() & _ODD.keys():
        if rng.random() < 0.2:
            kept[name] = _ODD[name]
    if "niss" in kept and rng.random() < 0.2:  # check digits off by one
        kept["niss"] = kept["niss"][:-1] + str((int(kept["niss"][-1]) + 1) % 10)
    return Ask(kind=full.kind, **kept)


def _unset(ask: Ask, defaults: Ask) -> set[str]:
    return {f.name for f in dataclasses.fields(Ask) if getattr(ask, f.name) == getattr(defaults, f.name)}


@pytest.mark.parametrize("kind", list(Kind), ids=lambda k: k.name)
def test_filling_in_never_changes_a_given_field(world: World, kind: Kind) -> None:
    rng = np.random.default_rng(2000 + kind)
    filled = 0
    defaults = Ask(kind=kind)
    for _ in range(FILLED):
        full = _ask_of(samples.KINDS[kind](world, rng))
        ask = _given(rng, full, {f.name for f in dataclasses.fields(Ask)} - {"kind"} - _unset(full, defaults))
        try:
            prepared = prepare(world, rng, ask, attempts=5)
        except NoExchange:  # the fields given rule out every exchange: nothing was sent, nothing changed
            continue
        env, body = prepared.envelope, _body(prepared.envelope)
        given = {f.name for f in dataclasses.fields(Ask)} - {"kind"} - _unset(ask, defaults)
        for name in sorted(given):
            assert _read(name, kind, env, body) == getattr(ask, name), (name, ask)
        if ask.sender is not None:
            assert prepared.sender == env.sender == ask.sender
        filled += 1
    assert filled > FILLED // 2


@pytest.mark.parametrize("kind", list(Kind), ids=lambda k: k.name)
def test_what_is_filled_in_around_nothing_routes(world: World, kind: Kind) -> None:
    for seed in range(40):
        prepared = prepare(world, np.random.default_rng(seed), Ask(kind=kind))
        assert prepared.picked and not prepared.note
        assert isinstance(expected_decision(world, prepared.sender, prepared.envelope), Routed)


def test_fill_draws_what_was_left_out_with_the_draws_given(world: World) -> None:
    draws = Draws(world, np.random.default_rng(3))
    prepared = fill(draws, Ask(kind=Kind.DIMONA, sender=AgencyId("PORTAL"), dimona_type="OUT"))
    body = messages_pb2.DimonaDeclaration.FromString(prepared.envelope.payload)
    assert set(draws.picked) == {"kbo", "niss", "start", "end"} and prepared.envelope.message_id == ""
    j = world.employer_index(body.employer_kbo)
    person = world.person_index(body.worker_niss)
    assert j is not None and person is not None and world.employer_of(person) == j  # an OUT is about a worker
    assert body.period_id and body.type == DIMONA_TYPES["OUT"]


# ------------------------------------------------------------------ the simulation's routing keys


def test_traffic_is_refused_only_for_the_reasons_the_model_means() -> None:
    scenario = load(SCENARIOS / "baseline_2023.yaml")
    assert scenario.world is not None
    world = World.build(dataclasses.replace(scenario.world, persons=20_000, employers=400))
    maker = RequestMaker(world)
    rng = np.random.default_rng(11)
    for i, source in enumerate(scenario.traffic):
        maker.check(source, f"traffic[{i}]")
        for _ in range(300):
            drawn = maker.draw(source, rng)
            assert len(drawn.request.subjects) <= MAX_RELATED
            decision = route(drawn.request, world.knowledge, drawn.files)
            if isinstance(decision, Routed):
                continue
            # a source asks about anybody: the dataset's holder may have no file on them, or the
            # sender none at all in its own files (the Denied of an own-files deliberation)
            assert source.kind == "CONSULTATION", (source.name, decision)
            assert decision.rule in ("no_holder", "not_in_files"), (source.name, decision)
            if decision.rule == "not_in_files":
                assert Draws(world, np.random.default_rng(0)).own_file(drawn.request.sender) is None, drawn.request
