"""The in-process target: `Exchange.handle` over real stores, forwarding to the real agency host servicer."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc

from agencies.host import AgencyHost
from agencies.inbox import Inbox
from crossroads.audit import AuditLog
from crossroads.citizen import CitizenGate
from crossroads.directory import DirectoryStore
from crossroads.domain import AgencyId
from crossroads.exchange import Exchange, Refusal
from crossroads.forwarder import AgencyFailed, AgencyTimeout
from crossroads.journal import ANSWER_WINDOW
from crossroads.knowledge_io import load_knowledge
from crossroads.outbox import Outbox, outbox_path
from crossroads.pki import CORE
from loadtests.fuzz.cases import Batch, Case, _History, canary_case
from loadtests.fuzz.checks import (
    _HOST_SAYS_WHAT,
    CASE_DEADLINE_S,
    FORWARD_DEADLINE_S,
    Result,
    _Answer,
    _bounded,
    _with_batch_problems,
    answers_to,
    outcome_of,
    refusal_problem,
)
from loadtests.fuzz.register import Register
from loadtests.fuzz.world import FuzzWorld, _copy_world, vouched
from protos import messages_pb2 as pb


class _Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(code, details)
        self.code, self.details = code, details


class _CoreContext:
    """What AgencyHost.Deliver needs of a gRPC context: the caller is the core; abort raises."""

    def auth_context(self) -> dict[str, list[bytes]]:
        return {"x509_common_name": [CORE.encode()]}

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: Any = ()) -> None:
        raise _Aborted(code, details)


class _InProcessHost:
    """The forwarder port of an in-process Exchange: the real AgencyHost servicer, no socket.

    Records every (envelope, sender) it was given, and every way the host failed that is not a
    specific refusal (those are problems of the host: it must never crash on what the core sends).
    """

    def __init__(self, host: AgencyHost) -> None:
        self._host = host
        self.forwards: list[tuple[bytes, str]] = []
        self.problems: list[str] = []

    async def deliver_raw(self, destination: AgencyId, data: bytes, timeout: float) -> pb.AgencyReply:
        forward = pb.Forward.FromString(data)
        self.forwards.append((forward.envelope, forward.sender))
        try:
            return await asyncio.wait_for(self._host.Deliver(forward, _CoreContext()), timeout)
        except _Aborted as refused:
            problem = refusal_problem(refused.code.name, refused.details, _HOST_SAYS_WHAT)
            if problem is not None:
                self.problems.append(f"host refused a forward to {destination}: {problem}")
            raise AgencyFailed(destination, f"{refused.code.name}: {refused.details}") from None
        except TimeoutError:
            raise AgencyTimeout(destination, "DEADLINE_EXCEEDED: in-process host") from None
        except Exception as exc:
            self.problems.append(f"host crashed on a forward to {destination}: {exc!r}"[:400])
            raise AgencyFailed(destination, f"UNKNOWN: {exc!r}") from None


class ExchangeTarget:
    """`Exchange.handle` in-process over the real stores of `state` and the real agency host servicer.

    Its clock stands still at 09:00 UTC on the world's as_of date; the citizens' assertions in
    its `world` are issued by that clock. `answer_window` is the core's (None: ANSWER_WINDOW).
    """

    name = "exchange"

    def __init__(self, world: FuzzWorld, state: Path, *, answer_window: int | None = None) -> None:
        _copy_world(world, state)
        noon = dt.datetime.combine(world.as_of, dt.time(9, 0), dt.UTC)
        self.world, self.state, self.clock = vouched(world, noon.timestamp()), state, lambda: noon
        knowledge = load_knowledge(state / "knowledge.json")
        self.directory = DirectoryStore.open(state / "directory.sqlite")
        self.audit = AuditLog.open(state)
        self.outbox = Outbox.open(outbox_path(state), clock=lambda: noon)
        self.inbox = Inbox(state / "inbox.sqlite")
        self.host = _InProcessHost(AgencyHost(world.agencies, world.seed, self.inbox))
        self.exchange = Exchange(
            knowledge=knowledge,
            directory=self.directory,
            audit=self.audit,
            forwarder=self.host,
            outbox=self.outbox,
            clock=self.clock,
            forward_deadline=FORWARD_DEADLINE_S,
            answer_window=answer_window,
            citizen_gate=CitizenGate.load(state / "pki", knowledge),
        )
        self.history = _History.of_corpus(self.world)
        self.register = Register(answer_window or ANSWER_WINDOW)
        self._canaries = 0

    async def _one(self, case: Case) -> _Answer:
        result = await self.exchange.handle(case.raw, case.peer)
        if isinstance(result, Refusal):
            return _Answer(result.code.name, result.message, result.audit_index)
        return _Answer("OK", reply=result, body=result.SerializeToString())  # what the servicer sends

    async def run(self, batch: Batch) -> list[Result]:
        """Send `batch` (resolved: replays, reused and fresh ids) and judge every answer."""
        cases = self.history.resolve(batch.cases, self.register.remembered)
        before, self.host.forwards, self.host.problems = self.audit.size, [], []
        answers = await answers_to(self._one, cases, CASE_DEADLINE_S, sequential=batch.sequential)
        results, growth = self.register.judge_batch(self.audit, self.history, cases, answers, before)
        return _with_batch_problems(results, self._batch_problems(cases, growth))

    def _batch_problems(self, cases: Sequence[Case], growth: str | None) -> list[tuple[str, str]]:
        problems = [("host", p) for p in self.host.problems]
        if growth is not None:
            problems.append(("growth", growth))
        sent = {(c.raw, c.peer) for c in cases}
        forged = [(e, s) for e, s in self.host.forwards if (e, s) not in sent]
        if forged:
            problems.append(("forward", f"{len(forged)} forwards not as sent; sender {forged[0][1]!r}"))
        return problems

    async def canary(self) -> str:
        """A valid consultation's outcome ("DELIVERED" when the core still serves)."""
        self._canaries += 1
        return outcome_of(await _bounded(self._one(canary_case(self.world, self._canaries)), CASE_DEADLINE_S))

    async def close(self) -> None:
        await self.outbox.aclose()
        await self.audit.aclose()
        self.directory.close()
        self.inbox.close()
