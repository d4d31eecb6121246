"""Hostile input against the core (loadtests/fuzz/): properties over a few thousand seeded cases.

Every case must come back (no hang), without a crash, OK or with a specific status whose message
says what was wrong, and every exchange handled by the pipeline must have exactly its one audit
record; a message the core remembers (per sender and message id) must get its first answer
again, identical, without a new record. The campaign itself (100,000 cases) is `crossroads
fuzz`; here each target gets a few hundred cases, drawn by Hypothesis with a fixed seed (no
example database), so a failure reproduces. Bugs whose fix lies outside the files this campaign
may change are strict xfails, each naming the fix.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2

from crossroads.audit import AuditLog, verify_store
from crossroads.audit_record import AuditRecord
from crossroads.citizen import CITIZEN_PURPOSE
from crossroads.domain import AgencyId
from crossroads.exchange import Exchange
from crossroads.identifiers import niss_problem
from crossroads.journal import JournalEntry, StoredAnswer
from crossroads.methods import DELIVER as DELIVER_METHOD
from crossroads.pki import CORE
from crossroads.validation import MAX_REASON, Invalid, check_envelope
from loadtests.fuzz import (
    AgencyTarget,
    Batch,
    Case,
    CoreTarget,
    ExchangeTarget,
    FuzzWorld,
    Result,
    Tally,
    TlsTarget,
    agency_cases,
    batches,
    drive,
    exchange_cases,
    prepare_world,
    refusal_problem,
    rpc_cases,
    tls_cases,
)
from loadtests.fuzz.cases import _duplicates, _lifecycle, key_of, placeholder
from loadtests.fuzz.checks import _Answer, _growth_problem
from protos import messages_pb2 as pb
from protos import services_pb2
from testbed.atheris_child import atheris_campaign
from testbed.cli import main
from testbed.commands.fuzz import exit_code

SEED = 20261128
BATCH = 16
SUPERSCRIPT = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> FuzzWorld:
    return prepare_world(tmp_path_factory.mktemp("fuzz-world"), seed=SEED, corpus=200, persons=3_000)


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    running = asyncio.new_event_loop()
    yield running
    running.close()


def _started(loop: asyncio.AbstractEventLoop, target: Any) -> Any:
    if hasattr(target, "start"):
        loop.run_until_complete(target.start())
    return target


@pytest.fixture(scope="module")
def core(
    world: FuzzWorld, loop: asyncio.AbstractEventLoop, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CoreTarget]:
    target = _started(loop, CoreTarget(world, tmp_path_factory.mktemp("fuzz-core")))
    yield target
    loop.run_until_complete(target.close())


@pytest.fixture(scope="module")
def agency(
    world: FuzzWorld, loop: asyncio.AbstractEventLoop, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AgencyTarget]:
    target = _started(loop, AgencyTarget(world, tmp_path_factory.mktemp("fuzz-agency")))
    yield target
    loop.run_until_complete(target.close())


def _fuzz(loop: asyncio.AbstractEventLoop, target: Any, strategy: Any, examples: int) -> Tally:
    """Run `examples` batches; the first case with a problem fails the test (naming the case)."""
    tally = Tally()

    def body(batch: Batch) -> None:
        for case, result in zip(batch.cases, loop.run_until_complete(target.run(batch)), strict=False):
            tally.add(target.name, case.label, result)
            assert result.problem is None, f"{case.label} {case.method} as {case.peer!r}: {result.problem}"

    drive(strategy, examples, SEED, body)
    return tally


# ---------------------------------------------------------------- the properties


def _all_kinds(world: FuzzWorld, *, unauthenticated: bool = True) -> Any:
    cases = exchange_cases(world, unauthenticated=unauthenticated)
    return batches(cases, BATCH, _lifecycle(world), _duplicates(world, cases, BATCH))


def test_every_hostile_exchange_in_process_is_answered_specifically_and_audited_once(
    world: FuzzWorld, loop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    target = ExchangeTarget(world, tmp_path / "state")
    try:
        tally = _fuzz(loop, target, _all_kinds(target.world), 80)
        assert loop.run_until_complete(target.canary()) == "DELIVERED"
    finally:
        loop.run_until_complete(target.close())
    statuses = tally.by_target["exchange"]
    # the campaign reaches every kind of answer, and every refusal was found in the audit log
    assert {"OK", "INVALID_ARGUMENT", "PERMISSION_DENIED", "UNAUTHENTICATED"} <= set(statuses)
    assert tally.refused_and_audited == sum(n for s, n in statuses.items() if s != "OK")
    assert verify_store(tmp_path / "state", check_index=True).ok
    # exactly once: resends, reused ids and concurrent duplicates were answered from the register
    assert {"exchange/replay", "exchange/reused_id", "exchange/duplicate", "exchange/resent"} <= set(tally.by_label)
    assert tally.replays_checked > 100
    # hostile content under a fresh id reaches validation, never the stored answer of another message
    fresh = {f"exchange/{k}" for k in ("valid", "identifier", "payload", "oversized", "forged", "unknown_peer")}
    assert not fresh & set(tally.replays_by_label)
    assert {"exchange/replay", "exchange/reused_id", "exchange/duplicate"} <= set(tally.replays_by_label)


def test_the_core_over_mutual_tls_answers_every_hostile_call_specifically(
    world: FuzzWorld, loop: asyncio.AbstractEventLoop, core: CoreTarget
) -> None:
    tally = _fuzz(loop, core, _all_kinds(core.world, unauthenticated=False), 35)
    tally_rpc = _fuzz(loop, core, batches(rpc_cases(world), BATCH), 15)
    assert loop.run_until_complete(core.canary()) == "DELIVERED"
    assert "OK" in tally.by_target["core"] and "INVALID_ARGUMENT" in tally.by_target["core"]
    assert tally.replays_checked > 20
    assert "UNIMPLEMENTED" in tally_rpc.by_target["core"]  # methods that do not exist


def test_a_small_answer_window_is_modelled_a_forgotten_id_handled_anew(
    world: FuzzWorld, loop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    # with a window of 16 answers most replays are of ids the core forgot: handled anew, one
    # record each; the model must accept that and still check the ones remembered
    target = ExchangeTarget(world, tmp_path / "state", answer_window=16)
    try:
        tally = _fuzz(loop, target, _all_kinds(target.world), 20)
    finally:
        loop.run_until_complete(target.close())
    assert tally.ok and tally.replays_checked > 0


def test_the_agency_host_answers_every_hostile_delivery_specifically_and_only_the_core(
    world: FuzzWorld, loop: asyncio.AbstractEventLoop, agency: AgencyTarget
) -> None:
    tally = _fuzz(loop, agency, batches(agency_cases(world), BATCH), 40)
    assert {"OK", "INVALID_ARGUMENT", "NOT_FOUND", "PERMISSION_DENIED"} <= set(tally.by_target["agency"])


def test_bad_client_certificates_are_refused_at_the_handshake_and_leave_no_record(
    world: FuzzWorld, loop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    target = _started(loop, TlsTarget(world, tmp_path / "state"))
    try:
        tally = _fuzz(loop, target, batches(tls_cases(), 8), 4)
        every = [
            Case(f"{e}/{c}/{v}", None, b"")
            for e in ("core", "host")
            for c in ("none", "foreign", "expired", "not_yet_valid", "good")
            for v in ("1.2", "1.3")
        ]
        results = loop.run_until_complete(target.run(Batch(tuple(every))))
    finally:
        loop.run_until_complete(target.close())
    assert [r.problem for r in results] == [None] * len(every)
    assert [r.status for r in results] == ["ACCEPTED" if "/good/" in c.label else "REFUSED_AT_HANDSHAKE" for c in every]
    assert tally.ok


# ---------------------------------------------------------------- the checks themselves


def test_a_refusal_must_be_specific_and_say_what_was_wrong() -> None:
    assert refusal_problem("INVALID_ARGUMENT", "invalid subject_niss: NISS 1 fails its check digits") is None
    assert (
        refusal_problem("INVALID_ARGUMENT", "invalid subject_niss (or payload.worker_niss): required for DRS") is None
    )
    assert refusal_problem("PERMISSION_DENIED", "denied by rule not_in_files: CPAS-1 has no file") is None
    assert "unspecific" in (refusal_problem("UNKNOWN", "Unexpected <class 'ValueError'>") or "")
    assert "unspecific" in (refusal_problem("INTERNAL", "boom") or "")
    assert "empty" in (refusal_problem("NOT_FOUND", "") or "")
    assert "does not say" in (refusal_problem("INVALID_ARGUMENT", "bad request") or "")
    assert "does not say" in (refusal_problem("PERMISSION_DENIED", "denied") or "")


def test_the_audit_log_must_grow_by_exactly_the_records_the_answers_name() -> None:
    a, b = ("ONSS", "m-1"), ("ONSS", "m-2")
    ok = [_Answer("INVALID_ARGUMENT", "x", 10), _Answer("PERMISSION_DENIED", "y", 11)]
    assert _growth_problem([a, b], ok, 10, 12) is None
    assert _growth_problem([a, b], ok, 10, 13) is not None  # a record nobody was told of
    assert _growth_problem([a, b], [ok[0], _Answer("INVALID_ARGUMENT", "y", None)], 10, 12) is not None
    assert _growth_problem([a, b], [ok[0], _Answer("INVALID_ARGUMENT", "y", 10)], 10, 11) is not None  # shared
    # the same key answered from the exactly-once register names its first record again
    assert _growth_problem([a, a], [ok[0], _Answer("INVALID_ARGUMENT", "x", 10)], 10, 11) is None
    # messages without a key are never the same message, even with the same bytes
    assert _growth_problem([None, None], [ok[0], _Answer("INVALID_ARGUMENT", "x", 10)], 10, 11) is not None


def test_the_key_is_the_certificate_identity_and_a_usable_message_id(world: FuzzWorld) -> None:
    raw = world.corpus[0].envelope.SerializeToString()
    message_id = world.corpus[0].envelope.message_id
    assert key_of(Case("valid", "ONSS", raw)) == ("ONSS", message_id)
    assert key_of(Case("no_certificate", None, raw)) is None
    assert key_of(Case("random", "ONSS", b"\xff\xff")) is None  # no Envelope
    assert key_of(Case("field", "ONSS", pb.Envelope(message_id="m\x00").SerializeToString())) is None
    assert key_of(Case("rpc", "ONSS", raw, method=DELIVER_METHOD)) is None


def test_the_summary_fails_the_command_on_any_problem() -> None:
    tally = Tally()
    tally.add("exchange", "valid", Result("OK"))
    tally.add("exchange", "field", Result("INVALID_ARGUMENT", audited_refusal=True))
    tally.add("exchange", "replay", Result("OK", replayed=True))
    assert exit_code(tally.summary()) == 0 and tally.summary()["refused_and_audited"] == 1
    assert tally.summary()["replays_checked"] == 1
    tally.add("core", "rpc_garbage", Result("UNKNOWN", "unspecific status UNKNOWN", "unspecific"))
    summary = tally.summary()
    assert exit_code(summary) == 1 and summary["unspecific"] == 1
    assert summary["by_status"] == {"INVALID_ARGUMENT": 1, "OK": 2, "UNKNOWN": 1}
    tally = Tally()
    tally.add("core", "replay", Result("OK", "a resend got another answer", "exactly_once"))
    assert exit_code(tally.summary()) == 1


def test_crossroads_fuzz_prints_a_json_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["fuzz", "--cases", "120", "--seed", "3", "--targets", "exchange,agency", "--persons", "2000"]
    assert main([*args, "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["cases"] == 120 and summary["crashes"] == summary["hangs"] == 0 and summary["problems"] == {}
    assert summary["replays_checked"] >= 0
    assert set(summary["by_target"]) == {"exchange", "agency"}
    assert summary["checks"]["exchange_audit"]["ok"] and summary["checks"]["exchange_canary_after"] == "DELIVERED"
    assert (tmp_path / "run" / "summary.json").exists()


def test_atheris_finds_no_crash_in_validation_and_routing(world: FuzzWorld, tmp_path: Path) -> None:
    pytest.importorskip("atheris")
    result = atheris_campaign(world, 5_000, SEED, tmp_path)
    assert result["exit_code"] == 0, result["tail"]


# ---------------------------------------------------------------- what the fuzzing found (fixed)


def _consultation(world: FuzzWorld, **fields: Any) -> tuple[str, pb.Envelope]:
    sample = next(s for s in world.corpus if s.envelope.kind == pb.CONSULTATION)
    env = pb.Envelope()
    env.CopyFrom(sample.envelope)
    for name, value in fields.items():
        setattr(env, name, value)
    return sample.sender, env


@pytest.mark.parametrize("script", [SUPERSCRIPT, ARABIC_INDIC], ids=["superscript", "arabic-indic"])
def test_a_niss_in_other_digits_is_invalid_naming_the_field(world: FuzzWorld, script: dict[int, str]) -> None:
    # superscripts raised ValueError inside check_envelope (UNKNOWN over gRPC); Arabic-Indic digits
    # with the right check digits were accepted as a NISS
    sender, env = _consultation(world)
    env.subject_niss = env.subject_niss.translate(script)
    checked = check_envelope(env, AgencyId(sender), world.as_of)
    assert isinstance(checked, Invalid) and checked.field == "subject_niss" and "ASCII" in checked.reason


def test_a_quarter_in_other_digits_is_invalid(world: FuzzWorld) -> None:
    sample = next(s for s in world.corpus if s.envelope.kind == pb.DMFA)
    body = pb.DmfaDeclaration.FromString(sample.envelope.payload)
    body.quarter = "2026Q3".translate(ARABIC_INDIC)
    env = pb.Envelope()
    env.CopyFrom(sample.envelope)
    env.payload = body.SerializeToString()
    checked = check_envelope(env, sample.sender, world.as_of)
    assert isinstance(checked, Invalid) and checked.field == "payload.quarter"


def test_a_huge_bad_value_is_refused_with_its_reason_not_a_metadata_overflow(
    world: FuzzWorld, loop: asyncio.AbstractEventLoop, core: CoreTarget
) -> None:
    # the reason quoted the whole value: 20 KB of it overflowed the client's 16 KiB metadata
    # limit, and the sender got RESOURCE_EXHAUSTED instead of INVALID_ARGUMENT
    sender, env = _consultation(world, subject_niss="1" * 20_000, message_id="huge-bad-value")  # not a resend
    (result,) = loop.run_until_complete(core.run(Batch((Case("field", sender, env.SerializeToString()),))))
    assert (result.status, result.problem) == ("INVALID_ARGUMENT", None) and result.audited_refusal
    checked = check_envelope(env, AgencyId(sender), world.as_of)
    assert isinstance(checked, Invalid) and len(checked.reason) <= MAX_REASON


@pytest.mark.parametrize(
    ("caller", "raw", "status"),
    [
        (CORE, b"\xff\xff\xff", "INVALID_ARGUMENT"),  # was UNKNOWN: gRPC's own parse failed
        ("ONSS", b"\xff\xff\xff", "PERMISSION_DENIED"),  # only the core may learn what parses
        (CORE, pb.Forward(agency="ONSS", audit_index=2**64 - 1).SerializeToString(), "INVALID_ARGUMENT"),  # was UNKNOWN
    ],
    ids=["no-forward", "no-forward-not-core", "audit-index-beyond-sqlite"],
)
def test_the_host_refuses_what_it_cannot_take(
    loop: asyncio.AbstractEventLoop, agency: AgencyTarget, caller: str, raw: bytes, status: str
) -> None:
    (result,) = loop.run_until_complete(agency.run(Batch((Case("forward", caller, raw, method=DELIVER_METHOD),))))
    assert (result.status, result.problem) == (status, None)


def test_the_host_refuses_a_consultation_about_a_niss_in_superscript(
    world: FuzzWorld, loop: asyncio.AbstractEventLoop, agency: AgencyTarget
) -> None:
    _, env = _consultation(world)
    env.subject_niss = env.subject_niss.translate(SUPERSCRIPT)  # the answers' int() raised on it
    forward = pb.Forward(agency=world.agencies[0], sender="x", envelope=env.SerializeToString())
    case = Case("forward", CORE, forward.SerializeToString(), method=DELIVER_METHOD)
    (result,) = loop.run_until_complete(agency.run(Batch((case,))))
    assert (result.status, result.problem) == ("INVALID_ARGUMENT", None)


# ---------------------------------------------------------------- found, fix outside this campaign's files


def _call(loop: asyncio.AbstractEventLoop, core: CoreTarget, method: str, raw: bytes) -> grpc.aio.AioRpcError | None:
    async def call() -> grpc.aio.AioRpcError | None:
        try:
            await core.channels.get("admin").unary_unary(method)(raw, timeout=10)
        except grpc.aio.AioRpcError as exc:
            return exc
        return None

    return loop.run_until_complete(call())


@pytest.mark.parametrize("method", ["/crossroads.v1.Audit/InclusionProof", "/grpc.health.v1.Health/Check"])
def test_bytes_that_are_no_request_are_invalid_on_every_method(
    loop: asyncio.AbstractEventLoop, core: CoreTarget, method: str
) -> None:
    refused = _call(loop, core, method, b"\xff\xff\xff")
    assert refused is not None and refused.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_who_accessed_a_niss_in_superscript_is_invalid(
    world: FuzzWorld, loop: asyncio.AbstractEventLoop, core: CoreTarget
) -> None:
    request = services_pb2.WhoAccessedRequest(niss=world.nisses[0].translate(SUPERSCRIPT))
    refused = _call(loop, core, "/crossroads.v1.Audit/WhoAccessed", request.SerializeToString())
    assert refused is not None and refused.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("script", [SUPERSCRIPT, ARABIC_INDIC], ids=["superscript", "arabic-indic"])
def test_niss_problem_names_a_niss_in_other_digits(world: FuzzWorld, script: dict[int, str]) -> None:
    assert niss_problem(world.nisses[0].translate(script)) is not None


def test_a_health_check_of_an_unknown_service_says_which(loop: asyncio.AbstractEventLoop, core: CoreTarget) -> None:
    request = health_pb2.HealthCheckRequest(service="no.such.Service").SerializeToString()
    refused = _call(loop, core, "/grpc.health.v1.Health/Check", request)
    assert refused is not None and refused.code() == grpc.StatusCode.NOT_FOUND
    assert "no.such.Service" in (refused.details() or "")


# ---------------------------------------------------------------- exactly once: the model and what it catches


class _Forgetful:
    """An audit port whose answers cannot be read back: a core that handles every resend anew."""

    def __init__(self, log: AuditLog) -> None:
        self._log = log

    async def append(self, record: AuditRecord, journal: JournalEntry | None = None) -> int:
        return await self._log.append(record, journal)

    def answer_at(self, index: int) -> StoredAnswer | None:
        return None

    def recent_answers(self, limit: int) -> list[tuple[int, str, str]]:
        return []


@pytest.fixture
def exchange(world: FuzzWorld, loop: asyncio.AbstractEventLoop, tmp_path: Path) -> Iterator[ExchangeTarget]:
    target = ExchangeTarget(world, tmp_path / "state")
    yield target
    loop.run_until_complete(target.close())


def _valid(target: ExchangeTarget, message_id: str, kind: int = pb.CONSULTATION, n: int = 0) -> Case:
    sample = [s for s in target.world.corpus if s.envelope.kind == kind][n]
    env = pb.Envelope()
    env.CopyFrom(sample.envelope)
    env.message_id = message_id
    return Case("valid", sample.sender, env.SerializeToString())


def _send(loop: asyncio.AbstractEventLoop, target: Any, *cases: Case, sequential: bool = True) -> list[Result]:
    return list(loop.run_until_complete(target.run(Batch(cases, sequential))))


def test_a_resend_gets_the_first_answer_without_a_record(
    loop: asyncio.AbstractEventLoop, exchange: ExchangeTarget
) -> None:
    case = _valid(exchange, "resend-1")
    (first,) = _send(loop, exchange, case)
    size = exchange.audit.size
    (again,) = _send(loop, exchange, case)
    assert (first.status, first.problem, first.replayed) == ("OK", None, False)
    assert (again.status, again.problem, again.replayed) == ("OK", None, True)
    assert exchange.audit.size == size


def test_a_core_that_handles_a_resend_anew_is_caught(loop: asyncio.AbstractEventLoop, exchange: ExchangeTarget) -> None:
    exchange.exchange = Exchange(
        knowledge=exchange.exchange.knowledge,
        directory=exchange.directory,
        audit=_Forgetful(exchange.audit),
        forwarder=exchange.host,
        outbox=exchange.outbox,
        clock=exchange.clock,
        forward_deadline=2.0,
    )
    case = _valid(exchange, "resend-forgotten")
    (first,) = _send(loop, exchange, case)
    (again,) = _send(loop, exchange, case)
    assert first.problem is None
    assert again.category == "exactly_once" and "not its first answer" in (again.problem or "")


def test_an_answer_from_a_register_that_should_not_know_the_message_is_caught(
    loop: asyncio.AbstractEventLoop, exchange: ExchangeTarget
) -> None:
    case = _valid(exchange, "someone-elses")
    _send(loop, exchange, case)
    first_answer = loop.run_until_complete(exchange._one(case))  # the core's own replay of it
    other = Case("valid", "ONEM" if case.peer != "ONEM" else "ONSS", case.raw)  # same id, another sender
    size = exchange.audit.size
    (result,) = exchange.register.judge(exchange.audit, [other], [first_answer], [key_of(other)], size)
    assert result.category == "exactly_once" and "never answered" in (result.problem or "")


def test_concurrent_duplicates_all_get_one_answer_and_one_record(
    loop: asyncio.AbstractEventLoop, exchange: ExchangeTarget
) -> None:
    shared = placeholder(1)  # one fresh id for the whole batch
    same = _valid(exchange, shared)
    other_content = Case("duplicate", same.peer, _valid(exchange, shared, pb.CONSULTATION, 1).raw)  # same key
    size = exchange.audit.size
    results = _send(loop, exchange, same, same, other_content, same, sequential=False)
    assert [r.problem for r in results] == [None] * 4
    assert len({r.status for r in results}) == 1 and sum(r.replayed for r in results) == 3
    assert exchange.audit.size == size + 1


def test_a_reused_id_with_other_content_gets_the_earlier_answer(
    loop: asyncio.AbstractEventLoop, exchange: ExchangeTarget
) -> None:
    (first,) = _send(loop, exchange, _valid(exchange, "reused-1"))
    size = exchange.audit.size
    hostile = _valid(exchange, placeholder(0), pb.DMFA)
    hostile_raw = pb.Envelope(message_id="x", subject_niss="1" * 11, payload=b"\xff").SerializeToString()
    results = _send(
        loop,
        exchange,
        Case("reused_id", None, hostile.raw, reuse=0),
        Case("reused_id", None, hostile_raw, reuse=7),  # the only remembered key, whatever k
    )
    assert [(r.status, r.problem, r.replayed) for r in results] == [(first.status, None, True)] * 2
    assert exchange.audit.size == size


def test_hostile_content_under_a_fresh_id_is_judged_not_replayed(
    loop: asyncio.AbstractEventLoop, exchange: ExchangeTarget
) -> None:
    valid = _valid(exchange, placeholder(0))
    env = pb.Envelope.FromString(valid.raw)
    env.subject_niss = "1" * 11
    results = _send(loop, exchange, valid, Case("identifier", valid.peer, env.SerializeToString()))
    assert [(r.status, r.problem, r.replayed) for r in results] == [
        ("OK", None, False),
        ("INVALID_ARGUMENT", None, False),
    ]


def test_citizens_in_the_corpus_carry_an_assertion_the_cores_accept(
    loop: asyncio.AbstractEventLoop, exchange: ExchangeTarget, core: CoreTarget
) -> None:
    for target in (exchange, core):  # the in-process clock stands at the world's as_of; the socket core's is now
        citizens = [s for s in target.world.corpus if s.envelope.purpose == CITIZEN_PURPOSE]
        assert citizens and all(s.envelope.HasField("citizen") for s in citizens)
        fresh = []
        for sample in citizens:
            env = pb.Envelope()
            env.CopyFrom(sample.envelope)
            env.message_id = placeholder(0)
            fresh.append(Case("valid", sample.sender, env.SerializeToString()))
        # past the citizen gate: delivered, or unroutable when the citizen has no file at the source
        answered = _send(loop, target, *fresh)
        assert {r.problem for r in answered} == {None} and "OK" in {r.status for r in answered}
        assert {r.status for r in answered} <= {"OK", "FAILED_PRECONDITION"}
        stripped = pb.Envelope.FromString(fresh[0].raw)
        stripped.ClearField("citizen")
        (refused,) = _send(loop, target, Case("field", fresh[0].peer, stripped.SerializeToString()))
        assert (refused.status, refused.problem) == ("PERMISSION_DENIED", None)


def test_throttled_refusals_are_specific_audited_and_never_replayed(
    world: FuzzWorld, loop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    target = CoreTarget(world, tmp_path / "state")
    sender = target.world.corpus[0].sender
    (tmp_path / "state").mkdir()
    limits = {"agencies": {sender: {"rate": 0.001, "burst": 1}}}
    (tmp_path / "state" / "limits.json").write_text(json.dumps(limits), encoding="utf-8")
    loop.run_until_complete(target.start())
    try:
        sample = target.world.corpus[0]
        env = pb.Envelope()
        env.CopyFrom(sample.envelope)
        env.message_id = "throttled-1"
        case = Case("valid", sender, env.SerializeToString())
        first = _send(loop, target, case, case, case)  # one token: the first is handled, the others THROTTLED
        size = target.core.audit.size
        again = _send(loop, target, case)  # a throttle is not the message's answer: refused anew, audited anew
    finally:
        loop.run_until_complete(target.close())
    assert [r.problem for r in first + again] == [None] * 4
    assert [r.status for r in first + again][1:] == ["RESOURCE_EXHAUSTED"] * 3
    assert all(r.audited_refusal and not r.replayed for r in first[1:] + again)
    assert target.core.audit.size == size + 1


def test_admission_and_revocation_refusals_count_as_specific() -> None:
    throttled = "rate limit of 'ONSS' exceeded (500 calls/s, bursts of 1000); retry after 2 ms"
    assert refusal_problem("RESOURCE_EXHAUSTED", throttled) is None
    assert (
        refusal_problem("RESOURCE_EXHAUSTED", "'ONSS' has 128 exchanges in flight, its quota; retry after 100 ms")
        is None
    )
    assert (
        refusal_problem("UNAVAILABLE", "the core is overloaded (1024 exchanges in flight); retry after 100 ms") is None
    )
    assert refusal_problem("UNAUTHENTICATED", "certificate serial 0x1f revoked (CRL number 3)") is None
    assert refusal_problem("RESOURCE_EXHAUSTED", "Concurrent RPC limit exceeded!") is not None
    assert refusal_problem("UNAVAILABLE", "try later") is not None
