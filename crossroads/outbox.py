"""The outbox: what the core owes to agencies that are down, kept durably until delivered.

Store-and-forward for declarations and mutations (consultations are synchronous and never
queued). Each item is the exact `Forward` bytes the core would have sent, so a redelivery is
byte-for-byte the delivery that failed, with the audit index of the exchange filled in.

Contracts:
- `await put(parcels)` returns only once the parcels are committed (SQLite WAL,
  synchronous=FULL): the core acknowledges the sender after it, never before.
- Writes run on one worker thread and are group-committed: puts and marks that arrive while a
  commit is in flight share the next one, so the event loop never waits on an fsync.
- Nothing is dropped: an item leaves the pending set only when `Redelivery` has delivered it.
- Per agency, items are redelivered one at a time in the order they were accepted (`seq`);
  while an agency has a backlog, `has_backlog` tells the core to queue new items behind it
  rather than overtake it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import sqlite3
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crossroads.domain import AgencyId

__all__ = [
    "DEFAULT_BATCH",
    "Outbox",
    "OutboxCounts",
    "OutboxItem",
    "Parcel",
    "Redelivery",
]

DEFAULT_BATCH = 100  # items read per agency per pass

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    agency TEXT NOT NULL,
    message_id TEXT NOT NULL,
    forward BLOB NOT NULL,
    accepted TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    delivered TEXT
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (agency, seq) WHERE delivered IS NULL;
"""
_Op = Callable[[sqlite3.Connection], Any]


@dataclass(frozen=True, slots=True)
class Parcel:
    """One delivery owed: the serialized `Forward` for `agency`."""

    agency: AgencyId
    message_id: str
    forward: bytes


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A parcel as the outbox holds it."""

    seq: int
    agency: AgencyId
    message_id: str
    forward: bytes
    accepted: str  # ISO time it was put
    attempts: int
    last_error: str
    delivered: str | None  # ISO time it was delivered; None while pending


@dataclass(frozen=True, slots=True)
class OutboxCounts:
    pending: int
    delivered: int


class Outbox:
    """The durable outbox over one SQLite file. Use from one event loop."""

    def __init__(self, path: Path, clock: Callable[[], dt.datetime]) -> None:
        self._clock = clock
        # the writer connection is used only on the worker thread after this constructor
        self._writer = _connect(path, check_same_thread=False)
        self._writer.executescript(_SCHEMA)
        self._reader = _connect(path, check_same_thread=True)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        self._queue: list[tuple[_Op, asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None
        rows = self._reader.execute("SELECT agency, count(*) FROM outbox WHERE delivered IS NULL GROUP BY agency")
        self._backlog: Counter[str] = Counter(dict(rows.fetchall()))

    @classmethod
    def open(cls, path: Path, *, clock: Callable[[], dt.datetime] | None = None) -> Outbox:
        """The outbox at `path`, created if missing. `clock` stamps accepted/delivered times (UTC now)."""
        return cls(path, clock or (lambda: dt.datetime.now(dt.UTC)))

    async def put(self, parcels: Sequence[Parcel]) -> list[int]:
        """Hold `parcels` until delivered; returns their sequence numbers once committed."""
        for p in parcels:  # counted before the commit so that no later item overtakes them
            self._backlog[p.agency] += 1
        when = self._clock().isoformat()
        rows = [(p.agency, p.message_id, p.forward, when) for p in parcels]

        def insert(conn: sqlite3.Connection) -> list[int]:
            cursor = conn.cursor()
            seqs = []
            for row in rows:
                cursor.execute("INSERT INTO outbox (agency, message_id, forward, accepted) VALUES (?,?,?,?)", row)
                seqs.append(int(cursor.lastrowid or 0))
            return seqs

        try:
            seqs: list[int] = await self._write(insert)
        except BaseException:
            for p in parcels:
                self._forget_one(p.agency)
            raise
        return seqs

    async def mark_delivered(self, item: OutboxItem) -> None:
        """Record that `item` was delivered (committed on return); it is no longer pending."""
        when = self._clock().isoformat()
        await self._write(
            lambda c: c.execute(
                "UPDATE outbox SET delivered = ?, attempts = attempts + 1 WHERE seq = ? AND delivered IS NULL",
                (when, item.seq),
            )
        )
        self._forget_one(item.agency)

    def _forget_one(self, agency: str) -> None:
        self._backlog[agency] -= 1
        if self._backlog[agency] <= 0:
            del self._backlog[agency]

    async def note_failure(self, item: OutboxItem, error: str) -> None:
        """Record a failed attempt at `item` (it stays pending)."""
        await self._write(
            lambda c: c.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE seq = ?", (error[:500], item.seq)
            )
        )

    def has_backlog(self, agency: str) -> bool:
        """Whether items for `agency` are waiting (so a new one must queue behind them)."""
        return agency in self._backlog

    def backlogged(self) -> list[AgencyId]:
        """The agencies with pending items."""
        return [AgencyId(a) for a in self._backlog]

    def pending(self, agency: str | None = None, *, limit: int | None = None) -> list[OutboxItem]:
        """Pending items (of `agency`, if given), oldest first."""
        where, args = ("delivered IS NULL AND agency = ?", [agency]) if agency else ("delivered IS NULL", [])
        return self._select(where, args, limit)

    def items(self) -> list[OutboxItem]:
        """Every item, delivered or not, oldest first."""
        return self._select("1", [], None)

    def counts(self) -> OutboxCounts:
        (pending, delivered) = self._reader.execute(
            "SELECT count(*) - count(delivered), count(delivered) FROM outbox"
        ).fetchone()
        return OutboxCounts(int(pending), int(delivered))

    def _select(self, where: str, args: list[Any], limit: int | None) -> list[OutboxItem]:
        sql = f"SELECT * FROM outbox WHERE {where} ORDER BY seq"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [OutboxItem(*row) for row in self._reader.execute(sql, args)]

    async def aclose(self) -> None:
        """Wait for writes in flight, then close."""
        if self._flusher is not None:
            await self._flusher
        self._executor.shutdown(wait=True)
        self._writer.close()
        self._reader.close()

    async def _write(self, op: _Op) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((op, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                results = await loop.run_in_executor(self._executor, _commit, self._writer, [op for op, _ in batch])
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)


def _connect(path: Path, *, check_same_thread: bool) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=check_same_thread)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


def _commit(conn: sqlite3.Connection, ops: list[_Op]) -> list[Any]:
    """Run `ops` in one transaction (one fsync for all of them): the group commit."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        results = [op(conn) for op in ops]
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return results


