"""The audit log's append path: one writer thread, group commit, checkpoints stored.

Appends from any thread or event loop are queued (`AuditWriter.submit`); one thread owns the
write connection and commits whatever is waiting as one SQLite transaction: the records'
leaves and leaf hashes, their who-accessed rows, the tiles they complete, the journal entries
that came with them (crossroads.journal) and, when due, a signed checkpoint. Only then is each
waiter resolved with its first index, so an append is acknowledged once it is durable, and
concurrent appends share one fsync.

When to commit is decided in one place, `_run`: the writer commits as soon as it is free, and the
appends that arrived while the previous commit ran form the next batch. It never waits for more:
a lone append, or a light load, is never held, and a busy core's commits carry many records
because many arrive during each commit (a commit costs ~125 us of CPU plus ~10 us a record).
Until 2026-12-07 it also waited, in steps up to 8 ms, while the core announced exchanges whose
records were on their way; measured, that wait made appends slower and saved little: on this
machine an asyncio loop appending 645 records/s (Poisson) waited p90 2.65 and p99 7.17 ms for
its commits with it, 1.34 and 2.09 ms without, for 2 % fewer commits; concurrent single appends
(bench audit) came at the same rate either way; and in the live core (bench capacity, at 537 and
645/s) an exchange waited 3.1-3.8 times a commit's own time for its record to be durable with
it, 2.4 times without (docs/PERFORMANCE.md).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import operator
import resource
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from itertools import chain
from pathlib import Path
from sqlite3 import Connection
from typing import Any

from crossroads import access_index
from crossroads.audit_record import AuditRecord
from crossroads.audit_store import TILE_HEIGHT, AuditLogError, LogSigner, TreeState, advance, joined_root, transaction
from crossroads.journal import JournalEntry, write_entries
from crossroads.merkle import leaf_hashes
from crossroads.sqlite_rows import blob, insert_rows
from crossroads.write_gate import gate_for

__all__ = [
    "BATCH_BUCKETS",
    "DEFAULT_CHECKPOINT_INTERVAL",
    "AuditWriter",
    "CommitStats",
    "Job",
]

DEFAULT_CHECKPOINT_INTERVAL = 0.2  # seconds between stored checkpoints under load
BATCH_BUCKETS = 12  # batch-size buckets of CommitStats: 1, 2-3, 4-7, ..., 2048 and more

_Waiter = asyncio.Future[int] | concurrent.futures.Future[int]
# records appended together (consecutive indices), who waits for the first index, and the
# journal entry committed with the first record
Job = tuple[Sequence[AuditRecord], _Waiter, JournalEntry | None]


@dataclass
class CommitStats:
    """The writer's commits so far: how many, how many records, the time they took, and how many
    commits carried 1, 2-3, 4-7, ...
    records (`batches[k]`: batches of 2**k to 2**(k+1) - 1), and of the time they took, how much
    went on taking the store from the process's other writer of the file (`store_wait_s`: its
    write gate, crossroads/write_gate.py, and BEGIN) and on the COMMIT statement (`sync_s`: SQLite
    writes the transaction's pages to the WAL and fsyncs it; what is left of `commit_s` is the
    Python and the INSERTs before it). Plain counters, updated by the writer thread after each
    commit; a reader takes a copy (`copy`) and subtracts two."""

    commits: int = 0
    records: int = 0
    commit_s: float = 0.0
    batches: list[int] = field(default_factory=lambda: [0] * BATCH_BUCKETS)
    store_wait_s: float = 0.0
    sync_s: float = 0.0

    def add(self, records: int, seconds: float, store_wait_s: float = 0.0, sync_s: float = 0.0) -> None:
        self.commits += 1
        self.records += records
        self.commit_s += seconds
        self.store_wait_s += store_wait_s
        self.sync_s += sync_s
        self.batches[min(records.bit_length() - 1, BATCH_BUCKETS - 1)] += 1

    def copy(self) -> CommitStats:
        return replace(self, batches=list(self.batches))

    def plus(self, other: CommitStats) -> CommitStats:
        """Both together."""
        return self._each(other, operator.add)

    def since(self, earlier: CommitStats) -> CommitStats:
        """What happened between `earlier` and this one."""
        return self._each(earlier, operator.sub)

    def _each(self, other: CommitStats, op: Callable[[Any, Any], Any]) -> CommitStats:
        """`op` of this and `other`, counter by counter (the batches bucket by bucket)."""
        counters = {
            f.name: op(getattr(self, f.name), getattr(other, f.name)) for f in fields(self) if f.name != "batches"
        }
        return CommitStats(**counters, batches=[op(a, b) for a, b in zip(self.batches, other.batches, strict=True)])


class AuditWriter:
    """The writer of one writable audit log: `start`, then `submit` from anywhere, `close` once.

    Owns the write connection `conn` and is the only one to change `tree`.
    """

    def __init__(
        self,
        path: Path,
        conn: Connection,
        tree: TreeState,
        signer: LogSigner,
        *,
        checkpoint_interval: float,
    ) -> None:
        self._path = path
        self._conn = conn
        self._gate = gate_for(path)  # the outbox's writer commits to the same file (crossroads/write_gate.py)
        self._tree = tree
        self._signer = signer
        self._interval = checkpoint_interval
        self._access_waiting = access_index.pending(conn)  # rows in access_recent; writer thread only
        self.stats = CommitStats()  # what the commits have been so far (writer thread writes, anyone reads)
        self._queue_lock = threading.Lock()  # taken directly on the append path: Condition's __enter__ is Python
        self._cond = threading.Condition(self._queue_lock)
        self._queue: list[Job] = []
        self._writer_waiting = False  # notify only then: Condition.notify is costly per append
        self._closing = False
        self._thread: threading.Thread | None = None
        self._error: Exception | None = None  # the last failure to store a checkpoint
        self._stored_at = time.monotonic()

    def start(self) -> None:
        """Sign and store a checkpoint for the restored size if the store has none, then start the thread."""
        if self._tree.stored[0] != self._tree.size:
            self._store_checkpoint()
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        """Queue `job`; its waiter gets its first index once committed (or the commit's error)."""
        with self._queue_lock:
            if self._closing:
                raise AuditLogError("the audit log is closed")
            self._queue.append(job)
            if self._writer_waiting:
                self._cond.notify()

    def close(self) -> None:
        """Commit every job already submitted, store a checkpoint for the final size, close the connection.

        Idempotent. AuditLogError if the final checkpoint could not be stored.
        """
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()
        self._conn.close()
        if self._error is not None and self._tree.stored[0] != self._tree.size:
            raise AuditLogError(f"the final checkpoint could not be stored: {self._error}")

    # ------------------------------------------------------------------ when to commit
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    wait = self._checkpoint_wait()
                    if wait is not None and wait <= 0:
                        break
                    self._writer_waiting = True
                    self._cond.wait(wait)
                    self._writer_waiting = False
                jobs, self._queue = self._queue, []
                closing = self._closing
            if jobs:
                self._commit(jobs)
            elif closing:
                break
            else:
                self._try_checkpoint()  # idle and the last batch has no checkpoint yet
        if self._tree.stored[0] != self._tree.size:
            self._try_checkpoint()

    def _checkpoint_wait(self) -> float | None:
        """Seconds until the uncovered tail is due for a checkpoint; None when all is covered."""
        if self._tree.stored[0] == self._tree.size:
            return None
        return self._interval - (time.monotonic() - self._stored_at)

    # ------------------------------------------------------------------ what a commit writes
    def _commit(self, jobs: list[Job]) -> None:
        """Write `jobs` as one transaction, count it in `stats` (before anyone hears of it, so a
        caller whose append returned sees it counted), then resolve every job's waiter."""
        records: list[AuditRecord] = []
        journal: list[tuple[int, JournalEntry]] = []  # (offset in this batch, entry)
        for job in jobs:
            if job[2] is not None:
                journal.append((len(records), job[2]))
            records.extend(job[0])
        started = time.monotonic()
        error: Exception | None = None
        store_wait_s = sync_s = 0.0  # a commit that failed counts neither
        try:
            first, store_wait_s, sync_s = self._write(records, journal)
        except Exception as exc:  # every waiter of the batch learns of the failure
            first, error = 0, _full_store(self._path, exc)
        took = time.monotonic() - started
        self.stats.add(len(records), took, store_wait_s, sync_s)
        _settle(jobs, first, error)

    def _write(
        self, records: list[AuditRecord], journal: Sequence[tuple[int, JournalEntry]] = ()
    ) -> tuple[int, float, float]:
        """Commit `records` (and `journal`, offsets relative to the first record) as one transaction.

        Returns the first index, the seconds spent taking the store (the write gate and BEGIN) and
        those of the COMMIT statement (the WAL written and fsynced). Writer thread only.
        """
        tree = self._tree
        first = tree.size
        size = first + len(records)
        leaves = [r.leaf_bytes() for r in records]
        hashes = leaf_hashes(leaves)
        new_tiles, tail = advance(tree.tail, hashes)
        tile_range = tree.tile_range.copy()
        for tile in new_tiles:
            tile_range.append_subtree(tile, TILE_HEIGHT)
        root_hash = joined_root(tile_range, tail)
        due = time.monotonic() - self._stored_at >= self._interval
        text = self._signer.sign(size, root_hash) if due else None
        persons = [v for i, r in enumerate(records, first) for n in r.persons() for v in (n, i)]
        base = len(tree.tiles)
        asked = time.monotonic()
        with transaction(self._conn, self._gate) as conn:
            store_wait_s = time.monotonic() - asked
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
            written = time.monotonic()  # what is left is the COMMIT
        sync_s = time.monotonic() - written
        self._access_waiting = waiting  # committed: the count may move on
        with tree.lock:
            tree.size, tree.tile_range, tree.tail, tree.root = size, tile_range, tail, root_hash
            tree.tiles.extend(new_tiles)
            if text is not None:
                tree.stored = tree.latest = (size, text)
                self._stored_at = time.monotonic()
        return first, store_wait_s, sync_s

    def _try_checkpoint(self) -> None:
        """Store a checkpoint; on failure keep the error for `close` and retry after the interval."""
        try:
            self._store_checkpoint()
        except Exception as exc:  # the writer thread must outlive a full disk: appends still wait on it
            self._error = exc
            self._stored_at = time.monotonic()

    def _store_checkpoint(self) -> None:
        """Sign and store a checkpoint for the current size (writer thread, or `start`)."""
        tree = self._tree
        size, root_hash = tree.size, tree.root
        text = self._signer.sign(size, root_hash)
        with transaction(self._conn, self._gate) as conn:
            conn.execute("INSERT OR REPLACE INTO checkpoints(size, text) VALUES (?, ?)", (size, text))
        with tree.lock:
            tree.stored = tree.latest = (size, text)
            self._stored_at = time.monotonic()


def _settle(jobs: list[Job], first: int, error: Exception | None) -> None:
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
