"""A load test's mix drawn in advance for the open-loop generator (loadtests/prepared_mix.py)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from agencies.spec import load_world_spec
from agencies.world import World
from crossroads.methods import EXCHANGE
from loadtests.mix import Mix
from loadtests.prepared_mix import prepare_mix
from protos import messages_pb2
from scenarios.shipped import default_scenario

MIX = Mix(
    weights={"agency": {"CONSULTATION": 60, "MUTATION": 10}, "employer": {"DMFA": 10}, "citizen": {"CONSULTATION": 20}}
)


@pytest.fixture(scope="module")
def world() -> World:
    return World.build(load_world_spec(default_scenario()))


def _vouch(envelope: messages_pb2.Envelope, sender: str) -> None:
    envelope.citizen.niss = envelope.subject_niss  # stands for the FAS's assertion here


def test_the_mix_is_drawn_in_its_proportions_and_each_request_says_what_it_is(world: World) -> None:
    prepared, drawn = prepare_mix(world, MIX, 2000, np.random.default_rng(3), vouch=_vouch)
    shares = Counter((d.user, d.kind) for d in drawn)
    assert shares[("agency", "CONSULTATION")] == pytest.approx(1200, rel=0.1)
    assert shares[("citizen", "CONSULTATION")] == pytest.approx(400, rel=0.15)
    assert shares[("employer", "DMFA")] == pytest.approx(200, rel=0.2)
    assert {p.method for p in prepared} == {EXCHANGE}
    for p, d in zip(prepared, drawn, strict=True):
        envelope = messages_pb2.Envelope.FromString(p.body)
        assert messages_pb2.MessageKind.Name(envelope.kind) == d.kind
        assert envelope.HasField("citizen") == (d.user == "citizen")
    dmfa = [d.destinations for d in drawn if d.kind == "DMFA"]
    assert min(dmfa) >= 1 and max(dmfa) > 1  # a DmfA fans out to the institutions that need it


def test_the_same_rng_state_draws_the_same_requests(world: World) -> None:
    first, _ = prepare_mix(world, MIX, 50, np.random.default_rng(7), vouch=_vouch)
    again, _ = prepare_mix(world, MIX, 50, np.random.default_rng(7), vouch=_vouch)
    assert [p.body for p in first] == [p.body for p in again]


def test_a_mix_without_weight_or_a_citizen_without_the_fas_is_refused(world: World) -> None:
    with pytest.raises(ValueError, match="no positive weight"):
        prepare_mix(world, Mix(weights={}), 1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="vouch"):
        prepare_mix(world, MIX, 1, np.random.default_rng(0))
