"""The audit log of the crossroads: durable, append-only, tamper-evident (RFC 6962 Merkle tree).

Every exchange the core handles becomes one `AuditRecord`; its canonical bytes are a leaf of
an RFC 6962 tree whose root is signed in C2SP checkpoints. Anyone holding a checkpoint can
ask for an inclusion proof (this exchange is in the log) or a consistency proof (the log only
grew), and `verify_store` re-derives everything from the stored leaves.

`AuditLog` is the log of one state folder; its parts, one concept each:
  crossroads.audit_store   the SQLite file (tables, connections, tiles) and the committed tree
  crossroads.audit_writer  the append path: one writer thread, group commit, checkpoints stored
  crossroads.audit_reads   head, leaves, inclusion and consistency proofs, who-accessed, answers
  crossroads.audit_verify  `verify_store`: the whole store re-derived from its leaves
and crossroads.receipts checks what the log hands out with its public key only.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from crossroads import access_index
from crossroads.audit_reads import AccessEntry, AuditHead, AuditReads
from crossroads.audit_record import AuditRecord
from crossroads.audit_store import (
    AUDIT_DB,
    DEFAULT_ORIGIN,
    KEYS_DIR,
    SCHEMA,
    TILE_HEIGHT,
    AuditIndexError,
    AuditLogError,
    LogSigner,
    TreeState,
    connect,
    restore_tree,
    transaction,
)
from crossroads.audit_verify import VerifyResult, verify_store
from crossroads.audit_writer import DEFAULT_CHECKPOINT_INTERVAL, AuditWriter, CommitStats, Job
from crossroads.checkpoint import PRIVATE_KEY_FILE, load_or_create_private_key
from crossroads.journal import SCHEMA as JOURNAL_SCHEMA
from crossroads.journal import JournalEntry

__all__ = [
    "AUDIT_DB",
    "DEFAULT_CHECKPOINT_INTERVAL",
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


class AuditLog(AuditReads):
    """The durable audit log in one state folder. Open with `AuditLog.open`; close when done.

    Thread-safe: appends may come from any thread or event loop; reads (head, proofs, leaves,
    see crossroads.audit_reads) from any thread, and see only committed records.
    """

    def __init__(
        self, path: Path, reader: sqlite3.Connection, tree: TreeState, signer: LogSigner, writer: AuditWriter | None
    ) -> None:
        """Use `AuditLog.open`."""
        super().__init__(path, reader, tree, signer)
        self._writer = writer  # None when read-only
        self._closed = False
        self._close_lock = threading.Lock()

    @classmethod
    def open(
        cls,
        state_dir: Path,
        *,
        origin: str = DEFAULT_ORIGIN,
        read_only: bool = False,
        checkpoint_interval: float = DEFAULT_CHECKPOINT_INTERVAL,
    ) -> AuditLog:
        """The audit log of `state_dir`, created with its signing key when absent.

        On reopening, the tree is restored from the stored tile and leaf hashes, so the next
        append continues at the next index, and a checkpoint is signed for the stored size if
        the last run stopped before signing one. `read_only=True` opens an existing log for
        reading only (AuditLogError if there is none) and uses the origin stored in it; a
        writable open with another `origin` than the stored one is an AuditLogError.
        """
        path = state_dir / AUDIT_DB
        conn, signer = _open_existing(state_dir, origin) if read_only else _open_writable(state_dir, origin)
        reader = conn if read_only else connect(path, read_only=True)
        writer = None
        try:
            tree = restore_tree(conn, repair=not read_only)
            if not read_only:
                writer = AuditWriter(path, conn, tree, signer, checkpoint_interval=checkpoint_interval)
                writer.start()  # stores a checkpoint for the restored size if there is none
        except BaseException:
            reader.close()
            conn.close()
            raise
        return cls(path, reader, tree, signer, writer)

    def close(self) -> None:
        """Commit every append already submitted, store a checkpoint for the final size, close.

        Idempotent. Appends submitted after close raise AuditLogError; so does close itself if
        the final checkpoint could not be stored (the records stay durable; reopening signs it).
        """
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        try:
            if self._writer is not None:
                self._writer.close()
        finally:
            with self._read_lock:
                self._reader.close()

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
        are batched into one transaction by the writer thread (group commit,
        crossroads.audit_writer), which commits as soon as it is free: the appends that arrived
        while its previous commit ran share the next fsync, and none is held waiting for more.
        Indices follow submission order. A checkpoint covering the record is stored
        within about `checkpoint_interval` seconds, and at the latest by `close`; `head()` signs
        one for the current size at once. If the commit fails, every append in that batch raises and none
        of them gets an index. Cancelling the awaiting task does not withdraw the record: once
        submitted it is written. `journal` (the answer given and the parcels owed, see
        crossroads.journal) is committed in the same transaction as the record: both or neither.
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

    def commit_stats(self) -> CommitStats:
        """A copy of the group commit's figures so far (crossroads.audit_writer.CommitStats);
        all zero for a read-only log."""
        return self._writer.stats.copy() if self._writer is not None else CommitStats()

    def _submit(self, job: Job) -> None:
        if self._writer is None:
            raise AuditLogError("the audit log is closed" if self._closed else "the audit log is read-only")
        self._writer.submit(job)


def _open_existing(state_dir: Path, origin: str) -> tuple[sqlite3.Connection, LogSigner]:
    """A read-only connection to the log of `state_dir`, and its signer (with the key if it is there)."""
    path = state_dir / AUDIT_DB
    if not path.exists():
        raise AuditLogError(f"no audit log in {state_dir} (expected {path})")
    conn = connect(path, read_only=True)
    if not access_index.is_current(conn):
        conn.close()
        raise AuditLogError(
            f"{path} was written by an older version: open it once for writing (start the core on "
            "it) to move its who-accessed index into the current tables"
        )
    stored = conn.execute("SELECT value FROM meta WHERE key = 'origin'").fetchone()
    key_path = state_dir / KEYS_DIR / PRIVATE_KEY_FILE
    key = load_or_create_private_key(state_dir / KEYS_DIR) if key_path.exists() else None
    return conn, LogSigner(stored[0] if stored else origin, key, path)


def _open_writable(state_dir: Path, origin: str) -> tuple[sqlite3.Connection, LogSigner]:
    """The writer's connection to the log `origin` of `state_dir` (created with its key when absent), and its signer."""
    path = state_dir / AUDIT_DB
    state_dir.mkdir(parents=True, exist_ok=True)
    key = load_or_create_private_key(state_dir / KEYS_DIR)
    conn = connect(path, read_only=False)
    conn.executescript(SCHEMA + access_index.SCHEMA + JOURNAL_SCHEMA)
    with transaction(conn):
        access_index.upgrade(conn)
    conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('origin', ?)", (origin,))
    (stored_origin,) = conn.execute("SELECT value FROM meta WHERE key = 'origin'").fetchone()
    if stored_origin != origin:
        conn.close()
        raise AuditLogError(f"{path} is the log {stored_origin!r}, not {origin!r}")
    return conn, LogSigner(origin, key, path)
