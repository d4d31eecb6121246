"""What is sent: `Case` and `Batch`, the Crossroads/Exchange case strategies, and how a batch is resolved.

Exchange cases derive from the world's corpus of valid exchanges (valid, random, mutated,
hostile fields, bad identifiers, nested, oversized, forged senders, unknown peers, replays,
reused ids). A structured case is drawn with a placeholder message id (`placeholder`) that
`_History.resolve` turns into a fresh id when the case is sent: the core is exactly-once per
(sender, message id), so a hostile case that reused its sample's id would only get the stored
answer of the valid message, and never reach validation. Ids are given out at run time, not
drawn, because Hypothesis repeats small values freely. Slot 0 is fresh per case; slots 1-9 are
fresh per batch and shared by the cases of that batch that carry them (a resend, a duplicate).
Byte-level mutations may damage the placeholder: the id is then whatever the mutation left,
and the register model (loadtests.fuzz.register) judges what a collision must get.

Batches: plain ones (concurrent, 1 in 8 one after another); `_lifecycle` sends an integration,
its closing, a new integration and a resend of the first in any order, one after another;
`_duplicates` sends the same message id 2-4 times at once, sometimes with other content.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from google.protobuf.message import DecodeError
from hypothesis import strategies as st

from agencies.exchanges import Sample
from crossroads.methods import EXCHANGE as EXCHANGE_METHOD
from crossroads.pki import CORE
from crossroads.server import DEFAULT_MAX_MESSAGE_BYTES
from crossroads.validation import MAX_MESSAGE_ID, message_id_ok
from loadtests.fuzz.mutators import (
    _bad_identifier,
    _mutate_field,
    _nested_bytes,
    hostile_text,
    mutate_bytes,
    mutate_message,
    pick,
    weighted,
)
from loadtests.fuzz.world import _BODIES, HOST, FuzzWorld, _canary, _canary_raw
from protos import messages_pb2 as pb

ID_LENGTH = 32  # the corpus' message ids are 32 hex digits: a fresh id takes the same room
SHARED_SLOTS = 9  # placeholder slots 1..9 are shared within a batch
_MARK = b"~fresh~"

Key = tuple[str, str]  # (authenticated sender, message id): the core's exactly-once key


def placeholder(slot: int) -> str:
    """The message id a case is drawn with: replaced by a fresh id when sent (0: per case, 1-9: per batch)."""
    return f"~fresh~{slot}~".ljust(ID_LENGTH, "~")


@dataclass(frozen=True, slots=True)
class Case:
    """One message: `label` says how it was made; `peer` is the certificate identity (None: none)."""

    label: str
    peer: str | None
    raw: bytes
    replay: int | None = None  # resolved at run time to an earlier (peer, raw) of the same target
    method: str = EXCHANGE_METHOD
    reuse: int | None = None  # resolved at run time: `raw`'s content under an earlier remembered key


@dataclass(frozen=True, slots=True)
class Batch:
    """Cases sent together: concurrently, or one after another in the given order."""

    cases: tuple[Case, ...]
    sequential: bool = False


def key_of(case: Case) -> Key | None:
    """The core's exactly-once key of `case`: None when it has none (no certificate, no Envelope,
    a message id that is no usable key), and such a case is handled anew each time it is sent."""
    if case.peer is None or case.method != EXCHANGE_METHOD:
        return None
    try:
        message_id = pb.Envelope.FromString(case.raw).message_id
    except DecodeError:
        return None
    return (case.peer, message_id) if message_id_ok(message_id) else None


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


def _copy(sample: Sample, slot: int = 0) -> pb.Envelope:
    """The sample's envelope under placeholder id `slot` (a fresh id once sent)."""
    env = pb.Envelope()
    env.CopyFrom(sample.envelope)
    env.message_id = placeholder(slot)
    return env


def _fresh(sample: Sample) -> bytes:
    return _copy(sample).SerializeToString()


_ENVELOPE_FIELDS = tuple(pb.Envelope.DESCRIPTOR.fields)
_UNKNOWN_PEERS = (CORE, HOST, "admin", "nobody", "onss", "ONSS ")


