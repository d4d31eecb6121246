"""A demo being run: where, the world, the network while it is up, what was sent and found."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agencies.exchanges import with_fresh_id
from agencies.world import World
from crossroads.client import CoreClient, ExchangeRefused
from crossroads.domain import AgencyId
from crossroads.receipts import Receipt
from protos import messages_pb2
from testbed.live import LiveNetwork

__all__ = ["DEFAULT_OUT", "DEMO_SEED", "PER_KIND", "Demo", "Sent", "Step"]

DEFAULT_OUT = Path("runs/demo")
DEMO_SEED = 20261128  # the same exchanges every run: a demo people can follow along
PER_KIND = 2  # routed exchanges of each kind
DEMO_SIMULATION = "sector_hub_outage.yaml"  # the what-if the demo simulates
DEMO_REPLICATIONS = 2  # enough for confidence intervals, few enough for a demo
DEMO_LOADTEST = "loadtest_smoke.yaml"  # the load test the demo ends with
DEMO_LOADTEST_S = 25.0  # long enough for its host kill (at 12 s) and core freeze (at 22 s)
DEMO_CALIBRATION_RATES = (100.0, 300.0)  # the demo's quick calibration (req/s) ...
DEMO_HELD_OUT = 200.0  # ... and the level it predicts, then measures
DEMO_LEVEL_S = 4.0  # seconds per level
_ROUTE_SHOWN = 3  # destinations named in a table cell before "+N more"
_DRAWS = 50  # samples drawn to find one that reaches somebody


@dataclass
class Sent:
    """One exchange of the demo and what the core answered."""

    number: int
    sender: AgencyId
    envelope: messages_pb2.Envelope
    reply: messages_pb2.ExchangeReply | None = None
    refusal: ExchangeRefused | None = None

    @property
    def kind(self) -> str:
        return messages_pb2.MessageKind.Name(self.envelope.kind)

    @property
    def outcome(self) -> str:
        if self.reply is not None:
            return messages_pb2.Outcome.Name(self.reply.outcome)
        return self.refusal.code.name if self.refusal is not None else "NOT SENT"

    @property
    def audit_index(self) -> int | None:
        return self.reply.audit_index if self.reply is not None else self.refusal.audit_index if self.refusal else None

    def as_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "kind": self.kind,
            "sender": self.sender,
            "message_id": self.envelope.message_id,
            "subject": self.envelope.subject_niss or self.envelope.subject_kbo,
            "outcome": self.outcome,
            "route": [{"agency": d.agency, "via": d.via or None} for d in self.reply.deliveries] if self.reply else [],
            "deliberation": self.reply.deliberation if self.reply else "",
            "audit_index": self.audit_index,
            "refusal": self.refusal.details if self.refusal else None,
        }


@dataclass
class Demo:
    """A demo being run: where, the world, the network while it is up, and what was found."""

    out: Path
    state: Path
    scenario: Path
    world: World
    rng: np.random.Generator
    say: Callable[[str], None]
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])  # message ids fresh for each run
    network: LiveNetwork | None = None
    sent: list[Sent] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    ok: bool = True  # a step sets it False when what it shows did not happen as it should

    def send(self, sender: AgencyId, envelope: messages_pb2.Envelope) -> Sent:
        """Send `envelope` as `sender` (a fresh message id) and keep what the core answered."""
        sent = Sent(len(self.sent), sender, with_fresh_id(envelope, self.run))
        with CoreClient.connect(self.state, sender) as client:
            try:
                sent.reply = client.exchange(sent.envelope)
            except ExchangeRefused as refused:
                sent.refusal = refused
        self.sent.append(sent)
        return sent

    def receipt(self, sent: Sent) -> Receipt:
        with CoreClient.connect(self.state, sent.sender) as client:
            assert sent.audit_index is not None
            return client.receipt(sent.audit_index, message_id=sent.envelope.message_id)


@dataclass(frozen=True, slots=True)
class Step:
    title: str
    run: Callable[[Demo], None]
    live: bool = True  # runs while the network is up
