"""Verifying a whole audit store from its leaves: `verify_store`, as `crossroads audit verify` runs it.

One streaming pass over the stored leaves (tile-sized chunks, O(log n) memory): every leaf
hash recomputed, every tile root, the root at every stored checkpoint's size, each
checkpoint's signature (crossroads.receipts.open_head, with STATE/keys/audit.pub), and the
latest checkpoint covering every leaf; optionally the who-accessed index against the records.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from crossroads import access_index
from crossroads.audit_record import AuditRecord, AuditRecordError
from crossroads.audit_store import AUDIT_DB, KEYS_DIR, TILE, TILE_HEIGHT, connect, root_of
from crossroads.checkpoint import CheckpointError, load_public_key
from crossroads.merkle import CompactRange, leaf_hashes, root
from crossroads.receipts import open_head

__all__ = ["VerifyResult", "verify_store"]


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The outcome of `verify_store`. `first_bad_index` is None when ok (see `verify_store`)."""

    ok: bool
    size: int
    first_bad_index: int | None
    message: str


def verify_store(state_dir: Path, *, check_index: bool = False) -> VerifyResult:
    """Check the whole audit store of `state_dir` in one streaming pass.

    Recomputes every leaf hash from the leaf bytes, every tile root, the root at every stored
    checkpoint's size (each checkpoint's signature is checked with STATE/keys/audit.pub), and
    requires the latest checkpoint to cover every leaf. With `check_index`, also decodes
    every record and checks that the who-accessed index holds exactly its persons (no row
    removed, added or moved; about 3 us more per record). `ok` is True only if all of it holds.
    On failure `first_bad_index` is the first leaf that fails its own hash, or, when the
    hashes hold but a checkpoint or tile does not, the first index not vouched for by an
    earlier good checkpoint (something at or after it was changed); `message` says what
    failed. Reads only (one snapshot), never needs the private key. On a log still being
    written, the records of the last checkpoint interval may not be covered yet: verify a
    stopped log, or expect that.
    """
    path = state_dir / AUDIT_DB
    if not path.exists():
        return VerifyResult(False, 0, None, f"no audit log in {state_dir} (expected {path})")
    try:
        public_key = load_public_key(state_dir / KEYS_DIR)
    except CheckpointError as exc:
        return VerifyResult(False, 0, None, str(exc))
    conn = connect(path, read_only=True)
    try:
        conn.execute("BEGIN")  # one read snapshot for leaves, tiles and checkpoints alike
        return _Verifier(conn, public_key, check_index=check_index).run()
    except sqlite3.DatabaseError as exc:
        return VerifyResult(False, 0, None, f"audit store unreadable: {exc}")
    finally:
        conn.close()


