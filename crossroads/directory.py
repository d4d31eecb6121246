"""The person part of the reference directory: who has a file on whom, in SQLite (DIR/directory.sqlite).

One row per file, in the layout of CBSS form I605 plus the agency that holds the file:
NISS | sector | agency | quality code | phase code | start | end | last change. An empty (NULL)
end means the file is open. Dates are stored as ISO text so that the file reads like the form.

The core reads it on every message (`files_of_many`), so reads are indexed by NISS and served
from a small LRU cache. The cache stays true because this object is the only writer while the
core runs: every write through it invalidates the persons it touched. Writes commit at once
(WAL, synchronous=NORMAL: durable across a crash of the process; the audit log, not this
file, is the record that must survive a power loss).

All methods are synchronous and must be called from one thread (the core's event loop).
"""

from __future__ import annotations

import datetime as dt
import functools
import sqlite3
import sys
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path

from crossroads.domain import AgencyId, DirectoryEntry, QualityCode, SectorCode
from crossroads.identifiers import Niss

__all__ = ["DEFAULT_CACHE_SIZE", "DirectoryError", "DirectoryStore"]

DEFAULT_CACHE_SIZE = 65_536  # persons; a cached person costs a few hundred bytes
_BATCH = 50_000  # rows per transaction in bulk_load
_IN_CHUNK = 500  # NISS per "IN (...)" query, well under SQLite's variable limit

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    niss TEXT NOT NULL,
    sector INTEGER NOT NULL,
    agency TEXT NOT NULL,
    quality INTEGER NOT NULL,
    phase INTEGER NOT NULL,
    start TEXT NOT NULL,
    "end" TEXT,
    last_change TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS files_by_niss ON files (niss);
