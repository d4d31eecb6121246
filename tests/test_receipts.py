"""Receipts and signed heads (crossroads.receipts) against the transparency-dev/merkle vectors.

Every good receipt and every good consistency claim is also tried corrupted (index +-1, the
wrong tree size, a flipped bit, a proof truncated or padded, a head of another size, log or
key) and must fail: a checker that accepts any of them would vouch for a log that lies.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from crossroads.checkpoint import CheckpointError, sign_checkpoint
from crossroads.merkle import EMPTY_ROOT, consistency_proof, inclusion_proof, leaf_hashes, root
from crossroads.receipts import consistency_problem, inclusion_problem, note_origin, open_head

VECTORS: dict[str, Any] = json.loads((Path(__file__).parent / "data" / "rfc6962_vectors.json").read_text())
LEAVES = [bytes.fromhex(x) for x in VECTORS["leaves"]]
HASHES = leaf_hashes(LEAVES)
ROOTS = [EMPTY_ROOT, *(bytes.fromhex(x) for x in VECTORS["roots"])]  # ROOTS[n]: the root of the first n leaves
ORIGIN = "example.org/log"
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
PUBLIC = KEY.public_key()
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))


def _note(size: int, root_hash: bytes | None = None, *, key: Ed25519PrivateKey = KEY, origin: str = ORIGIN) -> str:
    return sign_checkpoint(origin, size, ROOTS[size] if root_hash is None else root_hash, key, origin)


def _forged(size: int) -> bytes:
    """The root of the first `size` leaves with the last one rewritten: a history that was changed."""
    return root([*HASHES[: size - 1], leaf_hashes([b"forged"])[0]])


def _flip(data: bytes, at: int = 0) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]


def _proof_probes(proof: list[bytes]) -> Iterator[tuple[str, list[bytes]]]:
    """Every corruption of a proof: each component flipped, cut or grown, the proof cut or padded."""
    for i in range(len(proof)):
        yield f"proof[{i}] bit flipped", [*proof[:i], _flip(proof[i], 31), *proof[i + 1 :]]
        yield f"proof[{i}] truncated", [*proof[:i], proof[i][:-1], *proof[i + 1 :]]
        yield f"proof[{i}] padded", [*proof[:i], proof[i] + b"\x00", *proof[i + 1 :]]
    if proof:
        yield "proof truncated", proof[:-1]
    yield "proof padded", [*proof, HASHES[0]]
    yield "proof padded in front", [HASHES[0], *proof]


# ---------------------------------------------------------------------- signed heads
def test_a_head_opens_with_the_logs_key_and_says_what_it_signs() -> None:
    checkpoint = open_head(_note(5), PUBLIC, origin=ORIGIN, size=5, root=ROOTS[5])
    assert (checkpoint.origin, checkpoint.size, checkpoint.root) == (ORIGIN, 5, ROOTS[5])
    assert open_head(_note(5), PUBLIC) == checkpoint  # the key name is the origin the note names
    assert note_origin(_note(5)) == ORIGIN


@pytest.mark.parametrize(
    ("note", "expected", "message"),
    [
        (_note(5, key=OTHER_KEY), {}, "no signature"),
        (_note(5).replace("\n5\n", "\n6\n"), {}, "does not verify"),
        (_note(5)[:-2] + "\n", {}, "not base64"),
        (_note(5), {"size": 6}, "signs size 5, not 6"),
        (_note(5), {"root": ROOTS[4]}, "root does not match"),
        (_note(5), {"root": ROOTS[5][:-1]}, "root does not match"),
        (_note(5, origin="another.org/log"), {"origin": ORIGIN}, "no signature"),
    ],
    ids=["foreign key", "size changed", "signature cut", "other size", "other root", "short root", "other log"],
)
def test_a_head_that_is_not_the_logs_does_not_open(note: str, expected: dict[str, Any], message: str) -> None:
    with pytest.raises(CheckpointError, match=message):
        open_head(note, PUBLIC, **expected)


# ---------------------------------------------------------------------- inclusion receipts
def _receipt_holds(leaf: bytes, index: int, size: int, proof: list[bytes], note: str) -> bool:
    try:
        checkpoint = open_head(note, PUBLIC)
    except CheckpointError:
        return False
    return inclusion_problem(leaf, index, size, proof, checkpoint) is None


def _receipt_probes(index: int, size: int, proof: list[bytes]) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """Every corruption of a good receipt, as (description, `_receipt_holds` arguments)."""
    leaf, note = LEAVES[index], _note(size)
    yield "index - 1", (leaf, index - 1, size, proof, note)
    yield "index + 1", (leaf, index + 1, size, proof, note)
    yield "size - 1", (leaf, index, size - 1, proof, note)
    yield "size + 1", (leaf, index, size + 1, proof, note)
    if size < len(LEAVES):
        yield "head of size + 1", (leaf, index, size + 1, proof, _note(size + 1))
    if index < size - 1:
        yield "head of size - 1", (leaf, index, size - 1, proof, _note(size - 1))
    yield "leaf bit flipped", (_flip(leaf) if leaf else b"\x01", index, size, proof, note)
    yield "leaf padded", (leaf + b"\x00", index, size, proof, note)
    yield "another leaf", (LEAVES[(index + 1) % len(LEAVES)], index, size, proof, note)
    yield "history rewritten", (leaf, index, size, proof, _note(size, _forged(size)))
    yield "foreign key", (leaf, index, size, proof, _note(size, key=OTHER_KEY))
    yield "note bit flipped", (leaf, index, size, proof, note.replace(f"\n{size}\n", f"\n{size ^ 1}\n"))
    for desc, bad in _proof_probes(proof):
        yield desc, (leaf, index, size, bad, note)


def _vector_receipts() -> list[tuple[int, int]]:
    return [(c["index"], c["size"]) for c in VECTORS["inclusion"]]


def _every_receipt() -> list[tuple[int, int]]:
    return [(i, n) for n in range(1, len(LEAVES) + 1) for i in range(n)]


@pytest.mark.parametrize(("index", "size"), _vector_receipts() + _every_receipt())
def test_every_corrupted_receipt_is_refused(index: int, size: int) -> None:
    proof = inclusion_proof(index, size, HASHES)
    assert _receipt_holds(LEAVES[index], index, size, proof, _note(size))
    accepted = [desc for desc, args in _receipt_probes(index, size, proof) if _receipt_holds(*args)]
    assert accepted == []


def test_a_receipt_problem_says_what_failed() -> None:
    proof = inclusion_proof(3, 7, HASHES)
    checkpoint = open_head(_note(7), PUBLIC)
    assert inclusion_problem(LEAVES[3], 3, 6, proof, checkpoint) == (
        "the checkpoint is for size 7, the proof for size 6"
    )
    assert inclusion_problem(LEAVES[2], 3, 7, proof, checkpoint) == (
        "the inclusion proof of record 3 does not lead to the signed root of size 7"
    )


# ---------------------------------------------------------------------- consistency between heads
def _consistent(first_note: str, second_note: str, proof: list[bytes]) -> bool:
    try:
        first, second = open_head(first_note, PUBLIC), open_head(second_note, PUBLIC)
    except CheckpointError:
        return False
    return consistency_problem(first, second, proof) is None


def _consistency_probes(first: int, second: int, proof: list[bytes]) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """Every corruption of a good consistency claim, as (description, `_consistent` arguments)."""
    old, new = _note(first), _note(second)
    if first > 1:  # a head of size 0 is a prefix of every log: not a corruption
        yield "first - 1", (_note(first - 1), new, proof)
    if first < len(LEAVES):
        yield "first + 1", (_note(first + 1), new, proof)
    yield "second - 1", (old, _note(second - 1), proof)
    if second < len(LEAVES):
        yield "second + 1", (old, _note(second + 1), proof)
    if first != second:
        yield "heads swapped", (new, old, proof)
    yield "first rewritten", (_note(first, _forged(first)), new, proof)
    yield "second rewritten", (old, _note(second, _forged(second)), proof)
    yield "another log", (old, _note(second, origin="another.org/log"), proof)
    yield "foreign key", (old, _note(second, key=OTHER_KEY), proof)
    for desc, bad in _proof_probes(proof):
        yield desc, (old, new, bad)


def _vector_consistency() -> list[tuple[int, int]]:
    return [(c["first"], c["second"]) for c in VECTORS["consistency"]]


def _every_consistency() -> list[tuple[int, int]]:
    return [(m, n) for n in range(1, len(LEAVES) + 1) for m in range(1, n + 1)]


@pytest.mark.parametrize(("first", "second"), _vector_consistency() + _every_consistency())
def test_every_corrupted_consistency_claim_is_refused(first: int, second: int) -> None:
    proof = consistency_proof(first, second, HASHES)
    assert _consistent(_note(first), _note(second), proof)
    accepted = [desc for desc, args in _consistency_probes(first, second, proof) if _consistent(*args)]
    assert accepted == []


def test_a_consistency_problem_says_what_failed() -> None:
    small, large = open_head(_note(3), PUBLIC), open_head(_note(7), PUBLIC)
    other = open_head(_note(7, origin="another.org/log"), PUBLIC)
    proof = consistency_proof(3, 7, HASHES)
    assert consistency_problem(large, small, []) == "the log shrank from 7 to 3 records"
    assert consistency_problem(small, other, proof) is not None and "two logs" in str(
        consistency_problem(small, other, proof)
    )
    assert consistency_problem(small, large, proof[:-1]) == "the consistency proof from size 3 to 7 does not verify"
