"""Exactly once, from the sender's side: a message id sent twice is processed once, answered the same.

The key is (authenticated sender, message id): the message id is the sender's idempotency
key (protos/messages.proto). The first answer is committed with the exchange's audit record
(crossroads.journal), so it survives a crash of the core; this register remembers, in memory,
which audit record holds the answer of each of the latest `window` keys, and which keys are
being handled right now:
- a key being handled: the second call waits for the first's answer and gets the same;
- a key answered before: the stored answer is read back (with the same audit index);
- a key older than the window is not recognised: senders resend within the window
  (crossroads.journal.ANSWER_WINDOW records; minutes at full load, hours at normal load).

Memory is allocated up front for the whole window (placeholder entries that are replaced
one by one), so a long run does not grow as the window fills.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Protocol

from crossroads.journal import ANSWER_WINDOW, StoredAnswer

__all__ = ["AnswerSource", "Idempotency", "Key"]

Key = tuple[str, str]  # (sender, message id)


class AnswerSource(Protocol):
    """Where committed answers are read back: the audit log (crossroads.audit.AuditLog)."""

    def answer_at(self, index: int) -> StoredAnswer | None: ...
    def recent_answers(self, limit: int) -> list[tuple[int, str, str]]: ...


class Idempotency:
    """The register of answered and in-flight keys. One per core; use from its event loop."""

    def __init__(self, source: AnswerSource, *, window: int = ANSWER_WINDOW) -> None:
        if window < 1:
            raise ValueError(f"the answer window must hold at least one message, got {window}")
        self._source = source
        # hash(key) -> audit index. A hash, not the key, keeps an entry at ~100 bytes; a
        # collision is caught when the stored answer's own key is compared (`answered`).
        self._index: dict[int, int] = {}
        self._order: deque[int] = deque()
        for k in range(window):  # placeholders (index -1): a real key with the same hash is only forgotten sooner
            self._index[-1 - k] = -1
            self._order.append(-1 - k)
        for index, sender, message_id in source.recent_answers(window):
            self._remember(hash((sender, message_id)), index)
        # key being handled -> the futures of the calls waiting for its answer. Most keys never
        # get a duplicate, so none is made until one does (a future per call cost ~0.5 us).
        self._inflight: dict[Key, list[asyncio.Future[object]]] = {}

    def answered(self, key: Key) -> StoredAnswer | None:
        """The committed answer to `key`, if it is within the window."""
        index = self._index.get(hash(key))
        if index is None or index < 0:
            return None
        stored = self._source.answer_at(index)
        if stored is None or (stored.sender, stored.message_id) != key:
            return None  # pruned, or another key with the same hash
        return stored

    def waiter(self, key: Key) -> asyncio.Future[object] | None:
        """If `key` is being handled right now, a future that gets its answer (see `end`); else None."""
        waiting = self._inflight.get(key)
        if waiting is None:
            return None
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        waiting.append(future)
        return future

    def begin(self, key: Key) -> None:
        """Mark `key` as being handled; then call `end` or `fail` once."""
        self._inflight[key] = []

    def end(self, key: Key, result: object, index: int | None) -> None:
        """`key` was answered with `result`; `index` is the record that holds it (None: not stored)."""
        for future in self._inflight.pop(key):  # first: whatever happens next, no waiter is left hanging
            if not future.done():
                future.set_result(result)
        if index is not None:
            self._remember(hash(key), index)

    def fail(self, key: Key, error: BaseException) -> None:
        """Handling `key` raised: its waiters get the same error; nothing is remembered."""
        for future in self._inflight.pop(key):
            if not future.done():
                future.set_exception(error)
                future.exception()  # retrieved: a waiter that went away must not log "never retrieved"

    def _remember(self, hashed: int, index: int) -> None:
        if hashed not in self._index:
            self._index.pop(self._order.popleft(), None)
            self._order.append(hashed)
        self._index[hashed] = index
