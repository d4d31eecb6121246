"""One writer at a time per SQLite file within this process, queued rather than retried.

Why: the core writes its audit store from two threads, each on a connection of its own: the audit
writer (every exchange's record, crossroads/audit_writer.py) and the outbox's writer (parcels
delivered, attempts failed: crossroads/outbox.py). A writer whose BEGIN IMMEDIATE finds the file's
write lock held does not queue for it: SQLite's busy handler sleeps 1, 2, 5, 10, 15 ... ms between
tries, so a commit that meets the other writer's can wait milliseconds after the file was free
again, and every acknowledgement waits for the audit commit. A writer takes its file's gate before
BEGIN and leaves it after COMMIT (or ROLLBACK), so a second writer of the process waits exactly as
long as the first holds the file. Another process (an operator's `crossroads outbox replay`) still
meets the busy handler: that is rare and on no exchange's path.

`gate_for(path)` is the file's gate (a plain lock), the same one for every caller of the process;
`crossroads.audit_store.transaction(conn, gate)` holds it around the transaction.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

__all__ = ["gate_for"]

_GATES: dict[str, threading.Lock] = {}
_GATES_LOCK = threading.Lock()


def gate_for(path: Path) -> threading.Lock:
    """The gate of the file at `path` (by its real path: two names of one file share it)."""
    key = os.path.realpath(path)
    with _GATES_LOCK:
        return _GATES.setdefault(key, threading.Lock())
