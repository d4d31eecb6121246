"""The audit log's who-accessed index: which records name which person, looked up by NISS.

Tables, in STATE/audit.sqlite, written by the audit writer inside its own transactions:
  access(part, niss, idx)   WITHOUT ROWID, key (part, niss, idx), part = idx >> PART_BITS
  access_recent(niss, idx)  the persons of the latest records, in the order they came

Why two tables, and why `part`: a record's persons are random keys. Inserted into one B-tree
keyed by NISS as each commit came, nearly every row landed on a page of its own, and every
such page went to the WAL whole: about half the audit writer's CPU per record. Rows are now
appended to access_recent (only its last page changes) and moved into `access` in sorted
batches of MERGE_ROWS rows. Because the key starts with the part (65,536 records each), a
batch lands in the index of the latest few parts only, a few hundred pages, so every page
written carries many of its rows however long the log has grown; a key on NISS alone would
spread a batch over the whole index of a national log and save nothing. A lookup seeks once
per part (a national day of ~5 M records is ~80 parts) and scans access_recent (fewer than
MERGE_ROWS rows).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence

from crossroads.sqlite_rows import insert_rows

__all__ = ["MERGE_ROWS", "PART_BITS", "SCHEMA", "add", "indices_about", "is_current", "pairs", "pending", "upgrade"]

PART_BITS = 16
MERGE_ROWS = 8_192

SCHEMA = """
CREATE TABLE IF NOT EXISTS access(
    part INTEGER NOT NULL, niss TEXT NOT NULL, idx INTEGER NOT NULL, PRIMARY KEY (part, niss, idx)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS access_recent(niss TEXT NOT NULL, idx INTEGER NOT NULL);
"""

# the part as a bound parameter, not spelled into the statement: tests shrink PART_BITS
_MERGE = """
INSERT INTO access(part, niss, idx)
SELECT idx >> :bits, niss, idx FROM access_recent ORDER BY idx >> :bits, niss, idx
"""
_IN_PART = "SELECT idx FROM access WHERE part = ? AND niss = ? AND idx < ?"
_RECENT = "SELECT idx FROM access_recent WHERE niss = ? AND idx < ?"


def pending(conn: sqlite3.Connection) -> int:
    """How many rows wait in access_recent (read once when the log opens)."""
    (count,) = conn.execute("SELECT count(*) FROM access_recent").fetchone()
    return int(count)


def add(conn: sqlite3.Connection, flat: Sequence[object], waiting: int) -> int:
    """Index the (niss, idx) pairs given one after the other in `flat`; inside the caller's transaction.

    `waiting` is the number of rows in access_recent before this call; returns it after: once it
    reaches MERGE_ROWS they all move into `access`, in this same transaction.
    """
    if not flat:
        return waiting
    insert_rows(conn, "access_recent(niss, idx)", 2, flat)
    waiting += len(flat) // 2
    if waiting < MERGE_ROWS:
        return waiting
    conn.execute(_MERGE, {"bits": PART_BITS})
    conn.execute("DELETE FROM access_recent")
    return 0


def indices_about(conn: sqlite3.Connection, niss: str, size: int) -> list[int]:
    """The indices below `size` of every record naming `niss`, ascending."""
    found: list[int] = []
    for part in range(((size - 1) >> PART_BITS) + 1 if size else 0):
        found += (
            i
            for (i,) in conn.execute(
                "SELECT idx FROM access WHERE part = ? AND niss = ? AND idx < ?", (part, niss, size)
            )
        )
    found += (i for (i,) in conn.execute("SELECT idx FROM access_recent WHERE niss = ? AND idx < ?", (niss, size)))
    return sorted(found)


def pairs(conn: sqlite3.Connection) -> Iterator[tuple[str, int]]:
    """Every (niss, idx) pair the index holds, in no particular order."""
    yield from conn.execute("SELECT niss, idx FROM access")
    yield from conn.execute("SELECT niss, idx FROM access_recent")


def is_current(conn: sqlite3.Connection) -> bool:
    """Whether the store has these tables (a log written before them has `persons` instead; see `upgrade`)."""
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'access'").fetchone() is not None


def upgrade(conn: sqlite3.Connection) -> None:
    """Move the index of a log written before these tables (persons(niss, idx)) into them, once.

    Inside the caller's transaction; does nothing when there is no old table.
    """
    old = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'persons'").fetchone()
    if old is None:
        return
    conn.execute("INSERT INTO access(part, niss, idx) SELECT idx >> ?, niss, idx FROM persons", (PART_BITS,))
    conn.execute("DROP TABLE persons")
