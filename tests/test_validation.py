"""Envelope validation: every refusal names the field it is about; good envelopes become routing keys."""

from __future__ import annotations

import datetime as dt

import pytest

from crossroads.domain import AgencyId, DirectoryEntry, Kind, QualityCode, SectorCode
from crossroads.identifiers import make_kbo, make_niss
from crossroads.routing import Request
from crossroads.validation import MAX_PAYLOAD_BYTES, MAX_REASON, MAX_RELATED, Invalid, check_envelope
from protos import messages_pb2 as pb

TODAY = dt.date(2026, 11, 28)
SENDER = AgencyId("CPAS-1")
ALICE = make_niss(dt.date(1985, 3, 14), 123)
BOB = make_niss(dt.date(2003, 6, 2), 44)
BAD_NISS = ALICE[:-1] + str((int(ALICE[-1]) + 1) % 10)
EMPLOYER = make_kbo(1_234_567)
BAD_KBO = EMPLOYER[:-1] + str((int(EMPLOYER[-1]) + 1) % 10)


def _consultation(**fields: object) -> pb.Envelope:
    base: dict[str, object] = {
        "message_id": "m-1",
        "kind": pb.CONSULTATION,
        "subject_niss": ALICE,
        "dataset": "wages",
        "purpose": "social_integration",
    }
    base.update(fields)
    return pb.Envelope(**base)  # type: ignore[arg-type]


def _dmfa(lines: list[pb.DmfaLine], **fields: object) -> pb.Envelope:
    payload = pb.DmfaDeclaration(employer_kbo=EMPLOYER, quarter="2026Q3", lines=lines).SerializeToString()
    base: dict[str, object] = {"message_id": "d-1", "kind": pb.DMFA, "subject_kbo": EMPLOYER, "payload": payload}
    base.update(fields)
    return pb.Envelope(**base)  # type: ignore[arg-type]


def _body(kind: int, body: object, **fields: object) -> pb.Envelope:
    payload = body.SerializeToString()  # type: ignore[attr-defined]
    return pb.Envelope(message_id="x-1", kind=kind, payload=payload, **fields)  # type: ignore[arg-type]


def _integration(kind: int = pb.INTEGRATION, **fields: object) -> pb.Envelope:
    body: dict[str, object] = {"niss": BOB, "sector": 17, "quality_code": 1, "phase_code": 1, "start": "2026-11-01"}
    body.update(fields)
    return _body(kind, pb.DirectoryIntegration(**body))  # type: ignore[arg-type]


def _invalid(env: pb.Envelope) -> Invalid:
    result = check_envelope(env, SENDER, TODAY)
    assert isinstance(result, Invalid), result
    return result


def _valid(env: pb.Envelope) -> Request:
    result = check_envelope(env, SENDER, TODAY)
    assert isinstance(result, Request), result
    return result


