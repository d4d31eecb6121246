"""What commits together with an exchange's audit record: the answer it was given and the parcels it owes.

An exchange is durable all at once or not at all. Its audit record, the answer the sender got
(so that the same message id sent again is answered the same, not processed twice) and the
deliveries still owed to agencies that were down (the outbox) are written by the audit
writer in one SQLite transaction in STATE/audit.sqlite. Without that, a crash between two
commits would leave an acknowledged declaration audited but not owed to anyone, or owed but
never audited.

Tables (created with the audit log's own):
  answers(idx, sender, message_id, code, body)
      idx is the audit record's index; `code` the gRPC
      status code's value (0 = OK); `body` the serialized ExchangeReply without its
      audit_index (OK) or the refusal's message (UTF-8). Rows older than `ANSWER_WINDOW`
      records are pruned: a sender resends within that window.
  outbox(seq, ticket, agency, message_id, forward, audit_index, accepted, attempts,
         last_error, delivered, dead)
      one row per delivery owed; `forward` is the serialized Forward without its audit index
      (the index is filled in on redelivery); `ticket` orders an agency's parcels in the order
      the core decided to queue them; `delivered` / `dead` are ISO times (NULL while pending).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from crossroads.domain import AgencyId
from crossroads.sqlite_rows import blob, insert_rows

__all__ = [
    "ANSWER_WINDOW",
    "SCHEMA",
    "Answer",
    "JournalEntry",
    "Parcel",
    "StoredAnswer",
    "read_answer",
    "recent_answers",
    "write_entries",
]

# How many of the latest records keep their answer: at the core's saturation (~3k/s) about 45
# seconds, at a load test's few hundred per second several minutes, at the national average
# rate (57/s) more than half an hour. Senders resend within seconds. The core keeps an index
# of the window in memory (~15 MB, crossroads.idempotency).
ANSWER_WINDOW = 131_072
_PRUNE_EVERY = 4_096  # prune when the log crosses a multiple of this, not on every commit

SCHEMA = """
CREATE TABLE IF NOT EXISTS answers(
    idx INTEGER PRIMARY KEY, sender TEXT NOT NULL, message_id TEXT NOT NULL,
    code INTEGER NOT NULL, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS outbox(
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket INTEGER NOT NULL,
    agency TEXT NOT NULL,
    message_id TEXT NOT NULL,
    forward BLOB NOT NULL,
    audit_index INTEGER NOT NULL,
    accepted TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    delivered TEXT,
    dead TEXT);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox(agency, ticket) WHERE delivered IS NULL AND dead IS NULL;
"""


class Parcel(NamedTuple):
    """One delivery owed: the serialized `Forward` for `agency` (audit index not yet in it).

    `ticket` orders the parcels of one agency: taken when the core decided to queue it.
    """

    agency: AgencyId
    message_id: str
    forward: bytes
    ticket: int = 0


class Answer(NamedTuple):
    """What a sender was answered: a gRPC status code value (0 = OK) and the body.

    For OK the body is the serialized ExchangeReply without its audit_index; for a refusal,
    the status message in UTF-8. Immutable value types here are NamedTuples, not frozen
    dataclasses: two of them are made for every exchange, at half the cost.
    """

    code: int
    body: bytes


class JournalEntry(NamedTuple):
    """What commits with one audit record besides the record itself.

    `answer` is None when the message cannot be recognised again (no authenticated sender or
    no usable message id), or when its answer must not be replayed (a transient refusal).
    """

    sender: str
    message_id: str
    answer: Answer | None
    parcels: tuple[Parcel, ...] = ()


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """An answer read back from the journal, with the index of the record it was committed with."""

    index: int
    sender: str
    message_id: str
    answer: Answer


def write_entries(
    conn: sqlite3.Connection, entries: Sequence[tuple[int, JournalEntry]], accepted: str, *, keep: int = ANSWER_WINDOW
) -> None:
    """Insert the answers and parcels of `entries` (audit index, entry); inside the caller's transaction.

    Answers more than `keep` records old are pruned now and then (when the index crosses a
    multiple of 4,096), so the table stays about `keep` rows long.
    """
    answers: list[object] = []
    for i, e in entries:
        if e.answer is not None:
            answers += (i, e.sender, e.message_id, e.answer.code, blob(e.answer.body))
    if answers:
        insert_rows(conn, "answers", 5, answers, verb="INSERT OR REPLACE")
        last = entries[-1][0]
        if last % _PRUNE_EVERY < len(entries) and last >= keep:
            conn.execute("DELETE FROM answers WHERE idx < ?", (last - keep,))
    parcels: list[object] = []
    for i, e in entries:
        for p in e.parcels:
            parcels += (p.ticket, p.agency, p.message_id, blob(p.forward), i, accepted)
    if parcels:
        insert_rows(conn, "outbox(ticket, agency, message_id, forward, audit_index, accepted)", 6, parcels)


def read_answer(conn: sqlite3.Connection, index: int) -> StoredAnswer | None:
    """The answer stored with record `index`, if it is still kept."""
    row = conn.execute("SELECT sender, message_id, code, body FROM answers WHERE idx = ?", (index,)).fetchone()
    if row is None:
        return None
    return StoredAnswer(index, row[0], row[1], Answer(int(row[2]), bytes(row[3])))


def recent_answers(conn: sqlite3.Connection, limit: int) -> list[tuple[int, str, str]]:
    """(index, sender, message_id) of the latest `limit` answers, oldest first."""
    rows = conn.execute("SELECT idx, sender, message_id FROM answers ORDER BY idx DESC LIMIT ?", (limit,)).fetchall()
    return [(int(i), s, m) for i, s, m in reversed(rows)]