"""
_COLUMNS = 'niss, sector, agency, quality, phase, start, "end"'
_Row = tuple[str, int, str, int, int, str, str | None]


class DirectoryError(Exception):
    """A directory change that cannot be applied (e.g. closing a file that is not open)."""


class DirectoryStore:
    """The person part of the reference directory over one SQLite file."""

    def __init__(self, conn: sqlite3.Connection, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        self._conn = conn
        self._cache: OrderedDict[str, tuple[DirectoryEntry, ...]] = OrderedDict()
        self._cache_size = cache_size

    @classmethod
    def create(cls, path: Path, *, cache_size: int = DEFAULT_CACHE_SIZE) -> DirectoryStore:
        """A new, empty directory at `path` (an existing file there is replaced)."""
        for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            stale.unlink(missing_ok=True)
        return cls.open(path, cache_size=cache_size)

    @classmethod
    def open(cls, path: Path, *, cache_size: int = DEFAULT_CACHE_SIZE) -> DirectoryStore:
        """The directory at `path`, created empty if it does not exist."""
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(_SCHEMA)
        return cls(conn, cache_size)

    def close(self) -> None:
        self._conn.close()

    def bulk_load(self, rows: Iterable[DirectoryEntry], *, changed: dt.date | None = None) -> int:
        """Append `rows` in large transactions; returns how many were written.

        `changed` is the last-change date written on every row; None writes each row's start.
        """
        written = 0
        batch: list[tuple[object, ...]] = []
        for entry in rows:
            batch.append(_to_row(entry, changed or entry.start))
            if len(batch) >= _BATCH:
                written += self._insert(batch)
                batch = []
        written += self._insert(batch)
        self._cache.clear()
        return written

    def _insert(self, batch: Sequence[tuple[object, ...]]) -> int:
        if batch:
            with _transaction(self._conn):
                self._conn.executemany(f"INSERT INTO files ({_COLUMNS}, last_change) VALUES (?,?,?,?,?,?,?,?)", batch)
        return len(batch)

    def integrate(self, entry: DirectoryEntry, *, changed: dt.date | None = None) -> bool:
        """Open a file: add `entry` (committed on return). `changed` defaults to the entry's start.

        Idempotent, since a sender may resend an integration: returns False, writing nothing, when
        the same file (person, sector, agency, quality, start, end) is already there.
        """
        row = _to_row(entry, changed or entry.start)
        with _transaction(self._conn):
            present = self._conn.execute(
                "SELECT 1 FROM files WHERE niss = ? AND sector = ? AND agency = ? AND quality = ? AND phase = ? "
                'AND start = ? AND "end" IS ?',
                row[:7],
            ).fetchone()
            if present is None:
                self._conn.execute(f"INSERT INTO files ({_COLUMNS}, last_change) VALUES (?,?,?,?,?,?,?,?)", row)
        self._cache.pop(entry.niss, None)
        return present is None

    def deintegrate(self, entry: DirectoryEntry, *, changed: dt.date | None = None) -> None:
        """Close a file: set the end of the open file of `entry.agency` on `entry.niss` in `entry.sector`
        with `entry.quality` to `entry.end` (committed on return).

        Raises `DirectoryError` when `entry.end` is None or no such file is open.
        """
        if entry.end is None:
            raise DirectoryError(f"closing the file of {entry.agency} on {entry.niss} needs an end date")
        when = (changed or entry.end).isoformat()
        with _transaction(self._conn):
            cursor = self._conn.execute(
                'UPDATE files SET "end" = ?, last_change = ? '
                'WHERE niss = ? AND sector = ? AND agency = ? AND quality = ? AND "end" IS NULL',
                (entry.end.isoformat(), when, entry.niss, entry.sector, entry.agency, entry.quality),
            )
        self._cache.pop(entry.niss, None)
        if cursor.rowcount == 0:
            raise DirectoryError(
                f"{entry.agency} has no open file on {entry.niss} in sector {entry.sector} "
                f"with quality {entry.quality:03d}"
            )

    def files_of(self, niss: str) -> list[DirectoryEntry]:
        """Every file (open or closed) on `niss`, in the order they were written."""
        return list(self._lookup([niss]).get(niss, ()))

    def files_of_many(self, nisses: Sequence[str]) -> list[DirectoryEntry]:
        """Every file on each of `nisses`, person by person in the order given (duplicates once)."""
        if len(nisses) == 1:  # the hot path: one subject, usually cached
            cached = self._cache.get(nisses[0])
            if cached is not None:
                self._cache.move_to_end(nisses[0])
                return list(cached)
        found = self._lookup(nisses)
        return [e for niss in dict.fromkeys(nisses) for e in found.get(niss, ())]

    def count(self) -> int:
        """How many rows (open and closed files) the directory holds."""
        (n,) = self._conn.execute("SELECT count(*) FROM files").fetchone()
        return int(n)

    def _lookup(self, nisses: Sequence[str]) -> dict[str, tuple[DirectoryEntry, ...]]:
        found: dict[str, tuple[DirectoryEntry, ...]] = {}
        missing: list[str] = []
        for niss in dict.fromkeys(nisses):
            cached = self._cache.get(niss)
            if cached is None:
                missing.append(niss)
            else:
                self._cache.move_to_end(niss)
                found[niss] = cached
        for i in range(0, len(missing), _IN_CHUNK):
            found.update(self._fetch(missing[i : i + _IN_CHUNK]))
        return found

    def _fetch(self, nisses: Sequence[str]) -> dict[str, tuple[DirectoryEntry, ...]]:
        marks = ",".join("?" * len(nisses))
        rows: list[_Row] = self._conn.execute(
            f"SELECT {_COLUMNS} FROM files WHERE niss IN ({marks}) ORDER BY rowid", nisses
        ).fetchall()
        grouped: dict[str, list[DirectoryEntry]] = {niss: [] for niss in nisses}
        same_niss = {niss: niss for niss in nisses}  # the cache's key string, not a copy per row
        for row in rows:
            grouped[row[0]].append(_from_row(row, same_niss))
        result = {niss: tuple(entries) for niss, entries in grouped.items()}
        for niss, entries in result.items():  # persons without files are cached too: most lookups hit
            self._cache[niss] = entries
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return result


def _to_row(entry: DirectoryEntry, changed: dt.date) -> tuple[object, ...]:
    end = entry.end.isoformat() if entry.end is not None else None
    return (
        entry.niss,
        entry.sector,
        entry.agency,
        entry.quality,
        entry.phase,
        entry.start.isoformat(),
        end,
        changed.isoformat(),
    )


@functools.lru_cache(maxsize=8192)
def _date(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def _from_row(row: _Row, same_niss: dict[str, str]) -> DirectoryEntry:
    # Cached entries share their strings and dates: the NISS is the cache key's own string, agency
    # ids (a few thousand) are interned and dates (a few thousand) come from one small cache. On
    # the demo world (30,000 persons, ~2.9 files each) this took the full cache from 832 to 484
    # bytes per person (24 -> 14 MB); a new object per row per field was most of it.
    niss, sector, agency, quality, phase, start, end = row
    return DirectoryEntry(
        Niss(same_niss.get(niss, niss)),
        SectorCode(sector),
        AgencyId(sys.intern(agency)),
        QualityCode(quality),
        phase,
        _date(start),
        _date(end) if end is not None else None,
    )


class _transaction:
    """BEGIN ... COMMIT on an autocommit connection, ROLLBACK if the block raises."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._conn.execute("ROLLBACK" if exc_type is not None else "COMMIT")
