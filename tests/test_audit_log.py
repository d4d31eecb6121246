"""The audit log: records, checkpoints, durable group-committed appends, proofs, tamper detection, gRPC face."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from crossroads.audit import AUDIT_DB, AuditIndexError, AuditLog, AuditLogError, verify_store
from crossroads.audit_record import AuditRecord, AuditRecordError, audit_time
from crossroads.audit_service import AuditServicer
from crossroads.checkpoint import (
    CheckpointError,
    key_id,
    load_public_key,
    open_note,
    parse_checkpoint,
    sign_checkpoint,
    sign_note,
    verifier_key,
    verify_checkpoint,
)
from crossroads.citizen import CitizenGate, issue_assertion
from crossroads.identifiers import make_niss
from crossroads.journal import JournalEntry
from crossroads.merkle import (
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    leaf_hashes,
    root,
    verify_consistency,
    verify_inclusion,
)
from protos import services_pb2, services_pb2_grpc

ALICE = make_niss(dt.date(1985, 7, 31), 1)
BOB = make_niss(dt.date(2001, 2, 3), 2)
NOON = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def record(i: int, *, subject: str = "", related: tuple[str, ...] = (), outcome: str = "DELIVERED") -> AuditRecord:
    return AuditRecord(
        time=audit_time(NOON + dt.timedelta(microseconds=i)),
        message_id=f"msg-{i:06d}",
        kind="CONSULTATION",
        sender="onem",
        destinations=("riziv", "cin"),
        subject_niss=subject,
        subject_kbo="",
        related_niss=related,
        quality=1 if subject else None,
        deliberation="08/020",
        outcome=outcome,
        detail="routed by deliberation 08/020",
    )


def records(start: int, n: int) -> list[AuditRecord]:
    return [record(i, subject=ALICE if i % 7 == 0 else "") for i in range(start, start + n)]


def stored_leaves(log: AuditLog) -> list[bytes]:
    return [leaf for _, leaf in log.iter_leaves()]


# ---------------------------------------------------------------------- records
def test_audit_time_is_utc_with_microseconds() -> None:
    brussels = dt.timezone(dt.timedelta(hours=1))
    assert audit_time(dt.datetime(2026, 3, 1, 13, 0, 0, 5, tzinfo=brussels)) == "2026-03-01T12:00:00.000005Z"
    with pytest.raises(ValueError, match="timezone"):
        audit_time(dt.datetime(2026, 3, 1))


_text = st.text(max_size=12)


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(
    st.builds(
        AuditRecord,
        time=_text,
        message_id=_text,
        kind=_text,
        sender=_text,
        destinations=st.lists(_text, max_size=3).map(tuple),
        subject_niss=_text,
        subject_kbo=_text,
        related_niss=st.lists(_text, max_size=3).map(tuple),
        quality=st.none() | st.integers(min_value=-(2**70), max_value=2**70),
        deliberation=_text,
        outcome=st.sampled_from(["DELIVERED", "QUEUED", "DENIED", "INVALID", "FAILED", "UNAUTHENTICATED"]),
        detail=_text,
    )
)
def test_leaf_bytes_are_canonical_json_and_round_trip(rec: AuditRecord) -> None:
    try:
        canonical = json.dumps(rec.as_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    except UnicodeEncodeError:  # lone surrogates have no UTF-8 form: no leaf either
        with pytest.raises(UnicodeEncodeError):
            rec.leaf_bytes()
        return
    assert rec.leaf_bytes() == canonical
    assert AuditRecord.from_leaf(canonical) == rec


@pytest.mark.parametrize(
    "leaf",
    [
        b"not json",
        b"\xff\xfe",
        b"[]",
        b'{"time":"x"}',
        # a space after a colon: same record, not the canonical bytes
        record(1).leaf_bytes().replace(b'"kind":', b'"kind": '),
        record(1).leaf_bytes().replace(b'"quality":null', b'"quality":"1"'),
        record(1).leaf_bytes().replace(b'"quality":null', b'"quality":true'),
        record(1).leaf_bytes().replace(b'"DELIVERED"', b'"LOST"'),
    ],
)
def test_from_leaf_rejects_anything_but_a_canonical_record(leaf: bytes) -> None:
    with pytest.raises(AuditRecordError):
        AuditRecord.from_leaf(leaf)


def test_persons_are_subject_then_related_once_each() -> None:
    assert record(1, subject=ALICE, related=(BOB, ALICE)).persons() == (ALICE, BOB)
    assert record(1, related=(BOB,)).persons() == (BOB,)
    assert record(1).persons() == ()


def test_a_record_refuses_an_unknown_outcome() -> None:
    with pytest.raises(AuditRecordError, match="outcome"):
        record(1, outcome="LOST")


# ---------------------------------------------------------------------- checkpoints
def test_checkpoint_signs_and_verifies_in_c2sp_form() -> None:
    key = Ed25519PrivateKey.generate()
    top = leaf_hash(b"x")
    text = sign_checkpoint("example.org/log", 7, top, key, "example.org/log")
    body, signature = text.split("\n\n")
    assert body.split("\n") == ["example.org/log", "7", base64.b64encode(top).decode()]
    assert signature.startswith("\u2014 example.org/log ") and signature.endswith("\n")
    checkpoint = verify_checkpoint(text, key.public_key(), "example.org/log")
    assert (checkpoint.origin, checkpoint.size) == ("example.org/log", 7)
    assert checkpoint.root == bytes(top)
    name, hex_id, _ = verifier_key("example.org/log", key.public_key()).split("+", 2)
    assert (name, hex_id) == ("example.org/log", key_id("example.org/log", key.public_key()).hex())


# The example note of golang.org/x/mod/sumdb/note (its package documentation and note_test.go):
# signer key PRIVATE+KEY+PeterNeumann+c74f20a3+<base64(0x01 || Ed25519 seed)>.
GO_SEED = base64.b64decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")[1:]
GO_VERIFIER_KEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_NOTE = (
    GO_TEXT
    + "\n\u2014 PeterNeumann "
    + "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def test_signed_notes_match_the_go_reference_byte_for_byte() -> None:
    key = Ed25519PrivateKey.from_private_bytes(GO_SEED)
    assert verifier_key("PeterNeumann", key.public_key()) == GO_VERIFIER_KEY
    assert sign_note(GO_TEXT, key, "PeterNeumann") == GO_NOTE
    assert open_note(GO_NOTE, key.public_key(), "PeterNeumann") == GO_TEXT


def _tampered(text: str) -> list[tuple[str, str]]:
    body, sig = text.split("\n\n")
    lines = body.split("\n")
    return [
        ("size changed", "\n".join([lines[0], "8", *lines[2:]]) + "\n\n" + sig),
        ("origin changed", "\n".join(["other.org/log", *lines[1:]]) + "\n\n" + sig),
        ("signature dropped", body + "\n\n"),
        ("no blank line", body + "\n" + sig),
        ("signature bit flipped", body + "\n\n" + sig[:-6] + ("A" if sig[-6] != "A" else "B") + sig[-5:]),
        ("not base64", body + "\n\n" + sig[:-3] + "!!\n"),
    ]


def test_checkpoint_rejects_tampering_and_other_keys() -> None:
    key = Ed25519PrivateKey.generate()
    text = sign_checkpoint("example.org/log", 7, leaf_hash(b"x"), key, "example.org/log")
    for desc, bad in _tampered(text):
        with pytest.raises(CheckpointError):
            verify_checkpoint(bad, key.public_key(), "example.org/log")
            pytest.fail(desc)
    with pytest.raises(CheckpointError, match="no signature"):
        verify_checkpoint(text, Ed25519PrivateKey.generate().public_key(), "example.org/log")
    with pytest.raises(CheckpointError, match="no signature"):
        verify_checkpoint(text, key.public_key(), "another-name")


@pytest.mark.parametrize("body", ["o\n007\nAAAA\n", "o\n-1\n" + "A" * 44 + "\n", "o\n1\nAAAA\n", "o\n1\n", "\n1\nA\n"])
def test_parse_checkpoint_rejects_malformed_bodies(body: str) -> None:
    with pytest.raises(CheckpointError):
        parse_checkpoint(body)


# ---------------------------------------------------------------------- appending and reopening
def test_appends_survive_reopening_and_the_next_index_continues(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path, checkpoint_interval=3600) as log:
        assert log.append_batch_sync(records(0, 300)) == list(range(300))
        assert asyncio.run(log.append(record(300))) == 300
        first_head = log.head()
    with AuditLog.open(tmp_path) as log:
        assert log.head() == first_head  # the checkpoint stored on close is the head
        assert log.append_batch_sync(records(301, 10)) == list(range(301, 311))
        leaves = stored_leaves(log)
        assert leaves == [r.leaf_bytes() for r in records(0, 300)] + [record(300).leaf_bytes()] + [
            r.leaf_bytes() for r in records(301, 10)
        ]
        assert log.head().root == root(leaf_hashes(leaves))


def test_concurrent_appends_get_distinct_consecutive_indices(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path) as log:
        from_threads: list[list[int]] = []

        def batch(start: int) -> None:
            from_threads.append(log.append_batch_sync(records(start, 50)))

        async def many() -> list[int]:
            threads = [threading.Thread(target=batch, args=(10_000 + 100 * k,)) for k in range(4)]
            for t in threads:
                t.start()
            got = await asyncio.gather(*(log.append(record(i)) for i in range(600)))

            def join_all() -> None:
                for t in threads:
                    t.join()

            await asyncio.to_thread(join_all)
            return list(got)

        from_loop = asyncio.run(many())
        everything = sorted(from_loop + [i for b in from_threads for i in b])
        assert everything == list(range(800))
        for b in from_threads:  # one call's records are consecutive
            assert b == list(range(b[0], b[0] + 50))
        leaves = dict(log.iter_leaves())
        assert all(leaves[i] == record(n).leaf_bytes() for n, i in enumerate(from_loop))


def test_head_checkpoint_is_signed_for_the_current_size(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path, checkpoint_interval=3600) as log:
        empty = log.head()
        assert empty.size == 0 and empty.root == root([])
        log.append_batch_sync(records(0, 5))
        head = log.head()
        checkpoint = verify_checkpoint(head.checkpoint, load_public_key(tmp_path / "keys"), log.origin)
        assert (checkpoint.size, checkpoint.root) == (5, head.root) == (5, root(leaf_hashes(stored_leaves(log))))


def test_proofs_from_the_store_match_the_pure_maths(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path) as log:
        log.append_batch_sync(records(0, 1100))  # four full tiles of 256 and a partial one
        hashes = leaf_hashes(stored_leaves(log))
        for size in (1, 255, 256, 257, 512, 700, 1024, 1100):
            assert log.root_at(size) == root(hashes[:size])
            for index in {0, size // 3, size - 1}:
                proof = log.inclusion_proof(index, size)
                assert proof == inclusion_proof(index, size, hashes)
                assert verify_inclusion(hashes[index], index, size, proof, root(hashes[:size]))
            for first in {f for f in (0, 1, 256, size // 2, size) if f <= size}:
                proof = log.consistency_proof(first, size)
                assert proof == consistency_proof(first, size, hashes)
                assert verify_consistency(first, size, root(hashes[:first]), root(hashes[:size]), proof)


@pytest.mark.parametrize(("index", "size"), [(-1, None), (5, None), (2, 2), (0, 6), (0, -1)])
def test_bad_indexes_are_index_errors(tmp_path: Path, index: int, size: int | None) -> None:
    with AuditLog.open(tmp_path) as log:
        log.append_batch_sync(records(0, 5))
        with pytest.raises(AuditIndexError):
            log.inclusion_proof(index, size)
        with pytest.raises(AuditIndexError):
            log.leaf(index if size is None else 99)


def test_who_accessed_lists_every_exchange_about_a_person_with_proofs(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path) as log:
        log.append_batch_sync([record(0, subject=ALICE), record(1, subject=BOB), record(2, related=(BOB, ALICE))])
        assert log.indices_about(ALICE) == [0, 2]
        assert log.indices_about(BOB) == [1, 2]
        head, entries = log.who_accessed(BOB)
        assert [e.index for e in entries] == [1, 2]
        for e in entries:
            assert AuditRecord.from_leaf(e.leaf).persons().count(BOB) == 1
            assert verify_inclusion(leaf_hash(e.leaf), e.index, head.size, e.proof, head.root)


def test_a_closed_or_read_only_log_refuses_appends(tmp_path: Path) -> None:
    log = AuditLog.open(tmp_path)
    log.close()
    log.close()  # idempotent
    with pytest.raises(AuditLogError, match="closed"):
        log.append_batch_sync(records(0, 1))
    with AuditLog.open(tmp_path, read_only=True) as reader, pytest.raises(AuditLogError, match="read-only"):
        reader.append_batch_sync(records(0, 1))


def test_opening_needs_the_same_origin_and_read_only_needs_a_log(tmp_path: Path) -> None:
    AuditLog.open(tmp_path / "a", origin="one.example/log").close()
    with pytest.raises(AuditLogError, match=r"one\.example/log"):
        AuditLog.open(tmp_path / "a", origin="two.example/log")
    with pytest.raises(AuditLogError, match="no audit log"):
        AuditLog.open(tmp_path / "b", read_only=True)


def test_a_log_stopped_before_its_checkpoint_signs_one_on_reopening(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path) as log:
        log.append_batch_sync(records(0, 20))
    _sql(tmp_path, "DELETE FROM checkpoints WHERE size = 20")  # as if the process died before signing
    result = verify_store(tmp_path)
    assert (result.ok, result.first_bad_index) == (False, 0)
    assert "not covered" in result.message
    AuditLog.open(tmp_path).close()
    assert verify_store(tmp_path).ok


# ---------------------------------------------------------------------- tamper evidence
def _sql(state: Path, statement: str, *params: Any) -> None:
    conn = sqlite3.connect(state / AUDIT_DB)
    with conn:
        conn.execute(statement, params)
    conn.close()


def _filled(state: Path, n: int = 600) -> None:
    with AuditLog.open(state, checkpoint_interval=0) as log:  # a checkpoint with every batch
        for start in range(0, n, 100):
            log.append_batch_sync(records(start, 100))


def test_verify_passes_on_an_untouched_store(tmp_path: Path) -> None:
    _filled(tmp_path)
    result = verify_store(tmp_path)
    assert (result.ok, result.size, result.first_bad_index) == (True, 600, None)


def test_verify_names_the_leaf_whose_bytes_were_changed_in_the_file(tmp_path: Path) -> None:
    _filled(tmp_path)
    data = bytearray((tmp_path / AUDIT_DB).read_bytes())
    needle = b'"message_id":"msg-000321"'
    assert data.count(needle) == 1
    at = data.index(needle) + len(needle) - 2
    data[at] = ord("9")  # msg-000321 -> msg-000329: still valid JSON, another record
    (tmp_path / AUDIT_DB).write_bytes(bytes(data))
    result = verify_store(tmp_path)
    assert (result.ok, result.first_bad_index) == (False, 321)
    assert "321" in result.message


def test_verify_fails_when_leaf_and_hash_are_rewritten_together(tmp_path: Path) -> None:
    _filled(tmp_path)
    forged = record(999).leaf_bytes()
    _sql(tmp_path, "UPDATE leaves SET leaf = ?, hash = ? WHERE idx = 150", forged, leaf_hash(forged))
    result = verify_store(tmp_path)
    assert not result.ok
    assert result.first_bad_index == 100  # the checkpoint at 100 still holds; the one at 200 does not
    assert "200" in result.message


def test_verify_fails_when_a_stored_checkpoint_is_changed(tmp_path: Path) -> None:
    _filled(tmp_path)
    conn = sqlite3.connect(tmp_path / AUDIT_DB)
    (text,) = conn.execute("SELECT text FROM checkpoints WHERE size = 300").fetchone()
    conn.close()
    _sql(tmp_path, "UPDATE checkpoints SET text = ? WHERE size = 300", text.replace("\n300\n", "\n299\n"))
    result = verify_store(tmp_path)
    assert (result.ok, result.first_bad_index) == (False, 200)
    assert "size 300" in result.message


def test_verify_fails_when_records_are_removed(tmp_path: Path) -> None:
    _filled(tmp_path)
    _sql(tmp_path, "DELETE FROM leaves WHERE idx >= 550")
    result = verify_store(tmp_path)
    assert not result.ok and "beyond" in result.message


def test_verify_reports_a_missing_store(tmp_path: Path) -> None:
    result = verify_store(tmp_path)
    assert not result.ok and "no audit log" in result.message


# ---------------------------------------------------------------------- the gRPC face
class FakeContext:
    """Stands in for grpc.aio's ServicerContext: abort raises, as the real one does."""

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise grpc.RpcError(f"{code.name}: {details}")

    def auth_context(self) -> dict[str, list[bytes]]:
        return {"x509_common_name": [b"PORTAL"]}  # the citizens' access point: see crossroads/citizen.py


