"""What judges an answer, and the counts of a campaign.

`Result` is what one case got and the first check it failed; `Tally` counts them. An answer
must come within CASE_DEADLINE_S (`_bounded`), be OK or a specific refusal that says what was
wrong (`refusal_problem`), and an exchange handled by the pipeline must have exactly its one
audit record (`_check_answer`, `_growth_problem`). Whether a message is handled anew or
answered again from the core's exactly-once register is for loadtests.fuzz.register to say.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from crossroads.audit import AuditLog
from crossroads.audit_record import AuditRecord
from crossroads.outcomes import AuditOutcome
from crossroads.server import DEFAULT_MAX_MESSAGE_BYTES
from crossroads.validation import MAX_MESSAGE_ID
from loadtests.fuzz.cases import Case
from protos import messages_pb2 as pb

CASE_DEADLINE_S = 20.0  # no answer by then is a hang (a forward has 2 s; a batch shares 2 cores)
FORWARD_DEADLINE_S = 2.0
MAX_EXAMPLES_KEPT = 20  # problem descriptions kept in the summary
EXAMPLES_PER_CATEGORY = 4
UNSPECIFIC = frozenset({"UNKNOWN", "INTERNAL"})
# What a refusal's message must look like: it names the field, the rule or the limit
_SAYS_WHAT = {
    "INVALID_ARGUMENT": re.compile(r"invalid [a-z_][\w.\[\]]*( \(or [\w.\[\]]+\))?: \S"),
    "PERMISSION_DENIED": re.compile(r"denied by rule [a-z_]+: \S"),
    "FAILED_PRECONDITION": re.compile(r"not routable, rule [a-z_]+: \S"),
    "UNAUTHENTICATED": re.compile(r"client certificate|certificate serial \S+ revoked"),
    "RESOURCE_EXHAUSTED": re.compile(
        r"larger than max \(\d+ vs\. \d+\)|rate limit of .+ exceeded \(|exchanges in flight, its quota; retry after"
    ),
    "UNAVAILABLE": re.compile(r"the core is overloaded \(\d+ exchanges in flight\); retry after|audit log unavailable"),
}
_HOST_SAYS_WHAT = {
    "PERMISSION_DENIED": re.compile(r"only 'core' may deliver; caller is "),
    "NOT_FOUND": re.compile(r"agency .* is not served by this host"),
    "INVALID_ARGUMENT": re.compile(
        r"(Forward|Envelope|ConsultationRequest) does not parse: \S|kind -?\d+|message_id|"
        r"subject_niss|audit_index \d+"
    ),
}


@dataclass(frozen=True, slots=True)
class Result:
    """What one case got: `status` ("OK", a gRPC status name, "HANG", "CRASH", "REFUSED_AT_HANDSHAKE",
    "ACCEPTED"), and the first check it failed (`problem`, with its `category`), if any."""

    status: str
    problem: str | None = None
    category: str | None = None
    audited_refusal: bool = False  # a refusal whose audit record was found and checked
    replayed: bool = False  # answered again from the exactly-once register, and checked to be the first answer


@dataclass
class Tally:
    """Counts of a campaign: cases by target and status, problems by category, a few examples."""

    by_target: dict[str, Counter[str]] = field(default_factory=dict)
    by_label: dict[str, Counter[str]] = field(default_factory=dict)
    problems: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    refused_and_audited: int = 0
    replays_checked: int = 0
    replays_by_label: Counter[str] = field(default_factory=Counter)  # target/label -> replays checked
    checks: dict[str, Any] = field(default_factory=dict)  # canaries, audit verification, atheris

    def add(self, target: str, label: str, result: Result) -> None:
        self.by_target.setdefault(target, Counter())[result.status] += 1
        self.by_label.setdefault(f"{target}/{label}", Counter())[result.status] += 1
        self.refused_and_audited += result.audited_refusal
        self.replays_checked += result.replayed
        if result.replayed:
            self.replays_by_label[f"{target}/{label}"] += 1
        if result.problem is not None:
            self.problem(result.category or "other", f"{target}/{label}: {result.problem}")

    def problem(self, category: str, text: str) -> None:
        self.problems[category] += 1
        if self.problems[category] <= EXAMPLES_PER_CATEGORY and len(self.examples) < MAX_EXAMPLES_KEPT:
            self.examples.append(f"[{category}] {text[:600]}")

    @property
    def cases(self) -> int:
        return sum(sum(c.values()) for c in self.by_target.values())

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> dict[str, Any]:
        """The JSON summary `crossroads fuzz` prints."""
        by_status: Counter[str] = Counter()
        for counts in self.by_target.values():
            by_status.update(counts)
        return {
            "cases": self.cases,
            "by_target": {t: dict(sorted(c.items())) for t, c in self.by_target.items()},
            "by_status": dict(sorted(by_status.items())),
            "crashes": self.problems["crash"],
            "hangs": self.problems["hang"],
            "unspecific": self.problems["unspecific"],
            "refused_unaudited": self.problems["unaudited"],
            "refused_and_audited": self.refused_and_audited,
            "replays_checked": self.replays_checked,
            "replays_by_case": dict(sorted(self.replays_by_label.items())),
            "problems": dict(sorted(self.problems.items())),
            "examples": self.examples,
            "checks": self.checks,
            "by_case": {k: dict(sorted(c.items())) for k, c in sorted(self.by_label.items())},
        }


def refusal_problem(code: str, message: str, says_what: dict[str, re.Pattern[str]] | None = None) -> str | None:
    """None if a refusal with status `code` and `message` is specific and says what was wrong.

    UNKNOWN and INTERNAL are never specific. With `says_what` (status name -> pattern; default:
    the core's Exchange), a message for a status listed there must match its pattern; any other
    status needs a non-empty message.
    """
    if code in UNSPECIFIC:
        return f"unspecific status {code}: {message[:200]!r}"
    if not message.strip():
        return f"{code} with an empty message"
    pattern = (says_what if says_what is not None else _SAYS_WHAT).get(code)
    if pattern is not None and not pattern.search(message):
        return f"{code} message does not say what was wrong: {message[:200]!r}"
    return None


def refusal_result(answer: _Answer, says_what: dict[str, re.Pattern[str]] | None = None) -> Result:
    """The verdict on a refusal (`refusal_problem`, `says_what` as there): no problem, or an
    "unspecific" one (UNKNOWN, INTERNAL), or a "vague" one (the message does not say what was wrong)."""
    problem = refusal_problem(answer.status, answer.message, says_what)
    return Result(
        answer.status, problem, ("unspecific" if answer.status in UNSPECIFIC else "vague") if problem else None
    )


@dataclass(frozen=True, slots=True)
class _Answer:
    """An exchange's answer, one shape for in-process and socket calls."""

    status: str
    message: str = ""
    audit_index: int | None = None
    reply: pb.ExchangeReply | None = None
    body: bytes = b""  # the ExchangeReply's bytes as the sender got them (OK only)

    @property
    def index(self) -> int | None:
        """The audit record the answer names: the reply's, or the refusal's."""
        return self.reply.audit_index if self.reply is not None else self.audit_index


def _parsed(raw: bytes) -> pb.Envelope | None:
    try:
        return pb.Envelope.FromString(raw)
    except DecodeError:
        return None


def _record_problem(log: AuditLog, index: int, case: Case, outcome: str) -> str | None:
    """What is wrong with record `index` for `case` answered with `outcome`, if anything."""
    try:
        record = AuditRecord.from_leaf(log.leaf(index))
    except Exception as exc:
        return f"audit record {index} unreadable: {exc!r}"
    env = _parsed(case.raw)
    expected_id = env.message_id[:MAX_MESSAGE_ID] if env is not None else ""
    if record.outcome != outcome:
        return f"audit record {index} says {record.outcome}, the answer {outcome}"
    if record.sender != (case.peer or ""):
        return f"audit record {index} names sender {record.sender!r}, the certificate {case.peer!r}"
    if record.message_id != expected_id:
        return f"audit record {index} has message id {record.message_id[:40]!r}, not {expected_id[:40]!r}"
    claimed = env.sender if env is not None and case.peer is not None else ""
    if claimed not in ("", case.peer) and "claimed sender" not in record.detail:
        return f"audit record {index} does not note the forged sender field {claimed[:40]!r}"
    return None


def _check_answer(log: AuditLog, case: Case, answer: _Answer) -> Result:
    status = answer.status
    if status in ("HANG", "CRASH"):
        return Result(status, answer.message, status.lower())
    if status == "OK":
        reply = answer.reply
        assert reply is not None
        env = _parsed(case.raw)
        if env is not None and reply.message_id != env.message_id:
            return Result(status, f"reply names message {reply.message_id[:40]!r}", "reply")
        problem = _record_problem(log, reply.audit_index, case, pb.Outcome.Name(reply.outcome))
        return Result(status, problem, "audit" if problem else None)
    if status == "RESOURCE_EXHAUSTED" and len(case.raw) > DEFAULT_MAX_MESSAGE_BYTES:
        return refusal_result(answer)  # gRPC refused it before the core saw it: nothing audited
    refused = refusal_result(answer)
    if refused.problem is not None:
        return refused
    # the outcome the refusal must be audited with (crossroads.outcomes; RESOURCE_EXHAUSTED and
    # UNAVAILABLE: the core's admission control, UNAUTHENTICATED also a revoked certificate)
    code = grpc.StatusCode.__members__.get(status)
    outcome = AuditOutcome.of_refusal(code) if code is not None else None
    if outcome is None:
        return Result(status, f"unexpected refusal {status}: {answer.message[:200]!r}", "unexpected")
    if answer.audit_index is None:
        return Result(status, f"refusal without an audit index: {answer.message[:200]!r}", "unaudited")
    problem = _record_problem(log, answer.audit_index, case, outcome)
    return Result(status, problem, "audit" if problem else None, audited_refusal=problem is None)


def _growth_problem(keys: Sequence[Hashable | None], answers: Sequence[_Answer], before: int, after: int) -> str | None:
    """The batch's answers must name exactly the records it added, and no two messages one record.

    `keys[i]` is case i's exactly-once key (cases.key_of): answers of the same key may name the
    same record; a case without a key (None) is a message of its own.
    """
    named: dict[int, set[Hashable]] = {}
    for i, (key, answer) in enumerate(zip(keys, answers, strict=True)):
        index = answer.index
        if index is not None:
            named.setdefault(index, set()).add(("case", i) if key is None else key)
    new = {i for i in named if i >= before}
    if new != set(range(before, after)):
        return f"audit grew from {before} to {after}, the answers name {sorted(new)[:10]}"
    shared = [i for i, who in named.items() if len(who) > 1]
    if shared:
        return f"different messages were answered with the same audit index {shared[:5]}"
    return None


async def _bounded(call: Any, deadline: float) -> _Answer:
    """Run `call` (a coroutine giving an _Answer) under `deadline`: HANG or CRASH instead of raising."""
    try:
        answer: _Answer = await asyncio.wait_for(call, deadline)
    except TimeoutError:
        return _Answer("HANG", f"no answer within {deadline} s")
    except Exception as exc:
        return _Answer("CRASH", f"{type(exc).__name__}: {exc}"[:400])
    return answer


async def answers_to(
    one: Callable[[Case], Awaitable[_Answer]], cases: Sequence[Case], deadline: float, *, sequential: bool
) -> list[_Answer]:
    """The answer `one` gives each of `cases`, each under `deadline` (`_bounded`): one case after
    another, or all at once."""
    if sequential:
        return [await _bounded(one(c), deadline) for c in cases]
    return list(await asyncio.gather(*(_bounded(one(c), deadline) for c in cases)))


def outcome_of(answer: _Answer) -> str:
    """What a canary consultation came to: its reply's outcome ("DELIVERED", ...), else "STATUS: message"."""
    return pb.Outcome.Name(answer.reply.outcome) if answer.reply is not None else f"{answer.status}: {answer.message}"


def _with_batch_problems(results: list[Result], problems: Sequence[tuple[str, str]]) -> list[Result]:
    """Pin problems seen for the batch as a whole on its first result that has none (or append
    them, status "BATCH", when every case has one already: those are not cases)."""
    out = list(results)
    for category, text in problems:
        for i, r in enumerate(out):
            if r.problem is None:
                out[i] = dataclasses.replace(r, problem=text, category=category)
                break
        else:
            out.append(Result("BATCH", text, category))
    return out
