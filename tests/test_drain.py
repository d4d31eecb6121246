"""Graceful drain: on stop (SIGTERM) the core takes no new call, answers those in flight, then closes its stores.

The agency host is slow on purpose, so that many exchanges are in flight when the core is told
to stop; every one of them must be answered and audited, none lost.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc

from crossroads.pki import channel_credentials
from protos import messages_pb2 as pb
from tests.test_admission import CountingHost, exchange, live_core, records, refused
from tests.test_core_server import _hosts_json, _start_host, _state
from tests.test_exchange import consultation

ROOT = Path(__file__).resolve().parents[1]
IN_FLIGHT = 50


async def _until(condition: object, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.01)


def _consultations(channel: grpc.aio.Channel) -> list[asyncio.Task[pb.ExchangeReply]]:
    """IN_FLIGHT consultations sent at once, message ids c-0, c-1, ..."""
    return [asyncio.create_task(exchange(channel, consultation(message_id=f"c-{i}"))) for i in range(IN_FLIGHT)]


def test_stop_answers_and_audits_every_exchange_in_flight_and_takes_no_new_one(tmp_path: Path) -> None:
    async def scenario() -> tuple[Path, list[pb.ExchangeReply]]:
        async with live_core(tmp_path, delay=0.5) as net, net.channel("CPAS-1") as channel:
            calls = [
                asyncio.create_task(exchange(channel, consultation(message_id=f"c-{i}"))) for i in range(IN_FLIGHT)
            ]
            await _until(lambda: net.host.arrived == IN_FLIGHT)
            stopping = asyncio.create_task(net.core.stop(grace=10.0))
            await asyncio.sleep(0.1)
            late = await refused(exchange(channel, consultation(message_id="late")))
            assert late.code() == grpc.StatusCode.UNAVAILABLE  # no new call once stopping
            replies = await asyncio.gather(*calls)
            await stopping
            return net.state, replies

    state, replies = asyncio.run(scenario())
    assert [r.outcome for r in replies] == [pb.DELIVERED] * IN_FLIGHT
    audited = records(state)
    assert sorted(r.message_id for r in audited) == sorted(f"c-{i}" for i in range(IN_FLIGHT))
    assert {r.audit_index for r in replies} == set(range(IN_FLIGHT))


def test_calls_cut_off_by_the_end_of_the_grace_are_still_audited_before_the_stores_close(tmp_path: Path) -> None:
    async def scenario() -> Path:
        async with live_core(tmp_path, delay=5.0) as net, net.channel("CPAS-1") as channel:
            calls = [
                asyncio.create_task(exchange(channel, consultation(message_id=f"c-{i}"))) for i in range(IN_FLIGHT)
            ]
            await _until(lambda: net.host.arrived == IN_FLIGHT)
            await net.core.stop(grace=0.2)
            for call in calls:
                error = await refused(call)
                assert error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
            return net.state

    state = asyncio.run(scenario())
    audited = records(state)
    assert sorted(r.message_id for r in audited) == sorted(f"c-{i}" for i in range(IN_FLIGHT))
    assert {r.outcome for r in audited} == {"FAILED"} and all("cancelled" in r.detail for r in audited)


def test_sigterm_drains_the_core_process(tmp_path: Path) -> None:
    async def scenario() -> tuple[list[pb.ExchangeReply], int]:
        state = _state(tmp_path)
        host = CountingHost(delay=1.0)
        host_server, port = await _start_host(state / "pki", host)
        _hosts_json(state, port)
        core = _spawn_core(state, tmp_path / "core.port")
        try:
            address = f"127.0.0.1:{await _port(core, tmp_path / 'core.port')}"
            async with grpc.aio.secure_channel(address, channel_credentials(state / "pki", "CPAS-1")) as channel:
                calls = [
                    asyncio.create_task(exchange(channel, consultation(message_id=f"c-{i}"))) for i in range(IN_FLIGHT)
                ]
                await _until(lambda: host.arrived == IN_FLIGHT)
                core.send_signal(signal.SIGTERM)
                replies = await asyncio.gather(*calls)
            code = await asyncio.to_thread(core.wait, 30)
        finally:
            if core.poll() is None:
                core.kill()
                core.wait()
            await host_server.stop(0)
        return replies, code

    replies, code = asyncio.run(scenario())
    assert code == 0
    assert [r.outcome for r in replies] == [pb.DELIVERED] * IN_FLIGHT
    audited = records(tmp_path / "state")
    assert sorted(r.message_id for r in audited) == sorted(f"c-{i}" for i in range(IN_FLIGHT))


def _spawn_core(state: Path, port_file: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    args = [sys.executable, "-m", "crossroads.server", "--state", str(state), "--port-file", str(port_file)]
    return subprocess.Popen([*args, "--grace", "10"], cwd=ROOT, env=env, stderr=subprocess.PIPE)


async def _port(core: subprocess.Popen[bytes], port_file: Path) -> int:
    deadline = time.monotonic() + 60
    while not port_file.exists():
        assert core.poll() is None, core.stderr.read() if core.stderr else b""
        assert time.monotonic() < deadline, "the core did not write its port file"
        await asyncio.sleep(0.05)
    return int(port_file.read_text())
