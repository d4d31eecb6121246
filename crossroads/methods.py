"""The gRPC method paths of the network, taken from the generated descriptors: spelled nowhere else.

A path is "/<package>.<Service>/<Method>", the name a raw call (`channel.unary_unary(path)`)
and a server's handlers go by. Reading them from protos/services.proto's descriptors (and
grpc.health.v1's) means a renamed service or method breaks at import, not on the wire.
"""

from __future__ import annotations

from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health_pb2

from protos import services_pb2

__all__ = [
    "AGENCY_SERVICE",
    "AUDIT_CONSISTENCY_PROOF",
    "AUDIT_ENTRY",
    "AUDIT_HEAD",
    "AUDIT_INCLUSION_PROOF",
    "AUDIT_SERVICE",
    "AUDIT_WHO_ACCESSED",
    "CROSSROADS_SERVICE",
    "DELIVER",
    "EXCHANGE",
    "HEALTH_CHECK",
    "HEALTH_SERVICE",
    "HEALTH_WATCH",
    "method_path",
]


def method_path(service: ServiceDescriptor, method: str) -> str:
    """The path of `method` of `service` (KeyError if the service has no such method)."""
    return f"/{service.full_name}/{service.methods_by_name[method].name}"


_CROSSROADS = services_pb2.DESCRIPTOR.services_by_name["Crossroads"]
_AUDIT = services_pb2.DESCRIPTOR.services_by_name["Audit"]
_AGENCY = services_pb2.DESCRIPTOR.services_by_name["Agency"]
_HEALTH = health_pb2.DESCRIPTOR.services_by_name["Health"]

CROSSROADS_SERVICE = _CROSSROADS.full_name  # the core's exchanges
AUDIT_SERVICE = _AUDIT.full_name  # the core's audit log
AGENCY_SERVICE = _AGENCY.full_name  # what agency hosts answer
HEALTH_SERVICE = _HEALTH.full_name

EXCHANGE = method_path(_CROSSROADS, "Exchange")
DELIVER = method_path(_AGENCY, "Deliver")
AUDIT_HEAD = method_path(_AUDIT, "Head")
AUDIT_INCLUSION_PROOF = method_path(_AUDIT, "InclusionProof")
AUDIT_CONSISTENCY_PROOF = method_path(_AUDIT, "ConsistencyProof")
AUDIT_WHO_ACCESSED = method_path(_AUDIT, "WhoAccessed")
AUDIT_ENTRY = method_path(_AUDIT, "Entry")
HEALTH_CHECK = method_path(_HEALTH, "Check")
HEALTH_WATCH = method_path(_HEALTH, "Watch")
