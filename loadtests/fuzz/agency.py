"""The agency host's Deliver over a socket with mutual TLS: only the core may deliver."""

from __future__ import annotations

from pathlib import Path

import grpc
from hypothesis import strategies as st

from crossroads.methods import DELIVER as DELIVER_METHOD
from crossroads.pki import CORE
from loadtests.fuzz.cases import Batch, Case
from loadtests.fuzz.channels import _Channels, _rpc_error, _start_host
from loadtests.fuzz.checks import (
    _HOST_SAYS_WHAT,
    CASE_DEADLINE_S,
    Result,
    _Answer,
    answers_to,
    refusal_result,
)
from loadtests.fuzz.mutators import _UINT64, hostile_text, mutate_bytes, mutate_message, pick, weighted
from loadtests.fuzz.world import HOST, FuzzWorld, _copy_world
from protos import messages_pb2 as pb


def agency_cases(world: FuzzWorld) -> st.SearchStrategy[Case]:
    """Deliver calls: Forwards as the core makes them, hostile, mutated or random, from the core or others."""
    text = hostile_text(world)
    envelopes = pick(world.corpus, "samples").map(lambda s: s.envelope.SerializeToString())
    callers = weighted((6, st.just(CORE)), (1, st.sampled_from((HOST, "admin", *world.senders[:5]))))

    @st.composite
    def forward(draw: st.DrawFn) -> Case:
        envelope = draw(envelopes)
        how = draw(st.integers(0, 3))
        if how == 1:
            envelope = mutate_bytes(draw, envelope)
        elif how == 2:
            env = pb.Envelope.FromString(envelope)
            mutate_message(draw, env, text)
            envelope = env.SerializeToString()
        message = pb.Forward(
            agency=draw(weighted((4, pick(world.agencies, "agencies")), (1, text))),
            sender=draw(pick(world.senders, "senders")),
            envelope=envelope,
            audit_index=draw(_UINT64),
        )
        if how == 3:
            mutate_message(draw, message, text)
        raw = message.SerializeToString()
        if draw(st.integers(0, 5)) == 0:
            raw = draw(st.binary(max_size=128)) if draw(st.booleans()) else mutate_bytes(draw, raw)
        return Case("forward", draw(callers), raw, method=DELIVER_METHOD)

    return forward()


class AgencyTarget:
    """The agency host's Deliver over a socket with mutual TLS."""

    name = "agency"

    def __init__(self, world: FuzzWorld, state: Path) -> None:
        self.world, self.state = world, state

    async def start(self) -> None:
        _copy_world(self.world, self.state)
        self.host = await _start_host(self.world, self.state)
        self.channels = _Channels(self.state / "pki", self.host.address)

    async def _one(self, case: Case) -> _Answer:
        assert case.peer is not None
        try:
            raw = await self.channels.get(case.peer).unary_unary(DELIVER_METHOD)(case.raw, timeout=CASE_DEADLINE_S)
        except grpc.aio.AioRpcError as exc:
            return _rpc_error(exc)
        return _Answer("OK", reply=None, message=pb.AgencyReply.FromString(raw).status)

    async def run(self, batch: Batch) -> list[Result]:
        answers = await answers_to(self._one, batch.cases, CASE_DEADLINE_S + 5, sequential=False)
        return [self._check(c, a) for c, a in zip(batch.cases, answers, strict=True)]

    def _check(self, case: Case, answer: _Answer) -> Result:
        if answer.status in ("HANG", "CRASH"):
            return Result(answer.status, answer.message, answer.status.lower())
        if case.peer != CORE and answer.status != "PERMISSION_DENIED":
            return Result(answer.status, f"{case.peer!r} was not refused delivering", "access")
        if answer.status == "OK":
            ok = answer.message in ("ok", "duplicate")
            return Result("OK", None if ok else f"reply status {answer.message!r}", None if ok else "reply")
        return refusal_result(answer, _HOST_SAYS_WHAT)

    async def close(self) -> None:
        await self.channels.close()
        await self.host.stop(1.0)
