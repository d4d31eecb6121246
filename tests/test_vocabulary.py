"""The protocol's vocabulary, spelled once: audit outcomes with their status codes, and gRPC method paths.

The literal strings below pin the wire contract on purpose: stored audit leaves and every
client depend on them.
"""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2

from crossroads import methods
from crossroads.audit_record import OUTCOMES
from crossroads.exchange import AUDIT_INDEX_KEY
from crossroads.outcomes import AuditOutcome
from loadtests.client import Answer, exchange
from protos import messages_pb2, services_pb2

REFUSALS = [
    (AuditOutcome.FAILED, grpc.StatusCode.FAILED_PRECONDITION),
    (AuditOutcome.DENIED, grpc.StatusCode.PERMISSION_DENIED),
    (AuditOutcome.INVALID, grpc.StatusCode.INVALID_ARGUMENT),
    (AuditOutcome.UNAUTHENTICATED, grpc.StatusCode.UNAUTHENTICATED),
    (AuditOutcome.THROTTLED, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (AuditOutcome.SHED, grpc.StatusCode.UNAVAILABLE),
]


def test_the_outcomes_are_the_strings_stored_in_audit_leaves() -> None:
    assert {o.value for o in AuditOutcome} == OUTCOMES == {
        "DELIVERED",
        "QUEUED",
        "FAILED",
        "DENIED",
        "INVALID",
        "UNAUTHENTICATED",
        "THROTTLED",
        "SHED",
    }
    assert all(o == o.name for o in AuditOutcome)


def test_the_wire_outcomes_are_audit_outcomes() -> None:
    names = [name for name, _ in messages_pb2.Outcome.items() if name != "OUTCOME_UNSPECIFIED"]
    assert names and all(name in AuditOutcome.__members__ for name in names)


@pytest.mark.parametrize(("outcome", "code"), REFUSALS, ids=[o.name for o, _ in REFUSALS])
def test_each_refusal_has_its_status_and_back(outcome: AuditOutcome, code: grpc.StatusCode) -> None:
    assert outcome.status_code == code
    assert AuditOutcome.of_refusal(code) is outcome


def test_delivered_and_queued_are_answered_ok_and_no_refusal_is_audited_as_them() -> None:
    assert AuditOutcome.DELIVERED.status_code == AuditOutcome.QUEUED.status_code == grpc.StatusCode.OK
    assert AuditOutcome.of_refusal(grpc.StatusCode.OK) is None
    assert AuditOutcome.of_refusal(grpc.StatusCode.DEADLINE_EXCEEDED) is None


def test_only_throttled_and_shed_ask_to_send_again() -> None:
    assert {o for o in AuditOutcome if o.transient} == {AuditOutcome.THROTTLED, AuditOutcome.SHED}


def test_method_paths_are_the_wire_names() -> None:
    assert methods.EXCHANGE == "/crossroads.v1.Crossroads/Exchange"
    assert methods.DELIVER == "/crossroads.v1.Agency/Deliver"
    assert methods.AUDIT_HEAD == "/crossroads.v1.Audit/Head"
    assert methods.AUDIT_INCLUSION_PROOF == "/crossroads.v1.Audit/InclusionProof"
    assert methods.AUDIT_CONSISTENCY_PROOF == "/crossroads.v1.Audit/ConsistencyProof"
    assert methods.AUDIT_WHO_ACCESSED == "/crossroads.v1.Audit/WhoAccessed"
    assert methods.AUDIT_ENTRY == "/crossroads.v1.Audit/Entry"
    assert methods.HEALTH_CHECK == "/grpc.health.v1.Health/Check"
    assert methods.HEALTH_WATCH == "/grpc.health.v1.Health/Watch"
    assert (methods.CROSSROADS_SERVICE, methods.AUDIT_SERVICE, methods.AGENCY_SERVICE) == (
        "crossroads.v1.Crossroads",
        "crossroads.v1.Audit",
        "crossroads.v1.Agency",
    )


def test_every_method_of_the_services_has_its_path() -> None:
    named = {v for k, v in vars(methods).items() if k.isupper() and isinstance(v, str) and v.startswith("/")}
    services = [*services_pb2.DESCRIPTOR.services_by_name.values(), health_pb2.DESCRIPTOR.services_by_name["Health"]]
    every = {methods.method_path(s, m.name) for s in services for m in s.methods}
    assert named == every


def test_a_method_the_service_lacks_has_no_path() -> None:
    with pytest.raises(KeyError):
        methods.method_path(services_pb2.DESCRIPTOR.services_by_name["Audit"], "Nothing")


class _Refused(grpc.RpcError, grpc.Call):  # type: ignore[misc]
    """A refusal as a raw gRPC call raises it: a status, and the audit index in the trailing metadata."""

    def __init__(self, code: grpc.StatusCode, audit_index: int | None) -> None:
        self._code = code
        self._trailing = () if audit_index is None else ((AUDIT_INDEX_KEY, str(audit_index)),)

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return "refused"

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._trailing

    def initial_metadata(self) -> tuple[()]:
        return ()

    def is_active(self) -> bool:
        return False

    def time_remaining(self) -> None:
        return None

    def cancel(self) -> bool:
        return False

    def add_callback(self, callback: object) -> bool:
        return False


@pytest.mark.parametrize(("outcome", "code"), REFUSALS, ids=[o.name for o, _ in REFUSALS])
def test_the_load_test_client_names_the_outcome_of_an_audited_refusal(
    outcome: AuditOutcome, code: grpc.StatusCode
) -> None:
    def refuse(audit_index: int | None) -> Answer:
        def call(envelope: bytes, timeout: float) -> bytes:
            raise _Refused(code, audit_index)

        return exchange(call, b"", 1.0)

    audited, unaudited = refuse(7), refuse(None)
    assert (audited.error, audited.outcome, audited.audit_index) == (code.name, outcome, 7)
    assert (unaudited.outcome, unaudited.audit_index) == ("", None)  # not audited: no outcome to name