def exchange_cases(world: FuzzWorld, *, unauthenticated: bool = True) -> st.SearchStrategy[Case]:
    """One Crossroads/Exchange case of any label; `unauthenticated` adds peer None (in-process only)."""
    corpus = pick(world.corpus, "samples")
    senders = pick(world.senders, "senders")
    structured = keyed_cases(world)
    contents = st.one_of(corpus.map(_fresh), structured.map(lambda c: c.raw))  # valid or hostile, any id
    branches: list[tuple[int, st.SearchStrategy[Case]]] = [
        (10, structured),  # its ten branches as likely as each of the others
        (1, st.builds(Case, st.just("random"), senders, st.binary(max_size=512))),
        (1, st.builds(lambda k: Case("replay", None, b"", replay=k), st.integers(0, 2**31))),
        (1, st.builds(lambda raw, k: Case("reused_id", None, raw, reuse=k), contents, st.integers(0, 2**31))),
    ]
    if unauthenticated:
        raws = st.one_of(corpus.map(lambda s: s.envelope.SerializeToString()), st.binary(max_size=64))
        branches.append((1, st.builds(Case, st.just("no_certificate"), st.none(), raws)))
    return weighted(*branches)


def keyed_cases(world: FuzzWorld) -> st.SearchStrategy[Case]:
    """Cases made from a corpus sample, from an authenticated peer, each under its own fresh id
    (placeholder slot 0) unless the id itself is what the case is about."""
    corpus = pick(world.corpus, "samples")
    senders = pick(world.senders, "senders")
    text = hostile_text(world)
    bad_nisses = _bad_identifier(pick(world.nisses, "nisses"))
    bad_kbos = _bad_identifier(pick(world.kbos or ("0200065765",), "kbos"))
    peers = st.sampled_from(_UNKNOWN_PEERS)
    return st.one_of(
        corpus.map(lambda s: Case("valid", s.sender, _fresh(s))),
        _mutated_case(corpus),
        _changed_case(corpus, "field", _bad_fields(world, text)),
        _changed_case(corpus, "field", _bad_fields(world, text)),
        _changed_case(corpus, "identifier", _bad_identifiers(bad_nisses, bad_kbos)),
        _changed_case(corpus, "payload", _bad_payload(world, text)),
        _nested_case(corpus),
        _changed_case(corpus, "oversized", _oversized(world)),
        _forged_case(corpus, senders, text),
        st.builds(lambda p, s: Case("unknown_peer", p, _fresh(s)), peers, corpus),
    )


# How a case changes its sample's envelope (under its fresh id), drawing what it needs.
Change = Callable[[st.DrawFn, pb.Envelope], None]


@st.composite
def _changed_case(draw: st.DrawFn, corpus: st.SearchStrategy[Sample], label: str, change: Change) -> Case:
    """A sample's envelope under a fresh id, changed by `change`, sent by the sample's sender."""
    sample = draw(corpus)
    env = _copy(sample)
    change(draw, env)
    return Case(label, sample.sender, env.SerializeToString())


def _bad_fields(world: FuzzWorld, text: st.SearchStrategy[str]) -> Change:
    """One to three envelope fields given hostile values (the message id too: then the id is the point)."""

    def change(draw: st.DrawFn, env: pb.Envelope) -> None:
        for _ in range(draw(st.integers(1, 3))):
            fd = draw(st.sampled_from(_ENVELOPE_FIELDS))
            if fd.name == "payload":
                env.payload = _payload(draw, world, env, text)
            else:
                _mutate_field(draw, env, fd, text, 0)

    return change


def _bad_identifiers(nisses: st.SearchStrategy[str], kbos: st.SearchStrategy[str]) -> Change:
    """An invalid NISS or KBO number as the subject, or among the related persons."""

    def change(draw: st.DrawFn, env: pb.Envelope) -> None:
        where = draw(st.integers(0, 2))
        if where == 0:
            env.subject_niss = draw(nisses)
        elif where == 1:
            env.subject_kbo = draw(kbos)
        else:
            env.related_niss.append(draw(nisses))

    return change