def test_servicer_in_process(tmp_path: Path) -> None:
    async def scenario(log: AuditLog) -> None:
        fas, now = Ed25519PrivateKey.generate(), 1_790_000_000.0
        servicer = AuditServicer(log, CitizenGate(fas.public_key(), {"PORTAL"}), clock=lambda: now)
        context = FakeContext()
        head = await servicer.Head(services_pb2.AuditHeadRequest(), context)
        assert head.size == 3
        proof = await servicer.InclusionProof(services_pb2.InclusionProofRequest(index=1), context)
        assert proof.tree_size == 3
        assert verify_inclusion(leaf_hash(log.leaf(1)), 1, 3, list(proof.hashes), head.root)
        consistency = await servicer.ConsistencyProof(services_pb2.ConsistencyProofRequest(first=1, second=3), context)
        assert verify_consistency(1, 3, log.root_at(1), head.root, list(consistency.hashes))
        alice = issue_assertion(fas, ALICE, now, audience="PORTAL")  # the FAS: ALICE logged in at the portal
        who = await servicer.WhoAccessed(services_pb2.WhoAccessedRequest(niss=ALICE, citizen=alice), context)
        assert [e.index for e in who.entries] == [0, 2] and who.head.size == 3
        with pytest.raises(grpc.RpcError, match="INVALID_ARGUMENT"):
            await servicer.InclusionProof(services_pb2.InclusionProofRequest(index=3), context)
        with pytest.raises(grpc.RpcError, match="INVALID_ARGUMENT"):
            await servicer.ConsistencyProof(services_pb2.ConsistencyProofRequest(first=4, second=3), context)
        with pytest.raises(grpc.RpcError, match="INVALID_ARGUMENT"):
            await servicer.WhoAccessed(services_pb2.WhoAccessedRequest(niss="123"), context)

    with AuditLog.open(tmp_path) as log:
        log.append_batch_sync([record(0, subject=ALICE), record(1, subject=BOB), record(2, related=(ALICE,))])
        asyncio.run(scenario(log))


