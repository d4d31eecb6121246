"""A load test's traffic mix drawn in advance, for the open-loop load generator.

`prepare_mix(world, mix, n, rng, vouch=...)` draws `n` exchanges the way the Locust users of
that mix would (loadtests/users.py): a kind of user by its share of the traffic, a kind of
message by its weight for that user, then a valid exchange of that kind from the world
(agencies.exchanges); a citizen's consultation goes through the portal with the citizen's
assertion (`vouch`: the synthetic FAS, crossroads.citizen). Each one is a `Prepared` request of
`crossroads.v1.Crossroads/Exchange` sent as its sender (the load generator gives every send a
fresh message id), with what it is (`Drawn`): its user, its kind, and the number of agencies the
core will forward it to (its routing decision over the world's directory: 0 for a refusal).

Deterministic per (world, mix, n, rng state).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from agencies.exchanges import expected_decision, samples
from agencies.world import World
from crossroads.domain import Kind
from crossroads.methods import EXCHANGE
from crossroads.routing import Routed
from loadtests.mix import Mix
from loadtests.prepared import Prepared
from protos import messages_pb2

__all__ = ["Drawn", "Vouch", "prepare_mix"]

Vouch = Callable[[messages_pb2.Envelope, str], None]  # the FAS's assertion put on a portal's envelope


@dataclass(frozen=True, slots=True)
class Drawn:
    """What one prepared request is: who sends it, its kind, and how many agencies it reaches."""

    user: str
    kind: str
    destinations: int


def _pick(weights: dict[str, float], rng: np.random.Generator) -> str:
    names = sorted(weights)
    shares = np.array([weights[n] for n in names], dtype=float)
    return names[int(rng.choice(len(names), p=shares / shares.sum()))]


def _destinations(world: World, sample: samples.Sample) -> int:
    decision = expected_decision(world, sample.sender, sample.envelope)
    return len(decision.destinations) if isinstance(decision, Routed) else 0


def prepare_mix(
    world: World, mix: Mix, n: int, rng: np.random.Generator, *, vouch: Vouch | None = None
) -> tuple[list[Prepared], list[Drawn]]:
    """`n` exchanges of `mix` drawn from `world` (see the module doc), and what each one is.

    ValueError when the mix has no weight, or has citizens and no `vouch`.
    """
    users = mix.user_weights()
    if not users:
        raise ValueError(f"the mix ({mix.origin}) has no positive weight")
    if "citizen" in users and vouch is None:
        raise ValueError("a mix with citizens needs the FAS to vouch for them")
    prepared, drawn = [], []
    for _ in range(n):
        user = _pick(users, rng)
        kind = _pick(mix.kind_weights(user), rng)
        if user == "citizen":
            sample = samples.citizen_consultation(world, rng)
            assert vouch is not None
            vouch(sample.envelope, sample.sender)
        else:
            sample = samples.KINDS[Kind[kind]](world, rng)
        prepared.append(Prepared(sample.sender, EXCHANGE, sample.envelope.SerializeToString()))
        drawn.append(Drawn(user, kind, _destinations(world, sample)))
    return prepared, drawn
