"""The world every target starts from: its files, the corpus of valid exchanges, the canary.

`prepare_world` builds a synthetic world (agencies.exchanges.samples) into a folder once, with the
network's synthetic FAS (crossroads.citizen); each target copies it into a state folder of its
own (`_copy_world`), has the FAS vouch for the citizens in its corpus by the target's own clock
(`vouched`: the portal acting for a citizen carries their assertion, as the portal does), and
checks after fuzzing that a valid consultation (`_canary_raw`) is still DELIVERED.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import itertools
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from google.protobuf.message import DecodeError, Message

from agencies.exchanges import Sample, citizen_consultation, sample_any
from agencies.spec import load_world_spec
from agencies.world import World
from crossroads.citizen import CITIZEN_PURPOSE, MAX_LIFETIME, Fas, ensure_fas
from crossroads.directory import DirectoryStore
from crossroads.domain import AgencyId
from crossroads.knowledge_io import dump_knowledge
from crossroads.pki import CORE, NetworkPki
from protos import messages_pb2 as pb
from scenarios.shipped import default_scenario

DEFAULT_SEED = 0
DEFAULT_CORPUS = 400  # valid exchanges drawn from the world, the seeds of most cases
HOST = "host-0"
# The longest-lived assertion the core takes: a target whose clock is the wall clock must send
# its citizens' cases within the hour (a 100,000-case campaign's core share takes minutes).
ASSERTION_TTL = MAX_LIFETIME
CITIZEN_SHARE = 50  # one corpus sample in this many more: the portal consulting for a citizen


_BODIES: dict[int, type[Message]] = {
    pb.CONSULTATION: pb.ConsultationRequest,
    pb.DIMONA: pb.DimonaDeclaration,
    pb.DMFA: pb.DmfaDeclaration,
    pb.DRS: pb.DrsDeclaration,
    pb.INTEGRATION: pb.DirectoryIntegration,
    pb.DEINTEGRATION: pb.DirectoryIntegration,
    pb.MUTATION: pb.MutationNotice,
}


class FuzzError(RuntimeError):
    """The campaign could not be set up (the message says what is missing)."""


@dataclass(frozen=True, slots=True)
class FuzzWorld:
    """World files every target starts from, and the corpus of valid exchanges cases derive from."""

    folder: Path  # knowledge.json, directory.sqlite, pki/
    seed: int  # the world's seed (agency answers)
    as_of: dt.date
    agencies: tuple[AgencyId, ...]
    corpus: tuple[Sample, ...]
    senders: tuple[AgencyId, ...]  # every sender in the corpus, once
    nisses: tuple[str, ...]  # valid NISS of persons in the corpus
    kbos: tuple[str, ...]  # valid KBO numbers in the corpus


def prepare_world(
    folder: Path,
    *,
    seed: int = DEFAULT_SEED,
    corpus: int = DEFAULT_CORPUS,
    scenario: Path | None = None,
    persons: int | None = None,
) -> FuzzWorld:
    """Build the world of `scenario` (default: the demo) into `folder`, and draw `corpus` samples.

    `persons` shrinks the population (faster, for tests). Writes knowledge.json,
    directory.sqlite and a network PKI (CA, "core", "host-0", the FAS key pair). Deterministic per
    (scenario, seed), but for the keys.
    """
    spec = load_world_spec(scenario or default_scenario())
    if persons is not None:
        spec = dataclasses.replace(spec, persons=persons, employers=max(10, persons // 15))
    world = World.build(spec)
    folder.mkdir(parents=True, exist_ok=True)
    dump_knowledge(world.knowledge, folder / "knowledge.json")
    store = DirectoryStore.create(folder / "directory.sqlite")
    try:
        store.bulk_load(itertools.chain.from_iterable(world.iter_directory_rows()))
    finally:
        store.close()
    NetworkPki.open(folder / "pki").issue_many([CORE, HOST])
    ensure_fas(folder / "pki")
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    samples = tuple(sample_any(world, rng) for _ in range(corpus))
    samples += tuple(citizen_consultation(world, rng) for _ in range(corpus // CITIZEN_SHARE + 1))
    nisses = tuple(dict.fromkeys(n for s in samples for n in _persons(s.envelope)))
    kbos = tuple(dict.fromkeys(s.envelope.subject_kbo for s in samples if s.envelope.subject_kbo))
    senders = tuple(dict.fromkeys(s.sender for s in samples))
    return FuzzWorld(folder, spec.seed, spec.as_of, tuple(world.knowledge.agencies), samples, senders, nisses, kbos)


def _persons(env: pb.Envelope) -> list[str]:
    """Every NISS an envelope names, in its keys and in its payload."""
    found = [env.subject_niss, *env.related_niss]
    body = _BODIES.get(env.kind)
    if body is not None:
        with contextlib.suppress(DecodeError):
            parsed = body.FromString(env.payload)
            found += [getattr(parsed, n) for n in ("niss", "worker_niss") if n in parsed.DESCRIPTOR.fields_by_name]
            found += [line.worker_niss for line in getattr(parsed, "lines", ())]
    return [n for n in found if n]


def _copy_world(world: FuzzWorld, state: Path) -> None:
    """A state folder of its own (targets change the directory), sharing the world's PKI files."""
    state.mkdir(parents=True, exist_ok=True)
    shutil.copy(world.folder / "knowledge.json", state / "knowledge.json")
    shutil.copy(world.folder / "directory.sqlite", state / "directory.sqlite")
    shutil.copytree(world.folder / "pki", state / "pki", dirs_exist_ok=True)


def vouched(world: FuzzWorld, now: float) -> FuzzWorld:
    """`world` whose citizens' exchanges (purpose CITIZEN_PURPOSE) carry their FAS assertion, issued
    at `now` (UNIX seconds by the clock of the core that will judge it) for ASSERTION_TTL seconds,
    for the sender to present. The other samples are shared, not copied."""
    fas = Fas.open(world.folder / "pki")
    return dataclasses.replace(world, corpus=tuple(_vouched(s, fas, now) for s in world.corpus))


def _vouched(sample: Sample, fas: Fas, now: float) -> Sample:
    if sample.envelope.purpose != CITIZEN_PURPOSE:
        return sample
    env = pb.Envelope()
    env.CopyFrom(sample.envelope)
    env.ClearField("citizen")  # a fresh one: the world's samples may be vouched for another clock
    fas.vouch(env, sample.sender, now, ASSERTION_TTL)
    return Sample(sample.sender, env)


def _canary(world: FuzzWorld) -> Sample:
    """A consultation about a person no other corpus sample names: no case can close its file.

    Not a citizen's (purpose CITIZEN_PURPOSE): its assertion lives an hour, the canary must not.
    """
    named = Counter(n for s in world.corpus for n in dict.fromkeys(_persons(s.envelope)))
    for sample in world.corpus:
        env = sample.envelope
        if env.kind == pb.CONSULTATION and named[env.subject_niss] == 1 and env.purpose != CITIZEN_PURPOSE:
            return sample
    raise FuzzError("the corpus holds no consultation about a person nothing else names; draw a larger corpus")


def _canary_raw(world: FuzzWorld, n: int) -> bytes:
    env = pb.Envelope()
    env.CopyFrom(_canary(world).envelope)
    env.message_id = f"canary-{n}"  # fresh each time: an exactly-once core must not answer from a cache
    return env.SerializeToString()