def test_servicer_over_a_loopback_socket(tmp_path: Path) -> None:
    async def scenario(log: AuditLog) -> None:
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        services_pb2_grpc.add_AuditServicer_to_server(AuditServicer(log), server)  # type: ignore[no-untyped-call]
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = services_pb2_grpc.AuditStub(channel)  # type: ignore[no-untyped-call]
                index = await log.append(record(7, subject=BOB))
                head = await stub.Head(services_pb2.AuditHeadRequest(), timeout=10)
                assert head.size == index + 1
                proof = await stub.InclusionProof(services_pb2.InclusionProofRequest(index=index), timeout=10)
                assert verify_inclusion(leaf_hash(log.leaf(index)), index, head.size, list(proof.hashes), head.root)
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await stub.InclusionProof(services_pb2.InclusionProofRequest(index=head.size), timeout=10)
                assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        finally:
            await server.stop(None)

    with AuditLog.open(tmp_path) as log:
        log.append_batch_sync(records(0, 10))
        asyncio.run(scenario(log))


# ---------------------------------------------------------------------- benchmarks stay runnable
def test_bench_functions_return_their_figures(tmp_path: Path) -> None:
    from testbed.bench.audit import bench_appends, bench_verify

    appends = bench_appends(tmp_path / "a", 600, batch=200, concurrency=50, seed=3)
    assert appends["records"] == 600
    assert appends["sync_records_per_s"] > 0 and appends["async_records_per_s"] > 0
    figures = bench_verify(tmp_path / "v", 700, seed=3)
    assert figures["records"] == 700 and figures["verify_seconds"] > 0
    assert {"inclusion_proof_ms", "consistency_proof_ms", "open_seconds", "root_seconds"} <= set(figures)
    assert verify_store(tmp_path / "v" / "verify").ok