def _bad_payload(world: FuzzWorld, text: st.SearchStrategy[str]) -> Change:
    """A hostile payload (see `_payload`)."""

    def change(draw: st.DrawFn, env: pb.Envelope) -> None:
        env.payload = _payload(draw, world, env, text)

    return change


def _oversized(world: FuzzWorld) -> Change:
    """One thing past its limit: the message id, the related persons, the payload, a DmfA's lines."""

    def change(draw: st.DrawFn, env: pb.Envelope) -> None:
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

    return change


@st.composite
def _mutated_case(draw: st.DrawFn, corpus: st.SearchStrategy[Sample]) -> Case:
    """A sample's bytes under a fresh id, mutated at the byte level."""
    sample = draw(corpus)
    return Case("mutated", sample.sender, mutate_bytes(draw, _fresh(sample)))


@st.composite
def _nested_case(draw: st.DrawFn, corpus: st.SearchStrategy[Sample]) -> Case:
    """Deeply nested groups and messages spliced into a sample's bytes."""
    sample = draw(corpus)
    raw = _fresh(sample)
    cut = draw(st.integers(0, len(raw)))  # at a field boundary or not: both must be refused cleanly
    return Case("nested", sample.sender, raw[:cut] + draw(_nested_bytes()) + raw[cut:])


@st.composite
def _forged_case(
    draw: st.DrawFn, corpus: st.SearchStrategy[Sample], senders: st.SearchStrategy[str], text: st.SearchStrategy[str]
) -> Case:
    """A `sender` field that is not the certificate's identity, one way or the other."""
    sample = draw(corpus)
    env = _copy(sample)
    if draw(st.booleans()):  # someone else sends it, naming the one who may
        env.sender = sample.sender
        return Case("forged", draw(senders), env.SerializeToString())
    env.sender = draw(st.one_of(senders, text))  # the one who may sends it, claiming to be another
    return Case("forged", sample.sender, env.SerializeToString())


def _share(case: Case, slot: int, label: str | None = None) -> Case:
    """`case` under shared placeholder `slot` instead of its own fresh id (if it still has one)."""
    raw = case.raw.replace(placeholder(0).encode(), placeholder(slot).encode())
    return dataclasses.replace(case, raw=raw, label=label or case.label)


def _lifecycle(world: FuzzWorld) -> st.SearchStrategy[Batch]:
    """An integration, its closing, a new integration of the same file and a resend of the first
    (same message id: the first's answer again, nothing applied twice), one after another in any order."""
    opened = [s for s in world.corpus if s.envelope.kind == pb.INTEGRATION]
    if not opened:
        return st.nothing()

    def closing(sample: Sample) -> Case:
        env = _copy(sample, 2)
        body = pb.DirectoryIntegration.FromString(env.payload)
        body.end = body.start
        env.kind, env.payload = pb.DEINTEGRATION, body.SerializeToString()
        return Case("reordered", sample.sender, env.SerializeToString())

    def four(sample: Sample) -> list[Case]:
        first = Case("reordered", sample.sender, _copy(sample, 1).SerializeToString())
        again = Case("reordered", sample.sender, _copy(sample, 3).SerializeToString())
        return [first, closing(sample), again, dataclasses.replace(first, label="resent")]

    chains = pick(opened, "integrations").map(four).flatmap(st.permutations)
    return chains.map(lambda cases: Batch(tuple(cases), sequential=True))


def _duplicates(world: FuzzWorld, cases: st.SearchStrategy[Case], size: int) -> st.SearchStrategy[Batch]:
    """A concurrent batch in which one message id is sent 2-4 times by the same peer (sometimes one
    of them with other content), among other cases: all must get the same answer, one record."""
    structured = keyed_cases(world)
    corpus = pick(world.corpus, "samples")

    @st.composite
    def batch(draw: st.DrawFn) -> Batch:
        base = _share(draw(structured), 1, "duplicate")
        copies = [base] * draw(st.integers(2, 4))
        if draw(st.booleans()):
            other = _share(Case("duplicate", base.peer, _fresh(draw(corpus))), 1)
            copies.append(other)
        rest = draw(st.lists(cases, min_size=max(0, size - len(copies)), max_size=max(0, size - len(copies))))
        return Batch(tuple(draw(st.permutations([*copies, *rest]))), sequential=False)

    return batch()


