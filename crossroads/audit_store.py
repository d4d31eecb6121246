"""The audit log's file and its tree: what the writer, the reads and the verifier share.

Storage: STATE/audit.sqlite (SQLite, WAL, synchronous=FULL) with the tables
  leaves(idx, leaf, hash)      the exact leaf bytes and their leaf hash
  access, access_recent        who-accessed index, by NISS (crossroads.access_index)
  tiles(idx, hash)             root of each full tile of 256 leaves: proofs and reopening
                               cost O(n / 256) hashes instead of O(n)
  checkpoints(size, text)      signed checkpoints (at most one per checkpoint interval, and on close)
  meta(key, value)             the log's origin
and the journal's tables (crossroads.journal), and its Ed25519 key in STATE/keys/ (see
crossroads.checkpoint).

`TreeState` is the committed tree held in memory (size, tile roots, the partial last tile,
root, latest checkpoints): the writer thread is the only one to change it, the reads take
snapshots of it under its lock. `restore_tree` rebuilds it from the file on opening.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from crossroads.checkpoint import sign_checkpoint
from crossroads.merkle import EMPTY_ROOT, CompactRange, RootHash, root

__all__ = [
    "AUDIT_DB",
    "DEFAULT_ORIGIN",
    "KEYS_DIR",
    "SCHEMA",
    "TILE",
    "TILE_HEIGHT",
    "AuditIndexError",
    "AuditLogError",
    "LogSigner",
    "TreeState",
    "advance",
    "connect",
    "joined_root",
    "read_hashes",
    "restore_tree",
    "root_of",
    "transaction",
]

DEFAULT_ORIGIN = "crossroads.testbed/audit"
AUDIT_DB = "audit.sqlite"
KEYS_DIR = "keys"
TILE_HEIGHT = 8
TILE = 1 << TILE_HEIGHT

SCHEMA = """
CREATE TABLE IF NOT EXISTS leaves(idx INTEGER PRIMARY KEY, leaf BLOB NOT NULL, hash BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS tiles(idx INTEGER PRIMARY KEY, hash BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints(size INTEGER PRIMARY KEY, text TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_NO_CHECKPOINT = (-1, "")


class AuditLogError(RuntimeError):
    """The audit store is missing, damaged, closed, or read-only."""


class AuditIndexError(ValueError):
    """An index or tree size outside the log."""


def connect(path: Path, *, read_only: bool) -> sqlite3.Connection:
    """A connection to the store at `path`: read-only, or the writer's (WAL, every commit fsynced)."""
    if read_only:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
    else:
        # room for the statements of every batch size (crossroads.sqlite_rows), so none is prepared twice
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, cached_statements=512)
        # 8 KiB pages cost ~10% less CPU per appended record than 4 KiB; only takes effect on a
        # new file, before WAL mode is set
        conn.execute("PRAGMA page_size=8192")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")  # every commit is fsynced: durable when acknowledged
        # the who-accessed index's merges touch the pages of its latest parts: keep them cached
        # (16 MiB: the same CPU per record as 64 MiB in 400k-append runs, and a long-running core
        # reaches its plateau within a minute instead of growing for three); and fold the WAL back
        # into the database every ~40 MB rather than every 4 MB (fewer, larger checkpoints)
        conn.execute("PRAGMA cache_size=-16384")
        conn.execute("PRAGMA wal_autocheckpoint=10000")
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection, gate: threading.Lock | None = None) -> Iterator[sqlite3.Connection]:
    """One write transaction, taken at once (IMMEDIATE), committed or rolled back; inside the
    file's `gate` when given (crossroads/write_gate.py: the process's writers of one file queue)."""
    with gate if gate is not None else contextlib.nullcontext():
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


def read_hashes(conn: sqlite3.Connection, lo: int, hi: int) -> list[bytes]:
    """The stored leaf hashes of [lo, hi); AuditLogError if any is missing."""
    rows = conn.execute("SELECT hash FROM leaves WHERE idx >= ? AND idx < ? ORDER BY idx", (lo, hi)).fetchall()
    if len(rows) != hi - lo:
        raise AuditLogError(f"audit store is missing leaves in [{lo}, {hi})")
    return [h for (h,) in rows]


# ---------------------------------------------------------------------- tile arithmetic
def root_of(tile_range: CompactRange, tail: Sequence[bytes]) -> RootHash:
    """The root of the tree made of the full tiles in `tile_range` followed by the `tail` leaf hashes."""
    frontier = tile_range.copy()
    frontier.extend(tail)
    return frontier.root()


def _range_of(hashes: Sequence[bytes]) -> CompactRange:
    """The compact range of the leaf `hashes` (a tree starting at leaf 0): one `root` per peak."""
    peaks, start = [], 0
    for height in reversed(range(len(hashes).bit_length())):
        if len(hashes) >> height & 1:
            peaks.append(root(hashes[start : start + (1 << height)]))
            start += 1 << height
    return CompactRange(len(hashes), peaks)


def advance(tail: CompactRange, hashes: Sequence[bytes]) -> tuple[list[bytes], CompactRange]:
    """Append leaf `hashes` after the partial tile `tail`: the roots of the tiles they complete, and the new tail.

    About one node hash per leaf, whatever the batch: the tail is never re-hashed per commit
    (re-hashing it, ~128 hashes on average, was most of a small commit's Python time).
    """
    tail = tail.copy()
    head, rest = (hashes[: TILE - tail.size], hashes[TILE - tail.size :]) if tail.size else ((), hashes)
    tail.extend(head)
    tiles = []
    if tail.size == TILE:  # a tile's leaves form one perfect subtree: its root is the only peak
        tiles.append(tail.peaks[0])
        tail = CompactRange()
    full = len(rest) - len(rest) % TILE
    tiles.extend(root(rest[k : k + TILE]) for k in range(0, full, TILE))
    if full < len(rest):  # only when the old tail was completed (or empty): `tail` is empty here
        tail = _range_of(rest[full:])
    return tiles, tail


def joined_root(tile_range: CompactRange, tail: CompactRange) -> RootHash:
    """The root of the full tiles of `tile_range` followed by the partial tile `tail`: O(log n) hashes."""
    return CompactRange(tile_range.size + tail.size, tile_range.peaks + tail.peaks).root()


# ---------------------------------------------------------------------- the committed tree
@dataclass(slots=True)
class TreeState:
    """The committed tree: changed by the writer thread only, read by anyone under `lock`.

    `tiles` are the roots of the full tiles, `tile_range` their compact range, `tail` the
    leaves after the last full tile; `stored` is the latest checkpoint in the store and
    `latest` the latest signed (stored or not), each as (size, signed note), size -1 for none.
    """

    size: int = 0
    tiles: list[bytes] = field(default_factory=list)
    tile_range: CompactRange = field(default_factory=CompactRange)
    tail: CompactRange = field(default_factory=CompactRange)
    root: RootHash = EMPTY_ROOT
    stored: tuple[int, str] = _NO_CHECKPOINT
    latest: tuple[int, str] = _NO_CHECKPOINT
    lock: threading.Lock = field(default_factory=threading.Lock)


def restore_tree(conn: sqlite3.Connection, *, repair: bool) -> TreeState:
    """The committed tree of the store behind `conn`, from its stored tile and leaf hashes.

    Tiles completed by leaves but not stored (a crash between the two cannot happen, but an
    older store may lack them) are computed, and stored when `repair`. AuditLogError when the
    store holds more tiles than leaves, or misses leaves.
    """
    (size,) = conn.execute("SELECT COALESCE(MAX(idx) + 1, 0) FROM leaves").fetchone()
    tiles = [h for (h,) in conn.execute("SELECT hash FROM tiles ORDER BY idx")]
    if len(tiles) > size // TILE:
        raise AuditLogError(f"audit store has {len(tiles)} tiles for only {size} leaves")
    missing = [(k, root(read_hashes(conn, k * TILE, (k + 1) * TILE))) for k in range(len(tiles), size // TILE)]
    if missing and repair:
        with transaction(conn):
            conn.executemany("INSERT INTO tiles(idx, hash) VALUES (?, ?)", missing)
    tiles.extend(h for _, h in missing)
    tile_range = CompactRange()
    for tile in tiles:
        tile_range.append_subtree(tile, TILE_HEIGHT)
    tail = _range_of(read_hashes(conn, len(tiles) * TILE, size))
    row = conn.execute("SELECT size, text FROM checkpoints ORDER BY size DESC LIMIT 1").fetchone()
    stored = (row[0], row[1]) if row else _NO_CHECKPOINT
    return TreeState(size, tiles, tile_range, tail, joined_root(tile_range, tail), stored, stored)


@dataclass(frozen=True, slots=True)
class LogSigner:
    """Signs checkpoints of the log `origin` (under its origin as key name), if its key is at hand."""

    origin: str
    key: Ed25519PrivateKey | None
    path: Path  # the store, named in errors

    def sign(self, size: int, root_hash: bytes) -> str:
        """The signed note of the checkpoint (origin, size, root); AuditLogError without a key."""
        if self.key is None:
            raise AuditLogError(f"no signing key for {self.path}: cannot sign a checkpoint")
        return sign_checkpoint(self.origin, size, root_hash, self.key, self.origin)
