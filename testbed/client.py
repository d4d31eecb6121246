"""A client for people and tests: one agency's view of a running live network.

`CoreClient.connect(state, identity)` opens one mutual-TLS channel to the core of the network
in the state folder `state` (the address from DIR/endpoints.json, the certificate of
`identity` from DIR/pki), and offers the calls an agency makes: `exchange` (one envelope, the
ExchangeReply back, `ExchangeRefused` on a refusal), `head` and `audit_entry` (the audit log),
and `receipt`, which fetches the audit record of an exchange and checks it with
`verify_receipt` against a checkpoint signed with the log's key in DIR/keys. Synchronous on
purpose: a CLI and tests call it; load tests have their own generator.

The world of a state folder (`load_world`, `scenario_of`) is rebuilt from the scenario that
`testbed.live` built it from.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agencies.spec import SpecError, load_world_spec
from agencies.world import World
from crossroads.audit import KEYS_DIR
from crossroads.audit_record import AuditRecord, AuditRecordError
from crossroads.checkpoint import CheckpointError, load_public_key
from crossroads.exchange import audit_index_of
from crossroads.pki import NetworkPki, PkiError, channel_credentials
from crossroads.receipts import inclusion_problem, open_head
from protos import messages_pb2, services_pb2, services_pb2_grpc
from testbed import live

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "ClientError",
    "CoreClient",
    "ExchangeRefused",
    "Receipt",
    "audit_public_key",
    "load_world",
    "scenario_of",
    "verify_receipt",
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


# ------------------------------------------------------------------ receipts


@dataclass(frozen=True, slots=True)
class Receipt:
    """The audit record of one exchange and whether its inclusion in the signed log was verified.

    `verified` is True only if the checkpoint's signature holds with the log's key, the proof
    leads from the leaf to the checkpoint's root at its size, the leaf decodes to a canonical
    record, and (when asked) that record carries the expected message id. Otherwise `problem`
    says what failed.
    """

    index: int
    tree_size: int
    root_hex: str
    proof_hex: tuple[str, ...]
    verified: bool
    record: AuditRecord | None
    checkpoint: str
    problem: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "tree_size": self.tree_size,
            "root": self.root_hex,
            "inclusion_proof": list(self.proof_hex),
            "verified": self.verified,
            "problem": self.problem,
            "checkpoint": self.checkpoint,
            "record": self.record.as_json() if self.record else None,
        }


def _record_problem(leaf: bytes, message_id: str | None) -> tuple[AuditRecord | None, str | None]:
    try:
        record = AuditRecord.from_leaf(leaf)
    except AuditRecordError as exc:
        return None, f"leaf: {exc}"
    if message_id is not None and record.message_id != message_id:
        return record, f"the record is about message {record.message_id!r}, not {message_id!r}"
    return record, None


def verify_receipt(
    entry: services_pb2.AuditEntry, checkpoint: str, public_key: Ed25519PublicKey, *, message_id: str | None = None
) -> Receipt:
    """Check that `entry` (leaf bytes and inclusion proof) is in the log `checkpoint` signs.

    The checkpoint is a C2SP signed note; its signature is checked with `public_key` (the log's
    key, DIR/keys/audit.pub) under the key name its origin line gives; the root it signs is the
    one the proof must reach (RFC 6962 inclusion): both with crossroads.receipts. Never raises
    on bad input: a wrong proof, checkpoint or leaf gives `verified=False` and a `problem`.
    """
    proof = list(entry.inclusion.hashes)
    size = entry.inclusion.tree_size
    root, problem = b"", None
    try:
        signed = open_head(checkpoint, public_key)
    except CheckpointError as exc:
        problem = f"checkpoint: {exc}"
    else:
        root = bytes(signed.root)
        if entry.inclusion.index != entry.index:
            problem = f"the proof is for index {entry.inclusion.index}, the leaf is record {entry.index}"
        else:
            problem = inclusion_problem(entry.leaf, entry.index, size, proof, signed)
    record, record_problem = _record_problem(entry.leaf, message_id)
    problem = problem or record_problem
    return Receipt(
        index=entry.index,
        tree_size=size,
        root_hex=root.hex(),
        proof_hex=tuple(h.hex() for h in proof),
        verified=problem is None,
        record=record,
        checkpoint=checkpoint,
        problem=problem,
    )


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


# ------------------------------------------------------------------ the world of a state folder


def _shipped_scenarios() -> Iterator[Path]:
    for entry in sorted(files("scenarios").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            yield Path(str(entry))


def _fingerprint_of(scenario: Path) -> str | None:
    """The world fingerprint `testbed.live` records for `scenario`; None if it holds no world."""
    try:
        spec = load_world_spec(scenario)
    except SpecError:
        return None
    # the same function that wrote DIR/world.json: a reimplementation could drift from it
    return live.fingerprint(scenario, spec.seed)


def scenario_of(state: Path, scenario: Path | None = None) -> Path:
    """The scenario whose world the state folder `state` holds.

    DIR/world.json records the world's fingerprint (testbed.live). The answer is the first of:
    `scenario` (if given), the path world.json names under "scenario" (if any), the scenarios
    shipped in the `scenarios` package, whose fingerprint matches. ClientError if none does,
    saying to pass the scenario that `crossroads up` was given.
    """
    marker = Path(state) / "world.json"
    if not marker.exists():
        raise ClientError(f"no {marker}: no world was built in {state} (crossroads up --state {state})")
    recorded: dict[str, Any] = json.loads(marker.read_text())
    wanted = recorded.get("fingerprint")
    named = [Path(recorded["scenario"])] if recorded.get("scenario") else []
    candidates = [scenario] if scenario is not None else [*named, *_shipped_scenarios()]
    for candidate in candidates:
        if candidate.exists() and _fingerprint_of(candidate) == wanted:
            return candidate
    if scenario is not None:
        raise ClientError(f"the world in {state} was not built from {scenario} (its fingerprint differs)")
    raise ClientError(f"the world in {state} is of no shipped scenario: pass the one crossroads up was given")


def load_world(state: Path, scenario: Path | None = None) -> World:
    """The world of the network in `state`, rebuilt from its scenario (see `scenario_of`)."""
    return World.build(load_world_spec(scenario_of(state, scenario)))
