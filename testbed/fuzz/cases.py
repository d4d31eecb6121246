"""What is sent: `Case` and `Batch`, the Crossroads/Exchange case strategies, and replays.

Exchange cases derive from the world's corpus of valid exchanges (valid, random, mutated,
hostile fields, bad identifiers, nested, oversized, forged senders, unknown peers, replays);
`_lifecycle` sends an integration, its closing and the integration again in any order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

from google.protobuf.message import DecodeError
from hypothesis import strategies as st

from agencies.samples import Sample
from crossroads.pki import CORE
from crossroads.server import DEFAULT_MAX_MESSAGE_BYTES
from crossroads.validation import MAX_MESSAGE_ID
from protos import messages_pb2 as pb
from testbed.fuzz.mutators import (
    _bad_identifier,
    _mutate_field,
    _nested_bytes,
    hostile_text,
    mutate_bytes,
    mutate_message,
    pick,
    weighted,
)
from testbed.fuzz.world import _BODIES, HOST, FuzzWorld

EXCHANGE_METHOD = "/crossroads.v1.Crossroads/Exchange"
DELIVER_METHOD = "/crossroads.v1.Agency/Deliver"


@dataclass(frozen=True, slots=True)
class Case:
    """One message: `label` says how it was made; `peer` is the certificate identity (None: none)."""

    label: str
    peer: str | None
    raw: bytes
    replay: int | None = None  # resolved at run time to an earlier (peer, raw) of the same target
    method: str = EXCHANGE_METHOD


@dataclass(frozen=True, slots=True)
class Batch:
    """Cases sent together: concurrently, or one after another in the given order."""

    cases: tuple[Case, ...]
    sequential: bool = False


def _payload(draw: st.DrawFn, world: FuzzWorld, env: pb.Envelope, text: st.SearchStrategy[str]) -> bytes:
    choice = draw(st.integers(0, 5))
    if choice == 0:  # the kind's own body, with hostile fields
        body = _BODIES.get(env.kind, pb.ConsultationRequest)()
        with contextlib.suppress(DecodeError):
            body.ParseFromString(env.payload)
        mutate_message(draw, body, text)
        return body.SerializeToString()
    if choice == 1:  # another kind's body
        return draw(pick(world.corpus, "samples")).envelope.payload
    if choice == 2:
        return draw(_nested_bytes())
    if choice == 3:  # past the 64 KiB limit
        return bytes(draw(st.integers(64 * 1024 + 1, 300 * 1024)))
    if choice == 4:
        return mutate_bytes(draw, env.payload)
    return draw(st.binary(max_size=256))


def _copy(sample: Sample) -> pb.Envelope:
    env = pb.Envelope()
    env.CopyFrom(sample.envelope)
    return env


_ENVELOPE_FIELDS = tuple(pb.Envelope.DESCRIPTOR.fields)
_UNKNOWN_PEERS = (CORE, HOST, "admin", "nobody", "onss", "ONSS ")


def exchange_cases(world: FuzzWorld, *, unauthenticated: bool = True) -> st.SearchStrategy[Case]:
    """One Crossroads/Exchange case of any label; `unauthenticated` adds peer None (in-process only)."""
    corpus = pick(world.corpus, "samples")
    senders = pick(world.senders, "senders")
    text = hostile_text(world)

    @st.composite
    def field_case(draw: st.DrawFn) -> Case:
        sample = draw(corpus)
        env = _copy(sample)
        for _ in range(draw(st.integers(1, 3))):
            fd = draw(st.sampled_from(_ENVELOPE_FIELDS))
            if fd.name == "payload":
                env.payload = _payload(draw, world, env, text)
            else:
                _mutate_field(draw, env, fd, text, 0)
        return Case("field", sample.sender, env.SerializeToString())

    bad_nisses = _bad_identifier(pick(world.nisses, "nisses"))
    bad_kbos = _bad_identifier(pick(world.kbos or ("0200065765",), "kbos"))

    @st.composite
    def identifier_case(draw: st.DrawFn) -> Case:
        sample = draw(corpus)
        env = _copy(sample)
        where = draw(st.integers(0, 2))
        if where == 0:
            env.subject_niss = draw(bad_nisses)
        elif where == 1:
            env.subject_kbo = draw(bad_kbos)
        else:
            env.related_niss.append(draw(bad_nisses))
        return Case("identifier", sample.sender, env.SerializeToString())

    @st.composite
    def payload_case(draw: st.DrawFn) -> Case:
        sample = draw(corpus)
        env = _copy(sample)
        env.payload = _payload(draw, world, env, text)
        return Case("payload", sample.sender, env.SerializeToString())

    @st.composite
    def mutated_case(draw: st.DrawFn) -> Case:
        sample = draw(corpus)
        return Case("mutated", sample.sender, mutate_bytes(draw, sample.envelope.SerializeToString()))

    @st.composite
    def nested_case(draw: st.DrawFn) -> Case:
        sample = draw(corpus)
        raw = sample.envelope.SerializeToString()
        cut = draw(st.integers(0, len(raw)))  # at a field boundary or not: both must be refused cleanly
        return Case("nested", sample.sender, raw[:cut] + draw(_nested_bytes()) + raw[cut:])

    @st.composite
    def oversized_case(draw: st.DrawFn) -> Case:
        sample = draw(corpus)
        env = _copy(sample)
        n = draw(st.integers(1, 4))
        if n == 1:
            env.message_id = "m" * draw(st.integers(MAX_MESSAGE_ID + 1, 200_000))
        elif n == 2:
            start, n = draw(st.integers(0, len(world.nisses))), draw(st.integers(1_001, 5_000))
            env.related_niss.extend(world.nisses[(start + i) % len(world.nisses)] for i in range(n))
        elif n == 3:
            env.payload = bytes(draw(st.integers(64 * 1024 + 1, 2 * DEFAULT_MAX_MESSAGE_BYTES)))
        else:
            lines = [pb.DmfaLine(worker_niss=draw(pick(world.nisses, "nisses")))] * draw(st.integers(1_001, 3_000))
            env.payload = pb.DmfaDeclaration(
                employer_kbo=env.subject_kbo, quarter="2026Q3", lines=lines
            ).SerializeToString()
        return Case("oversized", sample.sender, env.SerializeToString())

    @st.composite
    def forged_case(draw: st.DrawFn) -> Case:
        sample = draw(corpus)
        env = _copy(sample)
        if draw(st.booleans()):  # someone else sends it, naming the one who may
            env.sender = sample.sender
            return Case("forged", draw(senders), env.SerializeToString())
        env.sender = draw(st.one_of(senders, text))  # the one who may sends it, claiming to be another
        return Case("forged", sample.sender, env.SerializeToString())

    peers = st.sampled_from(_UNKNOWN_PEERS)
    branches: list[st.SearchStrategy[Case]] = [
        corpus.map(lambda s: Case("valid", s.sender, s.envelope.SerializeToString())),
        st.builds(Case, st.just("random"), senders, st.binary(max_size=512)),
        mutated_case(),
        field_case(),
        field_case(),
        identifier_case(),
        payload_case(),
        nested_case(),
        oversized_case(),
        forged_case(),
        st.builds(lambda p, s: Case("unknown_peer", p, s.envelope.SerializeToString()), peers, corpus),
        st.builds(lambda k: Case("replay", None, b"", replay=k), st.integers(0, 2**31)),
    ]
    if unauthenticated:
        raws = st.one_of(corpus.map(lambda s: s.envelope.SerializeToString()), st.binary(max_size=64))
        branches.append(st.builds(Case, st.just("no_certificate"), st.none(), raws))
    return st.one_of(branches)


def _lifecycle(world: FuzzWorld) -> st.SearchStrategy[Batch]:
    """An integration, its closing and the integration again, sent one after another in any order."""
    opened = [s for s in world.corpus if s.envelope.kind == pb.INTEGRATION]
    if not opened:
        return st.nothing()

    def closing(sample: Sample) -> Case:
        env = _copy(sample)
        body = pb.DirectoryIntegration.FromString(env.payload)
        body.end = body.start
        env.kind, env.payload, env.message_id = pb.DEINTEGRATION, body.SerializeToString(), env.message_id + "-x"
        return Case("reordered", sample.sender, env.SerializeToString())

    def three(sample: Sample) -> list[Case]:
        again = Case("reordered", sample.sender, sample.envelope.SerializeToString())
        return [again, closing(sample), again]

    chains = pick(opened, "integrations").map(three).flatmap(st.permutations)
    return chains.map(lambda cases: Batch(tuple(cases), sequential=True))


def batches(
    cases: st.SearchStrategy[Case], size: int, lifecycle: st.SearchStrategy[Batch] | None = None
) -> st.SearchStrategy[Batch]:
    """Batches of `size` cases sent concurrently (1 in 8 one after another), and some `lifecycle` ones."""
    plain = st.builds(
        Batch, st.lists(cases, min_size=size, max_size=size).map(tuple), st.integers(0, 7).map(lambda i: i == 0)
    )
    if lifecycle is None:
        return plain
    return weighted((7, plain), (1, lifecycle))


class _History:
    """Earlier (peer, raw) exchanges of a target, for replays."""

    def __init__(self, seeds: Sequence[Case], size: int = 4_096) -> None:
        self._items: list[Case] = list(seeds)
        self._size = size

    def resolve(self, case: Case) -> Case:
        if case.replay is None:
            return case
        earlier = self._items[case.replay % len(self._items)]
        return Case("replay", earlier.peer, earlier.raw, method=earlier.method)

    def remember(self, cases: Sequence[Case]) -> None:
        self._items.extend(c for c in cases if c.label != "replay")
        del self._items[: max(0, len(self._items) - self._size)]
