"""The open-loop load generator against a real agency host (a child process) on 127.0.0.1: it sends
its schedule, records every request, times latency from each request's intended send time, and
says when it could not keep its schedule. Behaviour, never speed.

The host answers every consultation after a fixed SERVICE_S, so that every latency is at least
that plus the request's send lag; an Exchange server in this process records what it receives,
so that every message is seen to carry a message id of its own.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from agencies import host as agency_host
from crossroads.pki import CORE, NetworkPki, server_credentials
from loadtests.level import NOT_SENT, RECORD, Level, read_records
from loadtests.loadgen import EXCHANGE_METHOD, level_args, run_level
from loadtests.prepared import Prepared, write_requests
from protos import messages_pb2
from testbed import processes

SERVICE_S = 0.05  # the host's fixed service time
DELIVER = "/crossroads.v1.Agency/Deliver"
AGENCY = "ONSS"
SLACK_S = 0.002  # clock reads around the call: a latency may miss lag + service by this much


def _consultation(message_id: str) -> bytes:
    ask = messages_pb2.ConsultationRequest(dataset="health_insurance").SerializeToString()
    return messages_pb2.Envelope(
        message_id=message_id, kind=messages_pb2.CONSULTATION, subject_niss="85073003328", payload=ask
    ).SerializeToString()


def _deliveries(n: int) -> list[Prepared]:
    return [
        Prepared(
            CORE,
            DELIVER,
            messages_pb2.Forward(agency=AGENCY, sender=AGENCY, envelope=_consultation(f"m-{i}")).SerializeToString(),
        )
        for i in range(n)
    ]


@dataclasses.dataclass(frozen=True)
class Host:
    pki: Path
    address: str
    requests: Path


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    """An agency host in a child process, answering AGENCY after a fixed SERVICE_S."""
    state = tmp_path_factory.mktemp("loadgen") / "state"
    NetworkPki.open(state / "pki").issue_many([CORE, "host-0"])
    agencies = state / "agencies.json"
    agencies.write_text(json.dumps([AGENCY]))
    command = agency_host.command(state, "host-0", agencies, 7, service_time_ms=SERVICE_S * 1000)
    command = dataclasses.replace(command, args=(*command.args, "--service-time", "fixed"))
    requests = state / "requests.jsonl"
    write_requests(requests, _deliveries(8))
    with processes.running_server(command, state / "host-0.log", timeout_s=60) as child:
        assert child.address is not None
        yield Host(state / "pki", child.address, requests)


def _measured(records: np.ndarray) -> np.ndarray:
    return records[records["intended_s"] >= 0]


def test_a_level_sends_its_schedule_and_records_every_request(host: Host) -> None:
    level = Level(rate=40, seconds=2.0, warmup_s=0.5, seed=3)
    before = time.time()
    result = run_level(host.pki, host.address, _deliveries(8), level)
    figures, records = result.figures, result.records
    schedule = level.schedule(0)
    assert records.dtype == RECORD and records.size == schedule.size  # warm-up included
    assert np.array_equal(records["intended_s"], schedule)
    assert figures["scheduled"] == _measured(records).size == np.count_nonzero(schedule >= 0)
    assert abs(figures["scheduled"] - 40 * 2.0) < 4 * np.sqrt(40 * 2.0)  # Poisson(80)
    assert figures["sent"] == figures["ok"] == figures["scheduled"] and figures["errors"] == 0
    assert figures["offered_per_s"] == pytest.approx(figures["scheduled"] / 2.0)
    assert figures["errors_by_code"] == {} and figures["not_sent"] == 0
    assert set(records["code"]) == {0} and set(records["process"]) == {0}
    assert figures["cpu_s"] > 0 and len(figures["cpu_s_by_process"]) == 1
    assert json.loads(json.dumps(figures, allow_nan=False)) == figures  # strict JSON
    assert before + 0.5 < figures["window_start_unix"] < time.time() - 2.0  # the measured window, on the wall clock


def test_the_window_start_is_written_before_anything_is_sent(host: Host, tmp_path: Path) -> None:
    """What a fault injector waits for: the window's start, on the wall clock, known in advance."""
    start_file = tmp_path / "window.start"
    seen: list[float] = []

    def watch() -> None:  # the file must appear before the window starts, not after the level
        while not start_file.exists():
            time.sleep(0.005)
        seen.append(time.time())

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    level = Level(rate=30, seconds=1.0, warmup_s=0.5, processes=2)
    figures = run_level(host.pki, host.address, _deliveries(8), level, start_file).figures
    watcher.join(5)
    assert float(start_file.read_text()) == pytest.approx(figures["window_start_unix"], abs=0.01)
    assert seen and seen[0] < figures["window_start_unix"] - 0.4  # written before the warm-up began


