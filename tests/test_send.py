"""`crossroads send` without a network: arguments, examples picked from the world, report shapes,
receipts, and the audit Entry rpc behind them. The live path is in tests/test_e2e_live.py."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import json
from pathlib import Path

import grpc
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agencies import authorizations as a
from agencies.answers import answer
from agencies.exchanges import Ask, NoExchange, Prepared, WorkerLine, expected_decision, prepare, with_fresh_id
from agencies.spec import load_world_spec
from agencies.world import World
from crossroads.audit import AuditLog
from crossroads.audit_record import AuditRecord, audit_time
from crossroads.audit_service import AuditServicer
from crossroads.client import ClientError, CoreClient, ExchangeRefused, audit_public_key
from crossroads.domain import AgencyId, Condition, Kind
from crossroads.merkle import leaf_hash, verify_inclusion
from crossroads.pki import NetworkPki
from crossroads.receipts import verify_receipt
from crossroads.routing import Denied, Routed
from protos import messages_pb2, services_pb2
from scenarios.shipped import default_scenario
from testbed import cli, world_files
from testbed.commands.send import ask_from_args
from testbed.demo import DEFAULT_STEPS
from testbed.sending import count_outcomes, refusal_report, reply_report
from testbed.world_files import scenario_of

SEED = 12345
NOON = dt.datetime(2026, 10, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def world() -> World:
    return World.build(load_world_spec(default_scenario()))


def _parse(*argv: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(["send", *argv])


def _rng() -> np.random.Generator:
    return np.random.default_rng(SEED)


# ------------------------------------------------------------------ arguments


def test_options_may_come_before_or_after_the_kind() -> None:
    before = ask_from_args(_parse("--state", "S", "--as", "ONEM", "consultation", "--niss", "85073003328"))
    after = ask_from_args(_parse("consultation", "--niss", "85073003328", "--state", "S", "--as", "ONEM"))
    assert before == after == Ask(kind=Kind.CONSULTATION, sender=AgencyId("ONEM"), niss="85073003328")
    # given before the kind, an option is not reset by the kind's own (absent) copy of it
    assert _parse("--state", "S", "--seed", "4", "dimona").state == Path("S")
    assert _parse("--state", "S", "--seed", "4", "dimona").seed == 4


def test_every_form_of_the_brief_parses() -> None:
    forms = {
        Kind.DIMONA: [
            "dimona",
            "--kbo",
            "0200000097",
            "--niss",
            "N",
            "--type",
            "OUT",
            "--start",
            "2026-01-01",
            "--end",
            "2026-09-30",
        ],
        Kind.DMFA: ["dmfa", "--kbo", "K", "--quarter", "2026Q3", "--worker", "N1:100.5:60", "N2:2000:65"],
        Kind.DRS: ["drs", "--family", "accident", "--scenario", "2", "--kbo", "K", "--niss", "N"],
        Kind.INTEGRATION: ["integration", "--niss", "N", "--sector", "17", "--quality", "80", "--start", "2026-10-01"],
        Kind.MUTATION: [
            "mutation",
            "--niss",
            "N",
            "--change",
            "address",
            "--dataset",
            "register_changes",
            "--field",
            "postal_code=1000",
        ],
    }
    asks = {kind: ask_from_args(_parse(*argv)) for kind, argv in forms.items()}
    assert {kind: ask.kind for kind, ask in asks.items()} == {kind: kind for kind in forms}
    assert (asks[Kind.DIMONA].dimona_type, asks[Kind.DIMONA].end) == ("OUT", "2026-09-30")
    assert asks[Kind.DMFA].workers == (WorkerLine("N1", 10050, 60), WorkerLine("N2", 200000, 65))
    assert (asks[Kind.DRS].family, asks[Kind.DRS].scenario) == ("accident", 2)
    assert (asks[Kind.INTEGRATION].sector, asks[Kind.INTEGRATION].quality) == (17, 80)
    assert asks[Kind.MUTATION].fields == (("postal_code", "1000"),)


@pytest.mark.parametrize(
    "argv",
    [
        ["dmfa", "--worker", "85073003328:lots:63"],
        ["dmfa", "--worker", "85073003328:100"],
        ["mutation", "--field", "no-equals-sign"],
        ["dimona", "--type", "SIDEWAYS"],
        ["drs", "--family", "boredom"],
    ],
)
def test_malformed_arguments_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        _parse(*argv)
    assert stopped.value.code == 2
    assert "error" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["consultation"], "--state DIR is required"),
        (["--state", "S"], "name a kind"),
        (["--state", "S", "--random", "2", "dimona"], "name no kind"),
    ],
)
def test_incomplete_commands_say_what_is_missing(
    argv: list[str], said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("testbed.commands.send.load_world", lambda state, scenario: None)
    assert cli.main(["send", *argv]) == 2
    assert said in capsys.readouterr().err


def test_a_state_folder_without_a_network_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["send", "--state", str(tmp_path), "consultation"]) == 2
    assert "no world was built" in capsys.readouterr().err


# ------------------------------------------------------------------ examples from the world


@pytest.mark.parametrize("kind", list(Kind))
def test_a_kind_alone_gets_an_example_that_routes(world: World, kind: Kind) -> None:
    prepared = prepare(world, _rng(), Ask(kind=kind))
    assert prepared.picked and not prepared.note
    assert Kind(prepared.envelope.kind) is kind and prepared.envelope.message_id.startswith("send-")
    assert isinstance(expected_decision(world, prepared.sender, prepared.envelope), Routed)
    again = prepare(world, _rng(), Ask(kind=kind))  # same seed, same example (bar the fresh message id)
    assert again.sender == prepared.sender and again.picked == prepared.picked
    assert again.envelope.payload == prepared.envelope.payload


def test_fields_given_are_sent_as_given_even_when_invalid(world: World) -> None:
    ask = Ask(kind=Kind.CONSULTATION, sender=AgencyId("ONEM"), niss="85073003329", dataset="wages", purpose="control")
    prepared = prepare(world, _rng(), dataclasses.replace(ask, message_id="mine-1"))
    assert prepared.picked == {}
    env = prepared.envelope
    assert (env.subject_niss, env.dataset, env.purpose, env.message_id) == ("85073003329", "wages", "control", "mine-1")
    decision = expected_decision(world, prepared.sender, env)
    assert isinstance(decision, Denied) and "check digits" in decision.reason


def test_a_consultation_for_an_own_files_agency_is_about_a_person_in_its_files(world: World) -> None:
    cpas = AgencyId("CPAS-0042")
    prepared = prepare(world, _rng(), Ask(kind=Kind.CONSULTATION, sender=cpas))
    env = prepared.envelope
    assert prepared.sender == cpas and set(prepared.picked) == {"dataset", "purpose", "deliberation", "niss"}
    assert any(e.agency == cpas and e.open_on(world.spec.as_of) for e in world.files_of(env.subject_niss))
    used = next(d for d in world.knowledge.deliberations if d.ref == env.deliberation)
    assert used.condition is Condition.OWN_FILES and used.dataset == env.dataset


def test_named_dataset_and_sender_keep_what_was_named(world: World) -> None:
    ask = Ask(kind=Kind.CONSULTATION, sender=AgencyId("ONEM"), dataset="health_insurance")
    prepared = prepare(world, _rng(), ask)
    decision = expected_decision(world, prepared.sender, prepared.envelope)
    assert isinstance(decision, Routed)
    assert (prepared.sender, prepared.envelope.dataset) == ("ONEM", "health_insurance")
    assert world.knowledge.agencies[decision.destinations[0].agency].sector == 4  # the person's fund


def test_what_no_deliberation_allows_is_no_example(world: World) -> None:
    with pytest.raises(NoExchange, match="no deliberation lets LOC-0001 obtain wages"):
        prepare(world, _rng(), Ask(kind=Kind.CONSULTATION, sender=AgencyId("LOC-0001"), dataset="wages"))
    with pytest.raises(NoExchange, match="accident has scenarios 1, 2, 3; got 9"):
        prepare(world, _rng(), Ask(kind=Kind.DRS, family="accident", scenario=9))


def test_a_dmfa_declares_the_employers_workers_with_the_wages_onss_knows(world: World) -> None:
    prepared = prepare(world, _rng(), Ask(kind=Kind.DMFA))
    body = messages_pb2.DmfaDeclaration.FromString(prepared.envelope.payload)
    j = world.employer_index(body.employer_kbo)
    assert j is not None and prepared.sender == "PORTAL"
    assert [line.worker_niss for line in body.lines] == [world.niss(p) for p in world.workers_of(j).tolist()]
    first = body.lines[0]
    wages = answer(world.spec.seed, AgencyId("ONSS"), a.WAGES, first.worker_niss, as_of=world.spec.as_of)
    assert (str(first.gross_wage_cents), str(first.days_worked)) == (wages["gross_wage_cents"], wages["days_worked"])
    assert list(prepared.envelope.related_niss) == [line.worker_niss for line in body.lines]


def test_given_worker_lines_replace_the_world_ones(world: World) -> None:
    kbo = world.kbo(0)
    lines = (WorkerLine(world.niss(1), 123456, 61),)
    prepared = prepare(world, _rng(), Ask(kind=Kind.DMFA, kbo=kbo, quarter="2026Q2", workers=lines))
    body = messages_pb2.DmfaDeclaration.FromString(prepared.envelope.payload)
    assert (body.employer_kbo, body.quarter, len(body.lines)) == (kbo, "2026Q2", 1)
    assert (body.lines[0].gross_wage_cents, body.lines[0].days_worked) == (123456, 61)


def test_mutation_senders_are_the_authentic_sources(world: World) -> None:
    identity = prepare(world, _rng(), Ask(kind=Kind.MUTATION, change="identity"))
    attestation = prepare(world, _rng(), Ask(kind=Kind.MUTATION, change="dmfa_attestation"))
    assert (identity.sender, identity.envelope.dataset) == ("NR", "register_changes")
    assert (attestation.sender, attestation.envelope.dataset) == ("ONSS", "dmfa_attestations")


def test_an_integration_in_a_sector_comes_from_an_agency_of_that_sector(world: World) -> None:
    prepared = prepare(world, _rng(), Ask(kind=Kind.INTEGRATION, sector=17))
    body = messages_pb2.DirectoryIntegration.FromString(prepared.envelope.payload)
    assert world.knowledge.agencies[prepared.sender].sector == 17 == body.sector
    closing = prepare(world, _rng(), Ask(kind=Kind.DEINTEGRATION))
    closed = messages_pb2.DirectoryIntegration.FromString(closing.envelope.payload)
    assert closed.end == world.spec.as_of.isoformat()
    assert any(e.agency == closing.sender and e.end is None for e in world.files_of(closed.niss))


# ------------------------------------------------------------------ reports


def _prepared(kind: Kind = Kind.CONSULTATION) -> Prepared:
    env = messages_pb2.Envelope(message_id="m-1", kind=kind, subject_niss="85073003328", dataset="wages")  # type: ignore[arg-type]
    env.payload = messages_pb2.ConsultationRequest(dataset="wages").SerializeToString()
    return Prepared(AgencyId("ONEM"), env, {"niss": "85073003328"})


def test_reply_report_decodes_the_answer_and_names_the_route() -> None:
    found = messages_pb2.ConsultationAnswer(agency="ONSS", dataset="wages", found=True, fields={"quarter": "2026Q3"})
    reply = messages_pb2.ExchangeReply(
        message_id="m-1",
        outcome=messages_pb2.DELIVERED,
        forwarded=True,
        audit_index=41,
        deliberation="06/073",
        deliveries=[
            messages_pb2.Delivery(agency="ONSS", outcome=messages_pb2.DELIVERED, reply=found.SerializeToString())
        ],
    )
    report = reply_report(_prepared(), reply, None, seed=3)
    assert (report["outcome"], report["deliberations"], report["seed"]) == ("DELIVERED", ["06/073"], 3)
    assert report["route"] == [{"agency": "ONSS", "via": None, "outcome": "DELIVERED", "detail": ""}]
    assert report["answer"] == {"agency": "ONSS", "dataset": "wages", "found": True, "fields": {"quarter": "2026Q3"}}
    assert report["audit"] == {"index": 41} and report["picked"] == {"niss": "85073003328"}
    assert report["envelope"]["body"] == {"dataset": "wages"}
    json.dumps(report)  # printable as it is


def test_reply_report_of_a_fan_out_counts_deliveries_per_outcome() -> None:
    prepared = _prepared(Kind.DMFA)
    prepared.envelope.payload = messages_pb2.DmfaDeclaration(
        employer_kbo="0200000097", lines=[messages_pb2.DmfaLine(worker_niss="85073003328", gross_wage_cents=150)]
    ).SerializeToString()
    reply = messages_pb2.ExchangeReply(
        outcome=messages_pb2.QUEUED,
        deliberation="10/073,10/090",
        deliveries=[
            messages_pb2.Delivery(agency="ONSS", outcome=messages_pb2.DELIVERED),
            messages_pb2.Delivery(agency="MUT-0001", via="CIN", outcome=messages_pb2.QUEUED, detail="queued: down"),
            messages_pb2.Delivery(agency="ONEM", outcome=messages_pb2.DELIVERED),
        ],
    )
    report = reply_report(prepared, reply, None)
    assert report["deliveries"] == {"DELIVERED": 2, "QUEUED": 1} and "answer" not in report
    assert report["route"][1] == {"agency": "MUT-0001", "via": "CIN", "outcome": "QUEUED", "detail": "queued: down"}
    assert report["deliberations"] == ["10/073", "10/090"]
    assert report["envelope"]["body"]["lines"] == 1 and report["envelope"]["body"]["grossWageEurTotal"] == 1.5


def test_refusal_report_carries_status_message_and_audit_index() -> None:
    refused = ExchangeRefused(grpc.StatusCode.PERMISSION_DENIED, "denied by rule no_deliberation: ...", 7)
    report = refusal_report(_prepared(), refused, None)
    assert (report["outcome"], report["status"], report["audit_index"]) == ("REFUSED", "PERMISSION_DENIED", 7)
    assert report["message"].startswith("denied by rule") and report["audit"] is None
    assert str(refused) == "PERMISSION_DENIED: denied by rule no_deliberation: ... (audit record 7)"


def test_random_counts_add_up_by_kind_and_in_total() -> None:
    outcomes = [(Kind.DMFA, "DELIVERED"), (Kind.DMFA, "QUEUED"), (Kind.CONSULTATION, "PERMISSION_DENIED")]
    report = count_outcomes(outcomes, per_kind=2, seed=9)
    assert report["DMFA"] == {"DELIVERED": 1, "QUEUED": 1} and report["CONSULTATION"] == {"PERMISSION_DENIED": 1}
    assert report["MUTATION"] == {}  # every kind is listed, also when none was sent
    assert report["totals"] == {
        "sent": 3,
        "by_outcome": {"DELIVERED": 1, "QUEUED": 1, "PERMISSION_DENIED": 1},
        "per_kind": 2,
        "seed": 9,
    }


def test_fresh_ids_keep_everything_else() -> None:
    env = _prepared().envelope
    fresh = with_fresh_id(env, "run1")
    assert fresh.message_id == "run1-m-1" and env.message_id == "m-1"
    fresh.message_id = env.message_id
    assert fresh == env


# ------------------------------------------------------------------ receipts and the Entry rpc


def _record(i: int) -> AuditRecord:
    return AuditRecord(
        time=audit_time(NOON + dt.timedelta(microseconds=i)),
        message_id=f"m-{i}",
        kind="CONSULTATION",
        sender="ONEM",
        destinations=("ONSS",),
        subject_niss="85073003328",
        subject_kbo="",
        related_niss=(),
        quality=None,
        deliberation="06/073",
        outcome="DELIVERED",
        detail="",
    )


class FakeContext:
    """grpc.aio's ServicerContext as far as the servicer uses it: abort raises."""

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise grpc.RpcError(f"{code.name}: {details}")