def test_a_read_only_log_signs_its_head_without_writing(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path) as log:
        log.append_batch_sync(records(0, 9))
    _sql(tmp_path, "DELETE FROM checkpoints WHERE size = 9")
    with AuditLog.open(tmp_path, read_only=True) as reader:
        head = reader.head()
        assert head.size == 9
        assert verify_checkpoint(head.checkpoint, load_public_key(tmp_path / "keys"), reader.origin).size == 9
    assert not verify_store(tmp_path).ok  # nothing was stored by the reader


_CRASHING_WRITER = """
import asyncio, os, sys
from collections.abc import Sequence
from pathlib import Path
from crossroads.audit import AuditLog
from tests.test_audit_log import record, records
log = AuditLog.open(Path(sys.argv[1]), checkpoint_interval=3600)
log.append_batch_sync(records(0, 100))
print(asyncio.run(log.append(record(100))), flush=True)
os._exit(0)  # dies without closing: no final checkpoint, no clean shutdown
"""


def test_acknowledged_records_survive_a_process_that_dies_without_closing(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _CRASHING_WRITER, str(tmp_path)],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert done.stdout.strip() == "100"
    with AuditLog.open(tmp_path) as log:
        assert log.size == 101
        assert log.leaf(100) == record(100).leaf_bytes()
        assert log.append_batch_sync(records(101, 1)) == [101]
    assert verify_store(tmp_path).ok