def test_latency_runs_from_the_intended_send_time(host: Host) -> None:
    records = run_level(host.pki, host.address, _deliveries(8), Level(rate=30, seconds=1.0, warmup_s=0.2)).records
    assert np.all(records["lag_s"] >= 0)
    assert np.all(records["latency_s"] >= records["lag_s"] + SERVICE_S - SLACK_S)


def test_a_rate_the_generator_cannot_keep_is_reported_as_generator_limited(host: Host) -> None:
    # 5,000 requests due within 0.25 s: far beyond what one Python sender hands to gRPC
    level = Level(rate=20_000, seconds=0.25, warmup_s=0.0, arrivals="uniform")
    result = run_level(host.pki, host.address, _deliveries(8), level)
    figures, measured = result.figures, _measured(result.records)
    print(f"\nimpossible rate: {json.dumps(figures)}")
    assert figures["generator_limited"] is True and "send_lag" in figures["limited_by"]
    assert figures["lag_p99_ms"] > 5.0
    answered = measured[measured["code"] == 0]
    # what the sender was late by is in the latency, not hidden from it
    assert np.all(answered["latency_s"] >= answered["lag_s"] + SERVICE_S - SLACK_S)
    assert figures["p99_ms"] >= figures["lag_p99_ms"]


def test_a_benchmark_runs_a_level_of_two_sender_processes_through_processes_run(host: Host, tmp_path: Path) -> None:
    level = Level(rate=60, seconds=1.0, warmup_s=0.3, arrivals="uniform", processes=2, seed=5)
    out = tmp_path / "records.npy"
    args = level_args(host.pki, host.address, host.requests, level, records=out)
    code, stdout = processes.run("loadgen", args, log=tmp_path / "loadgen.log", timeout_s=120)
    assert code == 0, (tmp_path / "loadgen.log").read_text()
    figures = json.loads(stdout.strip().splitlines()[-1])
    records = read_records(out)
    assert figures["processes"] == 2 and len(figures["cpu_s_by_process"]) == 2
    assert figures["scheduled"] == figures["ok"] == _measured(records).size == 60
    # evenly spaced at 1/60 s in all, the two senders alternating
    assert np.allclose(np.diff(records["intended_s"]), 1 / 60)
    assert list(records["process"][:4]) == [0, 1, 0, 1]
    assert np.all(records["intended_s"][:-1] <= records["intended_s"][1:])


# --- fresh message ids ---------------------------------------------------------------------------


class _Recorder:
    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def exchange(self, body: bytes, context: Any) -> bytes:
        self.bodies.append(body)
        return b""


def test_every_exchange_carries_a_message_id_of_its_own(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    NetworkPki.open(pki).issue_many(["core", "FA-1", "FA-2"])
    recorder = _Recorder()
    server = grpc.server(futures.ThreadPoolExecutor(4), options=[("grpc.so_reuseport", 0)])
    handler = grpc.unary_unary_rpc_method_handler(recorder.exchange)  # bytes in, bytes out
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("crossroads.v1.Crossroads", {"Exchange": handler}),)
    )
    port = server.add_secure_port("127.0.0.1:0", server_credentials(pki, "core"))
    server.start()
    try:
        prepared = [Prepared(who, EXCHANGE_METHOD, _consultation("same")) for who in ("FA-1", "FA-2")]
        figures = run_level(pki, f"127.0.0.1:{port}", prepared, Level(rate=100, seconds=0.5, warmup_s=0.2)).figures
    finally:
        server.stop(0)
    ids = [messages_pb2.Envelope.FromString(b).message_id for b in recorder.bodies]
    assert len(ids) == len(set(ids)) >= figures["sent"] > 0
    assert all(i != "same" for i in ids)


def test_a_level_refuses_what_cannot_run() -> None:
    with pytest.raises(ValueError, match="rate > 0"):
        Level(rate=0, seconds=1)
    with pytest.raises(ValueError, match="processes"):
        Level(rate=1, seconds=1, processes=0)
    with pytest.raises(ValueError, match="arrivals"):
        Level(rate=1, seconds=1, arrivals="bursty")  # type: ignore[arg-type]


def test_not_sent_is_a_code_of_its_own() -> None:
    assert NOT_SENT not in {c.value[0] for c in grpc.StatusCode}
