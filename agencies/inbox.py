"""The durable inbox of an agency host: every declaration and notice its agencies received.

One SQLite file per host (`DIR/hosts/host-K.sqlite`, WAL), one row per (agency, message id).
The message id is the sender's idempotency key, so a redelivery (the core's outbox retrying
after a lost reply) finds the row already there: it is not stored twice, and the row's
`deliveries` counts how many times it came.

Durability: a row is committed before `record` returns, with synchronous=NORMAL, so it
survives the host process dying (not a power cut); the host replies only after `record`.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from crossroads.domain import AgencyId

__all__ = ["Inbox", "Received", "duplicates", "inbox_path", "received"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS received (
    agency      TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    kind        TEXT NOT NULL,
    sender      TEXT NOT NULL,
    audit_index INTEGER NOT NULL,
    received_at TEXT NOT NULL,
    deliveries  INTEGER NOT NULL DEFAULT 1,
    UNIQUE (agency, message_id)
)
"""

# One statement decides new vs redelivered atomically: the first insert keeps its facts, later
# ones count, and fill in the audit index (the core sends 0 on a first attempt, the index on retries).
_RECORD = """
INSERT INTO received (agency, message_id, kind, sender, audit_index, received_at)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (agency, message_id) DO UPDATE
SET deliveries = deliveries + 1, audit_index = MAX(audit_index, excluded.audit_index)
RETURNING deliveries
"""

_COLUMNS = "agency, message_id, kind, sender, audit_index, received_at, deliveries"


@dataclass(frozen=True, slots=True)
class Received:
    """One message an agency received (its first delivery), and how often it was delivered."""

    agency: AgencyId
    message_id: str
    kind: str  # the MessageKind name, e.g. "DIMONA"
    sender: str  # the authenticated sender the core named in the Forward
    audit_index: int  # the largest a delivery carried: the core sends 0 on a first attempt, the index on retries
    received_at: str  # ISO 8601, UTC, of the first delivery
    deliveries: int


def inbox_path(state_dir: Path, host: str) -> Path:
    """Where host `host` keeps its inbox in the state folder."""
    return Path(state_dir) / "hosts" / f"{host}.sqlite"


class Inbox:
    """The writer side: one per host process, used from one thread."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)

    def record(
        self,
        agency: AgencyId,
        message_id: str,
        kind: str,
        sender: str,
        audit_index: int,
        received_at: dt.datetime | None = None,
    ) -> bool:
        """Store one delivery; True if it is new, False if (agency, message_id) was already there.

        The row is committed when this returns.
        """
        # fixed width (microseconds always present), so the text sorts in time order
        when = (received_at or dt.datetime.now(dt.UTC)).isoformat(timespec="microseconds")
        row = self._db.execute(_RECORD, (agency, message_id, kind, sender, audit_index, when)).fetchone()
        return bool(row[0] == 1)

    def close(self) -> None:
        self._db.close()


def _read(path: Path, agency: str | None) -> list[Received]:
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        where, args = ("WHERE agency = ?", (agency,)) if agency is not None else ("", ())
        rows = db.execute(f"SELECT {_COLUMNS} FROM received {where} ORDER BY rowid", args).fetchall()
    except sqlite3.OperationalError:
        return []  # a host that created its file but not yet its table has received nothing
    finally:
        db.close()
    return [Received(AgencyId(r[0]), r[1], r[2], r[3], r[4], r[5], r[6]) for r in rows]


def received(state_dir: Path, agency: str | None = None) -> list[Received]:
    """Everything the hosts of the network in `state_dir` received, oldest first.

    Reads every `DIR/hosts/*.sqlite` (read-only; safe while the hosts run). `agency`
    narrows to one agency. Each message appears once however often it was delivered.
    """
    rows = [r for path in sorted((Path(state_dir) / "hosts").glob("*.sqlite")) for r in _read(path, agency)]
    return sorted(rows, key=lambda r: r.received_at)


def duplicates(state_dir: Path) -> int:
    """How many redeliveries the hosts turned away (deliveries beyond the first)."""
    return sum(r.deliveries - 1 for r in received(state_dir))
