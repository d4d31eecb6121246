"""The crash-consistency harness: a short live run (3 core kills, 1 host kill), and its checks on broken data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from crossroads.audit import AuditHead as Head
from crossroads.audit import AuditLog
from crossroads.audit_record import AuditRecord
from crossroads.checkpoint import sign_checkpoint
from crossroads.merkle import consistency_proof, leaf_hashes, root
from loadtests.client import Answer
from loadtests.crash.checks import (
    ALL_ACKNOWLEDGED,
    CONSISTENT,
    IN_ORDER,
    audit_records,
    check_all_acknowledged,
    check_consistency,
    check_order,
)
from loadtests.crash.heads import Restart, consistency_problem
from loadtests.crash.load import Ack, acknowledged
from testbed.cli import build_parser
from testbed.crash import CrashResult, CrashRun, options, run_crash
from testbed.crash.options import run_from_args

ORIGIN = "crossroads.testbed/audit"
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
LEAVES = [f"leaf {i}".encode() for i in range(40)]


# ---------------------------------------------------------------- the live run
@pytest.fixture(scope="module")
def crash(tmp_path_factory: pytest.TempPathFactory) -> CrashResult:
    out = tmp_path_factory.mktemp("crash")
    run = CrashRun(out=out, kills=3, host_kills=1, seed=7, gap_s=(0.4, 0.9), outage_s=(0.6, 1.0), progress=False)
    return run_crash(run)


@pytest.mark.slow
def test_three_core_kills_and_a_host_kill_cost_nothing_acknowledged(crash: CrashResult) -> None:
    assert crash.ok, [c for c in crash.summary["checks"] if not c["ok"]]
    counts = crash.summary["counts"]
    assert counts["kills_core"] == 3
    assert counts["kills_hosts"] == 1
    assert counts["consistency_proofs_checked"] == 3
    assert counts["lost"] == 0
    assert counts["duplicated_records"] == 0
    assert counts["sent"] == counts["acknowledged"] > 100
    assert counts["resent"] > 0  # the kills cut calls (or found the core down): those were sent again
    assert counts["outbox_items"] > 0  # the host's outage queued deliveries, which the outbox redelivered
    assert counts["outbox_held_at_end"] == 0
    restarts = crash.summary["restarts"]
    assert all(r["after"]["size"] >= r["before"]["size"] and r["problem"] is None for r in restarts)


@pytest.mark.slow
def test_the_run_folder_holds_crash_json_and_every_acknowledgment(crash: CrashResult) -> None:
    assert json.loads(crash.path.read_text()) == json.loads(json.dumps(crash.summary))
    acks = (crash.path.parent / "acks.jsonl").read_text().splitlines()
    assert len(acks) == crash.summary["counts"]["acknowledged"]
    first = json.loads(acks[0])
    assert first["m"].startswith("crash-7-") and first["i"] >= 0
    names = {c["name"] for c in crash.summary["checks"]}
    assert {CONSISTENT, ALL_ACKNOWLEDGED, IN_ORDER, "audit verify passes"} <= names


# ---------------------------------------------------------------- consistency across a restart
def _head(size: int) -> Head:
    r = root(leaf_hashes(LEAVES[:size]))
    return Head(size, bytes(r), sign_checkpoint(ORIGIN, size, r, KEY, ORIGIN))


def _proof(first: int, second: int) -> list[bytes]:
    return consistency_proof(first, second, leaf_hashes(LEAVES[:second]))


def test_a_log_that_only_grew_is_consistent_across_a_restart() -> None:
    public = KEY.public_key()
    assert consistency_problem(_head(13), _head(37), _proof(13, 37), public) is None
    assert consistency_problem(_head(16), _head(16), [], public) is None


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("flipped proof bit", "does not verify"),
        ("truncated proof", "does not verify"),
        ("rewritten history", "does not verify"),
        ("shrunk log", "shrank"),
        ("foreign signature", "checkpoint before the kill does not verify"),
        ("head beside its checkpoint", "signs size"),
    ],
)
def test_a_log_that_lost_or_changed_records_is_not(case: str, expected: str) -> None:
    public = KEY.public_key()
    before, after, proof = _head(13), _head(37), _proof(13, 37)
    if case == "flipped proof bit":
        proof[1] = bytes([proof[1][0] ^ 1]) + proof[1][1:]
    elif case == "truncated proof":
        proof = proof[:-1]
    elif case == "rewritten history":  # the same size after, other leaves: record 3 changed
        changed = [*LEAVES[:3], b"forged", *LEAVES[4:37]]
        r = root(leaf_hashes(changed))
        after = Head(37, bytes(r), sign_checkpoint(ORIGIN, 37, r, KEY, ORIGIN))
    elif case == "shrunk log":
        before, after, proof = _head(37), _head(13), []
    elif case == "foreign signature":
        other = Ed25519PrivateKey.from_private_bytes(bytes(32))
        before = Head(13, before.root, sign_checkpoint(ORIGIN, 13, before.root, other, ORIGIN))
    else:
        after = Head(38, after.root, after.checkpoint)
    problem = consistency_problem(before, after, proof, public)
    assert problem is not None and expected in problem


def test_a_restart_without_consistency_breaks_the_check() -> None:
    good = Restart(1, _head(3), _head(5), 2, None)
    bad = Restart(2, _head(5), _head(4), 0, "the log shrank from 5 to 4 records across the restart")
    assert check_consistency([good]).ok
    check = check_consistency([good, bad])
    assert not check.ok and "kill 2: the log shrank" in check.detail


# ---------------------------------------------------------------- acknowledgments
def _answer(error: str, index: int | None) -> Answer:
    return Answer(error, "", index, (), 0, 0.0)


def test_only_answers_the_core_will_give_again_are_acknowledgments() -> None:
    assert acknowledged(_answer("", 4))
    assert acknowledged(_answer("OUTCOME_FAILED", 4))  # routed, a destination failed: audited, final
    assert acknowledged(_answer("PERMISSION_DENIED", 4))
    assert not acknowledged(_answer("UNAVAILABLE", None))  # the core was down or killed under the call
    assert not acknowledged(_answer("UNAVAILABLE", 4))  # shed: audited, but send it again
    assert not acknowledged(_answer("RESOURCE_EXHAUSTED", 4))  # throttled
    assert not acknowledged(_answer("DEADLINE_EXCEEDED", None))


def test_a_message_given_up_on_breaks_the_check() -> None:
    assert check_all_acknowledged(3, []).ok
    check = check_all_acknowledged(3, ["crash-0-1-2"])
    assert not check.ok and "crash-0-1-2" in check.detail


# ---------------------------------------------------------------- order per agency
def _ack(message_id: str, sent: float, acked: float, outcome: str = "QUEUED") -> Ack:
    return Ack(message_id, "ONSS", "DIMONA", outcome, 0, (("MUT-1", outcome),), sent, acked, 1)


def test_a_notice_acknowledged_before_another_was_sent_must_arrive_first() -> None:
    a, b = _ack("a", 0.0, 1.0), _ack("b", 2.0, 3.0)
    assert check_order([a, b], {"MUT-1": ["a", "b"]}).ok
    check = check_order([a, b], {"MUT-1": ["b", "a"]})
    assert not check.ok and "a was acknowledged before b was sent" in check.detail
    assert check.figures["checked"] == 1


def test_notices_in_flight_together_have_no_order_and_missing_ones_are_left_to_the_loss_check() -> None:
    a, b = _ack("a", 0.0, 2.0), _ack("b", 1.0, 3.0, outcome="DELIVERED")  # b was sent before a was acknowledged
    check = check_order([a, b], {"MUT-1": ["b", "a"]})
    assert check.ok and check.figures["checked"] == 0
    assert check_order([a, _ack("c", 5.0, 6.0)], {"MUT-1": ["a"]}).ok


def test_an_inversion_behind_the_latest_arrival_is_found() -> None:
    # a and b were acknowledged before c was sent; b arrived after c
    acks = [_ack("a", 0.0, 1.0), _ack("b", 0.5, 1.5), _ack("c", 2.0, 2.5)]
    check = check_order(acks, {"MUT-1": ["a", "c", "b"]})
    assert not check.ok and "b was acknowledged before c was sent" in check.detail
    assert check.figures["queued"] == 3


# ---------------------------------------------------------------- audit records
def _record(message_id: str, outcome: str) -> AuditRecord:
    return AuditRecord(
        time="2026-11-28T10:00:00.000000Z",
        message_id=message_id,
        kind="DIMONA",
        sender="ONSS",
        destinations=("MUT-1",),
        subject_niss="",
        subject_kbo="",
        related_niss=(),
        quality=None,
        deliberation="",
        outcome=outcome,
        detail="",
    )


def test_duplicated_records_are_kept_and_transient_refusals_are_not_counted(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path) as log:
        log.append_batch_sync(
            [
                _record("crash-1-0-0", "SHED"),  # shed, then sent again and accepted: one record counts
                _record("crash-1-0-0", "QUEUED"),
                _record("crash-1-0-1", "DELIVERED"),  # processed twice: a duplicate
                _record("crash-1-0-1", "DELIVERED"),
                _record("other-0", "DELIVERED"),
            ]
        )
    records = audit_records(tmp_path, "crash-1-")
    assert {k: [i for i, _ in v] for k, v in records.items()} == {
        ("ONSS", "crash-1-0-0"): [1],
        ("ONSS", "crash-1-0-1"): [2, 3],
    }


# ---------------------------------------------------------------- the command line
def test_crossroads_crash_takes_the_harness_options(tmp_path: Path) -> None:
    args = build_parser().parse_args(["crash", "--out", str(tmp_path), "--kills", "2", "--seed", "3"])
    assert (args.kills, args.seed, args.host_kills, args.out) == (2, 3, 4, tmp_path)
    assert args.func is run_from_args


def test_impossible_counts_are_refused_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = build_parser().parse_args(["crash", "--out", str(tmp_path), "--kills", "-1"])
    assert run_from_args(args) == 2
    assert "--kills" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_a_broken_guarantee_is_named_and_exits_non_zero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = "every acknowledged request has exactly one audit record"
    summary = {"ok": False, "broken": [broken], "counts": {"duplicated_records": 2, "lost": 0}}
    monkeypatch.setattr(options, "run_crash", lambda run: CrashResult(False, summary, tmp_path / "crash.json"))
    assert run_from_args(build_parser().parse_args(["crash", "--out", str(tmp_path)])) == 1
    err = capsys.readouterr().err
    assert f"BROKEN: {broken}" in err and "duplicated_records 2" in err
