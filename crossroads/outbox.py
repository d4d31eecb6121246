"""The outbox: what the core owes to agencies that are down, kept durably until delivered.

Store-and-forward for declarations and mutations (consultations are synchronous and never
queued). Each item is the exact `Forward` bytes the core would have sent; a redelivery is
byte-for-byte the delivery that failed, with the audit index of the exchange filled in.

Contracts:
- Parcels enter the outbox only through the audit writer, in the same transaction as their
  exchange's audit record (crossroads.journal): an acknowledged exchange is audited and owed,
  or neither. The table lives in STATE/audit.sqlite.
- Per agency, items are delivered in the order the core decided to queue them (`ticket`, from
  `reserve`), one at a time; while an agency has items reserved or pending, `has_backlog`
  tells the core to queue new ones behind them rather than overtake them.
- Nothing is dropped silently: an item leaves the pending set when it is delivered, or when it
  has been undeliverable for `dead_after` seconds; it is then *dead* (a dead letter), listed
  by `crossroads outbox dead` and put back by `crossroads outbox replay`. A dead item no longer
  holds back the items queued after it.
- Writes (delivered, failed attempt, dead) run on one worker thread, group-committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import sqlite3
import sys
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crossroads.audit import AUDIT_DB
from crossroads.audit_store import transaction
from crossroads.domain import AgencyId
from crossroads.journal import SCHEMA, Parcel
from crossroads.write_gate import gate_for

__all__ = [
    "DEFAULT_BATCH",
    "DEFAULT_DEAD_AFTER",
    "DEFAULT_RETRY_INITIAL",
    "DEFAULT_RETRY_MAX",
    "Outbox",
    "OutboxCounts",
    "OutboxItem",
    "Parcel",
    "Redelivery",
    "backoff_after",
    "look_again_in",
    "outbox_path",
    "read_counts",
    "read_items",
    "replay_dead",
]

DEFAULT_BATCH = 100  # items read per agency per pass
DEFAULT_DEAD_AFTER = 24 * 3600.0  # seconds an item may stay undeliverable before it is a dead letter
DEFAULT_RETRY_INITIAL = 0.2  # seconds before the outbox retries an agency that is down
DEFAULT_RETRY_MAX = 5.0  # the retry delay doubles up to this; also the idle poll (see Redelivery)
_MIN_LOOK_S = 0.01  # the shortest the redelivery loop sleeps between two looks

_COLUMNS = "seq, ticket, agency, message_id, forward, audit_index, accepted, attempts, last_error, delivered, dead"
_PENDING = "delivered IS NULL AND dead IS NULL"
_Op = Callable[[sqlite3.Connection], Any]


def outbox_path(state_dir: Path) -> Path:
    """The file that holds the outbox of the core whose state folder is `state_dir`."""
    return Path(state_dir) / AUDIT_DB  # the outbox shares the audit store: see crossroads.journal


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A parcel as the outbox holds it."""

    seq: int
    ticket: int
    agency: AgencyId
    message_id: str
    forward: bytes  # the Forward without its audit index: see `with_index`
    audit_index: int
    accepted: str  # ISO time it was committed
    attempts: int
    last_error: str
    delivered: str | None  # ISO time it was delivered; None while pending
    dead: str | None  # ISO time it became a dead letter; None unless dead

    def with_index(self) -> bytes:
        """The Forward bytes to send: the stored ones with audit_index (field 4) appended.

        Protobuf keeps the last value of a scalar field it reads, so appending the field is
        the same as setting it, without parsing and re-encoding the envelope inside.
        """
        return self.forward + b"\x20" + _varint(self.audit_index)


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


@dataclass(frozen=True, slots=True)
class OutboxCounts:
    pending: int
    delivered: int
    dead: int = 0


