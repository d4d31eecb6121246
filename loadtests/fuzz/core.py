"""The core over a real socket with mutual TLS: Exchange, Audit, Health, reflection and unknown methods."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2
from hypothesis import strategies as st

from crossroads import methods
from crossroads.methods import EXCHANGE as EXCHANGE_METHOD
from crossroads.server import CoreConfig, RunningCore, start_core
from loadtests.fuzz.cases import Batch, Case, _History, canary_case
from loadtests.fuzz.channels import _Channels, _hosts_json, _rpc_error, _start_host
from loadtests.fuzz.checks import (
    CASE_DEADLINE_S,
    FORWARD_DEADLINE_S,
    Result,
    _Answer,
    _bounded,
    _with_batch_problems,
    answers_to,
    outcome_of,
    refusal_result,
)
from loadtests.fuzz.mutators import hostile_text, mutate_bytes, mutate_message, pick
from loadtests.fuzz.register import Register
from loadtests.fuzz.world import FuzzWorld, _copy_world, vouched
from protos import messages_pb2 as pb
from protos import services_pb2

# The core's other services: method, request type, call shape
_CORE_RPCS: tuple[tuple[str, type[Message], str], ...] = (
    (methods.AUDIT_HEAD, services_pb2.AuditHeadRequest, "unary"),
    (methods.AUDIT_INCLUSION_PROOF, services_pb2.InclusionProofRequest, "unary"),
    (methods.AUDIT_CONSISTENCY_PROOF, services_pb2.ConsistencyProofRequest, "unary"),
    (methods.AUDIT_WHO_ACCESSED, services_pb2.WhoAccessedRequest, "unary"),
    (methods.AUDIT_ENTRY, services_pb2.EntryRequest, "unary"),
    (methods.HEALTH_CHECK, health_pb2.HealthCheckRequest, "unary"),
    (methods.HEALTH_WATCH, health_pb2.HealthCheckRequest, "server_stream"),
    (
        methods.method_path(reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"], "ServerReflectionInfo"),
        reflection_pb2.ServerReflectionRequest,
        "stream",
    ),
    # paths that do not exist: a method the service lacks, a service the package lacks
    (f"/{methods.CROSSROADS_SERVICE}/Nothing", services_pb2.AuditHeadRequest, "unary"),
    (f"/{services_pb2.DESCRIPTOR.package}.Nothing/Exchange", services_pb2.AuditHeadRequest, "unary"),
)
_SHAPES = {method: shape for method, _, shape in _CORE_RPCS}


def rpc_cases(world: FuzzWorld, *, open_bugs: bool = True) -> st.SearchStrategy[Case]:
    """Calls of the core's other methods: well-formed requests with hostile values, or bytes that
    are no request. `open_bugs` False leaves out the cases of KNOWN_OPEN_BUGS."""
    text = hostile_text(world)
    if not open_bugs:
        text = text.filter(lambda s: s.isascii() or not s[:1].isdigit())
    senders = pick((*world.senders, "admin"), "callers")

    @st.composite
    def well_formed(draw: st.DrawFn) -> Case:
        method, request_type, _ = draw(st.sampled_from(_CORE_RPCS))
        request = request_type()
        hostile = open_bugs or not method.startswith("/grpc.health")
        if hostile and request.DESCRIPTOR.fields and draw(st.integers(0, 3)):
            mutate_message(draw, request, text)
        return Case("rpc", draw(senders), request.SerializeToString(), method=method)

    @st.composite
    def garbage(draw: st.DrawFn) -> Case:
        method = draw(st.sampled_from(_CORE_RPCS))[0]
        raw = draw(st.binary(max_size=128)) if draw(st.booleans()) else mutate_bytes(draw, b"\x08\x01\x10\x02")
        return Case("rpc_garbage", draw(senders), raw, method=method)

    return st.one_of(well_formed(), garbage()) if open_bugs else well_formed()


# Bugs the campaign finds whose fix lies in files it may not change; tests/test_fuzz.py holds
# each as a strict xfail, and the report says the fix.
KNOWN_OPEN_BUGS: dict[str, str] = {}  # none open: crossroads/request_guard.py fixed the last two


class CoreTarget:
    """The core over a real socket with mutual TLS, in front of a real agency host, all on 127.0.0.1.

    The core's clock is the wall clock: the citizens' assertions in `world` are issued now, and
    live ASSERTION_TTL (loadtests.fuzz.world).
    """

    name = "core"

    def __init__(self, world: FuzzWorld, state: Path) -> None:
        self.world, self.state = vouched(world, time.time()), state
        self.history = _History.of_corpus(self.world, tag="fz-core-")
        self.register = Register()  # the running core's window: journal.ANSWER_WINDOW
        self._canaries = 0

    async def start(self) -> None:
        _copy_world(self.world, self.state)
        self.host = await _start_host(self.world, self.state)
        _hosts_json(self.state, self.host, self.world.agencies)
        self.core: RunningCore = await start_core(CoreConfig(state=self.state, forward_deadline=FORWARD_DEADLINE_S))
        self.channels = _Channels(self.state / "pki", self.core.address)

    async def _exchange(self, case: Case) -> _Answer:
        assert case.peer is not None  # over a socket, no certificate is a TLS case
        call = self.channels.get(case.peer).unary_unary(EXCHANGE_METHOD)
        try:
            raw = await call(case.raw, timeout=CASE_DEADLINE_S)
        except grpc.aio.AioRpcError as exc:
            return _rpc_error(exc)
        return _Answer("OK", reply=pb.ExchangeReply.FromString(raw), body=raw)

    async def _other(self, case: Case) -> _Answer:
        assert case.peer is not None
        channel, shape = self.channels.get(case.peer), _SHAPES[case.method]
        try:
            if shape == "unary":
                await channel.unary_unary(case.method)(case.raw, timeout=CASE_DEADLINE_S)
            elif shape == "server_stream":
                call = channel.unary_stream(case.method)(case.raw, timeout=CASE_DEADLINE_S)
                await call.read()  # Watch streams until cancelled: its first answer is enough
                call.cancel()
            else:
                call = channel.stream_stream(case.method)(timeout=CASE_DEADLINE_S)
                await call.write(case.raw)
                await call.done_writing()
                while await call.read() is not grpc.aio.EOF:
                    pass
        except grpc.aio.AioRpcError as exc:
            return _rpc_error(exc)
        return _Answer("OK")

    async def _one(self, case: Case) -> _Answer:
        return await (self._exchange(case) if case.method == EXCHANGE_METHOD else self._other(case))

    async def run(self, batch: Batch) -> list[Result]:
        """Send `batch` (resolved: replays, reused and fresh ids) and judge every answer."""
        cases = self.history.resolve(batch.cases, self.register.remembered)
        before = self.core.audit.size
        answers = await answers_to(self._one, cases, CASE_DEADLINE_S + 5, sequential=batch.sequential)
        exchanges = [i for i, c in enumerate(cases) if c.method == EXCHANGE_METHOD]
        sent, got = [cases[i] for i in exchanges], [answers[i] for i in exchanges]
        exchanged, growth = self.register.judge_batch(self.core.audit, self.history, sent, got, before)
        judged = dict(zip(exchanges, exchanged, strict=True))
        results = [judged[i] if i in judged else self._other_result(a) for i, a in enumerate(answers)]
        return _with_batch_problems(results, [("growth", growth)] if growth else [])

    def _other_result(self, answer: _Answer) -> Result:
        """The answer of a call to a method other than Exchange: no hang, no crash, specific."""
        if answer.status in ("HANG", "CRASH"):
            return Result(answer.status, answer.message, answer.status.lower())
        if answer.status == "OK":
            return Result("OK")
        return refusal_result(answer, {})

    async def canary(self) -> str:
        self._canaries += 1
        return outcome_of(await _bounded(self._exchange(canary_case(self.world, self._canaries)), CASE_DEADLINE_S + 5))

    async def close(self) -> None:
        await self.channels.close()
        await self.core.stop(grace=1.0)
        await self.host.stop(1.0)
