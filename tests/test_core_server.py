"""The core over real gRPC on 127.0.0.1 with mutual TLS, in front of a small in-test agency host.

The network is the hand-made one of tests/test_exchange.py (agencies ONSS, CPAS-1, ...), with
every agency served by one host that answers consultations and takes notices.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from crossroads.directory import DirectoryStore
from crossroads.exchange import AUDIT_INDEX_KEY
from crossroads.forwarder import HostsFileError
from crossroads.knowledge_io import dump_knowledge
from crossroads.pki import (
    CORE,
    NetworkPki,
    channel_credentials,
    channel_credentials_from,
    foreign_identity,
    peer_identity,
    server_credentials,
)
from crossroads.server import CoreConfig, RunningCore, start_core
from protos import messages_pb2 as pb
from protos import services_pb2, services_pb2_grpc
from tests.small_network import ALICE, BOB, FILES, KNOWLEDGE
from tests.test_exchange import answer_for, as_sent, consultation, dmfa

ROOT = Path(__file__).resolve().parents[1]
HOST = "host-0"
EXCHANGE = "/crossroads.v1.Crossroads/Exchange"


class _Host:
    """An agency host for every agency of the test network: answers what it gets, and keeps it."""

    def __init__(self) -> None:
        self.got: list[pb.Forward] = []
        self.callers: set[str | None] = set()
        self.delay = 0.0  # seconds before answering
        self.unknown: set[str] = set()  # agencies this host says it does not serve

    async def Deliver(self, forward: pb.Forward, context: Any) -> pb.AgencyReply:
        self.callers.add(peer_identity(context))
        if forward.agency in self.unknown:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"{forward.agency} is not served here")
        await asyncio.sleep(self.delay)
        self.got.append(forward)
        return answer_for(forward)


async def _start_host(pki: Path, host: _Host, port: int = 0) -> tuple[Any, int]:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    handlers = {
        "Deliver": grpc.unary_unary_rpc_method_handler(
            host.Deliver,
            request_deserializer=pb.Forward.FromString,
            response_serializer=pb.AgencyReply.SerializeToString,
        )
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("crossroads.v1.Agency", handlers),))
    bound = server.add_secure_port(f"127.0.0.1:{port}", server_credentials(pki, HOST))
    await server.start()
    return server, bound


def _state(tmp_path: Path) -> Path:
    """A state folder: PKI, knowledge, directory; hosts.json is written once the host has a port."""
    state = tmp_path / "state"
    state.mkdir()
    NetworkPki.open(state / "pki").issue_many([CORE, HOST, "CPAS-1", "PORTAL"])
    dump_knowledge(KNOWLEDGE, state / "knowledge.json")
    store = DirectoryStore.create(state / "directory.sqlite")
    store.bulk_load(FILES)
    store.close()
    return state


def _hosts_json(state: Path, port: int | None) -> None:
    hosts = (
        [] if port is None else [{"name": HOST, "address": f"127.0.0.1:{port}", "agencies": list(KNOWLEDGE.agencies)}]
    )
    (state / "hosts.json").write_text(json.dumps({"hosts": hosts}), encoding="utf-8")


class _Net:
    def __init__(self, state: Path, core: RunningCore, host: _Host, host_server: Any, host_port: int) -> None:
        self.state, self.core, self.host, self.host_server, self.host_port = state, core, host, host_server, host_port

    def channel(self, credentials: grpc.ChannelCredentials) -> Any:
        return grpc.aio.secure_channel(self.core.address, credentials)

    def as_agency(self, name: str) -> Any:
        return self.channel(channel_credentials(self.state / "pki", name))


@asynccontextmanager
async def _network(tmp_path: Path, deadline: float = 5.0) -> AsyncIterator[_Net]:
    state = _state(tmp_path)
    host = _Host()
    host_server, host_port = await _start_host(state / "pki", host)
    _hosts_json(state, host_port)
    core = await start_core(CoreConfig(state=state, forward_deadline=deadline, retry_initial=0.05, retry_max=0.2))
    net = _Net(state, core, host, host_server, host_port)
    try:
        yield net
    finally:
        await core.stop(grace=0.5)
        await net.host_server.stop(0)


async def _exchange(channel: Any, env: pb.Envelope) -> pb.ExchangeReply:
    reply: pb.ExchangeReply = await services_pb2_grpc.CrossroadsStub(channel).Exchange(env, timeout=10)  # type: ignore[no-untyped-call]
    return reply


def test_an_authorized_consultation_is_answered_with_the_agencys_reply(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with _network(tmp_path) as net, net.as_agency("CPAS-1") as channel:
            raw = as_sent(consultation(sender="ONSS"))
            call = channel.unary_unary(EXCHANGE, response_deserializer=pb.ExchangeReply.FromString)
            reply = await call(raw, timeout=10)
            assert (reply.outcome, reply.forwarded, reply.deliberation) == (pb.DELIVERED, True, "08/020")
            answer = pb.ConsultationAnswer.FromString(reply.deliveries[0].reply)
            assert (answer.agency, answer.found, answer.fields["gross"]) == ("ONSS", True, "312000")
            (forward,) = net.host.got
            assert forward.envelope == raw and forward.sender == "CPAS-1"  # the bytes as sent
            assert net.host.callers == {CORE}  # the core calls the host as "core"
            audit = services_pb2_grpc.AuditStub(channel)  # type: ignore[no-untyped-call]
            head = await audit.Head(services_pb2.AuditHeadRequest(), timeout=10)
            assert head.size == reply.audit_index + 1

    asyncio.run(scenario())


def test_a_denial_names_the_rule_and_carries_its_audit_index(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with _network(tmp_path) as net, net.as_agency("CPAS-1") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await _exchange(channel, consultation(subject=BOB))  # CPAS-1 has no file on BOB
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "not_in_files" in (refused.value.details() or "")
            trailing = refused.value.trailing_metadata()
            assert trailing is not None and trailing[AUDIT_INDEX_KEY] == "0" and net.host.got == []

    asyncio.run(scenario())


def test_a_dmfa_for_a_host_that_is_down_is_queued_and_delivered_once_it_is_back(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with _network(tmp_path) as net, net.as_agency("PORTAL") as channel:
            await net.host_server.stop(0)
            reply = await _exchange(channel, dmfa(ALICE, BOB))
            assert reply.outcome == pb.QUEUED and [d.outcome for d in reply.deliveries] == [pb.QUEUED] * 4
            assert net.core.outbox.counts().pending == 4
            net.host_server, _ = await _start_host(net.state / "pki", net.host, net.host_port)
            async with asyncio.timeout(30):
                while net.core.outbox.counts().pending:
                    await asyncio.sleep(0.05)
            assert sorted(f.agency for f in net.host.got) == ["MUT-1", "MUT-2", "ONEM", "ONSS"]
            assert {f.audit_index for f in net.host.got} == {reply.audit_index}

    asyncio.run(scenario())


def test_a_host_too_slow_fails_a_consultation_and_queues_a_declaration(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with _network(tmp_path, deadline=0.2) as net:
            net.host.delay = 1.0
            async with net.as_agency("CPAS-1") as channel:
                reply = await _exchange(channel, consultation())
                assert reply.outcome == pb.FAILED and "DEADLINE_EXCEEDED" in reply.deliveries[0].detail
            async with net.as_agency("PORTAL") as channel:
                reply = await _exchange(channel, dmfa(BOB))
                assert reply.outcome == pb.QUEUED  # it may have arrived: agencies dedupe on message_id

    asyncio.run(scenario())


def test_a_host_that_refuses_an_agency_fails_that_delivery(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with _network(tmp_path) as net, net.as_agency("PORTAL") as channel:
            net.host.unknown.add("ONEM")
            reply = await _exchange(channel, dmfa(BOB))
            outcomes = {d.agency: (d.outcome, d.detail.split(":")[0]) for d in reply.deliveries}
            assert outcomes["ONEM"] == (pb.FAILED, "NOT_FOUND") and outcomes["ONSS"] == (pb.DELIVERED, "")
            assert reply.outcome == pb.FAILED and net.core.outbox.counts().pending == 0

    asyncio.run(scenario())


@pytest.mark.parametrize("who", ["no certificate", "foreign CA"])
def test_a_client_without_a_network_certificate_is_refused(tmp_path: Path, who: str) -> None:
    async def scenario() -> None:
        async with _network(tmp_path) as net:
            ca_pem = (net.state / "pki" / "ca.pem").read_bytes()
            identity = None if who == "no certificate" else foreign_identity("CPAS-1")[0]
            async with net.channel(channel_credentials_from(identity, ca_pem)) as channel:
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await _exchange(channel, consultation())
                assert refused.value.code() == grpc.StatusCode.UNAVAILABLE  # the TLS handshake fails
            assert net.host.got == [] and net.core.audit.size == 0

    asyncio.run(scenario())


def test_health_is_serving(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with _network(tmp_path) as net, net.as_agency("CPAS-1") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            for service in ("", "crossroads.v1.Crossroads"):
                reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
                assert reply.status == health_pb2.HealthCheckResponse.SERVING

    asyncio.run(scenario())


def test_the_entry_point_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    state = _state(tmp_path)
    _hosts_json(state, None)
    port_file = tmp_path / "core.port"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    args = [sys.executable, "-m", "crossroads.server", "--state", str(state), "--port-file", str(port_file)]
    process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not port_file.exists():
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            assert time.monotonic() < deadline, "the core did not write its port file"
            time.sleep(0.05)
        port = int(port_file.read_text())
        with grpc.secure_channel(f"127.0.0.1:{port}", channel_credentials(state / "pki", "CPAS-1")) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert (state / "audit.sqlite").exists()


def test_a_state_folder_without_hosts_is_refused_naming_the_file(tmp_path: Path) -> None:
    state = _state(tmp_path)
    with pytest.raises(HostsFileError, match=r"hosts\.json"):
        asyncio.run(start_core(CoreConfig(state=state)))
