"""The crash harness's load: a seeded mix of exchanges, each acknowledged once, re-sent until it is.

Worker threads draw valid exchanges from the world (`agencies.exchanges.samples`, each worker with a
random stream of its own from the run's seed): declarations (DIMONA, DmfA, DRS: fanned out
to several agencies, queued for those that are down), mutations and consultations. Each gets
a unique message id (PREFIX + run seed + worker + serial), is sent as the agency the sample
names (its certificate), and is paced so that all workers together send about `rate` per
second.

A call that brings no acknowledgment - the core was killed under it, or was down
(UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED, ...), or refused it for now (RESOURCE_EXHAUSTED:
throttled or shed) - is sent again, the same bytes with the SAME message id, until the core
acknowledges it or `resend_for` seconds have passed. An acknowledgment is an ExchangeReply,
or a refusal the core audited (its audit index in the trailing metadata). Every
acknowledgment is kept as an `Ack`: message id, sender, kind, outcome, audit index,
destinations, and when it was first sent and acknowledged (monotonic seconds).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from agencies.exchanges import samples
from agencies.world import World
from crossroads.domain import Kind
from crossroads.methods import EXCHANGE
from loadtests.client import Answer, exchange
from loadtests.crash.target import Target
from loadtests.record import RequestRecord
from protos import messages_pb2

__all__ = [
    "DEFAULT_MIX",
    "DEFAULT_RATE",
    "DEFAULT_RESEND_FOR_S",
    "DEFAULT_WORKERS",
    "MESSAGE_ID_PREFIX",
    "Ack",
    "LoadGenerator",
    "acknowledged",
]

MESSAGE_ID_PREFIX = "crash-"
# relative weights: declarations and mutations are what the outbox owes; consultations are synchronous
DEFAULT_MIX: Mapping[Kind, float] = {
    Kind.DIMONA: 3,
    Kind.DMFA: 1,
    Kind.DRS: 2,
    Kind.MUTATION: 3,
    Kind.CONSULTATION: 3,
}
DEFAULT_WORKERS = 8
DEFAULT_RATE = 150.0  # messages/s over all workers: enough to have calls in flight at every kill
DEFAULT_RESEND_FOR_S = 60.0  # a message not acknowledged by then is reported, not hidden
CALL_TIMEOUT_S = 10.0  # a DmfA fans out to a dozen agencies, each with the core's 2 s deadline
_RESEND_PAUSE_S = (0.05, 0.5)  # first pause before re-sending, and the most it doubles to
# Codes that are an answer even though not OK: the core audited the refusal and will give the same one again.
_AUDITED_REFUSALS = frozenset({"", "OUTCOME_FAILED", "PERMISSION_DENIED", "INVALID_ARGUMENT", "FAILED_PRECONDITION"})


def acknowledged(answer: Answer) -> bool:
    """Whether the core acknowledged the message: an ExchangeReply, or a refusal it audited for good.

    UNAVAILABLE carries an audit index when the record was written but the outbox was not
    (the message was not accepted), and RESOURCE_EXHAUSTED when it was throttled or shed:
    both ask the sender to send it again.
    """
    return answer.audit_index is not None and answer.error in _AUDITED_REFUSALS


@dataclass(frozen=True, slots=True)
class Ack:
    """One message the core acknowledged, as the sender was told (see the module doc)."""

    message_id: str
    sender: str
    kind: str
    outcome: str
    audit_index: int
    deliveries: tuple[tuple[str, str], ...]  # (agency, outcome) as the reply listed them
    sent: float  # monotonic time of the first send
    acked: float  # monotonic time the acknowledgment arrived
    attempts: int

    def request_record(self) -> RequestRecord:
        """The acknowledgment as a load test logs it, for the checks `loadtests.guarantees` makes."""
        return RequestRecord(
            t=self.acked,
            name=self.kind,
            kind=self.kind,
            user="crash",
            ms=(self.acked - self.sent) * 1000,
            lag_ms=0.0,
            error="",
            message_id=self.message_id,
            sender=self.sender,
            audit_index=self.audit_index,
            outcome=self.outcome,
            deliveries=self.deliveries,
        )

    def as_json(self) -> dict[str, object]:
        return {
            "m": self.message_id,
            "s": self.sender,
            "k": self.kind,
            "o": self.outcome,
            "i": self.audit_index,
            "d": [list(d) for d in self.deliveries],
            "sent": round(self.sent, 6),
            "acked": round(self.acked, 6),
            "attempts": self.attempts,
        }


class LoadGenerator:
    """`workers` threads sending the mix to `target` at about `rate` messages/s; `stop` ends it.

    `acks` holds every acknowledgment, `unacknowledged` the ids of messages given up on after
    `resend_for` seconds; `sent` counts messages, `attempts` calls (re-sends included).
    """

    def __init__(
        self,
        world: World,
        target: Target,
        seed: np.random.SeedSequence,
        *,
        run_tag: str,
        workers: int = DEFAULT_WORKERS,
        rate: float = DEFAULT_RATE,
        mix: Mapping[Kind, float] = DEFAULT_MIX,
        resend_for: float = DEFAULT_RESEND_FOR_S,
    ) -> None:
        if workers < 1 or rate <= 0:
            raise ValueError(f"workers must be >= 1 and rate > 0, got {workers} and {rate}")
        self._world = world
        self._target = target
        self._kinds = tuple(mix)
        weights = np.array([mix[k] for k in self._kinds], dtype=float)
        self._weights = weights / weights.sum()
        self._interval = workers / rate
        self._resend_for = resend_for
        self._prefix = f"{MESSAGE_ID_PREFIX}{run_tag}-"
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._work, args=(k, rng), name=f"crash-load-{k}", daemon=True)
            for k, rng in enumerate(np.random.default_rng(s) for s in seed.spawn(workers))
        ]
        self.acks: list[Ack] = []
        self.unacknowledged: list[str] = []
        self.sent = 0
        self.attempts = 0

    @property
    def prefix(self) -> str:
        """What every message id of this load starts with."""
        return self._prefix

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout_s: float | None = None) -> None:
        """Send no new message; wait until every message sent is acknowledged or given up on."""
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout_s)

    def _work(self, worker: int, rng: np.random.Generator) -> None:
        serial = 0
        while not self._stopping.is_set():
            began = time.monotonic()
            kind = self._kinds[int(rng.choice(len(self._kinds), p=self._weights))]
            sample = samples.sample_any(self._world, rng, kind)
            envelope = messages_pb2.Envelope()
            envelope.CopyFrom(sample.envelope)
            envelope.message_id = f"{self._prefix}{worker}-{serial}"
            serial += 1
            self._send(sample.sender, kind.name, envelope.message_id, envelope.SerializeToString())
            self._stopping.wait(max(0.0, self._interval - (time.monotonic() - began)))

    def _send(self, sender: str, kind: str, message_id: str, raw: bytes) -> None:
        """Send `raw` until acknowledged (the same bytes every time), and keep what came of it."""
        sent = time.monotonic()
        give_up = sent + self._resend_for
        pause, attempts = _RESEND_PAUSE_S[0], 0
        with self._lock:
            self.sent += 1
        while True:
            answer = exchange(self._target.call(sender, EXCHANGE), raw, CALL_TIMEOUT_S)
            attempts += 1
            with self._lock:
                self.attempts += 1
            if acknowledged(answer) or time.monotonic() > give_up:
                break
            time.sleep(pause)  # the core is down or restarting: it is back within a second or two
            pause = min(pause * 2, _RESEND_PAUSE_S[1])
        with self._lock:
            if acknowledged(answer):
                self.acks.append(_ack(message_id, sender, kind, answer, sent, attempts))
            else:
                self.unacknowledged.append(message_id)


def _ack(message_id: str, sender: str, kind: str, answer: Answer, sent: float, attempts: int) -> Ack:
    assert answer.audit_index is not None  # acknowledged() checked it
    return Ack(
        message_id=message_id,
        sender=sender,
        kind=kind,
        outcome=answer.outcome,
        audit_index=answer.audit_index,
        deliveries=answer.deliveries,
        sent=sent,
        acked=time.monotonic(),
        attempts=attempts,
    )
