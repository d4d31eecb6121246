"""End to end over the live network: the demo world's ~3,000 agencies and the core on 127.0.0.1,
real gRPC with mutual TLS, driven through `crossroads.client` and the `crossroads` CLI.

One network serves the whole module (bring_up once, stopped at the end). The tests run in file
order: the last ones stop the network to verify (and then damage) its audit store.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from agencies import authorizations
from agencies.answers import answer
from agencies.catalogue import PORTAL
from agencies.exchanges import Ask, expected_decision, prepare, samples, with_fresh_id
from agencies.inbox import received
from agencies.world import World
from crossroads.audit import AUDIT_DB
from crossroads.audit_record import AuditRecord
from crossroads.citizen import Fas
from crossroads.client import CoreClient, ExchangeRefused, audit_public_key
from crossroads.domain import AgencyId, Dataset, DirectoryEntry, Kind
from crossroads.pki import channel_credentials, channel_credentials_from, foreign_identity, load_identity
from crossroads.receipts import verify_receipt
from crossroads.routing import Routed
from protos import messages_pb2, services_pb2, services_pb2_grpc
from scenarios.shipped import default_scenario
from testbed import cli
from testbed.demo import DEFAULT_STEPS, load_test, model_loop, run_demo, what_if
from testbed.live import LiveNetwork, bring_up
from testbed.world_files import load_world

pytestmark = pytest.mark.slow

SEED = 20261201


@dataclass
class Net:
    state: Path
    network: LiveNetwork
    world: World
    rng: np.random.Generator

    def client(self, identity: str) -> CoreClient:
        return CoreClient.connect(self.state, identity)

    def record(self, index: int) -> AuditRecord:
        with self.client("admin") as client:
            entry = client.audit_entry(index)
        return AuditRecord.from_leaf(entry.leaf)

    def size(self) -> int:
        with self.client("admin") as client:
            return int(client.head().size)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    state = tmp_path_factory.mktemp("e2e") / "state"
    network = bring_up(default_scenario(), state, progress=False)
    try:
        yield Net(state, network, load_world(state), np.random.default_rng(SEED))
    finally:
        network.stop()


def _send(net: Net, sender: str, envelope: messages_pb2.Envelope) -> messages_pb2.ExchangeReply:
    with net.client(sender) as client:
        return client.exchange(envelope)


def _refused(net: Net, sender: str, envelope: messages_pb2.Envelope) -> ExchangeRefused:
    with pytest.raises(ExchangeRefused) as refused:
        _send(net, sender, envelope)
    return refused.value


def _routed(net: Net, sample: samples.Sample, files: list[DirectoryEntry] | None = None) -> Routed:
    decision = expected_decision(net.world, sample.sender, sample.envelope, files)
    assert isinstance(decision, Routed), decision
    return decision


def _sample(net: Net, kind: Kind, *, at_least: int = 1) -> samples.Sample:
    """A sample of `kind` whose routing names at least `at_least` destinations."""
    for _ in range(100):
        sample = samples.KINDS[kind](net.world, net.rng)
        if len(_routed(net, sample).destinations) >= at_least:
            envelope = with_fresh_id(sample.envelope, "e2e")
            Fas.open(net.state / "pki").vouch(envelope, sample.sender, time.time())  # if it acts for a citizen
            return samples.Sample(sample.sender, envelope)
    raise AssertionError(f"no {kind.name} sample reaches {at_least} agencies")


def _no_deliberation(net: Net) -> tuple[str, messages_pb2.Envelope]:
    """A local body asking for wages: no deliberation allows it."""
    ask = Ask(
        kind=Kind.CONSULTATION,
        sender=AgencyId("LOC-0001"),
        niss=net.world.niss(0),
        dataset="wages",
        purpose="social_tariff",
    )
    prepared = prepare(net.world, net.rng, ask)
    return prepared.sender, prepared.envelope


# ------------------------------------------------------------------ consultations and refusals


def test_an_authorized_consultation_is_answered_by_the_agency_holding_the_file(net: Net) -> None:
    sample = _sample(net, Kind.CONSULTATION)
    expected = _routed(net, sample)
    reply = _send(net, sample.sender, sample.envelope)
    assert messages_pb2.Outcome.Name(reply.outcome) == "DELIVERED" and reply.forwarded
    assert [(d.agency, d.via or None) for d in reply.deliveries] == [(d.agency, d.via) for d in expected.destinations]
    found = messages_pb2.ConsultationAnswer.FromString(reply.deliveries[0].reply)
    env = sample.envelope
    assert found.agency == expected.destinations[0].agency and found.found
    assert dict(found.fields) == answer(
        net.world.spec.seed, AgencyId(found.agency), Dataset(env.dataset), env.subject_niss
    )
    assert reply.deliberation == env.deliberation


def test_without_a_deliberation_it_is_denied_and_audited(net: Net) -> None:
    sender, envelope = _no_deliberation(net)
    refused = _refused(net, sender, envelope)
    assert refused.code == grpc.StatusCode.PERMISSION_DENIED and "no_deliberation" in refused.details
    assert refused.audit_index is not None
    record = net.record(refused.audit_index)
    assert (record.outcome, record.sender, record.message_id) == ("DENIED", sender, envelope.message_id)
    assert record.destinations == ()


def test_a_forged_sender_field_is_ignored(net: Net) -> None:
    sample = _sample(net, Kind.CONSULTATION)
    sample.envelope.sender = "ONSS" if sample.sender != "ONSS" else "NR"
    reply = _send(net, sample.sender, sample.envelope)
    record = net.record(reply.audit_index)
    assert record.sender == sample.sender and f"claimed sender '{sample.envelope.sender}'" in record.detail
    # claiming to be ONSS does not make a CPAS the source of DmfA attestations
    attestation = _sample(net, Kind.MUTATION)
    attestation.envelope.dataset, attestation.envelope.sender = "dmfa_attestations", "ONSS"
    refused = _refused(net, "CPAS-0001", attestation.envelope)
    assert refused.code == grpc.StatusCode.PERMISSION_DENIED and "not_authentic_source" in refused.details
    assert refused.audit_index is not None and net.record(refused.audit_index).sender == "CPAS-0001"


def _raw_call(net: Net, credentials: grpc.ChannelCredentials, sample: samples.Sample) -> grpc.StatusCode:
    """The status of one Exchange over a channel of its own with `credentials`."""
    address = json.loads((net.state / "endpoints.json").read_text())["core"]
    with grpc.secure_channel(address, credentials) as channel:
        stub = services_pb2_grpc.CrossroadsStub(channel)  # type: ignore[no-untyped-call]
        try:
            stub.Exchange(sample.envelope, timeout=5)
        except grpc.RpcError as error:
            return error.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def test_without_a_client_certificate_the_core_refuses_the_connection(net: Net) -> None:
    sample = _sample(net, Kind.CONSULTATION)
    _, ca_pem = load_identity(net.state / "pki", "admin")
    before = net.size()
    # the TLS handshake fails: no call is made, nothing is logged
    assert _raw_call(net, channel_credentials_from(None, ca_pem), sample) == grpc.StatusCode.UNAVAILABLE
    assert net.size() == before
    # the same call with the sender's own certificate goes through
    assert _raw_call(net, channel_credentials(net.state / "pki", sample.sender), sample) == grpc.StatusCode.OK
    assert net.size() == before + 1


def test_a_certificate_from_a_foreign_ca_is_refused(net: Net) -> None:
    sample = _sample(net, Kind.CONSULTATION)
    forged, _ = foreign_identity(sample.sender)  # the right name, the wrong issuer
    _, ca_pem = load_identity(net.state / "pki", "admin")
    before = net.size()
    assert _raw_call(net, channel_credentials_from(forged, ca_pem), sample) == grpc.StatusCode.UNAVAILABLE
    assert net.size() == before


def test_an_invalid_niss_is_refused_naming_the_field_and_audited(net: Net) -> None:
    sample = _sample(net, Kind.CONSULTATION)
    niss = sample.envelope.subject_niss
    sample.envelope.subject_niss = niss[:-1] + str((int(niss[-1]) + 1) % 10)
    refused = _refused(net, sample.sender, sample.envelope)
    assert refused.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "subject_niss" in refused.details and "check digits" in refused.details
    assert refused.audit_index is not None
    record = net.record(refused.audit_index)
    assert (record.outcome, record.sender, record.subject_niss) == (
        "INVALID",
        sample.sender,
        sample.envelope.subject_niss,
    )


# ------------------------------------------------------------------ citizens through the portal


def _who_accessed(net: Net, identity: str, request: services_pb2.WhoAccessedRequest) -> Any:
    """WhoAccessed as `identity`: the reply, or the grpc.RpcError it raised."""
    address = json.loads((net.state / "endpoints.json").read_text())["core"]
    with grpc.secure_channel(address, channel_credentials(net.state / "pki", identity)) as channel:
        stub = services_pb2_grpc.AuditStub(channel)  # type: ignore[no-untyped-call]
        try:
            return stub.WhoAccessed(request, timeout=10)
        except grpc.RpcError as error:
            return error


def test_a_citizen_consults_their_own_file_with_the_fas_assertion_and_sees_who_accessed_it(net: Net) -> None:
    ask = Ask(kind=Kind.CONSULTATION, sender=PORTAL, purpose=authorizations.CITIZEN_PURPOSE)
    envelope = prepare(net.world, net.rng, ask).envelope
    envelope.message_id = f"e2e-citizen-{envelope.message_id}"
    refused = _refused(net, PORTAL, envelope)  # no assertion: the portal cannot show the citizen logged in
    assert refused.code == grpc.StatusCode.PERMISSION_DENIED and "citizen_no_assertion" in refused.details
    fas = Fas.open(net.state / "pki")  # made by bring_up: the core trusts its public key
    envelope.message_id += "-signed"
    fas.vouch(envelope, PORTAL, time.time())
    reply = _send(net, PORTAL, envelope)
    assert messages_pb2.Outcome.Name(reply.outcome) == "DELIVERED"
    niss = envelope.subject_niss
    listed = _who_accessed(net, PORTAL, services_pb2.WhoAccessedRequest(niss=niss, citizen=envelope.citizen))
    ids = [AuditRecord.from_leaf(e.leaf).message_id for e in listed.entries]
    assert envelope.message_id in ids and reply.audit_index in [e.index for e in listed.entries]
    # the same assertion is no key to anyone else's list, and an agency cannot ask at all
    other = net.world.niss(1) if niss != net.world.niss(1) else net.world.niss(2)
    denied = _who_accessed(net, PORTAL, services_pb2.WhoAccessedRequest(niss=other, citizen=envelope.citizen))
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED and "citizen_other_person" in denied.details()
    denied = _who_accessed(net, "ONEM", services_pb2.WhoAccessedRequest(niss=niss, citizen=envelope.citizen))
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED and "citizen_not_access_point" in denied.details()


# ------------------------------------------------------------------ fan-out and push


def _inboxes(net: Net, message_id: str) -> set[str]:
    return {r.agency for r in received(net.state) if r.message_id == message_id}


def test_a_dmfa_reaches_exactly_the_agencies_the_deliberations_name(net: Net) -> None:
    sample = _sample(net, Kind.DMFA, at_least=7)  # beyond the five named institutions: funds with files
    expected = _routed(net, sample)
    reply = _send(net, sample.sender, sample.envelope)
    assert messages_pb2.Outcome.Name(reply.outcome) == "DELIVERED"
    wanted = {d.agency for d in expected.destinations}
    assert _inboxes(net, sample.envelope.message_id) == wanted == {d.agency for d in reply.deliveries}
    assert reply.deliberation.split(",") == list(expected.deliberations)
    assert {r.sender for r in received(net.state) if r.message_id == sample.envelope.message_id} == {sample.sender}


def test_a_mutation_reaches_every_agency_with_the_person_in_its_files(net: Net) -> None:
    sample = _sample(net, Kind.MUTATION, at_least=2)
    expected = _routed(net, sample)
    reply = _send(net, sample.sender, sample.envelope)
    assert messages_pb2.Outcome.Name(reply.outcome) == "DELIVERED"
    assert _inboxes(net, sample.envelope.message_id) == {d.agency for d in expected.destinations}
    holders = {e.agency for e in net.world.files_of(sample.envelope.subject_niss)}
    assert {d.agency for d in expected.destinations} <= holders  # only agencies that know the person


def _insured_at_one_fund(net: Net) -> tuple[str, AgencyId]:
    """A person with exactly one health-insurance file, opened before the world's day, and that fund."""
    w = net.world
    for person in range(w.person_count):
        funds = [e for e in w.files_of_person(person) if e.sector == 4 and e.open_on(w.spec.as_of)]
        if len(funds) == 1 and funds[0].start < w.spec.as_of and funds[0].agency.startswith("MUT-"):
            return w.niss(person), funds[0].agency
    raise AssertionError("nobody in the world is insured at a fund")


