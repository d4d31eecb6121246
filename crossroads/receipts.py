"""Checking what the audit log hands out, with its public key only: signed heads, receipts, consistency.

Pure functions, no I/O: anyone holding the log's Ed25519 public key can check, without
trusting the core,
- `open_head`: that a checkpoint (a C2SP signed note over a tlog-checkpoint body, see
  crossroads.checkpoint) carries the log's signature and commits to the size and root it was
  handed out with: the signed tree head of RFC 6962 section 3.5 (RFC 9162 section 4.10);
- `inclusion_problem`: that a record's audit path leads from its leaf to that checkpoint's
  root: RFC 9162 section 2.1.3.2 (RFC 6962 section 2.1.1), the receipt of one exchange;
- `consistency_problem`: that the tree of one checkpoint is a prefix of the tree of a later
  one, i.e. the log only grew: RFC 9162 section 2.1.4.2 (RFC 6962 section 2.1.2).
`verify_receipt` checks a whole receipt as the core's Audit.Entry hands it out (`Receipt`). The
client's receipts, the crash harness's heads across a restart and `verify_store` use them.

`open_head` raises CheckpointError saying what is wrong (the callers say which checkpoint);
the proof checks never raise on bad input, like crossroads.merkle's verifiers: they return
what is wrong, or None when the proof holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from crossroads.audit_record import AuditRecord, AuditRecordError
from crossroads.checkpoint import Checkpoint, CheckpointError, verify_checkpoint
from crossroads.merkle import leaf_hash, verify_consistency, verify_inclusion
from protos import services_pb2

__all__ = ["Receipt", "consistency_problem", "inclusion_problem", "note_origin", "open_head", "verify_receipt"]


def note_origin(note: str) -> str:
    """The origin a checkpoint note names on its first line: the key name the log signs under."""
    return note.split("\n", 1)[0]


def open_head(
    note: str,
    public_key: Ed25519PublicKey,
    *,
    origin: str | None = None,
    size: int | None = None,
    root: bytes | None = None,
) -> Checkpoint:
    """The checkpoint in the signed note `note`, if the log holding `public_key` signed it.

    The log signs under its origin as key name: `origin` when given (and the checkpoint must
    then be of that log), else the origin the note itself names. When `size` and `root` are
    given, the checkpoint must commit to exactly them. Raises CheckpointError otherwise: a
    malformed note, no signature by that key, a signature that fails, or other fields.
    """
    checkpoint = verify_checkpoint(note, public_key, note_origin(note) if origin is None else origin)
    if origin is not None and checkpoint.origin != origin:
        raise CheckpointError(f"it is a checkpoint of {checkpoint.origin!r}, not of {origin!r}")
    if size is not None and checkpoint.size != size:
        raise CheckpointError(f"it signs size {checkpoint.size}, not {size}")
    if root is not None and checkpoint.root != root:
        raise CheckpointError(f"its root does not match the tree of size {checkpoint.size}")
    return checkpoint


def inclusion_problem(
    leaf: bytes, index: int, tree_size: int, proof: Sequence[bytes], checkpoint: Checkpoint
) -> str | None:
    """What is wrong with the receipt of leaf bytes `leaf` at `index`; None when it holds.

    The receipt holds when the checkpoint (opened with `open_head`) is for `tree_size` and the
    audit path `proof` leads from the leaf's hash at `index` to the checkpoint's root
    (RFC 9162 section 2.1.3.2). Never raises on malformed input.
    """
    if checkpoint.size != tree_size:
        return f"the checkpoint is for size {checkpoint.size}, the proof for size {tree_size}"
    if not verify_inclusion(leaf_hash(leaf), index, tree_size, proof, checkpoint.root):
        return f"the inclusion proof of record {index} does not lead to the signed root of size {tree_size}"
    return None


def consistency_problem(first: Checkpoint, second: Checkpoint, proof: Sequence[bytes]) -> str | None:
    """What is wrong with the claim that the log of checkpoint `second` only grew from `first`; None when it holds.

    Both checkpoints opened with `open_head`. It holds when they are of the same log, the
    second is not smaller, and `proof` shows the first tree is a prefix of the second
    (RFC 9162 section 2.1.4.2; equal sizes need equal roots and an empty proof). Never raises
    on malformed input.
    """
    if first.origin != second.origin:
        return f"the checkpoints are of two logs, {first.origin!r} and {second.origin!r}"
    if second.size < first.size:
        return f"the log shrank from {first.size} to {second.size} records"
    if not verify_consistency(first.size, second.size, first.root, second.root, proof):
        return f"the consistency proof from size {first.size} to {second.size} does not verify"
    return None


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
