"""The load test's gRPC client: mutual TLS as each sending agency, and what each answer means.

Every agency authenticates with its own certificate (identity from the certificate, never from
a field), so a client speaks as many identities: `Channels` keeps one channel to the target per
identity, created on first use and shared by all the users of a Locust process (a channel per
user and identity would open users x identities TLS connections to the core). Channels are
plain `grpc` channels; under Locust they are gevent-cooperative once the locustfile has called
`grpc.experimental.gevent.init_gevent()` (before any channel exists, and after any fork).

`exchange(...)` sends one envelope and turns what came back into an `Answer`:
- an ExchangeReply: the core acknowledged it with an audit index; it failed only if its
  outcome is FAILED (a destination did not answer);
- a refusal the core audited (index in the trailing metadata "audit-index"; its outcome is
  `crossroads.outcomes.AuditOutcome.of_refusal` of its status): an error unless the user
  expects that refusal;
- anything else (DEADLINE_EXCEEDED, an unaudited UNAVAILABLE, ...): an error, with no audit
  index or outcome known.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2

from crossroads.exchange import audit_index_of
from crossroads.methods import HEALTH_CHECK
from crossroads.outcomes import AuditOutcome
from crossroads.pki import channel_credentials
from protos import messages_pb2

__all__ = [
    "Answer",
    "Call",
    "Channels",
    "ExchangeError",
    "deliver",
    "exchange",
    "refusal_outcome",
]

_OUTCOME_NAMES = {v: k for k, v in messages_pb2.Outcome.items()}
Call = Callable[..., Any]


class ExchangeError(Exception):
    """Why a request counts as failed; Locust groups failures by this text, so it is short."""


@dataclass(frozen=True, slots=True)
class Answer:
    """What one request came to. `error` is "" for a success."""

    error: str
    outcome: str  # the ExchangeReply outcome, the audited refusal outcome, or ""
    audit_index: int | None
    deliveries: tuple[tuple[str, str], ...]
    size: int  # bytes of the reply
    seconds: float  # from sending to the answer


def refusal_outcome(code: grpc.StatusCode, audit_index: int | None) -> str:
    """The outcome the core audited a refusal with status `code` under ("" if it audited none: no index)."""
    outcome = AuditOutcome.of_refusal(code) if audit_index is not None else None
    return outcome or ""


class Channels:
    """One channel per identity to `address`, presenting that identity's certificate."""

    def __init__(self, address: str, pki: Path) -> None:
        self.address = address
        self.pki = Path(pki)
        self._channels: dict[str, grpc.Channel] = {}
        self._calls: dict[tuple[str, str], Call] = {}

    def connect(self, identity: str, timeout: float) -> bool:
        """Open `identity`'s channel (TLS handshake included), waiting up to `timeout` s; True if it is new.

        Agencies keep their connection open, so the handshake is not part of an exchange's
        latency. A health check opens it (channel_ready_future would block the gevent hub); if
        it does not connect in time, the next call will say why.
        """
        if identity in self._channels:
            return False
        channel = self._channels[identity] = grpc.secure_channel(self.address, channel_credentials(self.pki, identity))
        check = channel.unary_unary(HEALTH_CHECK)
        with contextlib.suppress(grpc.RpcError):
            check(health_pb2.HealthCheckRequest().SerializeToString(), timeout=timeout)
        return True

    def call(self, identity: str, method: str, *, connect_timeout: float) -> tuple[Call, bool]:
        """The unary call `method` as `identity` (bytes in, bytes out), and whether its channel is new
        (connected first, see `connect`)."""
        found = self._calls.get((identity, method))
        if found is not None:
            return found, False
        fresh = self.connect(identity, connect_timeout)
        found = self._calls[(identity, method)] = self._channels[identity].unary_unary(method)
        return found, fresh

    def __len__(self) -> int:
        return len(self._channels)

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()
        self._calls.clear()


def _audit_index(error: grpc.RpcError) -> int | None:
    return audit_index_of(error.trailing_metadata() if isinstance(error, grpc.Call) else None)


def exchange(call: Call, envelope: bytes, timeout: float, expected: frozenset[str] = frozenset()) -> Answer:
    """Send `envelope` through `call` (Crossroads/Exchange) and classify the answer.

    `expected`: refusal codes (names, e.g. "PERMISSION_DENIED") that count as a success.
    """
    started = time.perf_counter()
    try:
        raw: bytes = call(envelope, timeout=timeout)
    except grpc.RpcError as exc:
        seconds = time.perf_counter() - started
        code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
        error = "" if code.name in expected else code.name
        index = _audit_index(exc)
        return Answer(error, refusal_outcome(code, index), index, (), 0, seconds)
    seconds = time.perf_counter() - started
    reply = messages_pb2.ExchangeReply.FromString(raw)
    outcome = _OUTCOME_NAMES.get(reply.outcome, str(reply.outcome))
    deliveries = tuple((d.agency, _OUTCOME_NAMES.get(d.outcome, str(d.outcome))) for d in reply.deliveries)
    error = "OUTCOME_FAILED" if reply.outcome == messages_pb2.FAILED else ""
    return Answer(error, outcome, int(reply.audit_index), deliveries, len(raw), seconds)


def deliver(call: Call, forward: bytes, timeout: float) -> Answer:
    """Send a `Forward` through `call` (Agency/Deliver, e.g. via the raw proxy) and classify the answer."""
    started = time.perf_counter()
    try:
        raw: bytes = call(forward, timeout=timeout)
    except grpc.RpcError as exc:
        code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
        return Answer(code.name, "", None, (), 0, time.perf_counter() - started)
    seconds = time.perf_counter() - started
    status = messages_pb2.AgencyReply.FromString(raw).status
    return Answer("" if status in ("ok", "duplicate") else f"STATUS_{status}", "", None, (), len(raw), seconds)
