"""Reading the audit log: its signed head, leaves, inclusion and consistency proofs, who accessed whom.

`AuditReads` answers from the committed tree (crossroads.audit_store.TreeState) and one
read-only connection; what it hands out (a head, a leaf with its proof) is what a client
checks with crossroads.receipts. Proofs are computed from the stored tile roots where the
subtrees are aligned on tiles, from leaf hashes elsewhere: O(n / 256 + 256) hashes at most.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from sqlite3 import Connection

from crossroads import access_index
from crossroads.audit_store import TILE, AuditIndexError, AuditLogError, LogSigner, TreeState, connect, read_hashes
from crossroads.journal import StoredAnswer, read_answer, recent_answers
from crossroads.merkle import RootHash, SubtreeRoot, consistency_proof, inclusion_proof, root

__all__ = ["AccessEntry", "AuditHead", "AuditReads"]


@dataclass(frozen=True, slots=True)
class AuditHead:
    """The log's current size and root, and a checkpoint signed for exactly that size."""

    size: int
    root: bytes
    checkpoint: str


@dataclass(frozen=True, slots=True)
class AccessEntry:
    """One exchange about a person: its leaf bytes and their inclusion proof in the tree of `tree_size`."""

    index: int
    leaf: bytes
    tree_size: int
    proof: list[bytes]


class AuditReads:
    """The reads of one audit log. Thread-safe; they see only committed records."""

    def __init__(self, path: Path, reader: Connection, tree: TreeState, signer: LogSigner) -> None:
        self._path = path
        self._reader = reader
        self._read_lock = threading.Lock()
        self._tree = tree
        self._signer = signer

    @property
    def origin(self) -> str:
        return self._signer.origin

    @property
    def size(self) -> int:
        """The number of committed records."""
        with self._tree.lock:
            return self._tree.size

    def head(self) -> AuditHead:
        """The committed size, its root, and a checkpoint signed for exactly that size.

        When the latest stored checkpoint is older than the committed size, a checkpoint is
        signed for the current size on the spot (the writer stores one within its checkpoint
        interval, or on close). AuditLogError when that is needed and no signing key is at hand.
        """
        tree = self._tree
        with tree.lock:
            size, root_hash, latest = tree.size, tree.root, tree.latest
        if latest[0] != size:
            latest = (size, self._signer.sign(size, root_hash))
            with tree.lock:
                if tree.latest[0] < size:
                    tree.latest = latest
        return AuditHead(size, bytes(root_hash), latest[1])

    def _read(self, lo: int, hi: int) -> list[bytes]:
        with self._read_lock:
            return read_hashes(self._reader, lo, hi)

    def _subtree(self, tiles: Sequence[bytes]) -> SubtreeRoot:
        """The hash of leaves [lo, hi) from full tiles where aligned, else from leaf hashes."""

        def subtree(lo: int, hi: int) -> bytes:
            if lo % TILE or hi - lo < TILE:
                return root(self._read(lo, hi))
            nodes = list(tiles[lo // TILE : hi // TILE])
            if hi % TILE:
                nodes.append(root(self._read(hi - hi % TILE, hi)))
            # level reduction over tile roots and the partial last tile is the RFC 6962 tree
            return root(nodes)

        return subtree

    def _resolve_size(self, size: int | None) -> tuple[int, list[bytes]]:
        with self._tree.lock:
            current, tiles = self._tree.size, self._tree.tiles[:]
        if size is None:
            return current, tiles
        if not 0 <= size <= current:
            raise AuditIndexError(f"tree size {size} is outside the log of {current} records")
        return size, tiles

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """The RFC 6962 audit path of leaf `index` in the tree of `size` (default: current size).

        AuditIndexError unless 0 <= index < size <= current size.
        """
        tree_size, tiles = self._resolve_size(size)
        if not 0 <= index < tree_size:
            raise AuditIndexError(f"index {index} is outside the tree of size {tree_size}")
        return inclusion_proof(index, tree_size, self._subtree(tiles))

    def consistency_proof(self, first: int, second: int | None = None) -> list[bytes]:
        """The RFC 6962 consistency proof from tree size `first` to `second` (default: current size).

        AuditIndexError unless 0 <= first <= second <= current size.
        """
        tree_size, tiles = self._resolve_size(second)
        if not 0 <= first <= tree_size:
            raise AuditIndexError(f"size {first} is not between 0 and {tree_size}")
        return consistency_proof(first, tree_size, self._subtree(tiles))

    def root_at(self, size: int) -> RootHash:
        """The root of the tree of the first `size` records (AuditIndexError outside the log)."""
        tree_size, tiles = self._resolve_size(size)
        return RootHash(self._subtree(tiles)(0, tree_size)) if tree_size else root(())

    def leaf(self, index: int) -> bytes:
        """The exact leaf bytes of record `index` (AuditIndexError outside the log)."""
        size = self.size
        if not 0 <= index < size:
            raise AuditIndexError(f"index {index} is outside the log of {size} records")
        with self._read_lock:
            row = self._reader.execute("SELECT leaf FROM leaves WHERE idx = ?", (index,)).fetchone()
        if row is None:
            raise AuditLogError(f"audit store is missing leaf {index}")
        return bytes(row[0])

    def indices_about(self, niss: str) -> list[int]:
        """The indices of every committed record about person `niss` (subject or related), ascending."""
        size = self.size
        with self._read_lock:
            return access_index.indices_about(self._reader, niss, size)

    def who_accessed(self, niss: str) -> tuple[AuditHead, list[AccessEntry]]:
        """The head, and every exchange about `niss` with its inclusion proof against that head."""
        head = self.head()
        entries = [
            AccessEntry(i, self.leaf(i), head.size, self.inclusion_proof(i, head.size))
            for i in self.indices_about(niss)
            if i < head.size
        ]
        return head, entries

    def answer_at(self, index: int) -> StoredAnswer | None:
        """The answer committed with record `index`, while it is kept (crossroads.journal.ANSWER_WINDOW)."""
        with self._read_lock:
            return read_answer(self._reader, index)

    def recent_answers(self, limit: int) -> list[tuple[int, str, str]]:
        """(index, sender, message_id) of the latest `limit` answers committed, oldest first."""
        with self._read_lock:
            return recent_answers(self._reader, limit)

    def iter_leaves(self, start: int = 0) -> Iterator[tuple[int, bytes]]:
        """Every committed (index, leaf bytes) from `start` on, in order, read on its own connection."""
        size = self.size
        conn = connect(self._path, read_only=True)
        try:
            rows = conn.execute("SELECT idx, leaf FROM leaves WHERE idx >= ? AND idx < ? ORDER BY idx", (start, size))
            for idx, leaf in rows:
                yield idx, bytes(leaf)
        finally:
            conn.close()