class Outbox:
    """The durable outbox in the audit store. Use from one event loop."""

    def __init__(self, path: Path, clock: Callable[[], dt.datetime], dead_after: float) -> None:
        self._clock = clock
        self._dead_after = dt.timedelta(seconds=dead_after)
        # the writer connection is used only on the worker thread after this constructor
        self._writer = _connect(path, check_same_thread=False)
        self._writer.executescript(SCHEMA)
        self._gate = gate_for(path)  # the audit writer commits to the same file (crossroads/write_gate.py)
        self._reader = _connect(path, check_same_thread=True)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        self._queue: list[tuple[_Op, asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._reserved: Counter[str] = Counter()  # queued by the core, not yet committed
        self._backlog: Counter[str] = Counter()  # committed and pending
        (last,) = self._reader.execute("SELECT COALESCE(MAX(ticket), 0) FROM outbox").fetchone()
        self._tickets = itertools.count(int(last) + 1)
        self.refresh()

    @classmethod
    def open(
        cls, path: Path, *, clock: Callable[[], dt.datetime] | None = None, dead_after: float = DEFAULT_DEAD_AFTER
    ) -> Outbox:
        """The outbox in the store at `path` (see `outbox_path`), its table created if missing.

        `clock` stamps delivered and dead times (UTC now); `dead_after` is in seconds.
        """
        return cls(path, clock or (lambda: dt.datetime.now(dt.UTC)), dead_after)

    # ------------------------------------------------------------------ the core's side
    def reserve(self, agency: AgencyId) -> int:
        """Count a parcel for `agency` as owed from now on; return its ticket (its place in line)."""
        self._reserved[agency] += 1
        return next(self._tickets)

    def settle(self, parcels: Sequence[Parcel], *, committed: bool) -> None:
        """The reserved `parcels` were committed with their exchange (or, if not, never will be)."""
        for p in parcels:
            _decrement(self._reserved, p.agency)
            if committed:
                self._backlog[p.agency] += 1

    def has_backlog(self, agency: str) -> bool:
        """Whether items for `agency` are waiting (so a new one must queue behind them)."""
        return agency in self._backlog or agency in self._reserved

    def backlogged(self) -> list[AgencyId]:
        """The agencies with committed pending items."""
        return [AgencyId(a) for a in self._backlog]

    def refresh(self) -> None:
        """Recount the committed pending items from the store (e.g. after an operator's replay)."""
        rows = self._reader.execute(f"SELECT agency, count(*) FROM outbox WHERE {_PENDING} GROUP BY agency")
        self._backlog = Counter(dict(rows.fetchall()))

    # ------------------------------------------------------------------ redelivery's side
    async def mark_delivered(self, item: OutboxItem) -> None:
        """Record that `item` was delivered (committed on return); it is no longer pending."""
        when = self._clock().isoformat()
        await self._write(
            lambda c: c.execute(
                f"UPDATE outbox SET delivered = ?, attempts = attempts + 1 WHERE seq = ? AND {_PENDING}",
                (when, item.seq),
            )
        )
        _decrement(self._backlog, item.agency)

    async def note_failure(self, item: OutboxItem, error: str) -> bool:
        """Record a failed attempt at `item`; True if that made it a dead letter (undeliverable too long)."""
        now = self._clock()
        dead = now - dt.datetime.fromisoformat(item.accepted) >= self._dead_after
        await self._write(
            lambda c: c.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, dead = ? WHERE seq = ?",
                (error[:500], now.isoformat() if dead else None, item.seq),
            )
        )
        if dead:
            _decrement(self._backlog, item.agency)
        return dead

    # ------------------------------------------------------------------ reading
    def pending(self, agency: str | None = None, *, limit: int | None = None) -> list[OutboxItem]:
        """Pending items (of `agency`, if given), in delivery order."""
        where, args = (f"{_PENDING} AND agency = ?", [agency]) if agency else (_PENDING, [])
        return self._select(where, args, limit)

    def dead(self, agency: str | None = None) -> list[OutboxItem]:
        """Dead letters (of `agency`, if given), in delivery order."""
        where, args = ("dead IS NOT NULL AND agency = ?", [agency]) if agency else ("dead IS NOT NULL", [])
        return self._select(where, args, None)

    def items(self) -> list[OutboxItem]:
        """Every item, delivered, pending or dead, in delivery order."""
        return self._select("1", [], None)

    def counts(self) -> OutboxCounts:
        return _counts(self._reader)

    def _select(self, where: str, args: list[Any], limit: int | None) -> list[OutboxItem]:
        return _select(self._reader, where, args, limit)

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
                ops = [op for op, _ in batch]
                results = await loop.run_in_executor(self._executor, _commit, self._writer, ops, self._gate)
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)


def replay_dead(path: Path, *, agency: str | None = None, seqs: Sequence[int] = ()) -> int:
    """Put dead letters back in line (all, or those of `agency`, or the given `seqs`); return how many.

    Safe while the core runs: its redelivery recounts the store periodically and picks them up.
    Replayed items keep their ticket, so they go before what was queued after them.
    """
    where, args = "dead IS NOT NULL", []
    if agency is not None:
        where, args = where + " AND agency = ?", [agency]
    if seqs:
        where += f" AND seq IN ({','.join('?' * len(seqs))})"
        args.extend(str(s) for s in seqs)
    conn = _connect(path, check_same_thread=True)
    try:
        (count,) = _commit(conn, [lambda c: c.execute(f"UPDATE outbox SET dead = NULL WHERE {where}", args).rowcount])
        return int(count)
    finally:
        conn.close()


def read_items(path: Path, *, state: str = "pending", agency: str | None = None) -> list[OutboxItem]:
    """Items of the store at `path` in `state` ("pending", "dead", "delivered" or "all"), read-only."""
    where = {"pending": _PENDING, "dead": "dead IS NOT NULL", "delivered": "delivered IS NOT NULL", "all": "1"}[state]
    args: list[Any] = []
    if agency is not None:
        where, args = f"({where}) AND agency = ?", [agency]
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return _select(conn, where, args, None)
    except sqlite3.OperationalError:
        return []  # a store without an outbox table owes nothing
    finally:
        conn.close()


