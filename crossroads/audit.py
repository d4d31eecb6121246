"""The audit log of the crossroads: durable, append-only, tamper-evident (RFC 6962 Merkle tree).

Every exchange the core handles becomes one `AuditRecord`; its canonical bytes are a leaf of
an RFC 6962 tree whose root is signed in C2SP checkpoints. Anyone holding a checkpoint can
ask for an inclusion proof (this exchange is in the log) or a consistency proof (the log only
grew), and `verify_store` re-derives everything from the stored leaves.

Storage: STATE/audit.sqlite (SQLite, WAL, synchronous=FULL) with the tables
  leaves(idx, leaf, hash)      the exact leaf bytes and their leaf hash
  access, access_recent        who-accessed index, by NISS (crossroads.access_index)
  tiles(idx, hash)             root of each full tile of 256 leaves: proofs and reopening
                               cost O(n / 256) hashes instead of O(n)
  checkpoints(size, text)      signed checkpoints (at most one per 0.2 s, and on close)
  meta(key, value)             the log's origin
and its Ed25519 key in STATE/keys/ (see crossroads.checkpoint).

One writer thread owns the write connection and commits whatever appends are waiting as one
transaction (group commit): concurrent callers share one fsync.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import hashlib
import resource
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from crossroads import access_index
from crossroads.audit_record import AuditRecord, AuditRecordError
from crossroads.checkpoint import (
    PRIVATE_KEY_FILE,
    CheckpointError,
    load_or_create_private_key,
    load_public_key,
    sign_checkpoint,
    verify_checkpoint,
)
from crossroads.journal import SCHEMA as JOURNAL_SCHEMA
from crossroads.journal import JournalEntry, StoredAnswer, read_answer, recent_answers, write_entries
from crossroads.merkle import (
    CompactRange,
    RootHash,
    SubtreeRoot,
    consistency_proof,
    inclusion_proof,
    leaf_hashes,
    root,
)
from crossroads.sqlite_rows import blob, insert_rows

__all__ = [
    "AUDIT_DB",
    "DEFAULT_CHECKPOINT_INTERVAL",
    "DEFAULT_COMMIT_LINGER",
    "DEFAULT_ORIGIN",
    "KEYS_DIR",
    "TILE_HEIGHT",
    "AccessEntry",
    "AuditHead",
    "AuditIndexError",
    "AuditLog",
    "AuditLogError",
    "VerifyResult",
    "verify_store",
]

DEFAULT_ORIGIN = "crossroads.testbed/audit"
DEFAULT_CHECKPOINT_INTERVAL = 0.2  # seconds between stored checkpoints under load
# Under concurrent load the writer lets appends gather for up to this long before it commits,
# so that one commit carries many records: a commit costs ~125 us of CPU plus ~10 us per record
# (fsync, and a WAL frame per dirtied page), and at a few thousand appends/s without a linger
# nearly every record paid for a commit of its own. See `AuditLog._linger_for`.
DEFAULT_COMMIT_LINGER = 0.008
_LINGER_STEPS = 4  # the linger goes on step by step, only while each step brought new appends
_CONCURRENT_WINDOW = 0.25  # seconds an append that came during a commit counts as "load"
_LINGER_RECORDS = 256  # a batch at least this big is committed at once
AUDIT_DB = "audit.sqlite"
KEYS_DIR = "keys"
TILE_HEIGHT = 8
_TILE = 1 << TILE_HEIGHT

_SCHEMA = """
CREATE TABLE IF NOT EXISTS leaves(idx INTEGER PRIMARY KEY, leaf BLOB NOT NULL, hash BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS tiles(idx INTEGER PRIMARY KEY, hash BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints(size INTEGER PRIMARY KEY, text TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_Waiter = asyncio.Future[int] | concurrent.futures.Future[int]
_Job = tuple[Sequence[AuditRecord], _Waiter, JournalEntry | None]


class AuditLogError(RuntimeError):
    """The audit store is missing, damaged, closed, or read-only."""


class AuditIndexError(ValueError):
    """An index or tree size outside the log."""


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


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The outcome of `verify_store`. `first_bad_index` is None when ok (see `verify_store`)."""

    ok: bool
    size: int
    first_bad_index: int | None
    message: str


def _connect(path: Path, *, read_only: bool) -> sqlite3.Connection:
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
def _transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction, taken at once (IMMEDIATE), committed or rolled back."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _read_hashes(conn: sqlite3.Connection, lo: int, hi: int) -> list[bytes]:
    rows = conn.execute("SELECT hash FROM leaves WHERE idx >= ? AND idx < ? ORDER BY idx", (lo, hi)).fetchall()
    if len(rows) != hi - lo:
        raise AuditLogError(f"audit store is missing leaves in [{lo}, {hi})")
    return [h for (h,) in rows]


def _root_of(tile_range: CompactRange, tail: Sequence[bytes]) -> RootHash:
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


def _advance(tail: CompactRange, hashes: Sequence[bytes]) -> tuple[list[bytes], CompactRange]:
    """Append leaf `hashes` after the partial tile `tail`: the roots of the tiles they complete, and the new tail.

    About one node hash per leaf, whatever the batch: the tail is never re-hashed per commit
    (re-hashing it, ~128 hashes on average, was most of a small commit's Python time).
    """
    tail = tail.copy()
    head, rest = (hashes[: _TILE - tail.size], hashes[_TILE - tail.size :]) if tail.size else ((), hashes)
    tail.extend(head)
    tiles = []
    if tail.size == _TILE:  # a tile's leaves form one perfect subtree: its root is the only peak
        tiles.append(tail.peaks[0])
        tail = CompactRange()
    full = len(rest) - len(rest) % _TILE
    tiles.extend(root(rest[k : k + _TILE]) for k in range(0, full, _TILE))
    if full < len(rest):  # only when the old tail was completed (or empty): `tail` is empty here
        tail = _range_of(rest[full:])
    return tiles, tail


def _joined_root(tile_range: CompactRange, tail: CompactRange) -> RootHash:
    """The root of the full tiles of `tile_range` followed by the partial tile `tail`: O(log n) hashes."""
    return CompactRange(tile_range.size + tail.size, tile_range.peaks + tail.peaks).root()


def _full_store(path: Path, exc: Exception) -> Exception:
    """`exc`, or an AuditLogError that says so when it means the store at `path` could not grow.

    A disk without space comes as SQLITE_FULL; a file that may grow no further (EFBIG: the
    process's file size limit, RLIMIT_FSIZE) only as an I/O error (SQLITE_IOERR_WRITE), so the
    sizes of the store's files are compared with that limit.
    """
    name = getattr(exc, "sqlite_errorname", "")
    if name == "SQLITE_FULL":
        return AuditLogError(f"the audit store {path} is full: no space left on its disk ({exc})")
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if name.startswith("SQLITE_IOERR") and limit != resource.RLIM_INFINITY:
        files = (path, path.with_name(f"{path.name}-wal"), path.with_name(f"{path.name}-shm"))
        if any(f.exists() and f.stat().st_size >= limit for f in files):
            return AuditLogError(f"the audit store {path} is full: a file reached the {limit}-byte size limit ({exc})")
    return exc


class AuditLog:
    """The durable audit log in one state folder. Open with `AuditLog.open`; close when done.

    Thread-safe: appends may come from any thread or event loop; reads (head, proofs, leaves)
    from any thread, and see only committed records.
    """

    def __init__(
        self,
        path: Path,
        conn: sqlite3.Connection,
        origin: str,
        key: Ed25519PrivateKey | None,
        *,
        read_only: bool,
        checkpoint_interval: float,
        commit_linger: float = DEFAULT_COMMIT_LINGER,
    ) -> None:
        """Use `AuditLog.open`."""
        self._path = path
        self._conn = conn  # the writer's connection (the only one in read-only mode)
        self._reader = conn if read_only else _connect(path, read_only=True)
        self._read_lock = threading.Lock()
        self._origin = origin
        self._key = key
        self._read_only = read_only
        self._access_waiting = 0  # rows in access_recent (crossroads.access_index); writer thread only
        self._interval = checkpoint_interval
        self._linger = commit_linger
        self._committing = False  # the writer is inside a commit (read by _submit)
        self._overlapped = False  # an append was submitted during the current commit
        self._overlapped_at = -_CONCURRENT_WINDOW  # when a commit last saw one (monotonic)
        self._queued_records = 0
        self._state_lock = threading.Lock()
        self._queue_lock = threading.Lock()  # taken directly on the append path: Condition's __enter__ is Python
        self._cond = threading.Condition(self._queue_lock)
        self._queue: list[_Job] = []
        self._writer_waiting = False  # notify only then: Condition.notify is costly per append
        self._closing = False
        self._closed = False
        self._writer: threading.Thread | None = None
        self._writer_error: Exception | None = None
        self._size = 0
        self._tiles: list[bytes] = []
        self._tail = CompactRange()  # the leaves after the last full tile
        self._tile_range = CompactRange()
        self._root = _joined_root(self._tile_range, self._tail)
        self._stored: tuple[int, str] = (-1, "")  # latest checkpoint in the store
        self._latest: tuple[int, str] = (-1, "")  # latest checkpoint signed (stored or not)
        self._stored_at = time.monotonic()

    # ------------------------------------------------------------------ opening and closing
    @classmethod
    def open(
        cls,
        state_dir: Path,
        *,
        origin: str = DEFAULT_ORIGIN,
        read_only: bool = False,
        checkpoint_interval: float = DEFAULT_CHECKPOINT_INTERVAL,
        commit_linger: float = DEFAULT_COMMIT_LINGER,
    ) -> AuditLog:
        """The audit log of `state_dir`, created with its signing key when absent.

        On reopening, the tree is restored from the stored tile and leaf hashes, so the next
        append continues at the next index, and a checkpoint is signed for the stored size if
        the last run stopped before signing one. `read_only=True` opens an existing log for
        reading only (AuditLogError if there is none) and uses the origin stored in it; a
        writable open with another `origin` than the stored one is an AuditLogError.
        `commit_linger` (seconds, 0 = never) bounds how long the writer lets appends gather
        under concurrent load before committing them (see `append`).
        """
        path = state_dir / AUDIT_DB
        if read_only:
            if not path.exists():
                raise AuditLogError(f"no audit log in {state_dir} (expected {path})")
            conn = _connect(path, read_only=True)
            if not access_index.is_current(conn):
                conn.close()
                raise AuditLogError(
                    f"{path} was written by an older version: open it once for writing (start the core on "
                    "it) to move its who-accessed index into the current tables"
                )
            stored = conn.execute("SELECT value FROM meta WHERE key = 'origin'").fetchone()
            origin = stored[0] if stored else origin
            key_path = state_dir / KEYS_DIR / PRIVATE_KEY_FILE
            key = load_or_create_private_key(state_dir / KEYS_DIR) if key_path.exists() else None
        else:
            state_dir.mkdir(parents=True, exist_ok=True)
            key = load_or_create_private_key(state_dir / KEYS_DIR)
            conn = _connect(path, read_only=False)
            conn.executescript(_SCHEMA + access_index.SCHEMA + JOURNAL_SCHEMA)
            with _transaction(conn):
                access_index.upgrade(conn)
            conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('origin', ?)", (origin,))
            (stored_origin,) = conn.execute("SELECT value FROM meta WHERE key = 'origin'").fetchone()
            if stored_origin != origin:
                conn.close()
                raise AuditLogError(f"{path} is the log {stored_origin!r}, not {origin!r}")
        log = cls(
            path,
            conn,
            origin,
            key,
            read_only=read_only,
            checkpoint_interval=checkpoint_interval,
            commit_linger=commit_linger,
        )
        try:
            log._restore()
        except BaseException:
            log._reader.close()
            conn.close()
            raise
        if not read_only:
            log._start_writer()
        return log

    def _restore(self) -> None:
        conn = self._conn
        (size,) = conn.execute("SELECT COALESCE(MAX(idx) + 1, 0) FROM leaves").fetchone()
        tiles = [h for (h,) in conn.execute("SELECT hash FROM tiles ORDER BY idx")]
        if len(tiles) > size // _TILE:
            raise AuditLogError(f"audit store has {len(tiles)} tiles for only {size} leaves")
        missing = [(k, root(_read_hashes(conn, k * _TILE, (k + 1) * _TILE))) for k in range(len(tiles), size // _TILE)]
        if missing and not self._read_only:
            with _transaction(conn):
                conn.executemany("INSERT INTO tiles(idx, hash) VALUES (?, ?)", missing)
        tiles.extend(h for _, h in missing)
        for tile in tiles:
            self._tile_range.append_subtree(tile, TILE_HEIGHT)
        self._size, self._tiles = size, tiles
        self._access_waiting = access_index.pending(conn)
        self._tail = _range_of(_read_hashes(conn, len(tiles) * _TILE, size))
        self._root = _joined_root(self._tile_range, self._tail)
        row = conn.execute("SELECT size, text FROM checkpoints ORDER BY size DESC LIMIT 1").fetchone()
        self._stored = self._latest = (row[0], row[1]) if row else (-1, "")
        if not self._read_only and self._stored[0] != size:
            self._store_checkpoint()

    def _start_writer(self) -> None:
        self._writer = threading.Thread(target=self._run_writer, name="audit-writer", daemon=True)
        self._writer.start()

    def close(self) -> None:
        """Commit every append already submitted, store a checkpoint for the final size, close.

        Idempotent. Appends submitted after close raise AuditLogError; so does close itself if
        the final checkpoint could not be stored (the records stay durable; reopening signs it).
        """
        with self._cond:
            if self._closed:
                return
            self._closing = self._closed = True
            self._cond.notify()
        if self._writer is not None:
            self._writer.join()
        with self._read_lock:
            if self._reader is not self._conn:
                self._reader.close()
            self._conn.close()
        if self._writer_error is not None and self._stored[0] != self._size:
            raise AuditLogError(f"the final checkpoint could not be stored: {self._writer_error}")

    async def aclose(self) -> None:
        """`close` without blocking the event loop (pending appends still resolve)."""
        await asyncio.to_thread(self.close)

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ------------------------------------------------------------------ appending
    async def append(self, record: AuditRecord, journal: JournalEntry | None = None) -> int:
        """Append `record`, and commit `journal` with it; return its leaf index once it is durable.

        Durability contract: when this returns, the record's leaf bytes, leaf hash and
        who-accessed rows are committed in SQLite with synchronous=FULL (the WAL is fsynced),
        so they survive a process crash or power loss; the index is final. Concurrent calls
        are batched into one transaction by the writer thread (group commit); under concurrent
        load it lets them gather for up to `commit_linger` seconds first, so that many share
        one fsync (a lone append on an idle log is not held). Indices follow submission order.
        A checkpoint covering the record is stored within about
        `checkpoint_interval` seconds, and at the latest by `close`; `head()` signs one for
        the current size at once. If the commit fails, every append in that batch raises
        and none of them gets an index. Cancelling the awaiting task does not withdraw the
        record: once submitted it is written. `journal` (the answer given and the parcels
        owed, see crossroads.journal) is committed in the same transaction as the record:
        both or neither.
        """
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._submit(((record,), future, journal))
        return await future

    async def append_many(self, records: Sequence[AuditRecord]) -> list[int]:
        """Append `records` in order; return their indices once all are durable.

        The contract of `append`, for a batch: the records get consecutive indices and are
        committed together (with whatever else is waiting). For producers that have many
        records at once: one future and one wake-up for the whole batch instead of one per
        record, which is most of what a concurrent `append` costs on the event loop.
        """
        if not records:
            return []
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._submit((tuple(records), future, None))
        first = await future
        return list(range(first, first + len(records)))

    def append_batch_sync(self, records: Sequence[AuditRecord]) -> list[int]:
        """Append `records` in order, blocking; return their indices once durable.

        The same durability contract as `append`; the records of one call get consecutive
        indices. Must not be called from the writer thread. Keep batches moderate (say
        <= 100,000): one call is one transaction held in memory.
        """
        if not records:
            return []
        future: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._submit((records, future, None))
        first = future.result()
        return list(range(first, first + len(records)))

    def _submit(self, job: _Job) -> None:
        with self._queue_lock:
            if self._closing or self._read_only:
                raise AuditLogError("the audit log is closed" if self._closing else "the audit log is read-only")
            self._queue.append(job)
            self._queued_records += len(job[0])
            self._overlapped |= self._committing
            if self._writer_waiting:
                self._cond.notify()

    # ------------------------------------------------------------------ the writer thread
    def _run_writer(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    wait = self._checkpoint_wait()
                    if wait is not None and wait <= 0:
                        break
                    self._writer_waiting = True
                    self._cond.wait(wait)
                    self._writer_waiting = False
            if self._queue and self._linger_for():
                self._gather()
            with self._cond:
                jobs, self._queue, self._queued_records = self._queue, [], 0
                closing = self._closing
                self._committing = bool(jobs)
            if jobs:
                self._commit(jobs)
                self._committing = False
                if self._overlapped:
                    self._overlapped, self._overlapped_at = False, time.monotonic()
            elif closing:
                break
            else:
                self._try_checkpoint()  # idle and the last batch has no checkpoint yet
        if self._stored[0] != self._size:
            self._try_checkpoint()

    def _linger_for(self) -> bool:
        """Whether to let appends gather before this commit: only under concurrent load.

        "Load" means that within the last `_CONCURRENT_WINDOW` an append arrived while a commit
        was in progress, i.e. appends come independently of the commits. A single caller
        appending one record after another, or callers that all wait on the same commit, never
        cause that, so they are never delayed.
        """
        if not self._linger or self._closing or self._queued_records >= _LINGER_RECORDS:
            return False
        return time.monotonic() - self._overlapped_at < _CONCURRENT_WINDOW

    def _gather(self) -> None:
        """Sleep (without the lock) in steps while appends keep arriving, up to the linger."""
        step, seen = self._linger / _LINGER_STEPS, len(self._queue)
        for _ in range(_LINGER_STEPS):
            time.sleep(step)
            count = len(self._queue)  # a racy read is fine: it only decides whether to wait on
            if count == seen or self._closing or self._queued_records >= _LINGER_RECORDS:
                return
            seen = count

    def _try_checkpoint(self) -> None:
        """Store a checkpoint; on failure keep the error for `close` and retry after the interval."""
        try:
            self._store_checkpoint()
        except Exception as exc:  # the writer thread must outlive a full disk: appends still wait on it
            self._writer_error = exc
            self._stored_at = time.monotonic()

    def _checkpoint_wait(self) -> float | None:
        """Seconds until the uncovered tail is due for a checkpoint; None when all is covered."""
        if self._stored[0] == self._size:
            return None
        return self._interval - (time.monotonic() - self._stored_at)

    def _commit(self, jobs: list[_Job]) -> None:
        records: list[AuditRecord] = []
        journal: list[tuple[int, JournalEntry]] = []  # (offset in this batch, entry)
        for job in jobs:
            if job[2] is not None:
                journal.append((len(records), job[2]))
            records.extend(job[0])
        try:
            first = self._write(records, journal)
        except Exception as exc:  # every waiter of the batch learns of the failure
            _settle(jobs, 0, _full_store(self._path, exc))
        else:
            _settle(jobs, first, None)

    def _write(self, records: list[AuditRecord], journal: Sequence[tuple[int, JournalEntry]] = ()) -> int:
        """Commit `records` (and `journal`, offsets relative to the first record) as one transaction.

        Returns the first index. Writer thread only.
        """
        first = self._size
        size = first + len(records)
        leaves = [r.leaf_bytes() for r in records]
        hashes = leaf_hashes(leaves)
        new_tiles, tail = _advance(self._tail, hashes)
        tile_range = self._tile_range.copy()
        for tile in new_tiles:
            tile_range.append_subtree(tile, TILE_HEIGHT)
        root_hash = _joined_root(tile_range, tail)
        due = time.monotonic() - self._stored_at >= self._interval
        text = sign_checkpoint(self._origin, size, root_hash, self._signing_key(), self._origin) if due else None
        persons = [v for i, r in enumerate(records, first) for n in r.persons() for v in (n, i)]
        base = len(self._tiles)
        with _transaction(self._conn) as conn:
            insert_rows(
                conn,
                "leaves(idx, leaf, hash)",
                3,
                list(chain.from_iterable(zip(range(first, size), map(blob, leaves), map(blob, hashes), strict=True))),
            )
            waiting = access_index.add(conn, persons, self._access_waiting)
            insert_rows(conn, "tiles(idx, hash)", 2, [v for k, t in enumerate(new_tiles, base) for v in (k, t)])
            if text is not None:
                conn.execute("INSERT OR REPLACE INTO checkpoints(size, text) VALUES (?, ?)", (size, text))
            if journal:
                accepted = dt.datetime.now(dt.UTC).isoformat()
                write_entries(conn, [(first + offset, entry) for offset, entry in journal], accepted)
        self._access_waiting = waiting  # committed: the count may move on
        with self._state_lock:
            self._size, self._tile_range, self._tail, self._root = size, tile_range, tail, root_hash
            self._tiles.extend(new_tiles)
            if text is not None:
                self._stored = self._latest = (size, text)
                self._stored_at = time.monotonic()
        return first

    def _store_checkpoint(self) -> None:
        """Sign and store a checkpoint for the current size (writer thread, or open)."""
        size, root_hash = self._size, self._root
        text = sign_checkpoint(self._origin, size, root_hash, self._signing_key(), self._origin)
        with _transaction(self._conn) as conn:
            conn.execute("INSERT OR REPLACE INTO checkpoints(size, text) VALUES (?, ?)", (size, text))
        with self._state_lock:
            self._stored = self._latest = (size, text)
            self._stored_at = time.monotonic()

    def _signing_key(self) -> Ed25519PrivateKey:
        if self._key is None:
            raise AuditLogError(f"no signing key for {self._path}: cannot sign a checkpoint")
        return self._key

    # ------------------------------------------------------------------ reading
    @property
    def origin(self) -> str:
        return self._origin

    @property
    def size(self) -> int:
        """The number of committed records."""
        with self._state_lock:
            return self._size

    def head(self) -> AuditHead:
        """The committed size, its root, and a checkpoint signed for exactly that size.

        When the latest stored checkpoint is older than the committed size, a checkpoint is
        signed for the current size on the spot (it is stored by the writer within
        `checkpoint_interval`, or on close).
        """
        with self._state_lock:
            size, root_hash, latest = self._size, self._root, self._latest
        if latest[0] != size:
            latest = (size, sign_checkpoint(self._origin, size, root_hash, self._signing_key(), self._origin))
            with self._state_lock:
                if self._latest[0] < size:
                    self._latest = latest
        return AuditHead(size, bytes(root_hash), latest[1])

    def _read(self, lo: int, hi: int) -> list[bytes]:
        with self._read_lock:
            return _read_hashes(self._reader, lo, hi)

    def _subtree(self, tiles: Sequence[bytes]) -> SubtreeRoot:
        """The hash of leaves [lo, hi) from full tiles where aligned, else from leaf hashes."""

        def subtree(lo: int, hi: int) -> bytes:
            if lo % _TILE or hi - lo < _TILE:
                return root(self._read(lo, hi))
            nodes = list(tiles[lo // _TILE : hi // _TILE])
            if hi % _TILE:
                nodes.append(root(self._read(hi - hi % _TILE, hi)))
            # level reduction over tile roots and the partial last tile is the RFC 6962 tree
            return root(nodes)

        return subtree

    def _resolve_size(self, size: int | None) -> tuple[int, list[bytes]]:
        with self._state_lock:
            current, tiles = self._size, self._tiles[:]
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
        conn = _connect(self._path, read_only=True)
        try:
            rows = conn.execute("SELECT idx, leaf FROM leaves WHERE idx >= ? AND idx < ? ORDER BY idx", (start, size))
            for idx, leaf in rows:
                yield idx, bytes(leaf)
        finally:
            conn.close()


def _settle(jobs: list[_Job], first: int, error: Exception | None) -> None:
    """Resolve each job's waiter with its first index (or the error), one callback per event loop."""
    per_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[int], int]]] = {}
    index = first
    for records, waiter, _ in jobs:
        if isinstance(waiter, asyncio.Future):
            per_loop.setdefault(waiter.get_loop(), []).append((waiter, index))
        elif error is None:
            waiter.set_result(index)
        else:
            waiter.set_exception(error)
        index += len(records)
    for loop, waiters in per_loop.items():
        # a closed loop raises RuntimeError: nobody is waiting there any more
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_resolve, waiters, error)


def _resolve(waiters: list[tuple[asyncio.Future[int], int]], error: Exception | None) -> None:
    for future, index in waiters:
        if future.done():  # cancelled by its caller; the record is written all the same
            continue
        if error is None:
            future.set_result(index)
        else:
            future.set_exception(error)


# ---------------------------------------------------------------------- verification
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
    written, the records of the last `checkpoint_interval` may not be covered yet: verify a
    stopped log, or expect that.
    """
    path = state_dir / AUDIT_DB
    if not path.exists():
        return VerifyResult(False, 0, None, f"no audit log in {state_dir} (expected {path})")
    try:
        public_key = load_public_key(state_dir / KEYS_DIR)
    except CheckpointError as exc:
        return VerifyResult(False, 0, None, str(exc))
    conn = _connect(path, read_only=True)
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
            checkpoint = verify_checkpoint(text, self.public_key, self.origin)
        except CheckpointError as exc:
            return f"checkpoint at size {size}: {exc}"
        if checkpoint.origin != self.origin or checkpoint.size != size:
            return f"checkpoint stored at size {size} is for {checkpoint.origin} size {checkpoint.size}"
        if checkpoint.root != root_hash:
            return f"checkpoint at size {size}: its root does not match the leaves [{self.good}, {size})"
        return None

    def _bad(self, index: int | None, size: int, message: str) -> VerifyResult:
        return VerifyResult(False, size, index, message)

    def run(self) -> VerifyResult:
        pending = deque(self.checkpoints)
        cursor = self.conn.execute("SELECT idx, leaf, hash FROM leaves ORDER BY idx")
        base = 0
        while True:
            rows = cursor.fetchmany(_TILE)
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
                problem = self._checkpoint_problem(size, text, _root_of(self.frontier, computed[: size - base]))
                if problem:
                    return self._bad(self.good, end, problem)
                self.good = size
            if len(rows) < _TILE:
                break
            problem = self._add_tile(base, computed)
            if problem:
                return self._bad(self.good, end, problem)
            base = end
        return self._finish(end, pending)

    def _add_tile(self, base: int, computed: Sequence[bytes]) -> str | None:
        tile = root(computed)
        k = base // _TILE
        if k >= len(self.tiles) or self.tiles[k] != (k, tile):
            return f"stored tile {k} (leaves [{base}, {base + _TILE})) is missing or wrong"
        self.frontier.append_subtree(tile, TILE_HEIGHT)
        return None

    def _finish(self, size: int, pending: deque[tuple[int, str]]) -> VerifyResult:
        if pending:
            return self._bad(size, size, f"checkpoint at size {pending[0][0]} is beyond the {size} stored leaves")
        if len(self.tiles) != size // _TILE:
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
