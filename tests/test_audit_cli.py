"""`crossroads audit head|export|verify|who-accessed --state DIR`: output shapes and exit codes."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from crossroads.audit import AUDIT_DB, AuditLog
from crossroads.audit_record import AuditRecord, audit_time
from crossroads.checkpoint import load_public_key, verify_checkpoint
from crossroads.identifiers import make_niss
from crossroads.merkle import leaf_hash, leaf_hashes, root, verify_inclusion
from testbed.cli import main

ROOT = Path(__file__).resolve().parents[1]
CAROL = make_niss(dt.date(1990, 1, 2), 3)
DAVE = make_niss(dt.date(1975, 12, 24), 4)


def _record(i: int, subject: str) -> AuditRecord:
    return AuditRecord(
        time=audit_time(dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC) + dt.timedelta(seconds=i)),
        message_id=f"cli-{i:04d}",
        kind="CONSULTATION",
        sender="ocmw-gent",
        destinations=("riziv",),
        subject_niss=subject,
        subject_kbo="",
        related_niss=(),
        quality=None,
        deliberation="08/020",
        outcome="DELIVERED" if i % 5 else "DENIED",
        detail="routed" if i % 5 else "no_deliberation",
    )


@pytest.fixture
def state(tmp_path: Path) -> Path:
    with AuditLog.open(tmp_path) as log:
        log.append_batch_sync([_record(i, CAROL if i % 4 == 0 else DAVE) for i in range(300)])
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["audit", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_head_prints_size_root_and_a_verifiable_checkpoint(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "head", "--state", str(state))
    head: dict[str, Any] = json.loads(out)
    assert code == 0 and sorted(head) == ["checkpoint", "root", "size"]
    assert head["size"] == 300
    checkpoint = verify_checkpoint(head["checkpoint"], load_public_key(state / "keys"), "crossroads.testbed/audit")
    assert (checkpoint.size, checkpoint.root.hex()) == (300, head["root"])


def test_export_prints_every_leaf_in_order_and_they_hash_to_the_head(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "export", "--state", str(state))
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [line["index"] for line in lines] == list(range(300))
    assert all(sorted(line) == ["index", "leaf"] for line in lines)
    leaves = [bytes.fromhex(line["leaf"]) for line in lines]
    assert AuditRecord.from_leaf(leaves[7]) == _record(7, DAVE)
    _, head_out, _ = run(capsys, "head", "--state", str(state))
    assert root(leaf_hashes(leaves)).hex() == json.loads(head_out)["root"]


def test_verify_passes_then_fails_naming_the_first_bad_index(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "verify", "--state", str(state))
    assert code == 0 and json.loads(out)["ok"] is True
    data = bytearray((state / AUDIT_DB).read_bytes())
    at = data.index(b'"message_id":"cli-0042"')
    data[at + len(b'"message_id":"cli-00')] = ord("9")  # cli-0042 -> cli-0092
    (state / AUDIT_DB).write_bytes(bytes(data))
    code, out, err = run(capsys, "verify", "--state", str(state))
    result = json.loads(out)
    assert code == 1 and result["ok"] is False and result["first_bad_index"] == 42
    assert "first bad index 42" in err


def test_verify_fails_on_a_changed_checkpoint(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conn = sqlite3.connect(state / AUDIT_DB)
    with conn:
        conn.execute("UPDATE checkpoints SET text = replace(text, 'crossroads.testbed/audit', 'x') WHERE size = 300")
    conn.close()
    code, out, err = run(capsys, "verify", "--state", str(state))
    assert code == 1 and "size 300" in json.loads(out)["message"] and "FAILED" in err


def test_who_accessed_lists_the_persons_exchanges_with_proofs(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "who-accessed", CAROL, "--state", str(state))
    report = json.loads(out)
    assert code == 0 and sorted(report) == ["entries", "head", "niss"]
    head = report["head"]
    assert [e["index"] for e in report["entries"]] == list(range(0, 300, 4))
    for entry in report["entries"]:
        assert entry["record"]["subject_niss"] == CAROL
        assert entry["inclusion"]["tree_size"] == head["size"] == 300
        proof = [bytes.fromhex(h) for h in entry["inclusion"]["hashes"]]
        leaf = leaf_hash(bytes.fromhex(entry["leaf"]))
        assert verify_inclusion(leaf, entry["index"], head["size"], proof, bytes.fromhex(head["root"]))


def test_who_accessed_an_unknown_person_is_an_empty_list(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "who-accessed", make_niss(dt.date(1960, 6, 6), 6), "--state", str(state))
    assert code == 0 and json.loads(out)["entries"] == []


@pytest.mark.parametrize("command", [["head"], ["export"], ["verify"], ["who-accessed", "85073100130"]])
def test_a_folder_without_a_log_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    code, out, err = run(capsys, *command, "--state", str(tmp_path))
    assert code == 2 and out == ""
    assert "no audit log" in err and str(tmp_path) in err
    assert not (tmp_path / AUDIT_DB).exists()  # reading never creates a log


@pytest.mark.parametrize("command", [[], ["head"], ["export"], ["verify"], ["who-accessed"]])
def test_help_everywhere(capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    with pytest.raises(SystemExit) as leaving:
        main(["audit", *command, "--help"])
    out = capsys.readouterr().out
    assert leaving.value.code == 0
    assert "--state" in out or "who-accessed" in out


def test_audit_without_a_sub_command_prints_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit"]) == 2
    assert "head" in capsys.readouterr().out


def test_the_installed_entry_point_runs(state: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "testbed.cli", "audit", "head", "--state", str(state)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["size"] == 300


def test_verify_index_notices_a_removed_who_accessed_row(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conn = sqlite3.connect(state / AUDIT_DB)
    with conn:
        conn.execute("DELETE FROM access_recent WHERE niss = ? AND idx = 8", (CAROL,))
    conn.close()
    assert run(capsys, "verify", "--state", str(state))[0] == 0
    code, out, _ = run(capsys, "verify", "--index", "--state", str(state))
    assert code == 1 and "who-accessed" in json.loads(out)["message"]


def test_who_accessed_refuses_a_malformed_niss(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "who-accessed", "12345678901", "--state", str(state))
    assert code == 2 and out == "" and "check digits" in err
