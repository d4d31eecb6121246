"""The agency host over real mutual TLS on 127.0.0.1, and its durable inbox."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2

from agencies import answers
from agencies.host import AnswerFn, RunningHost, ServiceTime, start_host
from agencies.inbox import Inbox, duplicates, inbox_path, received
from crossroads.domain import AgencyId, Dataset
from crossroads.identifiers import Niss
from crossroads.pki import CORE, NetworkPki, channel_credentials
from protos import messages_pb2

ROOT = Path(__file__).resolve().parents[1]
SEED = 20260101
SERVED = [AgencyId("ONSS"), AgencyId("CPAS-0001"), AgencyId("RVA-ONEM")]
PERSON = Niss("85073003328")
DELIVER = "/crossroads.v1.Agency/Deliver"
HEALTH = "/grpc.health.v1.Health/Check"


def fake_answer(seed: int, agency: AgencyId, dataset: Dataset, niss: Niss) -> Mapping[str, str]:
    """Deterministic in its inputs, as agencies.answers.answer is; empty = person not found."""
    if niss.endswith("00"):
        return {}
    return {"seed": str(seed), "agency": agency, "dataset": dataset, "niss": niss, "status": "insured"}


def _consultation(
    dataset: str = "health_insurance", fields: tuple[str, ...] = (), payload: bytes | None = None
) -> bytes:
    ask = messages_pb2.ConsultationRequest(dataset=dataset, fields=fields).SerializeToString()
    return messages_pb2.Envelope(
        message_id="m-1",
        kind=messages_pb2.CONSULTATION,
        subject_niss=PERSON,
        payload=ask if payload is None else payload,
    ).SerializeToString()


def _notice(message_id: str, kind: messages_pb2.MessageKind = messages_pb2.DIMONA) -> bytes:
    return messages_pb2.Envelope(message_id=message_id, kind=kind, subject_niss=PERSON).SerializeToString()


def _forward(agency: str, envelope: bytes, audit_index: int = 7) -> messages_pb2.Forward:
    return messages_pb2.Forward(agency=agency, sender="ONSS", envelope=envelope, audit_index=audit_index)


Call = Callable[[messages_pb2.Forward], Awaitable[messages_pb2.AgencyReply | grpc.StatusCode]]


def _with_host(
    state: Path,
    caller: str,
    body: Callable[[Call, RunningHost], Awaitable[Any]],
    service_time: ServiceTime | None = None,
    answer: AnswerFn | None = fake_answer,
) -> Any:
    """Run `body(deliver, host)` against a host started in-process; `deliver` calls as `caller`."""
    pki = NetworkPki.open(state / "pki")
    pki.issue_many(["host-0", CORE, "ONSS"])

    async def run() -> Any:
        host = await start_host(state, "host-0", SERVED, SEED, service_time=service_time, answer=answer)
        channel = grpc.aio.secure_channel(host.address, channel_credentials(pki.dir, caller))
        method = channel.unary_unary(
            DELIVER,
            request_serializer=messages_pb2.Forward.SerializeToString,
            response_deserializer=messages_pb2.AgencyReply.FromString,
        )

        async def deliver(forward: messages_pb2.Forward) -> messages_pb2.AgencyReply | grpc.StatusCode:
            try:
                reply: messages_pb2.AgencyReply = await method(forward, timeout=10)
                return reply
            except grpc.aio.AioRpcError as exc:
                return exc.code()

        try:
            return await body(deliver, host)
        finally:
            await channel.close()
            await host.stop(0)

    return asyncio.run(run())


def _answer(reply: messages_pb2.AgencyReply | grpc.StatusCode) -> messages_pb2.ConsultationAnswer:
    assert isinstance(reply, messages_pb2.AgencyReply), reply
    assert reply.status == "ok"
    return messages_pb2.ConsultationAnswer.FromString(reply.payload)


def test_a_consultation_is_answered_deterministically(tmp_path: Path) -> None:
    async def body(deliver: Call, host: RunningHost) -> list[Any]:
        return [await deliver(_forward("CPAS-0001", _consultation())) for _ in range(2)]

    first, second = _with_host(tmp_path, CORE, body)
    answer = _answer(first)
    assert answer == _answer(second)
    assert answer.agency == "CPAS-0001" and answer.dataset == "health_insurance" and answer.found
    assert dict(answer.fields) == fake_answer(SEED, AgencyId("CPAS-0001"), Dataset("health_insurance"), PERSON)


def test_by_default_the_world_answers(tmp_path: Path) -> None:
    async def body(deliver: Call, host: RunningHost) -> Any:
        return await deliver(_forward("CPAS-0001", _consultation(dataset="social_integration")))

    got = _answer(_with_host(tmp_path, CORE, body, answer=None))
    expected = answers.answer(SEED, AgencyId("CPAS-0001"), Dataset("social_integration"), PERSON)
    assert expected and dict(got.fields) == expected and got.found


def test_a_consultation_returns_only_the_fields_asked(tmp_path: Path) -> None:
    async def body(deliver: Call, host: RunningHost) -> Any:
        return await deliver(_forward("ONSS", _consultation(fields=("status", "absent"))))

    assert dict(_answer(_with_host(tmp_path, CORE, body)).fields) == {"status": "insured"}


def test_a_notice_is_stored_once_even_if_delivered_twice(tmp_path: Path) -> None:
    async def body(deliver: Call, host: RunningHost) -> list[str]:
        replies = [await deliver(_forward("ONSS", _notice("dimona-1"), audit_index=i)) for i in (0, 41)]
        other = await deliver(_forward("RVA-ONEM", _notice("dimona-1", messages_pb2.MUTATION), audit_index=42))
        return [r.status for r in (*replies, other) if isinstance(r, messages_pb2.AgencyReply)]

    assert _with_host(tmp_path, CORE, body) == ["ok", "duplicate", "ok"]
    rows = received(tmp_path)
    assert [(r.agency, r.message_id, r.kind, r.sender, r.audit_index, r.deliveries) for r in rows] == [
        ("ONSS", "dimona-1", "DIMONA", "ONSS", 41, 2),
        ("RVA-ONEM", "dimona-1", "MUTATION", "ONSS", 42, 1),
    ]
    assert [r.agency for r in received(tmp_path, agency="RVA-ONEM")] == ["RVA-ONEM"]
    assert duplicates(tmp_path) == 1


def test_an_unknown_agency_is_not_found(tmp_path: Path) -> None:
    async def body(deliver: Call, host: RunningHost) -> Any:
        return await deliver(_forward("FPD-SFP", _notice("n-1")))

    assert _with_host(tmp_path, CORE, body) == grpc.StatusCode.NOT_FOUND
    assert received(tmp_path) == []


def test_only_the_core_may_deliver(tmp_path: Path) -> None:
    async def body(deliver: Call, host: RunningHost) -> Any:
        return await deliver(_forward("ONSS", _notice("n-1")))

    assert _with_host(tmp_path, "ONSS", body) == grpc.StatusCode.PERMISSION_DENIED
    assert received(tmp_path) == []


def test_an_envelope_that_does_not_parse_is_invalid(tmp_path: Path) -> None:
    async def body(deliver: Call, host: RunningHost) -> list[Any]:
        return [
            await deliver(_forward("ONSS", b"\xff\xff\xff")),
            await deliver(_forward("ONSS", _notice(""))),  # a notice without its idempotency key
            await deliver(_forward("ONSS", messages_pb2.Envelope(message_id="x").SerializeToString())),
            await deliver(_forward("ONSS", _consultation(payload=b"\xff\xff\xff"))),
        ]

    assert _with_host(tmp_path, CORE, body) == [grpc.StatusCode.INVALID_ARGUMENT] * 4


def test_the_service_time_is_slept_before_answering(tmp_path: Path) -> None:
    # measured on the event loop's own clock, not wall-clock speed: the sleep must be at least the delay
    async def body(deliver: Call, host: RunningHost) -> float:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await deliver(_forward("ONSS", _notice("slow-1")))
        return loop.time() - start

    assert _with_host(tmp_path, CORE, body, ServiceTime(150)) >= 0.15


def test_service_times_are_fixed_or_seeded_exponential() -> None:
    assert [ServiceTime(0).draw_s(), ServiceTime(12).draw_s()] == [0.0, 0.012]
    one = [ServiceTime.seeded(10, SEED, "host-1").draw_s() for _ in range(3)]
    draws = ServiceTime.seeded(10, SEED, "host-1")
    again = [draws.draw_s() for _ in range(2000)]
    assert again[:1] == one[:1] and len(set(again)) == 2000
    assert np.mean(again) == pytest.approx(0.010, rel=0.1)
    assert ServiceTime.seeded(10, SEED, "host-2").draw_s() != again[0]
    with pytest.raises(ValueError, match=">= 0"):
        ServiceTime(-1)


def test_the_inbox_reads_across_hosts(tmp_path: Path) -> None:
    for host, agency in (("host-0", "ONSS"), ("host-1", "RVA-ONEM")):
        inbox = Inbox(inbox_path(tmp_path, host))
        assert inbox.record(AgencyId(agency), "m-1", "DMFA", "SSEC-1", 3)
        assert not inbox.record(AgencyId(agency), "m-1", "DMFA", "SSEC-1", 3)
        inbox.close()
    assert sorted(r.agency for r in received(tmp_path)) == ["ONSS", "RVA-ONEM"]
    assert duplicates(tmp_path) == 2
    assert received(tmp_path / "elsewhere") == []


# ------------------------------------------------------------------ the host as a process


def _health(address: str, pki_dir: Path) -> int:
    with grpc.secure_channel(address, channel_credentials(pki_dir, "admin")) as channel:
        check = channel.unary_unary(
            HEALTH,
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        status: int = check(health_pb2.HealthCheckRequest(), timeout=5).status
        return status


def _wait_for(path: Path, proc: subprocess.Popen[bytes], timeout_s: float = 60) -> str:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert proc.poll() is None, "host exited before serving"
        assert time.monotonic() < deadline, "host never wrote its port file"
        time.sleep(0.05)
    return path.read_text().strip()


def test_the_host_process_serves_then_stops_on_sigterm(tmp_path: Path) -> None:
    pytest.importorskip("agencies.answers", reason="the host process answers with agencies.answers")
    NetworkPki.open(tmp_path / "pki").issue_many(["host-3", "admin"])
    (tmp_path / "agencies.json").write_text(json.dumps(SERVED))
    command = [sys.executable, "-m", "agencies.host", "--state", str(tmp_path), "--name", "host-3"]
    command += ["--agencies-file", str(tmp_path / "agencies.json"), "--seed", str(SEED)]
    command += ["--port-file", str(tmp_path / "host-3.port")]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        port = _wait_for(tmp_path / "host-3.port", proc)
        assert _health(f"127.0.0.1:{port}", tmp_path / "pki") == health_pb2.HealthCheckResponse.SERVING
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.stdout is not None and b"host-3: stopped" in proc.stdout.read()
    assert inbox_path(tmp_path, "host-3").exists()