def _health_consultation(net: Net, niss: str) -> messages_pb2.ExchangeReply:
    ask = Ask(
        kind=Kind.CONSULTATION,
        sender=AgencyId("ONEM"),
        niss=niss,
        dataset="health_insurance",
        purpose="unemployment_benefits",
    )
    prepared = prepare(net.world, net.rng, ask)
    return _send(net, prepared.sender, prepared.envelope)


def test_an_integration_moves_where_a_consultation_of_that_person_goes(net: Net) -> None:
    niss, fund = _insured_at_one_fund(net)
    assert [(d.agency, d.via) for d in _health_consultation(net, niss).deliveries] == [(fund, "CIN")]
    newcomer = AgencyId("MUT-0001" if fund != "MUT-0001" else "MUT-0002")
    ask = Ask(kind=Kind.INTEGRATION, sender=newcomer, niss=niss, sector=4, quality=30)
    integration = prepare(net.world, net.rng, ask)
    reply = _send(net, newcomer, integration.envelope)
    assert messages_pb2.Outcome.Name(reply.outcome) == "DELIVERED"
    assert [d.agency for d in reply.deliveries] == ["CIN"]  # registered at the sector hub too
    assert [(d.agency, d.via) for d in _health_consultation(net, niss).deliveries] == [(newcomer, "CIN")]