def test_verify_with_index_catches_a_hidden_access(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path) as log:
        log.append_batch_sync(
            [record(i, subject=ALICE if i % 3 else BOB, related=(BOB,) if i == 5 else ()) for i in range(40)]
        )
    assert verify_store(tmp_path, check_index=True).ok
    _sql(tmp_path, "DELETE FROM access_recent WHERE niss = ? AND idx = 5", BOB)  # hide one access to Bob
    assert verify_store(tmp_path).ok  # the tree itself is intact
    result = verify_store(tmp_path, check_index=True)
    assert not result.ok and "who-accessed" in result.message


def test_a_failed_commit_fails_every_append_of_its_batch_and_the_log_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with AuditLog.open(tmp_path) as log:
        real_write = log._writer._write  # type: ignore[union-attr]
        calls = []

        def failing_once(
            batch: list[AuditRecord], journal: Sequence[tuple[int, JournalEntry]] = ()
        ) -> tuple[int, float, float]:
            calls.append(len(batch))
            if len(calls) == 1:
                raise sqlite3.OperationalError("disk I/O error")
            return real_write(batch, journal)

        monkeypatch.setattr(log._writer, "_write", failing_once)
        with pytest.raises(sqlite3.OperationalError):
            asyncio.run(log.append(record(0)))
        assert log.size == 0  # nothing of the failed batch was committed or indexed
        assert log.append_batch_sync(records(0, 3)) == [0, 1, 2]
    assert verify_store(tmp_path).ok


def test_a_lone_append_is_never_held_and_concurrent_appends_share_commits(tmp_path: Path) -> None:
    """The group commit never waits for more: one append at a time is one commit each, and the
    appends that arrive while a commit runs share the next one."""
    with AuditLog.open(tmp_path) as log:

        async def one_by_one() -> None:
            for i in range(20):
                await log.append(record(i))

        asyncio.run(one_by_one())
        alone = log.commit_stats()
        assert alone.records == 20 and alone.commits == 20  # none of them waited for company

        async def streaming() -> None:
            await asyncio.gather(*(log.append(record(20 + i)) for i in range(3000)))

        asyncio.run(streaming())
        streamed = log.commit_stats().since(alone)
        assert streamed.records == 3000
        assert streamed.records / streamed.commits >= 8  # the loop submits far faster than a commit