INVALID_CASES = [
    ("no message id", _consultation(message_id=""), "message_id"),
    ("long message id", _consultation(message_id="m" * 129), "message_id"),
    ("control char in message id", _consultation(message_id="m\n1"), "message_id"),
    ("unknown kind", _consultation(kind=42), "kind"),
    ("unspecified kind", _consultation(kind=0), "kind"),
    ("subject check digits", _consultation(subject_niss=BAD_NISS), "subject_niss"),
    ("subject not digits", _consultation(subject_niss="8503141234x"), "subject_niss"),
    ("employer check digits", _consultation(subject_kbo=BAD_KBO), "subject_kbo"),
    ("second related person", _consultation(related_niss=[BOB, BAD_NISS]), "related_niss[1]"),
    ("too many related", _consultation(related_niss=[BOB] * (MAX_RELATED + 1)), "related_niss"),
    ("payload too large", _consultation(payload=b"\0" * (MAX_PAYLOAD_BYTES + 1)), "payload"),
    ("long dataset", _consultation(dataset="d" * 129), "dataset"),
    ("as_of not a date", _consultation(as_of="2026-13-01"), "as_of"),
    ("as_of not ISO", _consultation(as_of="28/11/2026"), "as_of"),
    ("consultation without subject", _consultation(subject_niss=""), "subject_niss"),
    ("consultation without dataset", _consultation(dataset=""), "dataset (or payload.dataset)"),
    ("consultation without purpose", _consultation(purpose=""), "purpose"),
    ("consultation payload garbage", _consultation(payload=b"\xff\xff\xff"), "payload"),
    (
        "consultation payload names another dataset",
        _consultation(payload=pb.ConsultationRequest(dataset="health").SerializeToString()),
        "payload.dataset",
    ),
    ("dmfa without employer", _dmfa([pb.DmfaLine(worker_niss=ALICE)], subject_kbo=""), "subject_kbo"),
    ("dmfa without lines", _dmfa([]), "payload.lines"),
    (
        "dmfa third worker",
        _dmfa([pb.DmfaLine(worker_niss=ALICE), pb.DmfaLine(worker_niss=BOB), pb.DmfaLine(worker_niss=BAD_NISS)]),
        "payload.lines[2].worker_niss",
    ),
    ("dmfa empty payload", _dmfa([pb.DmfaLine(worker_niss=ALICE)], payload=b""), "payload.lines"),
    (
        "dmfa bad quarter",
        _body(
            pb.DMFA, pb.DmfaDeclaration(quarter="2026Q5", lines=[pb.DmfaLine(worker_niss=ALICE)]), subject_kbo=EMPLOYER
        ),
        "payload.quarter",
    ),
    (
        "dmfa employer disagrees",
        _dmfa([pb.DmfaLine(worker_niss=ALICE)], subject_kbo=make_kbo(42)),
        "payload.employer_kbo",
    ),
    (
        "dimona without type",
        _body(pb.DIMONA, pb.DimonaDeclaration(worker_niss=ALICE, employer_kbo=EMPLOYER)),
        "payload.type",
    ),
    (
        "dimona bad worker",
        _body(pb.DIMONA, pb.DimonaDeclaration(type=pb.IN, worker_niss=BAD_NISS, employer_kbo=EMPLOYER)),
        "payload.worker_niss",
    ),
    (
        "dimona worker disagrees with subject",
        _body(
            pb.DIMONA,
            pb.DimonaDeclaration(type=pb.UPDATE, worker_niss=BOB, employer_kbo=EMPLOYER),
            subject_niss=ALICE,
        ),
        "payload.worker_niss",
    ),
    (
        "dimona without employer",
        _body(pb.DIMONA, pb.DimonaDeclaration(type=pb.CANCEL, worker_niss=ALICE)),
        "subject_kbo (or payload.employer_kbo)",
    ),
    (
        "dimona IN without start",
        _body(pb.DIMONA, pb.DimonaDeclaration(type=pb.IN, worker_niss=ALICE, employer_kbo=EMPLOYER)),
        "payload.start_date",
    ),
    (
        "dimona OUT bad end",
        _body(
            pb.DIMONA,
            pb.DimonaDeclaration(type=pb.OUT, worker_niss=ALICE, employer_kbo=EMPLOYER, end_date="2026-02-30"),
        ),
        "payload.end_date",
    ),
    ("drs without family", _body(pb.DRS, pb.DrsDeclaration(worker_niss=ALICE)), "payload.family"),
    (
        "drs without worker",
        _body(pb.DRS, pb.DrsDeclaration(family=pb.WORK_ACCIDENT)),
        "subject_niss (or payload.worker_niss)",
    ),
    (
        "drs bad event date",
        _body(pb.DRS, pb.DrsDeclaration(family=pb.UNEMPLOYMENT, worker_niss=ALICE, event_date="yesterday")),
        "payload.event_date",
    ),
    ("integration bad niss", _integration(niss=BAD_NISS), "payload.niss"),
    ("integration negative sector", _integration(sector=-1), "payload.sector"),
    ("integration quality out of range", _integration(quality_code=1000), "payload.quality_code"),
    ("integration without start", _integration(start=""), "payload.start"),
    ("integration end before start", _integration(end="2026-10-31"), "payload.end"),
    ("deintegration bad end", _integration(pb.DEINTEGRATION, end="2026-11-31"), "payload.end"),
    ("mutation without dataset", _body(pb.MUTATION, pb.MutationNotice(niss=ALICE, change="address")), "dataset"),
    (
        "mutation without change",
        _body(pb.MUTATION, pb.MutationNotice(niss=ALICE), dataset="identity"),
        "payload.change",
    ),
    (
        "mutation bad person",
        _body(pb.MUTATION, pb.MutationNotice(niss=BAD_NISS, change="address"), dataset="identity"),
        "payload.niss",
    ),
]


