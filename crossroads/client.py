"""A client for people and tests: one agency's view of a running live network.

`CoreClient.connect(state, identity)` opens one mutual-TLS channel to the core of the network
in the state folder `state` (the address from DIR/endpoints.json, the certificate of
`identity` from DIR/pki), and offers the calls an agency makes: `exchange` (one envelope, the
ExchangeReply back, `ExchangeRefused` on a refusal), `head` and `audit_entry` (the audit log),
and `receipt`, which fetches the audit record of an exchange and checks it with
`crossroads.receipts.verify_receipt` against a checkpoint signed with the log's key in
DIR/keys. Synchronous on purpose: a CLI and tests call it; load tests have their own generator.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from crossroads.audit import KEYS_DIR
from crossroads.checkpoint import CheckpointError, load_public_key
from crossroads.exchange import audit_index_of
from crossroads.pki import NetworkPki, PkiError, channel_credentials
from crossroads.receipts import Receipt, verify_receipt
from protos import messages_pb2, services_pb2, services_pb2_grpc

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "ClientError",
    "CoreClient",
    "ExchangeRefused",
    "audit_public_key",
]

DEFAULT_TIMEOUT_S = 10.0  # per call: a DmfA fans out to dozens of agencies, each with a 2 s deadline


class ClientError(RuntimeError):
    """The state folder cannot be used by a client (no network up, no such identity, ...)."""


class ExchangeRefused(Exception):
    """The core did not route the exchange: gRPC `code`, its `details`, and the audit index.

    `audit_index` is the index of the refusal's own audit record (trailing metadata
    "audit-index"), None when there is none (e.g. the core was unreachable).
    """

    def __init__(self, code: grpc.StatusCode, details: str, audit_index: int | None) -> None:
        where = f" (audit record {audit_index})" if audit_index is not None else ""
        super().__init__(f"{code.name}: {details}{where}")
        self.code = code
        self.details = details
        self.audit_index = audit_index


def audit_public_key(state: Path) -> Ed25519PublicKey:
    """The audit log's public key of the network in `state` (DIR/keys/audit.pub)."""
    try:
        return load_public_key(Path(state) / KEYS_DIR)
    except CheckpointError as exc:
        raise ClientError(str(exc)) from exc


# ------------------------------------------------------------------ the client


def _endpoints(state: Path) -> dict[str, Any]:
    path = state / "endpoints.json"
    if not path.exists():
        raise ClientError(f"no {path}: bring the network up first (crossroads up --state {state})")
    endpoints: dict[str, Any] = json.loads(path.read_text())
    if not endpoints.get("up") or not endpoints.get("core"):
        raise ClientError(f"the network in {state} is not up ({path} says so): start it with crossroads up")
    return endpoints


def _credentials(state: Path, identity: str) -> grpc.ChannelCredentials:
    pki_dir = state / "pki"
    if not (pki_dir / "ca.pem").exists():
        raise ClientError(f"no network CA in {pki_dir}: bring the network up first")
    # never issue a certificate on the fly: a client speaks only as an identity the network knows
    if not NetworkPki.open(pki_dir).path_of(identity).exists():
        raise ClientError(f"no certificate for {identity!r} in {pki_dir}: not an identity of this network")
    try:
        return channel_credentials(pki_dir, identity)
    except PkiError as exc:
        raise ClientError(str(exc)) from exc


def _audit_index(error: grpc.RpcError) -> int | None:
    return audit_index_of(error.trailing_metadata() if hasattr(error, "trailing_metadata") else None)


def _refused(error: grpc.RpcError) -> ExchangeRefused:
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = error.details() if hasattr(error, "details") else str(error)
    return ExchangeRefused(code, details or "", _audit_index(error))


class CoreClient:
    """One agency talking to the core over one mutual-TLS channel. Thread-safe; close it after use."""

    def __init__(
        self, channel: grpc.Channel, *, identity: str, state: Path, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> None:
        self.identity = identity
        self.state = state
        self.timeout_s = timeout_s
        self._channel = channel
        self._core = services_pb2_grpc.CrossroadsStub(channel)  # type: ignore[no-untyped-call]
        self._audit = services_pb2_grpc.AuditStub(channel)  # type: ignore[no-untyped-call]

    @classmethod
    def connect(cls, state: Path, identity: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> CoreClient:
        """A client of the core of the network in `state`, speaking as `identity`.

        ClientError when the network is not up there or `identity` has no certificate in
        DIR/pki. The channel connects lazily: an unreachable core shows on the first call.
        """
        state = Path(state).resolve()
        address = str(_endpoints(state)["core"])
        channel = grpc.secure_channel(address, _credentials(state, identity))
        return cls(channel, identity=identity, state=state, timeout_s=timeout_s)

    def exchange(self, envelope: messages_pb2.Envelope) -> messages_pb2.ExchangeReply:
        """Send one envelope; the core's ExchangeReply (whatever its outcome) when it routed it.

        Raises ExchangeRefused (status, details, audit index) when the core refused it
        (INVALID_ARGUMENT, PERMISSION_DENIED, FAILED_PRECONDITION, ...) or could not be reached.
        """
        try:
            reply: messages_pb2.ExchangeReply = self._core.Exchange(envelope, timeout=self.timeout_s)
        except grpc.RpcError as error:
            raise _refused(error) from None
        return reply

    def head(self) -> services_pb2.AuditHead:
        """The audit log's size, root and a checkpoint signed for exactly that size."""
        head: services_pb2.AuditHead = self._audit.Head(services_pb2.AuditHeadRequest(), timeout=self.timeout_s)
        return head

    def audit_entry(self, index: int, tree_size: int = 0) -> services_pb2.AuditEntry:
        """Record `index`: its leaf bytes and inclusion proof in the tree of `tree_size` (0 = current)."""
        request = services_pb2.EntryRequest(index=index, tree_size=tree_size)
        entry: services_pb2.AuditEntry = self._audit.Entry(request, timeout=self.timeout_s)
        return entry

    def receipt(self, index: int, *, message_id: str | None = None) -> Receipt:
        """The verified receipt of record `index`: against the current head, signed with DIR/keys."""
        head = self.head()
        entry = self.audit_entry(index, head.size)
        return verify_receipt(entry, head.checkpoint, audit_public_key(self.state), message_id=message_id)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> CoreClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