class _Verifier:
    """One streaming pass over the store: leaves in tile-sized chunks, checkpoints in size order."""

    def __init__(self, conn: sqlite3.Connection, public_key: Ed25519PublicKey, *, check_index: bool) -> None:
        self.conn = conn
        self.public_key = public_key
        self.index = _IndexDigest() if check_index else None
        row = conn.execute("SELECT value FROM meta WHERE key = 'origin'").fetchone()
        self.origin: str = row[0] if row else ""
        self.checkpoints: list[tuple[int, str]] = conn.execute(
            "SELECT size, text FROM checkpoints ORDER BY size"
        ).fetchall()
        self.tiles: list[tuple[int, bytes]] = conn.execute("SELECT idx, hash FROM tiles ORDER BY idx").fetchall()
        self.frontier = CompactRange()
        self.good = 0  # the size of the last checkpoint that verified

    def _checkpoint_problem(self, size: int, text: str, root_hash: bytes) -> str | None:
        try:
            open_head(text, self.public_key, origin=self.origin, size=size, root=root_hash)
        except CheckpointError as exc:
            return f"checkpoint at size {size}: {exc}"
        return None

    def _bad(self, index: int | None, size: int, message: str) -> VerifyResult:
        return VerifyResult(False, size, index, message)

    def run(self) -> VerifyResult:
        pending = deque(self.checkpoints)
        cursor = self.conn.execute("SELECT idx, leaf, hash FROM leaves ORDER BY idx")
        base = 0
        while True:
            rows = cursor.fetchmany(TILE)
            end = base + len(rows)
            if rows and (rows[0][0] != base or rows[-1][0] != end - 1):
                gap = base + next(j for j, row in enumerate(rows) if row[0] != base + j)
                return self._bad(gap, gap, f"leaf {gap} is missing: records were removed")
            computed = leaf_hashes([leaf for _, leaf, _ in rows])
            if computed != [h for _, _, h in rows]:
                bad = next(j for j, (row, h) in enumerate(zip(rows, computed, strict=True)) if row[2] != h)
                return self._bad(base + bad, base + bad, f"leaf {base + bad} does not match its stored hash")
            undecodable = self.index.add_leaves(rows) if self.index else None
            if undecodable is not None:
                return self._bad(undecodable, undecodable, f"leaf {undecodable} is not an audit record")
            while pending and pending[0][0] <= end:
                size, text = pending.popleft()
                problem = self._checkpoint_problem(size, text, root_of(self.frontier, computed[: size - base]))
                if problem:
                    return self._bad(self.good, end, problem)
                self.good = size
            if len(rows) < TILE:
                break
            problem = self._add_tile(base, computed)
            if problem:
                return self._bad(self.good, end, problem)
            base = end
        return self._finish(end, pending)

    def _add_tile(self, base: int, computed: Sequence[bytes]) -> str | None:
        tile = root(computed)
        k = base // TILE
        if k >= len(self.tiles) or self.tiles[k] != (k, tile):
            return f"stored tile {k} (leaves [{base}, {base + TILE})) is missing or wrong"
        self.frontier.append_subtree(tile, TILE_HEIGHT)
        return None

    def _finish(self, size: int, pending: deque[tuple[int, str]]) -> VerifyResult:
        if pending:
            return self._bad(size, size, f"checkpoint at size {pending[0][0]} is beyond the {size} stored leaves")
        if len(self.tiles) != size // TILE:
            return self._bad(self.good, size, f"{len(self.tiles)} tiles stored for {size} leaves")
        if not self.checkpoints or self.checkpoints[-1][0] != size:
            return self._bad(self.good, size, f"leaves from {self.good} on are not covered by a signed checkpoint")
        if self.index and not self.index.matches(self.conn):
            return self._bad(None, size, "the who-accessed index (access tables) does not match the records")
        return VerifyResult(True, size, None, f"{size} leaves and {len(self.checkpoints)} checkpoints verified")


class _IndexDigest:
    """An order-free digest of the (niss, index) pairs the records name, to compare with the who-accessed index.

    The sum of a 128-bit hash of each pair, and their count: removing, adding or moving a row
    changes it (but for a 2**-128 chance), in O(1) memory however large the log.
    """

    def __init__(self) -> None:
        self.expected = (0, 0)

    @staticmethod
    def _pair(niss: str, index: int) -> int:
        return int.from_bytes(hashlib.sha256(f"{niss}\n{index}".encode()).digest()[:16], "big")

    def add_leaves(self, rows: Sequence[tuple[int, bytes, bytes]]) -> int | None:
        """Add the persons of these (index, leaf, hash) rows; the index of an undecodable leaf, else None."""
        total, count = self.expected
        for index, leaf, _ in rows:
            try:
                persons = AuditRecord.from_leaf(leaf).persons()
            except AuditRecordError:
                return int(index)
            for niss in persons:
                total += self._pair(niss, index)
            count += len(persons)
        self.expected = (total % (1 << 128), count)
        return None

    def matches(self, conn: sqlite3.Connection) -> bool:
        total, count = 0, 0
        for niss, index in access_index.pairs(conn):
            total += self._pair(niss, index)
            count += 1
        return (total % (1 << 128), count) == self.expected
