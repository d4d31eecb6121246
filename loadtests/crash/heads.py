"""The audit log across a crash: the head seen before a kill, and the proof that the log after it only grew.

`HeadWatcher` asks the core for its signed head (crossroads.v1.Audit/Head) every few tens of
milliseconds while the load runs, as the admin tools would, and keeps the last one it saw.
Before the core is killed the harness takes that head; after the restart it asks the new core
for its head and for a consistency proof from the old size to the new one
(Audit/ConsistencyProof), and `consistency_problem` checks both signed checkpoints and the
proof with crossroads.receipts (RFC 9162 section 2.1.4.2). A log that lost an acknowledged
record, or rewrote one, cannot pass.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from crossroads import receipts
from crossroads.audit import AuditHead
from crossroads.checkpoint import Checkpoint, CheckpointError
from crossroads.methods import AUDIT_CONSISTENCY_PROOF, AUDIT_HEAD
from crossroads.pki import ADMIN
from crossroads.receipts import open_head
from loadtests.crash.target import Target
from protos import services_pb2

__all__ = [
    "HeadWatcher",
    "Restart",
    "consistency_problem",
    "fetch_head",
    "fetch_proof",
]

WATCH_EVERY_S = 0.05
CALL_TIMEOUT_S = 5.0


def _head_json(head: AuditHead) -> dict[str, object]:
    return {"size": head.size, "root": head.root.hex()}


@dataclass(frozen=True, slots=True)
class Restart:
    """One kill of the core: the head before it, the head after the restart, and what was wrong (None: nothing)."""

    kill: int
    before: AuditHead
    after: AuditHead
    proof_hashes: int
    problem: str | None

    def as_json(self) -> dict[str, object]:
        return {
            "kill": self.kill,
            "before": _head_json(self.before),
            "after": _head_json(self.after),
            "proof_hashes": self.proof_hashes,
            "problem": self.problem,
        }


def fetch_head(target: Target) -> AuditHead:
    """The current core's signed head (grpc.RpcError if it cannot be reached)."""
    raw = target.call(ADMIN, AUDIT_HEAD)(services_pb2.AuditHeadRequest().SerializeToString(), timeout=CALL_TIMEOUT_S)
    head = services_pb2.AuditHead.FromString(raw)
    return AuditHead(int(head.size), bytes(head.root), head.checkpoint)


def fetch_proof(target: Target, first: int, second: int) -> list[bytes]:
    """The current core's consistency proof from tree size `first` to `second`."""
    request = services_pb2.ConsistencyProofRequest(first=first, second=second)
    raw = target.call(ADMIN, AUDIT_CONSISTENCY_PROOF)(request.SerializeToString(), timeout=CALL_TIMEOUT_S)
    return list(services_pb2.Proof.FromString(raw).hashes)


def _opened(head: AuditHead, public_key: Ed25519PublicKey, which: str) -> tuple[Checkpoint | None, str | None]:
    """The checkpoint of `head` if the log signed it for the head's own size and root, else what is wrong."""
    try:
        return open_head(head.checkpoint, public_key, size=head.size, root=head.root), None
    except CheckpointError as exc:
        return None, f"the checkpoint {which} does not verify: {exc}"


def consistency_problem(
    before: AuditHead, after: AuditHead, proof: Sequence[bytes], public_key: Ed25519PublicKey
) -> str | None:
    """What is wrong with the log's history across a restart; None when the log only grew.

    Both checkpoints must carry the log's signature (`public_key`) over their own size and root,
    the new size must not be smaller, and `proof` must show the old tree is a prefix of the new
    (crossroads.receipts).
    """
    first, problem = _opened(before, public_key, "before the kill")
    if first is None:
        return problem
    second, problem = _opened(after, public_key, "after the restart")
    if second is None:
        return problem
    return receipts.consistency_problem(first, second, proof)


class HeadWatcher:
    """A thread that keeps the last head the core answered (`last`); errors (a dead core) are skipped."""

    def __init__(self, target: Target, every_s: float = WATCH_EVERY_S) -> None:
        self._target = target
        self._every = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="crash-head-watcher", daemon=True)
        self.last: AuditHead | None = None
        self.seen = 0

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.last = fetch_head(self._target)  # one reference assignment: readers see old or new
                self.seen += 1
            except grpc.RpcError:
                pass  # the core is down: keep the last head it gave
            self._stop.wait(self._every)

    def fresh(self, timeout_s: float) -> AuditHead:
        """A head seen after this call began (waits up to `timeout_s`; else the last one seen, if any)."""
        seen, deadline = self.seen, time.monotonic() + timeout_s
        while self.seen == seen and time.monotonic() < deadline:
            time.sleep(self._every / 5)
        if self.last is None:
            raise RuntimeError("the audit head watcher has seen no head yet")
        return self.last

    def stop(self) -> None:
        """Stop watching (idempotent; also when it never started)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