@pytest.mark.parametrize(("case", "env", "field"), INVALID_CASES, ids=[c[0] for c in INVALID_CASES])
def test_each_invalid_field_is_named(case: str, env: pb.Envelope, field: str) -> None:
    invalid = _invalid(env)
    assert invalid.field == field, (case, invalid)
    assert invalid.reason


def test_a_bad_check_digit_says_so() -> None:
    assert "check digits" in _invalid(_consultation(subject_niss=BAD_NISS)).reason


def test_a_consultation_becomes_its_routing_keys_and_ignores_the_claimed_sender() -> None:
    request = _valid(_consultation(sender="ONSS", deliberation="08/020", related_niss=[BOB]))
    assert request == Request(
        Kind.CONSULTATION,
        SENDER,
        "wages",  # type: ignore[arg-type]
        "social_integration",  # type: ignore[arg-type]
        TODAY,
        subjects=(ALICE, BOB),
        deliberation="08/020",  # type: ignore[arg-type]
    )


def test_as_of_overrides_today() -> None:
    assert _valid(_consultation(as_of="2020-02-29")).as_of == dt.date(2020, 2, 29)


def test_dmfa_takes_its_workers_from_the_lines_and_defaults_its_dataset() -> None:
    request = _valid(
        _dmfa([pb.DmfaLine(worker_niss=ALICE), pb.DmfaLine(worker_niss=BOB), pb.DmfaLine(worker_niss=ALICE)])
    )
    assert request.subjects == (ALICE, BOB)
    assert request.dataset == "dmfa" and request.kbo == EMPLOYER


def test_dmfa_related_persons_in_the_envelope_win() -> None:
    request = _valid(_dmfa([pb.DmfaLine(worker_niss=ALICE)], related_niss=[BOB]))
    assert request.subjects == (BOB,)


@pytest.mark.parametrize(
    ("family", "dataset"),
    [
        (pb.SICKNESS_MATERNITY, "drs_sickness"),
        (pb.WORK_ACCIDENT, "drs_accident"),
        (pb.UNEMPLOYMENT, "drs_unemployment"),
    ],
)
def test_drs_dataset_defaults_by_family(family: int, dataset: str) -> None:
    request = _valid(_body(pb.DRS, pb.DrsDeclaration(family=family, worker_niss=ALICE)))  # type: ignore[arg-type]
    assert request.dataset == dataset and request.subjects == (ALICE,)


def test_dimona_takes_worker_and_employer_from_its_payload() -> None:
    body = pb.DimonaDeclaration(type=pb.IN, worker_niss=ALICE, employer_kbo=EMPLOYER, start_date="2026-12-01")
    request = _valid(_body(pb.DIMONA, body))
    assert (request.dataset, request.subjects, request.kbo) == ("dimona", (ALICE,), EMPLOYER)


def test_integration_names_the_file_of_the_sender() -> None:
    request = _valid(_integration(end="2026-12-31"))
    assert request.subjects == (BOB,)
    assert request.integration == DirectoryEntry(
        BOB, SectorCode(17), SENDER, QualityCode(1), 1, dt.date(2026, 11, 1), dt.date(2026, 12, 31)
    )


def test_deintegration_without_end_closes_on_as_of() -> None:
    request = _valid(_integration(pb.DEINTEGRATION))
    assert request.integration is not None and request.integration.end == TODAY


def test_mutation_carries_its_change() -> None:
    request = _valid(_body(pb.MUTATION, pb.MutationNotice(niss=ALICE, change="address"), dataset="identity"))
    assert (request.change, request.subjects, request.dataset) == ("address", (ALICE,), "identity")


