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

`gate_for(path)` is the file's gate, the same object for every caller of the process;
`crossroads.audit_store.transaction(conn, gate)` takes it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["WriteGate", "gate_for"]


class WriteGate:
    """A file's writers' lock; `held()` holds it, and says whether another writer held it first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    @contextmanager
    def held(self) -> Iterator[bool]:
        """Hold the gate for the block; yields True when it had to wait for another writer."""
        waited = not self._lock.acquire(blocking=False)
        if waited:
            self._lock.acquire()
        try:
            yield waited
        finally:
            self._lock.release()


_GATES: dict[str, WriteGate] = {}
_GATES_LOCK = threading.Lock()


def gate_for(path: Path) -> WriteGate:
    """The gate of the file at `path` (by its real path: two names of one file share it)."""
    key = os.path.realpath(path)
    with _GATES_LOCK:
        return _GATES.setdefault(key, WriteGate())
