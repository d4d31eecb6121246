"""A link between two stations: latency, transmission time at its bandwidth, loss, failures.

A link is not a queue: messages do not wait for each other on it (bandwidth adds the time
to transmit a message of its size, not contention). A message's latency on it, and whether it
loses the message, are drawn with the message's journey (network/journeys.py); a link that
neither loses messages nor fails only delays them and is folded into the journey's gaps, any
other is crossed by the courier (network/courier.py): one that can fail (`volatile`) at the
crossing's own time, as it is then.
"""

from __future__ import annotations

from network.plan import LinkPlan

__all__ = ["Link"]


class Link:
    def __init__(self, plan: LinkPlan, *, volatile: bool = False) -> None:
        spec = plan.spec
        self.ends = plan.ends
        self.volatile = volatile  # can go down: a crossing is then decided at its own time
        self.down = False
        self.lost = 0
        self.loss = spec.loss
        self.bandwidth = spec.bandwidth