@pytest.fixture
def filled_log(tmp_path: Path) -> AuditLog:
    log = AuditLog.open(tmp_path)
    log.append_batch_sync([_record(i) for i in range(11)])
    return log


def _entry(log: AuditLog, index: int, size: int) -> services_pb2.AuditEntry:
    async def ask() -> services_pb2.AuditEntry:
        return await AuditServicer(log).Entry(services_pb2.EntryRequest(index=index, tree_size=size), FakeContext())

    return asyncio.run(ask())


def test_entry_gives_the_leaf_and_its_proof_at_the_size_asked(filled_log: AuditLog) -> None:
    with filled_log as log:
        entry = _entry(log, 6, 9)
        assert (entry.index, entry.leaf, entry.inclusion.index, entry.inclusion.tree_size) == (6, log.leaf(6), 6, 9)
        assert verify_inclusion(leaf_hash(entry.leaf), 6, 9, list(entry.inclusion.hashes), log.root_at(9))
        assert _entry(log, 10, 0).inclusion.tree_size == 11  # 0: the current size
        for index, size in ((11, 0), (9, 9), (0, 12)):
            with pytest.raises(grpc.RpcError, match="INVALID_ARGUMENT"):
                _entry(log, index, size)


def test_a_receipt_verifies_and_any_tampering_is_caught(filled_log: AuditLog, tmp_path: Path) -> None:
    with filled_log as log:
        head = log.head()
        entry = _entry(log, 4, head.size)
    key = audit_public_key(tmp_path)
    good = verify_receipt(entry, head.checkpoint, key, message_id="m-4")
    assert good.verified and good.problem is None and good.record == _record(4)
    assert (good.index, good.tree_size, good.root_hex) == (4, 11, head.root.hex())
    assert good.as_json()["inclusion_proof"] == [h.hex() for h in entry.inclusion.hashes]

    def tampered(change: str) -> services_pb2.AuditEntry:
        bad = services_pb2.AuditEntry()
        bad.CopyFrom(entry)
        if change == "proof":
            bad.inclusion.hashes[0] = bytes([bad.inclusion.hashes[0][0] ^ 1]) + bad.inclusion.hashes[0][1:]
        elif change == "index":
            bad.index = bad.inclusion.index = 5
        elif change == "size":
            bad.inclusion.tree_size = 10
        else:
            bad.leaf = bad.leaf.replace(b'"m-4"', b'"m-5"')
        return bad

    for change in ("proof", "index", "size", "leaf"):
        receipt = verify_receipt(tampered(change), head.checkpoint, key)
        assert not receipt.verified and receipt.problem, change
    other_key = Ed25519PrivateKey.generate().public_key()
    assert "checkpoint" in str(verify_receipt(entry, head.checkpoint, other_key).problem)
    assert "not 'm-9'" in str(verify_receipt(entry, head.checkpoint, key, message_id="m-9").problem)