Deliver = Callable[[AgencyId, bytes], Awaitable[None]]


class Redelivery:
    """The background task that empties the outbox as agencies come back.

    `deliver(agency, forward_bytes)` must raise when the agency did not take the item. Each
    agency with a backlog is drained by one task, oldest first; after a failure that agency
    waits `initial` seconds, doubling up to `maximum`, before it is tried again.
    """

    def __init__(
        self,
        outbox: Outbox,
        deliver: Deliver,
        *,
        initial: float,
        maximum: float,
        batch: int = DEFAULT_BATCH,
    ) -> None:
        self._outbox = outbox
        self._deliver = deliver
        self._initial, self._maximum, self._batch = initial, maximum, batch
        self._backoff: dict[AgencyId, float] = {}
        self._next_try: dict[AgencyId, float] = {}
        self._draining: dict[AgencyId, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the background task on the running loop."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    def wake(self) -> None:
        """Look at the outbox now (e.g. after a put) rather than at the next poll."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop retrying; items in flight finish or stay pending (never lost)."""
        tasks = [t for t in (self._task, *self._draining.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            for agency in self._outbox.backlogged():
                if agency not in self._draining and self._next_try.get(agency, 0.0) <= now:
                    self._draining[agency] = loop.create_task(self._drain(agency))
            # with a backlog, look again soon: items put since this pass may be for a new agency
            idle = self._initial if self._outbox.backlogged() else self._maximum
            waiting = [t for a, t in self._next_try.items() if a not in self._draining and t > now]
            soonest = min(waiting, default=now + idle)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.01, min(soonest - now, idle)))

    async def _drain(self, agency: AgencyId) -> None:
        try:
            while items := self._outbox.pending(agency, limit=self._batch):
                for item in items:
                    if not await self._attempt(item):
                        return
            self._backoff.pop(agency, None)
            self._next_try.pop(agency, None)
        finally:
            del self._draining[agency]

    async def _attempt(self, item: OutboxItem) -> bool:
        try:
            await self._deliver(item.agency, item.forward)
        except Exception as exc:  # any failure: keep the item, back off this agency
            delay = min(self._backoff.get(item.agency, self._initial / 2) * 2, self._maximum)
            self._backoff[item.agency] = delay
            self._next_try[item.agency] = asyncio.get_running_loop().time() + delay
            await self._outbox.note_failure(item, f"{type(exc).__name__}: {exc}")
            self.wake()  # so the run loop recomputes its timeout
            return False
        await self._outbox.mark_delivered(item)
        return True