# ------------------------------------------------------------------ the client's commands


def test_send_prints_the_route_the_answer_and_a_verified_receipt(net: Net, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["send", "--state", str(net.state), "--seed", "5", "consultation"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["outcome"] == "DELIVERED" and report["answer"]["found"]
    assert report["route"][0]["agency"] == report["answer"]["agency"]
    audit = report["audit"]
    assert audit["verified"] and audit["record"]["message_id"] == report["envelope"]["message_id"]
    assert audit["record"]["sender"] == report["sender"] and audit["tree_size"] > audit["index"]


def test_send_signs_a_citizens_consultation_as_the_fas_and_the_portal_would(
    net: Net, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["send", "--state", str(net.state), "--seed", "5", "--as", PORTAL, "consultation", "--purpose"]
    assert cli.main([*argv, authorizations.CITIZEN_PURPOSE]) == 0
    report = json.loads(capsys.readouterr().out)
    envelope = report["envelope"]
    assert report["outcome"] == "DELIVERED" and report["audit"]["verified"]
    assert (envelope["citizen"]["niss"], envelope["citizen"]["audience"]) == (envelope["subject_niss"], PORTAL)


def test_send_shows_a_refusal_with_its_status_and_audit_index(net: Net, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "send",
        "--state",
        str(net.state),
        "--as",
        "LOC-0001",
        "consultation",
        "--niss",
        net.world.niss(3),
        "--dataset",
        "wages",
        "--purpose",
        "social_tariff",
    ]
    assert cli.main(argv) == 1
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert (report["outcome"], report["status"]) == ("REFUSED", "PERMISSION_DENIED")
    assert report["audit"]["verified"] and report["audit"]["record"]["outcome"] == "DENIED"
    assert f"audit record {report['audit_index']}" in err


def test_the_receipt_of_a_consultation_verifies(net: Net) -> None:
    sample = _sample(net, Kind.CONSULTATION)
    reply = _send(net, sample.sender, sample.envelope)
    with net.client(sample.sender) as client:
        receipt = client.receipt(reply.audit_index, message_id=sample.envelope.message_id)
        head = client.head()
        entry = client.audit_entry(reply.audit_index, head.size)
    assert receipt.verified and receipt.record is not None and receipt.record.outcome == "DELIVERED"
    entry.inclusion.hashes[-1] = bytes(32)  # the same receipt with one hash of its proof replaced
    forged = verify_receipt(entry, head.checkpoint, audit_public_key(net.state))
    assert not forged.verified and "does not lead to the signed root" in str(forged.problem)


def test_send_random_counts_add_up_and_everything_is_delivered(net: Net, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["send", "--state", str(net.state), "--random", "3", "--seed", "11", "--no-progress"]
    assert cli.main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    kinds = [k.name for k in samples.KINDS]
    assert [k for k in report if k != "totals"] == kinds
    assert all(sum(report[k].values()) == 3 for k in kinds)
    assert report["totals"]["sent"] == 3 * len(kinds) == sum(report["totals"]["by_outcome"].values())
    assert set(report["totals"]["by_outcome"]) <= {"DELIVERED", "QUEUED"}


# ------------------------------------------------------------------ the audit store, stopped (last: stops the network)


def _flip_one_byte_in_a_leaf(state: Path) -> int:
    """Change one character of a leaf's message id in the SQLite file; the index of that leaf."""
    db = sqlite3.connect(state / AUDIT_DB)
    try:
        index, leaf = db.execute("SELECT idx, leaf FROM leaves ORDER BY idx DESC LIMIT 1 OFFSET 3").fetchone()
    finally:
        db.close()
    needle = json.loads(leaf)["message_id"].encode()
    for path in (state / AUDIT_DB, state / f"{AUDIT_DB}-wal"):
        if path.exists():
            data = bytearray(path.read_bytes())
            at = data.find(needle)
            while at >= 0:
                data[at + len(needle) - 1] ^= 0x01  # the last character of the id: still valid JSON
                at = data.find(needle, at + 1)
            path.write_bytes(bytes(data))
    return int(index)


def test_audit_verify_passes_after_the_traffic_and_fails_after_one_byte_changes(
    net: Net, capsys: pytest.CaptureFixture[str]
) -> None:
    net.network.stop()  # a stopped log: every record is covered by a signed checkpoint
    assert cli.main(["audit", "verify", "--state", str(net.state)]) == 0
    verified = json.loads(capsys.readouterr().out)
    assert verified["ok"] and verified["size"] > 20
    changed = _flip_one_byte_in_a_leaf(net.state)
    assert cli.main(["audit", "verify", "--state", str(net.state)]) == 1
    out, err = capsys.readouterr()
    assert json.loads(out)["first_bad_index"] == changed and f"first bad index {changed}" in err


# ------------------------------------------------------------------ the demo


def test_the_demo_runs_verifies_and_stops_and_runs_again(tmp_path: Path) -> None:
    said: list[str] = []
    # the simulation and the load test run on networks of their own, with tests of their own
    steps = tuple(s for s in DEFAULT_STEPS if s.run not in (what_if, load_test, model_loop))
    assert run_demo(tmp_path / "demo", steps=steps, hosts=2, progress=False, say=said.append) == 0
    assert run_demo(tmp_path / "demo", steps=steps, hosts=2, progress=False, say=said.append) == 0  # its own state
    text = "\n".join(said)
    shown_all = ("PERMISSION_DENIED", "INVALID_ARGUMENT", "DmfA", "audit verification PASSED", "who-accessed")
    for shown in (*shown_all, "the same answer", "citizen_other_person"):
        assert shown in text, shown
    results = json.loads((tmp_path / "demo" / "demo.json").read_text())
    assert results["ok"] and results["receipt"]["verified"] and results["verify"]["ok"]
    endpoints = json.loads((tmp_path / "demo" / "state" / "endpoints.json").read_text())
    assert endpoints["up"] is False  # stopped cleanly