# ------------------------------------------------------------------ the client's state folder


def test_the_world_is_found_by_its_fingerprint(tmp_path: Path) -> None:
    scenario = default_scenario()
    seed = load_world_spec(scenario).seed
    recorded = {"fingerprint": world_files.fingerprint(scenario, seed), "seed": seed}
    (tmp_path / "world.json").write_text(json.dumps(recorded))
    assert scenario_of(tmp_path) == scenario
    assert scenario_of(tmp_path, scenario) == scenario
    other = tmp_path / "other.yaml"
    other.write_text("world:\n  seed: 1\n  persons: 100\n  employers: 10\n")
    with pytest.raises(ClientError, match="not built from"):
        scenario_of(tmp_path, other)
    (tmp_path / "world.json").write_text(json.dumps({"fingerprint": "0" * 64, "seed": 1, "scenario": str(other)}))
    with pytest.raises(ClientError, match="of no shipped scenario"):
        scenario_of(tmp_path)


def test_connect_refuses_a_network_that_is_down_or_an_unknown_identity(tmp_path: Path) -> None:
    with pytest.raises(ClientError, match="bring the network up"):
        CoreClient.connect(tmp_path, "ONEM")
    (tmp_path / "endpoints.json").write_text(json.dumps({"up": False, "core": "127.0.0.1:1"}))
    with pytest.raises(ClientError, match="is not up"):
        CoreClient.connect(tmp_path, "ONEM")
    (tmp_path / "endpoints.json").write_text(json.dumps({"up": True, "core": "127.0.0.1:1"}))
    NetworkPki.open(tmp_path / "pki").issue("ONEM")
    with pytest.raises(ClientError, match="no certificate for 'NOBODY'"):
        CoreClient.connect(tmp_path, "NOBODY")
    assert not (tmp_path / "pki" / "identities" / "NOBODY.pem").exists()  # and none was issued
    # nobody listens on port 1 of the loopback
    with CoreClient.connect(tmp_path, "ONEM", timeout_s=0.5) as client, pytest.raises(ExchangeRefused) as refused:
        client.exchange(_prepared().envelope)
    assert refused.value.code == grpc.StatusCode.UNAVAILABLE and refused.value.audit_index is None


# ------------------------------------------------------------------ the demo's steps


def test_demo_steps_run_live_ones_first_and_leave_room_for_more() -> None:
    titles = [s.title for s in DEFAULT_STEPS]
    assert len(set(titles)) == len(titles)
    live_flags = [s.live for s in DEFAULT_STEPS]
    assert live_flags == sorted(live_flags, reverse=True)  # the network is up for the first ones only
    assert any(not s.live and "verified" in s.title for s in DEFAULT_STEPS)