def test_a_consultation_may_name_its_dataset_in_the_payload_only() -> None:
    payload = pb.ConsultationRequest(dataset="wages").SerializeToString()
    assert _valid(_consultation(dataset="", payload=payload)).dataset == "wages"


@pytest.mark.parametrize(
    ("texts", "field"),
    [
        ({"purpose": "p\n", "sender": "s\n"}, "purpose"),
        ({"deliberation": "d" * 129, "sender": "s\n"}, "deliberation"),
        ({"sender": "s" * 129}, "sender"),
        ({"sender": "s\n", "subject_niss": BAD_NISS}, "sender"),  # texts before identifiers
    ],
)
def test_of_several_bad_fields_the_first_checked_is_named(texts: dict[str, str], field: str) -> None:
    assert _invalid(_consultation(**texts)).field == field


def test_the_common_checks_come_before_the_kinds() -> None:
    env = _body(pb.DRS, pb.DrsDeclaration(worker_niss=ALICE), as_of="2026-13-01")  # and no family
    assert _invalid(env).field == "as_of"


def test_a_bad_field_name_in_a_consultation_is_named_by_its_index() -> None:
    payload = pb.ConsultationRequest(dataset="wages", fields=["gross", "net\n"]).SerializeToString()
    assert _invalid(_consultation(payload=payload)).field == "payload.fields[1]"


def test_subjects_are_the_subject_first_then_each_related_person_once() -> None:
    assert _valid(_consultation(related_niss=[BOB, ALICE, BOB])).subjects == (ALICE, BOB)
    notice = pb.MutationNotice(niss=BOB, change="address")
    assert _valid(_body(pb.MUTATION, notice, dataset="identity", related_niss=[ALICE, BOB])).subjects == (BOB, ALICE)


def test_a_bad_date_is_named_by_the_field_it_is_in_every_time() -> None:
    body = pb.DimonaDeclaration(type=pb.OUT, worker_niss=ALICE, employer_kbo=EMPLOYER, end_date="2026-02-30")
    for _ in range(2):  # the second time from what the first one learnt
        in_envelope = _invalid(_consultation(as_of="2026-02-30"))
        in_payload = _invalid(_body(pb.DIMONA, body))
        assert (in_envelope.field, in_payload.field) == ("as_of", "payload.end_date")
        assert in_envelope.reason == in_payload.reason and "2026-02-30" in in_envelope.reason
    assert _valid(_consultation(as_of="2026-02-28")).as_of == dt.date(2026, 2, 28)


def test_a_huge_date_is_refused_with_a_bounded_reason() -> None:
    invalid = _invalid(_consultation(as_of="2026-11-28" * 10_000))
    assert invalid.field == "as_of" and "expected an ISO date" in invalid.reason
    assert len(invalid.reason) <= MAX_REASON


def test_a_declaration_becomes_all_its_routing_keys() -> None:
    body = pb.DrsDeclaration(family=pb.WORK_ACCIDENT, worker_niss=ALICE, event_date="2026-11-02")
    env = _body(pb.DRS, body, subject_kbo=EMPLOYER, related_niss=[BOB], purpose="declaration", deliberation="12/34")
    assert _valid(env) == Request(
        Kind.DRS,
        SENDER,
        "drs_accident",  # type: ignore[arg-type]
        "declaration",  # type: ignore[arg-type]
        TODAY,
        subjects=(ALICE, BOB),
        kbo=EMPLOYER,
        deliberation="12/34",  # type: ignore[arg-type]
    )


def test_a_dmfa_line_is_checked_even_when_the_envelope_names_other_workers() -> None:
    lines = [pb.DmfaLine(worker_niss=ALICE), pb.DmfaLine(worker_niss=BAD_NISS), pb.DmfaLine(worker_niss=BOB)]
    assert _invalid(_dmfa(lines, related_niss=[ALICE, BOB])).field == "payload.lines[1].worker_niss"
    assert _valid(_dmfa(lines[::2], related_niss=[BOB, ALICE])).subjects == (BOB, ALICE)