def batches(
    cases: st.SearchStrategy[Case],
    size: int,
    lifecycle: st.SearchStrategy[Batch] | None = None,
    duplicates: st.SearchStrategy[Batch] | None = None,
) -> st.SearchStrategy[Batch]:
    """Batches of `size` cases sent concurrently (1 in 8 one after another), and some `lifecycle`
    and `duplicates` ones."""
    plain = st.builds(
        Batch, st.lists(cases, min_size=size, max_size=size).map(tuple), st.integers(0, 7).map(lambda i: i == 0)
    )
    extra = [(1, s) for s in (lifecycle, duplicates) if s is not None]
    return weighted((6, plain), *extra) if extra else plain


class _History:
    """What a target sent, to resolve the next batch: replays, reused ids and fresh ids.

    `tag` starts every fresh id, so that ids of different targets are told apart in their logs.
    """

    def __init__(self, seeds: Sequence[Case], tag: str = "fz-", size: int = 4_096) -> None:
        self._items: list[Case] = list(seeds)
        self._size = size
        self._tag = tag
        self._serial = 0

    @classmethod
    def of_corpus(cls, world: FuzzWorld, tag: str = "fz-") -> _History:
        """A history that starts with the valid exchanges of `world`'s corpus (what a replay may pick)."""
        return cls([Case("valid", s.sender, s.envelope.SerializeToString()) for s in world.corpus], tag)

    def fresh_id(self) -> str:
        """A message id this target never sent before (nor drew: placeholders start with "~")."""
        self._serial += 1
        return f"{self._tag}{self._serial:0{ID_LENGTH - len(self._tag)}d}"

    def resolve(self, cases: Sequence[Case], remembered: Callable[[int], Key | None]) -> list[Case]:
        """The cases as they are sent: replays become the earlier case, a reused id takes an earlier
        remembered key (`remembered(k)`, None if none), placeholders become fresh ids."""
        shared = {placeholder(s).encode(): self.fresh_id().encode() for s in range(1, SHARED_SLOTS + 1)}
        return [self._resolve(c, shared, remembered) for c in cases]

    def _resolve(self, case: Case, shared: dict[bytes, bytes], remembered: Callable[[int], Key | None]) -> Case:
        if case.replay is not None:
            earlier = self._items[case.replay % len(self._items)]
            return Case("replay", earlier.peer, earlier.raw, method=earlier.method)
        if case.reuse is not None:
            key = remembered(case.reuse)
            reused = _with_id(case.raw, key[1]) if key is not None else None
            if key is not None and reused is not None:
                return Case(case.label, key[0], reused, method=case.method)
            peer = key[0] if key is not None else self._items[case.reuse % len(self._items)].peer
            case = dataclasses.replace(case, peer=peer, reuse=None)  # nothing to reuse: a fresh message
        if _MARK not in case.raw:
            return case
        raw = case.raw.replace(placeholder(0).encode(), self.fresh_id().encode())
        for mark, fresh in shared.items():
            raw = raw.replace(mark, fresh)
        return dataclasses.replace(case, raw=raw)

    def remember(self, cases: Sequence[Case]) -> None:
        self._items.extend(c for c in cases if c.label != "replay")
        del self._items[: max(0, len(self._items) - self._size)]


def canary_case(world: FuzzWorld, n: int) -> Case:
    """The `n`-th canary: a valid consultation under an id of its own (`loadtests.fuzz.world._canary_raw`)."""
    return Case("canary", _canary(world).sender, _canary_raw(world, n))


def _with_id(raw: bytes, message_id: str) -> bytes | None:
    """`raw` (an Envelope) under `message_id`; None if `raw` does not parse."""
    try:
        env = pb.Envelope.FromString(raw)
    except DecodeError:
        return None
    env.message_id = message_id
    return env.SerializeToString()
