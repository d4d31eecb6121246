"""The fuzz's model of the core's exactly-once register: which answer each sent message must get.

The core (crossroads.exchange, crossroads.idempotency) keys messages by (authenticated sender,
message id) (`cases.key_of`). Seen from outside, per key:
- answered before and remembered: a resend gets the identical answer (status, message, audit
  index; for OK the same ExchangeReply bytes) and adds no audit record;
- not remembered (never sent, or its answers were all transient): handled anew, with one new
  audit record at the index its answer names;
- being handled: a concurrent duplicate gets the first's answer; the model needs no case of its
  own for it, since the first answer is remembered by the time the next case is judged.
Remembered are answers OK and refusals with an audit index, except those decided before the
key is looked at (`BEFORE_THE_KEY`: admission control, revocation, gRPC's own size limit), which
are judged one by one wherever they come. A case without a key is always handled anew. A key
that hung or crashed, or whose answer is older than the core's window, becomes uncertain: it
may be answered again or handled anew, and either is accepted.

`Register.judge` walks a batch in order (the order the cases were sent; for a concurrent batch
any order gives the same expectations, since duplicates get identical answers) and returns one
`Result` per case; a replay that got its first answer is `Result.replayed`.
"""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Sequence

from crossroads.audit import AuditLog
from crossroads.audit_record import AuditRecord
from crossroads.journal import ANSWER_WINDOW
from crossroads.validation import MAX_MESSAGE_ID
from loadtests.fuzz.cases import Case, Key, _History, key_of
from loadtests.fuzz.checks import Result, _Answer, _check_answer, _growth_problem

__all__ = ["BEFORE_THE_KEY", "Register"]

# Refusals decided before the core looks at the key: each is one audited refusal of its own (or,
# RESOURCE_EXHAUSTED past gRPC's size limit, none), never remembered and never replayed.
BEFORE_THE_KEY = frozenset({"RESOURCE_EXHAUSTED", "UNAVAILABLE", "UNAUTHENTICATED"})
RECENT_KEYS = 4_096  # remembered keys a `reused_id` case may pick from


class Register:
    """What the core must remember, per key, of one target's exchanges; `window` as the core's."""

    def __init__(self, window: int = ANSWER_WINDOW) -> None:
        self.window = window
        self._stored: dict[Key, _Answer] = {}  # in the order they were answered
        self._uncertain: set[Key] = set()
        self._recent: deque[Key] = deque(maxlen=RECENT_KEYS)

    def remembered(self, k: int) -> Key | None:
        """One of the recently remembered keys (k modulo their number), None if there is none."""
        return self._recent[k % len(self._recent)] if self._recent else None

    def judge_batch(
        self, log: AuditLog, history: _History, cases: Sequence[Case], answers: Sequence[_Answer], before: int
    ) -> tuple[list[Result], str | None]:
        """`judge` the answers to the exchanges `cases` (keyed by `key_of`), remember the cases in
        `history` (for replays), and say what is wrong with how the log grew over the batch (None: nothing)."""
        keys = [key_of(c) for c in cases]
        results = self.judge(log, cases, answers, keys, before)
        history.remember(cases)
        return results, _growth_problem(keys, answers, before, log.size)

    def judge(
        self, log: AuditLog, cases: Sequence[Case], answers: Sequence[_Answer], keys: Sequence[Key | None], before: int
    ) -> list[Result]:
        """Judge the answers of a batch sent when the log held `before` records; update the model."""
        self._forget_before(log.size - self.window)  # the batch's own records may have pushed keys out
        results = []
        for case, answer, key in zip(cases, answers, keys, strict=True):
            if key is None or answer.status in BEFORE_THE_KEY:
                results.append(_check_answer(log, case, answer))
            elif answer.status in ("HANG", "CRASH"):
                self._stored.pop(key, None)
                self._uncertain.add(key)
                results.append(_check_answer(log, case, answer))
            elif key in self._stored:
                results.append(_replay_result(log, key, answer, self._stored[key]))
            else:
                same = zip(cases, answers, keys, strict=True)
                group = [c for c, a, k in same if k == key and a.index == answer.index]
                results.append(self._handled(log, key, group, answer, before))
        return results

    def _handled(self, log: AuditLog, key: Key, group: Sequence[Case], answer: _Answer, before: int) -> Result:
        """A key not remembered: handled anew (a new record), or, if uncertain, perhaps answered again."""
        index = answer.index
        uncertain = key in self._uncertain
        if uncertain and index is not None and index < before:  # answered again: stays uncertain (may age out)
            problem = _record_key_problem(log, key, index)
            return Result(answer.status, problem, "audit" if problem else None, audited_refusal=answer.status != "OK")
        if index is not None and index < before:
            return Result(
                answer.status,
                f"message {key[1][:40]!r} from {key[0]!r} was never answered, yet got record {index} "
                f"(before this batch's {before}): answered from a register that should not know it",
                "exactly_once",
            )
        checked = [_check_answer(log, c, answer) for c in group]  # the record may be any of the group's:
        result = next((r for r in checked if r.problem is None), checked[0])  # concurrent duplicates race
        if index is not None:
            self._stored[key] = answer
            self._recent.append(key)
            self._uncertain.discard(key)
        return result

    def _forget_before(self, oldest: int) -> None:
        """Keys answered before record `oldest` may have left the core's window: uncertain now."""
        while self._stored:
            key, answer = next(iter(self._stored.items()))
            if answer.index is not None and answer.index >= oldest:
                return
            del self._stored[key]
            self._uncertain.add(key)


def _replay_result(log: AuditLog, key: Key, answer: _Answer, first: _Answer) -> Result:
    """A remembered key sent again: the identical answer, naming the first record, which is the key's."""
    if _shown(answer) != _shown(first):
        return Result(
            answer.status,
            f"a resend of {key[1][:40]!r} from {key[0]!r} got {_said(answer)}, not its first answer {_said(first)}",
            "exactly_once",
        )
    assert first.index is not None  # only answers with a record are remembered
    problem = _record_key_problem(log, key, first.index)
    if problem is not None:
        return Result(answer.status, problem, "audit")
    return Result(answer.status, audited_refusal=answer.status != "OK", replayed=True)


def _shown(answer: _Answer) -> tuple[str, str, int | None, bytes]:
    """What the sender saw of an answer: status, message, audit index and reply bytes."""
    return answer.status, answer.message, answer.index, answer.body


def _said(answer: _Answer) -> str:
    return f"{answer.status} {answer.message[:80]!r} record {answer.index} (reply crc32 {zlib.crc32(answer.body):#x})"


def _record_key_problem(log: AuditLog, key: Key, index: int) -> str | None:
    """What is wrong with record `index` as the record of `key`'s first answer, if anything."""
    try:
        record = AuditRecord.from_leaf(log.leaf(index))
    except Exception as exc:
        return f"audit record {index} unreadable: {exc!r}"
    if (record.sender, record.message_id) != (key[0], key[1][:MAX_MESSAGE_ID]):
        found = f"{record.sender!r}'s {record.message_id[:40]!r}"
        return f"audit record {index} is {found}, not {key[0]!r}'s {key[1][:40]!r}"
    return None
