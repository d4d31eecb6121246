"""What the crossroads did with an exchange, as its audit record says it, and the gRPC status it answered with.

One vocabulary for the core that writes the records, the load tests, the crash harness and the
fuzzer that check them. The values are stored as these very strings in every audit leaf
(crossroads.audit_record), so they never change. The wire's `crossroads.v1.Outcome`
(protos/messages.proto) names the outcomes an ExchangeReply and its deliveries carry, a subset.
"""

from __future__ import annotations

from enum import StrEnum

import grpc

__all__ = ["ACCEPTED", "AuditOutcome"]


class AuditOutcome(StrEnum):
    """The outcome of one exchange; `status_code` is the status its answer carries."""

    DELIVERED = "DELIVERED"  # forwarded to every destination, which answered
    QUEUED = "QUEUED"  # accepted; some destinations are down, the core holds it in its outbox
    FAILED = "FAILED"  # forwarded but a destination failed, or not routable (see status_code)
    DENIED = "DENIED"  # no rule or deliberation allows it
    INVALID = "INVALID"  # the envelope breaks a rule of validation
    UNAUTHENTICATED = "UNAUTHENTICATED"  # no verified client certificate, or a revoked one
    THROTTLED = "THROTTLED"  # over the sender's rate limit or in-flight quota
    SHED = "SHED"  # the core was overloaded and refused it

    @property
    def status_code(self) -> grpc.StatusCode:
        """The gRPC status of the answer: OK (an ExchangeReply) for DELIVERED and QUEUED, else the refusal's.

        FAILED is both: an ExchangeReply (OK) when a destination failed, and a refusal
        (FAILED_PRECONDITION) when the message was not routable; this says the refusal's.
        """
        return _STATUS_CODES[self]

    @property
    def transient(self) -> bool:
        """A refusal that asks the sender to send the same message again (it may pass a moment later)."""
        return self in _TRANSIENT

    @classmethod
    def of_refusal(cls, code: grpc.StatusCode) -> AuditOutcome | None:
        """The outcome the core audits a refusal with status `code` under; None if it audits none so."""
        return _BY_REFUSAL.get(code)


_STATUS_CODES = {
    AuditOutcome.DELIVERED: grpc.StatusCode.OK,
    AuditOutcome.QUEUED: grpc.StatusCode.OK,
    AuditOutcome.FAILED: grpc.StatusCode.FAILED_PRECONDITION,
    AuditOutcome.DENIED: grpc.StatusCode.PERMISSION_DENIED,
    AuditOutcome.INVALID: grpc.StatusCode.INVALID_ARGUMENT,
    AuditOutcome.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    AuditOutcome.THROTTLED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    AuditOutcome.SHED: grpc.StatusCode.UNAVAILABLE,
}
_BY_REFUSAL = {code: outcome for outcome, code in _STATUS_CODES.items() if code != grpc.StatusCode.OK}
_TRANSIENT = frozenset({AuditOutcome.THROTTLED, AuditOutcome.SHED})
ACCEPTED = frozenset({AuditOutcome.DELIVERED, AuditOutcome.QUEUED})  # the core took the exchange on (gRPC OK)
