"""Bringing the live network up and down: world files reused, hosts started and stopped, status."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import numpy as np
import pytest

from agencies.inbox import received
from agencies.spec import WorldSpec
from crossroads.atomic_file import write_json_atomic
from crossroads.domain import AgencyId, Dataset
from crossroads.pki import CORE, NetworkPki, channel_credentials
from protos import messages_pb2
from scenarios.shipped import default_scenario
from testbed import live, world_files
from testbed.live import LiveNetworkError, bring_up, start_network, status
from testbed.world_files import WorldFiles, prepare_world

ROOT = Path(__file__).resolve().parents[1]
SEED = 4242
AGENCIES = tuple(AgencyId(f"CPAS-{i:04d}") for i in range(1, 121))
WORLD = WorldFiles(SEED, AGENCIES, built=True)
SCENARIO = "world:\n  seed: {seed}\n  persons: 1000\n  employers: 50\n"

needs_answers = pytest.mark.skipif(
    importlib.util.find_spec("agencies.answers") is None, reason="hosts answer with agencies.answers (not there yet)"
)
needs_everything = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("agencies.answers", "agencies.world", "crossroads.server"))
    or not default_scenario().exists(),
    reason="the end-to-end path needs agencies.answers, agencies.world, crossroads.server and scenarios/demo.yaml",
)


def _processes_in(state: Path) -> list[int]:
    """Pids of live (non-zombie) processes whose command line names `state`: none may outlive a test."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            zombie = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
        except (OSError, IndexError):
            continue
        if str(state) in cmdline and not zombie:
            found.append(int(proc.name))
    return found


# ------------------------------------------------------------------ world files


def _scenario(tmp_path: Path, seed: int) -> Path:
    path = tmp_path / f"scenario-{seed}.yaml"
    path.write_text(SCENARIO.format(seed=seed))
    return path


def test_world_files_are_reused_while_the_scenario_is_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    builds: list[int] = []

    def fake_build(spec: WorldSpec, scenario: Path, state_dir: Path, fingerprint: str, progress: bool) -> WorldFiles:
        builds.append(spec.seed)
        for name in ("knowledge.json", "directory.sqlite"):
            (state_dir / name).write_text("")
        write_json_atomic(state_dir / "world.json", {"fingerprint": fingerprint, "seed": SEED, "agencies": ["ONSS"]})
        return WorldFiles(SEED, (AgencyId("ONSS"),), built=True)

    monkeypatch.setattr(world_files, "_build_world", fake_build)
    scenario = _scenario(tmp_path, 1)
    assert prepare_world(scenario, state).built
    assert prepare_world(scenario, state) == WorldFiles(SEED, (AgencyId("ONSS"),), built=False)
    assert prepare_world(_scenario(tmp_path, 2), state).built  # another seed: rebuilt
    (state / "directory.sqlite").unlink()
    assert prepare_world(_scenario(tmp_path, 2), state).built  # a file went missing: rebuilt
    assert builds == [1, 2, 2]


def test_agencies_are_dealt_round_robin_once_each() -> None:
    shares = live._share(AGENCIES, 4)
    assert [len(s) for s in shares] == [30, 30, 30, 30]
    assert sorted(a for s in shares for a in s) == sorted(AGENCIES)
    assert shares[1][:2] == [AgencyId("CPAS-0002"), AgencyId("CPAS-0006")]


def test_too_many_hosts_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"hosts must be 1\.\.1 "):
        start_network(tmp_path, WorldFiles(SEED, (AgencyId("ONSS"),), built=True), hosts=2, start_core=False)


def test_status_without_a_network(tmp_path: Path) -> None:
    report = status(tmp_path)
    assert not report["serving"] and "was not brought up" in report["error"]


# ------------------------------------------------------------------ hosts as processes


@needs_answers
def test_a_host_dying_at_start_up_stops_the_rest_and_is_quoted(tmp_path: Path) -> None:
    state = tmp_path / "state"
    pki = NetworkPki.open(state / "pki")
    pki.path_of("host-1").write_bytes(b"not a key\n")  # kept by issue_many; host-1 cannot load it

    with pytest.raises(LiveNetworkError, match=r"host-1 exited with code [1-9]") as caught:
        start_network(state, WORLD, hosts=3, start_core=False, timeout_s=60)
    assert "no private key followed by a certificate" in str(caught.value)  # the tail of host-1's log
    assert not (state / "endpoints.json").exists()
    assert _processes_in(state) == []


def _consult(address: str, pki_dir: Path, agency: str) -> messages_pb2.ConsultationAnswer:
    envelope = messages_pb2.Envelope(message_id="c-1", kind=messages_pb2.CONSULTATION, dataset="social_integration")
    with grpc.secure_channel(address, channel_credentials(pki_dir, CORE)) as channel:
        deliver = channel.unary_unary(
            "/crossroads.v1.Agency/Deliver",
            request_serializer=messages_pb2.Forward.SerializeToString,
            response_deserializer=messages_pb2.AgencyReply.FromString,
        )
        forward = messages_pb2.Forward(agency=agency, sender="ONSS", envelope=envelope.SerializeToString())
        reply: messages_pb2.AgencyReply = deliver(forward, timeout=10)
    return messages_pb2.ConsultationAnswer.FromString(reply.payload)


