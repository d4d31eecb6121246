"""RFC 6962 maths against the transparency-dev/merkle vectors, corrupted proofs, and properties."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossroads.merkle import (
    EMPTY_ROOT,
    CompactRange,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    leaf_hashes,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
)

VECTORS: dict[str, Any] = json.loads((Path(__file__).parent / "data" / "rfc6962_vectors.json").read_text())
LEAVES = [bytes.fromhex(x) for x in VECTORS["leaves"]]
HASHES = leaf_hashes(LEAVES)
ROOTS = [bytes.fromhex(x) for x in VECTORS["roots"]]  # ROOTS[n - 1] is the root of the first n leaves
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def _hexes(values: list[str]) -> list[bytes]:
    return [bytes.fromhex(v) for v in values]


def _flip(proof: list[bytes], i: int) -> list[bytes]:
    out = list(proof)
    out[i] = bytes([out[i][0] ^ 8]) + out[i][1:]
    return out


def test_hasher_vectors() -> None:
    assert EMPTY_ROOT.hex() == VECTORS["empty_root"]
    assert leaf_hash(b"").hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    assert leaf_hash(b"L123456").hex() == VECTORS["hasher"]["leaf_L123456"]
    assert node_hash(b"N123", b"N456").hex() == VECTORS["hasher"]["node_N123_N456"]


@pytest.mark.parametrize("size", range(0, 9))
def test_roots_of_every_prefix(size: int) -> None:
    expected = ROOTS[size - 1] if size else EMPTY_ROOT
    assert root(HASHES[:size]) == expected
    frontier = CompactRange()
    frontier.extend(HASHES[:size])
    assert frontier.root() == expected


@pytest.mark.parametrize("case", VECTORS["inclusion"], ids=lambda c: f"{c['index']}@{c['size']}")
def test_inclusion_vectors(case: dict[str, Any]) -> None:
    index, size, proof = case["index"], case["size"], _hexes(case["proof"])
    assert inclusion_proof(index, size, HASHES) == proof
    assert verify_inclusion(HASHES[index], index, size, proof, ROOTS[size - 1])


@pytest.mark.parametrize("case", VECTORS["consistency"], ids=lambda c: f"{c['first']}-{c['second']}")
def test_consistency_vectors(case: dict[str, Any]) -> None:
    first, second, proof = case["first"], case["second"], _hexes(case["proof"])
    assert consistency_proof(first, second, HASHES) == proof
    assert verify_consistency(first, second, ROOTS[first - 1], ROOTS[second - 1], proof)


def _inclusion_probes(index: int, size: int, proof: list[bytes], top: bytes) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """Every corruption of a good inclusion proof, as (description, verify_inclusion arguments)."""
    leaf = HASHES[index]
    yield "index - 1", (leaf, index - 1, size, proof, top)
    yield "index + 1", (leaf, index + 1, size, proof, top)
    yield "index ^ 2", (leaf, index ^ 2, size, proof, top)
    yield "size * 2", (leaf, index, size * 2, proof, top)
    yield "size // 2", (leaf, index, size // 2, proof, top)
    yield "wrong leaf", (leaf_hash(b"WrongLeaf"), index, size, proof, top)
    yield "short leaf", (b"WrongLeaf", index, size, proof, top)
    yield "empty root", (leaf, index, size, proof, EMPTY_ROOT)
    yield "random root", (leaf, index, size, proof, SOME_HASH)
    yield "short root", (leaf, index, size, proof, top[:-1])
    yield "trailing garbage", (leaf, index, size, [*proof, b""], top)
    yield "trailing root", (leaf, index, size, [*proof, top], top)
    yield "preceding garbage", (leaf, index, size, [b"", *proof], top)
    yield "preceding root", (leaf, index, size, [top, *proof], top)
    for i in range(len(proof)):
        yield f"proof[{i}] bit flipped", (leaf, index, size, _flip(proof, i), top)
        yield f"proof[{i}] truncated", (leaf, index, size, [*proof[:i], proof[i][:-1], *proof[i + 1 :]], top)
    if proof:
        yield "removed component", (leaf, index, size, proof[:-1], top)
        yield "inserted component", (leaf, index, size, [proof[0], SOME_HASH, *proof[1:]], top)


def _every_inclusion() -> list[tuple[int, int]]:
    return [(i, n) for n in range(1, 9) for i in range(n)]


@pytest.mark.parametrize(("index", "size"), _every_inclusion())
def test_every_corrupted_inclusion_proof_is_rejected(index: int, size: int) -> None:
    proof = inclusion_proof(index, size, HASHES)
    top = ROOTS[size - 1]
    assert verify_inclusion(HASHES[index], index, size, proof, top)
    accepted = [desc for desc, args in _inclusion_probes(index, size, proof, top) if verify_inclusion(*args)]
    assert accepted == []


def _consistency_probes(
    first: int, second: int, proof: list[bytes], root1: bytes, root2: bytes
) -> Iterator[tuple[str, tuple[Any, ...]]]:
    yield "first - 1", (first - 1, second, root1, root2, proof)
    yield "first + 1", (first + 1, second, root1, root2, proof)
    yield "first ^ 2", (first ^ 2, second, root1, root2, proof)
    yield "second * 2", (first, second * 2, root1, root2, proof)
    yield "second // 2", (first, second // 2, root1, root2, proof)
    yield "wrong root1", (first, second, SOME_HASH, root2, proof)
    yield "wrong root2", (first, second, root1, SOME_HASH, proof)
    yield "short root1", (first, second, b"WrongRoot", root2, proof)
    yield "swapped roots", (first, second, root2, root1, proof)
    yield "empty proof", (first, second, root1, root2, [])
    yield "trailing garbage", (first, second, root1, root2, [*proof, b""])
    yield "trailing root1", (first, second, root1, root2, [*proof, root1])
    yield "trailing root2", (first, second, root1, root2, [*proof, root2])
    yield "preceding garbage", (first, second, root1, root2, [b"", *proof])
    yield "preceding root1", (first, second, root1, root2, [root1, *proof])
    yield "preceding root2", (first, second, root1, root2, [root2, *proof])
    yield "preceding proof[0]", (first, second, root1, root2, [proof[0], *proof])
    yield "truncated proof", (first, second, root1, root2, proof[:-1])
    for i in range(len(proof)):
        yield f"proof[{i}] bit flipped", (first, second, root1, root2, _flip(proof, i))
        yield f"proof[{i}] truncated", (first, second, root1, root2, [*proof[:i], proof[i][:-1], *proof[i + 1 :]])


def _every_consistency() -> list[tuple[int, int]]:
    return [(m, n) for n in range(2, 9) for m in range(1, n)]


@pytest.mark.parametrize(("first", "second"), _every_consistency())
def test_every_corrupted_consistency_proof_is_rejected(first: int, second: int) -> None:
    proof = consistency_proof(first, second, HASHES)
    root1, root2 = ROOTS[first - 1], ROOTS[second - 1]
    assert verify_consistency(first, second, root1, root2, proof)
    accepted = [
        desc for desc, args in _consistency_probes(first, second, proof, root1, root2) if verify_consistency(*args)
    ]
    assert accepted == []


@pytest.mark.parametrize(
    ("first", "second", "root1", "root2", "proof", "ok"),
    [
        (0, 0, EMPTY_ROOT, EMPTY_ROOT, [], True),
        (0, 5, EMPTY_ROOT, ROOTS[4], [], True),
        (0, 5, ROOTS[0], ROOTS[4], [], False),  # size 0 has the empty root, nothing else
        (0, 5, EMPTY_ROOT, ROOTS[4], [EMPTY_ROOT], False),
        (3, 3, ROOTS[2], ROOTS[2], [], True),
        (3, 3, ROOTS[2], ROOTS[3], [], False),
        (3, 3, ROOTS[2], ROOTS[2], [ROOTS[2]], False),
        (4, 3, ROOTS[3], ROOTS[2], [], False),  # time travel
        (-1, 3, ROOTS[0], ROOTS[2], [], False),
    ],
)
def test_consistency_edge_cases(
    first: int, second: int, root1: bytes, root2: bytes, proof: list[bytes], ok: bool
) -> None:
    assert verify_consistency(first, second, root1, root2, proof) is ok


@pytest.mark.parametrize(("index", "size"), [(0, 0), (1, 1), (8, 8), (-1, 8), (3, -1), (2**64, 8)])
def test_inclusion_out_of_range_is_rejected_not_raised(index: int, size: int) -> None:
    assert verify_inclusion(HASHES[0], index, size, [], ROOTS[0]) is False
    with pytest.raises(ProofError):
        inclusion_proof(index, size, HASHES)


def test_inclusion_of_a_single_leaf_tree() -> None:
    assert verify_inclusion(HASHES[3], 0, 1, [], HASHES[3])
    assert not verify_inclusion(HASHES[3], 0, 1, [], HASHES[2])
    assert not verify_inclusion(b"", 0, 1, [], b"")


def test_proof_generators_refuse_impossible_requests() -> None:
    with pytest.raises(ProofError):
        consistency_proof(5, 4, HASHES)
    with pytest.raises(ProofError):
        inclusion_proof(3, 9, HASHES)  # only 8 leaf hashes were given


def test_proofs_from_a_subtree_getter_match_proofs_from_leaves() -> None:
    calls: list[tuple[int, int]] = []

    def subtree(lo: int, hi: int) -> bytes:
        calls.append((lo, hi))
        return root(HASHES[lo:hi])

    assert inclusion_proof(6, 7, subtree) == inclusion_proof(6, 7, HASHES)
    assert consistency_proof(3, 7, subtree) == consistency_proof(3, 7, HASHES)
    assert all(0 <= lo < hi <= 7 for lo, hi in calls)


def test_compact_range_rejects_unaligned_subtrees_and_bad_peaks() -> None:
    frontier = CompactRange()
    frontier.append(HASHES[0])
    with pytest.raises(ValueError, match="cannot start"):
        frontier.append_subtree(ROOTS[1], 1)
    with pytest.raises(ValueError, match="peaks"):
        CompactRange(3, [HASHES[0]])


def test_compact_range_from_whole_subtrees_equals_leaf_by_leaf() -> None:
    frontier = CompactRange()
    frontier.append_subtree(ROOTS[3], 2)  # leaves 0..3
    frontier.append_subtree(root(HASHES[4:6]), 1)
    frontier.append(HASHES[6])
    assert frontier.size == 7
    assert frontier.root() == ROOTS[6]
    assert frontier.copy().peaks == frontier.peaks


def _hashes(n: int) -> list[bytes]:
    return [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(n)]


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(st.integers(min_value=1, max_value=300), st.data())
def test_every_inclusion_proof_verifies(size: int, data: st.DataObject) -> None:
    hashes = _hashes(size)
    top = root(hashes)
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    proof = inclusion_proof(index, size, hashes)
    assert verify_inclusion(hashes[index], index, size, proof, top)
    assert not verify_inclusion(leaf_hash(b"not a leaf"), index, size, proof, top)
    assert not verify_inclusion(hashes[index], index, size * 2, proof, top)


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(st.integers(min_value=1, max_value=300), st.data())
def test_every_consistency_proof_verifies(second: int, data: st.DataObject) -> None:
    hashes = _hashes(second)
    first = data.draw(st.integers(min_value=0, max_value=second))
    proof = consistency_proof(first, second, hashes)
    assert verify_consistency(first, second, root(hashes[:first]), root(hashes), proof)
    if 0 < first < second:
        assert not verify_consistency(first, second, root(hashes[: first - 1]), root(hashes), proof)


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(st.lists(st.integers(min_value=0, max_value=40), max_size=12))
def test_compact_range_root_equals_full_recomputation(chunks: list[int]) -> None:
    hashes = _hashes(sum(chunks))
    frontier = CompactRange()
    at = 0
    for chunk in chunks:
        frontier.extend(hashes[at : at + chunk])
        at += chunk
        assert frontier.size == at
        assert frontier.root() == root(hashes[:at])