def read_counts(path: Path) -> OutboxCounts:
    """The counts of the store at `path`, read-only."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return _counts(conn)
    except sqlite3.OperationalError:
        return OutboxCounts(0, 0, 0)
    finally:
        conn.close()


def _select(conn: sqlite3.Connection, where: str, args: list[Any], limit: int | None) -> list[OutboxItem]:
    sql = f"SELECT {_COLUMNS} FROM outbox WHERE {where} ORDER BY agency, ticket"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return [OutboxItem(*row) for row in conn.execute(sql, args)]


def _counts(conn: sqlite3.Connection) -> OutboxCounts:
    pending, delivered, dead = conn.execute(
        f"SELECT count(*) FILTER (WHERE {_PENDING}), count(delivered), count(dead) FROM outbox"
    ).fetchone()
    return OutboxCounts(int(pending), int(delivered), int(dead))


def _decrement(counter: Counter[str], key: str) -> None:
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]


def _connect(path: Path, *, check_same_thread: bool) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=check_same_thread)
    conn.execute("PRAGMA busy_timeout=10000")  # the audit writer commits to the same file
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


def _commit(conn: sqlite3.Connection, ops: list[_Op], gate: threading.Lock | None = None) -> list[Any]:
    """Run `ops` in one transaction (one fsync for all of them): the group commit; inside the
    file's `gate` when given (the core's writers of the file queue: crossroads/write_gate.py)."""
    with transaction(conn, gate):
        return [op(conn) for op in ops]


Deliver = Callable[[AgencyId, bytes], Awaitable[None]]


def backoff_after(previous: float | None, initial: float, maximum: float) -> float:
    """Seconds before an agency is tried again after a failed attempt, the last delay having been
    `previous` (None: none yet): `initial`, then doubling up to `maximum`."""
    return min((initial / 2 if previous is None else previous) * 2, maximum)


def look_again_in(now: float, next_tries: Iterable[float], owed: bool, initial: float, maximum: float) -> float:
    """Seconds the redelivery loop sleeps before it looks again: until the soonest of `next_tries`
    (of the agencies not being drained) still ahead falls due, but at most `initial` while parcels
    are owed (they may be a new agency's) and `maximum` while none is."""
    idle = initial if owed else maximum
    soonest = min((t for t in next_tries if t > now), default=now + idle)
    return max(_MIN_LOOK_S, min(soonest - now, idle))


class Redelivery:
    """The background task that empties the outbox as agencies come back.

    `deliver(agency, forward_bytes)` must raise when the agency did not take the item. Each
    agency with a backlog is drained by one task, in ticket order; after a failure that agency
    waits `initial` seconds, doubling up to `maximum`, before it is tried again. An item that
    fails after `dead_after` seconds in the outbox becomes a dead letter and the next one is
    tried. Every `maximum` seconds the counts are re-read from the store, so that dead letters an
    operator replayed (`crossroads outbox replay`) are picked up without a restart.
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
        refreshed = loop.time()
        while True:
            now = loop.time()
            if now - refreshed >= self._maximum:
                self._outbox.refresh()
                refreshed = now
            for agency in self._outbox.backlogged():
                if agency not in self._draining and self._next_try.get(agency, 0.0) <= now:
                    self._draining[agency] = loop.create_task(self._drain(agency))
            # with a backlog, look again soon: items put since this pass may be for a new agency
            sleep = look_again_in(now, (t for a, t in self._next_try.items() if a not in self._draining),
                                  bool(self._outbox.backlogged()), self._initial, self._maximum)  # fmt: skip
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=sleep)

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
            await self._deliver(item.agency, item.with_index())
        except Exception as exc:  # any failure: keep the item, back off this agency
            self._back_off(item.agency)
            try:
                if await self._outbox.note_failure(item, f"{type(exc).__name__}: {exc}"):
                    self._backoff.pop(item.agency, None)
                    self._next_try.pop(item.agency, None)
                    return True  # a dead letter now: it no longer holds back the next item
            except Exception as store:  # e.g. a full disk: the item stays pending as it was
                print(f"outbox: could not record a failed delivery to {item.agency}: {store}", file=sys.stderr)
            return False
        try:
            await self._outbox.mark_delivered(item)
        except Exception as exc:  # delivered but not marked: it is sent again later, and the agency dedupes
            print(f"outbox: could not mark a delivery to {item.agency}: {exc}", file=sys.stderr)
            self._back_off(item.agency)
            return False
        return True

    def _back_off(self, agency: AgencyId) -> None:
        delay = backoff_after(self._backoff.get(agency), self._initial, self._maximum)
        self._backoff[agency] = delay
        self._next_try[agency] = asyncio.get_running_loop().time() + delay
        self.wake()  # so the run loop recomputes its timeout