@needs_answers
def test_hosts_come_up_serve_their_share_and_stop(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with start_network(state, WORLD, hosts=2, start_core=False, timeout_s=60) as network:
        endpoints = json.loads((state / "endpoints.json").read_text())
        assert endpoints["up"] and endpoints["core"] is None and endpoints["agencies"] == len(AGENCIES)
        assert [h["agencies"] for h in endpoints["hosts"]] == [60, 60]
        hosts = json.loads((state / "hosts.json").read_text())["hosts"]
        assert sorted(a for h in hosts for a in h["agencies"]) == sorted(AGENCIES)
        report = status(state)
        assert report["serving"] and [h["health"] for h in report["hosts"]] == ["SERVING", "SERVING"]
        assert all(h["pid_alive"] for h in report["hosts"])
        assert _consult(hosts[1]["address"], state / "pki", hosts[1]["agencies"][0]).agency == hosts[1]["agencies"][0]
        assert sorted(_processes_in(state)) == sorted(endpoints["pids"].values())
    assert network.dead() == ["host-0", "host-1"]
    assert _processes_in(state) == []
    after = status(state)
    assert not after["up"] and not after["serving"]
    assert [(h["health"], h["pid_alive"]) for h in after["hosts"]] == [("UNREACHABLE", False)] * 2


# ------------------------------------------------------------------ end to end, with the core


def _exchange(address: str, pki_dir: Path, sender: str, envelope: messages_pb2.Envelope) -> messages_pb2.ExchangeReply:
    with grpc.secure_channel(address, channel_credentials(pki_dir, sender)) as channel:
        call = channel.unary_unary(
            "/crossroads.v1.Crossroads/Exchange",
            request_serializer=messages_pb2.Envelope.SerializeToString,
            response_deserializer=messages_pb2.ExchangeReply.FromString,
        )
        reply: messages_pb2.ExchangeReply = call(envelope, timeout=30)
    return reply


def _traffic_reaches_the_agencies(state: Path, core: str) -> None:
    """A consultation and a DIMONA through the core: answered by the host, stored in its inbox."""
    from agencies.answers import answer
    from agencies.exchanges import samples
    from agencies.spec import load_world_spec
    from agencies.world import World

    spec = load_world_spec(default_scenario())
    world, rng = World.build(spec), np.random.default_rng(SEED)
    ask = samples.consultation(world, rng)
    reply = _exchange(core, state / "pki", ask.sender, ask.envelope)
    assert reply.outcome == messages_pb2.DELIVERED, reply.detail
    (delivery,) = reply.deliveries
    found = messages_pb2.ConsultationAnswer.FromString(delivery.reply)
    expected = answer(spec.seed, AgencyId(delivery.agency), Dataset(ask.envelope.dataset), ask.envelope.subject_niss)
    assert found.agency == delivery.agency and dict(found.fields) == expected and expected
    declared = samples.dimona(world, rng)
    reply = _exchange(core, state / "pki", declared.sender, declared.envelope)
    assert reply.outcome == messages_pb2.DELIVERED and reply.deliveries, reply.detail
    stored = {
        (r.agency, r.kind, r.sender, r.audit_index)
        for r in received(state)
        if r.message_id == declared.envelope.message_id
    }
    # audit index 0: on a first attempt the core forwards before writing its record (crossroads/exchange.py)
    assert stored == {(d.agency, "DIMONA", declared.sender, 0) for d in reply.deliveries}


@pytest.fixture(scope="module")
def demo_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One state folder for the end-to-end tests: the first builds the world, the others reuse it."""
    return tmp_path_factory.mktemp("demo") / "state"


@pytest.mark.slow
@needs_everything
def test_bring_up_the_demo_network(demo_state: Path) -> None:
    state = demo_state
    with bring_up(default_scenario(), state, hosts=2, progress=False) as network:
        endpoints = json.loads((state / "endpoints.json").read_text())
        assert endpoints["core"].startswith("127.0.0.1:") and endpoints["agencies"] >= 1
        report = status(state)
        assert report["serving"] and report["core"]["health"] == "SERVING" and report["core"]["pid_alive"]
        assert len(report["hosts"]) == 2
        _traffic_reaches_the_agencies(state, endpoints["core"])
        threads = {t.read_text().strip() for t in Path(f"/proc/{endpoints['pids']['core']}/task").glob("*/comm")}
        assert {"audit-writer", "grpc-poller"} <= threads  # per-thread CPU says whose it is
    assert network.dead() == ["core", "host-0", "host-1"]
    assert _processes_in(state) == []
    assert not status(state)["serving"]
    assert json.loads((state / "world.json").read_text())["seed"] == endpoints["seed"]


@pytest.mark.slow
@needs_everything
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_the_up_command_stops_everything_on_a_signal(
    demo_state: Path, tmp_path: Path, stop_signal: signal.Signals
) -> None:
    state, output = demo_state, tmp_path / "up.out"
    (state / "endpoints.json").unlink(missing_ok=True)  # left by an earlier test: wait for this run's
    command = [sys.executable, "-m", "testbed.cli", "up", "--state", str(state), "--hosts", "2"]
    with open(output, "wb") as out:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while not (state / "endpoints.json").exists():
            assert proc.poll() is None, output.read_text()
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert status(state)["serving"]
        os.kill(proc.pid, stop_signal)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert f"endpoints were in {state / 'endpoints.json'}" in output.read_text()
    assert _processes_in(state) == []
