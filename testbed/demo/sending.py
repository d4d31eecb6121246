"""The demo's live steps that send: routed exchanges of every kind, refusals, a resend, a citizen."""

from __future__ import annotations

import time

from agencies.exchanges import expected_decision, samples
from crossroads.citizen import Fas
from crossroads.client import CoreClient
from crossroads.domain import AgencyId, Kind
from crossroads.outcomes import ACCEPTED
from crossroads.routing import Routed
from protos import messages_pb2
from testbed.demo.session import _DRAWS, PER_KIND, Demo

__all__ = ["send_again", "send_for_a_citizen", "send_refused", "send_routed"]


def _reaching(demo: Demo, kind: Kind) -> samples.Sample:
    """A sample of `kind` whose routing names at least one destination (a mutation may name none)."""
    sample = samples.KINDS[kind](demo.world, demo.rng)
    for _ in range(_DRAWS):
        decision = expected_decision(demo.world, sample.sender, sample.envelope)
        if isinstance(decision, Routed) and (decision.destinations or kind in (Kind.INTEGRATION, Kind.DEINTEGRATION)):
            break
        sample = samples.KINDS[kind](demo.world, demo.rng)
    return sample


def send_routed(demo: Demo) -> None:
    """PER_KIND exchanges of every kind, drawn by agencies.exchanges.samples: each allowed and routed."""
    for kind in samples.KINDS:
        for _ in range(PER_KIND):
            sample = _reaching(demo, kind)
            sent = demo.send(sample.sender, sample.envelope)
            demo.ok &= sent.outcome in ACCEPTED
    demo.say(f"sent {len(demo.sent)} exchanges, {PER_KIND} of each kind, from agencies picked at random")


def send_refused(demo: Demo) -> None:
    """A consultation no deliberation allows, and one naming a NISS whose check digits fail."""
    asked = samples.consultation(demo.world, demo.rng)
    no_deliberation = messages_pb2.Envelope()
    no_deliberation.CopyFrom(asked.envelope)
    no_deliberation.dataset, no_deliberation.purpose, no_deliberation.deliberation = "wages", "social_tariff", ""
    no_deliberation.payload = messages_pb2.ConsultationRequest(dataset="wages").SerializeToString()
    denied = demo.send(AgencyId("LOC-0001"), no_deliberation)  # a local body: no deliberation gives it wages
    bad_niss = messages_pb2.Envelope()
    bad_niss.CopyFrom(asked.envelope)
    niss = bad_niss.subject_niss
    bad_niss.subject_niss = niss[:-1] + str((int(niss[-1]) + 1) % 10)  # check digits off by one
    invalid = demo.send(asked.sender, bad_niss)
    demo.ok &= (denied.outcome, invalid.outcome) == ("PERMISSION_DENIED", "INVALID_ARGUMENT")
    demo.say("sent 2 exchanges the core must refuse: no deliberation allows one, the other names an invalid NISS")


def send_again(demo: Demo) -> None:
    """The first declaration sent again with its own message id: the core answers it from its journal."""
    first = next(s for s in demo.sent if s.reply is not None and s.kind != "CONSULTATION")
    assert first.reply is not None
    with CoreClient.connect(demo.state, first.sender) as client:
        size = client.head().size
        again = client.exchange(first.envelope)  # the same bytes, the same message id
        grown = client.head().size - size
    same = again == first.reply
    demo.ok &= same and grown == 0
    demo.say(
        f"sent #{first.number} ({first.kind}, message id {first.envelope.message_id}) again: "
        f"{'the same answer' if same else 'ANOTHER answer'} (audit record {again.audit_index}), "
        f"{grown} new audit records, nothing forwarded twice: a message id is handled once"
    )


def _citizen_sample(demo: Demo) -> samples.Sample:
    """The portal consulting a citizen's own file, about a dataset some agency holds on them."""
    sample = samples.citizen_consultation(demo.world, demo.rng)
    for _ in range(_DRAWS):
        decision = expected_decision(demo.world, sample.sender, sample.envelope)
        if isinstance(decision, Routed) and decision.destinations:
            break
        sample = samples.citizen_consultation(demo.world, demo.rng)
    return sample


def send_for_a_citizen(demo: Demo) -> None:
    """A citizen (eID, through the FAS) consulting their own file through the portal; then someone else's."""
    sample = _citizen_sample(demo)
    Fas.open(demo.state / "pki").vouch(sample.envelope, sample.sender, time.time())
    own = demo.send(sample.sender, sample.envelope)
    other = messages_pb2.Envelope()
    other.CopyFrom(sample.envelope)  # the same citizen's assertion, about another person, as a new message
    other.message_id += "-other"
    while other.subject_niss == sample.envelope.subject_niss:
        other.subject_niss = demo.world.niss(int(demo.rng.integers(demo.world.person_count)))
    theirs = demo.send(sample.sender, other)
    demo.ok &= (own.outcome, theirs.outcome) == ("DELIVERED", "PERMISSION_DENIED")
    demo.say(
        f"the portal consulted {sample.envelope.dataset} for citizen {sample.envelope.subject_niss} "
        f"with the FAS's assertion: {own.outcome}; the same assertion for {other.subject_niss}: {theirs.outcome}"
    )
