"""One agency floods the core: the others still get through, the flooder is told when to retry, all of it audited.

The core runs in a process of its own with its default limits, in front of a slow-ish agency
host (FORWARD_DELAY per forward) in this process. A few agencies send at a modest fixed rate,
first alone, then while one agency floods from a third process (loadtests.flood: FLOOD_CONCURRENCY
calls in flight, as fast as it can, ignoring retry advice). The flooder must be held to its rate
limit, the others must all get through (their p95 is printed, not asserted: see below); every refusal
the flooder got must carry retry advice and match an audit record of the core.

A second test floods a core with small bounds on purpose, open loop (the flood does not slow
down when the core does, so a core that queued would hold more and more), and checks that
exchanges in flight never pass `max_in_flight` and that the memory of the process holding the
core levels off instead of growing with the flood.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import psutil

from crossroads.admission import DEFAULT_BURST, DEFAULT_RATE, AdmissionPolicy, Limit
from crossroads.audit_record import AuditRecord
from crossroads.pki import NetworkPki, channel_credentials
from loadtests.loadgen import Prepared, write_requests
from protos import messages_pb2 as pb
from tests.small_network import ALICE
from tests.test_admission import CountingHost, exchange, live_core, records
from tests.test_core_server import _hosts_json, _start_host, _state
from tests.test_exchange import consultation

ROOT = Path(__file__).resolve().parents[1]
EXCHANGE = "/crossroads.v1.Crossroads/Exchange"
FLOODER = "CPAS-2"
OTHERS = ("FA-1", "FA-2", "MUT-1")  # each consults the register under deliberation 95/001
OTHERS_RATE = 20.0  # calls/s per other agency
FORWARD_DELAY = 0.02  # seconds the agency host takes per forward
BASELINE_S = 3.0
FLOOD_S = 7.0
FLOOD_CONCURRENCY = 200
SUCCESS_BUDGET = 0.99
# The others' p95 is printed, not asserted: it measures the machine, not the admission. On 2 shared
# cores the flooder takes one CPU and refusing it costs the core some. Measured 2026-12-07, the others'
# p95 under the throttled flood was 135-157 ms alone and 280 ms beside a busy loop (another test
# worker), and 264 ms alone with the flooder NOT throttled: no bound on it tells the two apart.
# What does: the flooder held to its rate limit, the others' success rate and their count of answers.
# The memory test: an open-loop flood of consultations of ~35 KB (5,000 field names of 7 bytes)
MEMORY_FLOOD_RATE = 3000.0  # calls/s, answered or not: ~100 MB/s offered
MEMORY_FLOOD_S = 5.0
MEMORY_FLOOD_FIELDS = 5000
# RSS growth allowed after the first 1.5 s of the flood: the audit store's SQLite page cache
# (64 MiB, crossroads.audit) fills with the flood's refusal records, plus slack for a noisy machine.
# A core that queued grew ~100 MB/s here (see crossroads.server, DEFAULT_MAX_STREAMS).
MEMORY_GROWTH_BUDGET_MB = 100.0
# The flood must offer at least this much for the test to mean anything: twice the growth budget,
# so that a core that queued what it was sent would pass the budget. Not the full rate: the open-loop
# sender shares 2 cores with the core and another test worker, and offered 11,983 of 15,000 calls in
# one CI run (~400 MB, still four times this floor).
MEMORY_FLOOD_MIN_OFFERED_MB = 2 * MEMORY_GROWTH_BUDGET_MB


def _identity_consultation(message_id: str, payload_fields: int = 1) -> pb.Envelope:
    fields = [f"f{i:05d}" for i in range(payload_fields)]
    body = pb.ConsultationRequest(dataset="identity", fields=fields)
    return consultation(
        ALICE, message_id=message_id, dataset="identity", purpose="mutation", payload=body.SerializeToString()
    )


@dataclass
class Sample:
    started: float  # time.monotonic()
    ms: float
    code: str  # "OK" or the status name


async def _paced(channel: Any, sender: str, rate: float, until: float, samples: list[Sample]) -> None:
    """Open loop: one consultation every 1/rate s until `until` (monotonic), whatever the answers."""
    calls: list[asyncio.Task[None]] = []
    next_at, n = time.monotonic(), 0

    async def one(env: pb.Envelope) -> None:
        started = time.monotonic()
        try:
            await exchange(channel, env, timeout=10.0)
            code = "OK"
        except grpc.aio.AioRpcError as exc:
            code = exc.code().name
        samples.append(Sample(started, (time.monotonic() - started) * 1000, code))

    while next_at < until:
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        calls.append(asyncio.create_task(one(_identity_consultation(f"{sender}-{n}"))))
        next_at, n = next_at + 1 / rate, n + 1
    await asyncio.gather(*calls)


async def _others(state: Path, address: str, seconds: float) -> list[Sample]:
    samples: list[Sample] = []
    until = time.monotonic() + seconds
    channels = [grpc.aio.secure_channel(address, channel_credentials(state / "pki", o)) for o in OTHERS]
    try:
        await asyncio.gather(
            *(_paced(c, o, OTHERS_RATE, until, samples) for c, o in zip(channels, OTHERS, strict=True))
        )
    finally:
        for channel in channels:
            await channel.close()
    return samples


def _p95(samples: list[Sample]) -> float:
    return statistics.quantiles([s.ms for s in samples], n=20)[-1]


def _python(module: str, *args: str, **popen: Any) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT, env=env, **popen)


async def _port_of(process: subprocess.Popen[bytes], port_file: Path) -> int:
    deadline = time.monotonic() + 60
    while not port_file.exists():
        assert process.poll() is None, "the core exited before serving"
        assert time.monotonic() < deadline, "the core did not write its port file"
        await asyncio.sleep(0.05)
    return int(port_file.read_text())


def _flooder(
    state: Path,
    address: str,
    work: Path,
    *,
    seconds: float,
    concurrency: int,
    channels: int = 1,
    fields: int = 1,
    rate: float | None = None,
) -> tuple[subprocess.Popen[bytes], Path]:
    """Start loadtests.flood as FLOODER (consultations with `fields` field names); the process, and its result file."""
    requests, out = work / "flood-requests.jsonl", work / "flood.json"
    write_requests(requests, [Prepared(FLOODER, EXCHANGE, _identity_consultation("flood", fields).SerializeToString())])
    args = ["--pki", str(state / "pki"), "--target", address, "--requests", str(requests), "--out", str(out)]
    args += ["--seconds", str(seconds), "--concurrency", str(concurrency), "--channels", str(channels)]
    args += [] if rate is None else ["--rate", str(rate)]
    return _python("loadtests.flood", *args), out


@dataclass
class FloodRun:
    baseline: list[Sample]
    flooded: list[Sample]
    flood: dict[str, Any]
    audited: list[AuditRecord]
    core_exit: int


async def _flood_run(tmp_path: Path) -> FloodRun:
    state = _state(tmp_path)
    NetworkPki.open(state / "pki").issue_many([FLOODER, *OTHERS])
    host = CountingHost(delay=FORWARD_DELAY)
    host_server, host_port = await _start_host(state / "pki", host)
    _hosts_json(state, host_port)
    core = _python("crossroads.server", "--state", str(state), "--port-file", str(tmp_path / "core.port"))
    started = [core]
    try:
        address = f"127.0.0.1:{await _port_of(core, tmp_path / 'core.port')}"
        baseline = await _others(state, address, BASELINE_S)
        flooder, out = _flooder(state, address, tmp_path, seconds=FLOOD_S, concurrency=FLOOD_CONCURRENCY)
        started.append(flooder)
        flooded = await _others(state, address, FLOOD_S + 3.0)  # the flooder takes ~1-2 s to start
        assert await asyncio.to_thread(flooder.wait, 60) == 0
        core.send_signal(signal.SIGTERM)
        core_exit = await asyncio.to_thread(core.wait, 60)
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
                process.wait()
        await host_server.stop(0)
    flood = json.loads(out.read_text())
    during = [s for s in flooded if flood["started"] + 0.5 <= s.started <= flood["ended"] - 0.5]
    return FloodRun(baseline, during, flood, records(state), core_exit)


def test_a_flooding_agency_is_throttled_and_the_others_get_through(tmp_path: Path) -> None:
    run = asyncio.run(_flood_run(tmp_path))
    flood = run.flood
    refusals = [tuple(r) for r in flood["refusals"]]
    print(
        f"\nbaseline p95 {_p95(run.baseline):.1f} ms (n={len(run.baseline)}); "
        f"flooded p95 {_p95(run.flooded):.1f} ms (n={len(run.flooded)}), "
        f"ok {sum(s.code == 'OK' for s in run.flooded)}; flooder calls {flood['calls']}, ok {flood['ok']}, "
        f"details {flood['details']}, seconds {flood['ended'] - flood['started']:.1f}"
    )
    assert run.core_exit == 0
    # the flood happened, and was held to the default rate limit of one agency
    assert flood["codes"].get("RESOURCE_EXHAUSTED", 0) > 0 and flood["ok"] > 0
    assert flood["ok"] <= DEFAULT_BURST + DEFAULT_RATE * (flood["ended"] - flood["started"]) * 1.01
    assert set(flood["codes"]) <= {"RESOURCE_EXHAUSTED", "UNAVAILABLE"}
    # the others held up
    assert len(run.flooded) >= 0.8 * len(OTHERS) * OTHERS_RATE * (FLOOD_S - 3.0)
    assert sum(s.code == "OK" for s in run.baseline) == len(run.baseline)
    assert sum(s.code == "OK" for s in run.flooded) >= SUCCESS_BUDGET * len(run.flooded)
    # every refusal told the flooder when to retry, and is in the audit log
    assert all(advice is not None and advice > 0 and in_message for _, _, advice, in_message in refusals)
    indexes = [index for _, index, _, _ in refusals]
    assert None not in indexes and len(set(indexes)) == len(indexes)
    throttled = {i for i, r in enumerate(run.audited) if r.sender == FLOODER and r.outcome in ("THROTTLED", "SHED")}
    assert throttled == set(indexes)
    assert sum(r.sender == FLOODER and r.outcome == "DELIVERED" for r in run.audited) == flood["ok"]


def test_an_open_loop_flood_leaves_the_core_holding_a_bounded_amount(tmp_path: Path) -> None:
    # small bounds, so that a short flood goes far beyond them; only the core's bounds bind
    max_in_flight, max_rpcs, max_streams = 32, 128, 64
    anyone = AdmissionPolicy(default=Limit(rate=1e6, burst=1e6, in_flight=10_000))

    async def scenario() -> tuple[dict[str, Any], int, list[tuple[float, int]]]:
        async with live_core(
            tmp_path, delay=0.3, limits=anyone, max_in_flight=max_in_flight, max_rpcs=max_rpcs, max_streams=max_streams
        ) as net:
            NetworkPki.open(net.state / "pki").issue(FLOODER)
            async with net.channel(FLOODER) as channel:  # warm up: the first calls allocate for good
                await asyncio.gather(*(exchange(channel, _identity_consultation(f"w-{i}")) for i in range(20)))
            flooder, out = _flooder(
                net.state,
                net.core.address,
                tmp_path,
                seconds=MEMORY_FLOOD_S,
                concurrency=50_000,
                channels=8,
                fields=MEMORY_FLOOD_FIELDS,
                rate=MEMORY_FLOOD_RATE,
            )
            rss = await _rss_until(lambda: flooder.poll() is not None)
            assert flooder.wait() == 0
            return json.loads(out.read_text()), net.core.admission.peak_in_flight, rss

    flood, peak_in_flight, rss = asyncio.run(scenario())
    base = rss[0][1]
    settled = max(m for t, m in rss if t <= 1.5)
    peak = max(m for _, m in rss)
    mb = 2**20
    print(
        f"\npeak in flight {peak_in_flight}; calls {flood['calls']}, ok {flood['ok']}, {flood['details']}; "
        f"RSS +{(settled - base) / mb:.0f} MB after 1.5 s, +{(peak - base) / mb:.0f} MB at most"
    )
    assert peak_in_flight == max_in_flight  # reached, never passed
    offered_mb = flood["calls"] * MEMORY_FLOOD_FIELDS * 7 / mb
    assert offered_mb >= MEMORY_FLOOD_MIN_OFFERED_MB and flood["ok"] > 0
    assert (peak - base) / mb < offered_mb / 3  # nowhere near holding what was sent
    assert (peak - settled) / mb < MEMORY_GROWTH_BUDGET_MB  # and not growing as the flood goes on


async def _rss_until(done: Callable[[], bool]) -> list[tuple[float, int]]:
    """(seconds since the start, RSS of this process) every 50 ms until `done()`."""
    me, started = psutil.Process(), time.monotonic()
    samples = [(0.0, me.memory_info().rss)]
    while not done():
        await asyncio.sleep(0.05)
        samples.append((time.monotonic() - started, me.memory_info().rss))
    return samples
