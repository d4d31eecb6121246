"""A link between two stations: latency, transmission time at its bandwidth, loss, failures.

A link is not a queue: messages do not wait for each other on it (bandwidth adds the time
to transmit a message of its size, not contention). That keeps a link to one scheduled
callback per message, with no SimPy process. The crossing itself (loss, delay) is done by the
model's hot path (network/model.py, `_walk`) from these attributes; a link that can fail
(`volatile`) is crossed at the crossing's own time, any other as soon as the message is on its
way to it.
"""

from __future__ import annotations

import numpy as np

from network.plan import LinkPlan
from network.sampling import Draw, draws
from scenarios.schema import Uniform

__all__ = ["Link"]

_UNIT = Uniform(low=0.0, high=1.0)


class Link:
    def __init__(self, plan: LinkPlan, rng: np.random.Generator, *, volatile: bool = False) -> None:
        spec = plan.spec
        self.ends = plan.ends
        self.volatile = volatile  # can go down: a crossing is then decided at its own time
        self.down = False
        self.lost = 0
        self.loss = spec.loss
        self.bandwidth = spec.bandwidth
        self.latency: Draw = draws(spec.latency, rng)  # the next latency
        self.chance: Draw = draws(_UNIT, rng) if spec.loss > 0 else (lambda: 1.0)  # U(0,1) for losses
        # a plain link only delays: the model's hot path crosses it with one draw
        self.plain = not volatile and not spec.loss > 0 and not spec.bandwidth
