"""A full disk: the audit store and the outbox refuse to grow with a clear error, keep nothing half-written,
and carry on correctly once there is space again.

The disk is made full for one process with RLIMIT_FSIZE, set to the current size of the audit
store's write-ahead log: the next commit would have to grow that file, and the kernel refuses
(EFBIG; Python ignores SIGXFSZ, so write() fails instead of killing the process). That is the
error a full disk gives on the very write that needs the space, without root, a loop device or
a filesystem to fill, and without touching any other process. SQLite's `max_page_count` was not
used: it is a limit SQLite checks before writing, so it never exercises a write that fails.

Two levels: an `AuditLog` writer in a child process (spawned), and the live core (a child
process whose limit the test lowers and raises with prlimit) with an agency host that is down
and then back while the disk is full.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import resource
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import psutil
import pytest
import yaml

from agencies.exchanges import samples
from agencies.inbox import received
from agencies.spec import SMALL_WORLD, load_world_spec
from agencies.world import World
from crossroads.audit import AUDIT_DB, KEYS_DIR, AuditLog, verify_store
from crossroads.audit import AuditHead as Head
from crossroads.audit_record import AuditRecord
from crossroads.checkpoint import load_public_key
from crossroads.merkle import leaf_hashes, root
from crossroads.methods import EXCHANGE
from loadtests.crash.checks import audit_records
from loadtests.crash.heads import consistency_problem, fetch_head, fetch_proof
from loadtests.crash.target import Target
from loadtests.guarantees import outbox_items, pending
from loadtests.spec import Fault
from protos import messages_pb2
from testbed.crash.core import CoreProcess
from testbed.faults import FaultInjector
from testbed.live import start_network
from testbed.world_files import prepare_world

BEFORE, AFTER, TRIES = 300, 50, 3  # records before the disk fills, after it has space again; appends tried while full
FULL_WORDS = ("full", "no space", "size limit")  # what a clear error says, in one wording or another


def _wal(state: Path) -> Path:
    return state / f"{AUDIT_DB}-wal"


def _record(i: int) -> AuditRecord:
    return AuditRecord(
        time="2026-11-28T10:00:00.000000Z",
        message_id=f"disk-{i}",
        kind="DIMONA",
        sender="ONSS",
        destinations=("MUT-0001",),
        subject_niss="85031412345",
        subject_kbo="",
        related_niss=(),
        quality=None,
        deliberation="",
        outcome="DELIVERED",
        detail="",
    )


def _full_disk_in_a_child(state: str) -> dict[str, Any]:
    """In a spawned process: BEFORE records, the disk full for TRIES appends, then AFTER records."""
    path = Path(state)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    seen: dict[str, Any] = {"errors": []}
    with AuditLog.open(path, checkpoint_interval=0.0) as log:  # a checkpoint with every commit
        log.append_batch_sync([_record(i) for i in range(BEFORE)])
        head = log.head()
        resource.setrlimit(resource.RLIMIT_FSIZE, (_wal(path).stat().st_size, hard))  # the disk is full now
        for k in range(TRIES):
            try:
                log.append_batch_sync([_record(BEFORE + AFTER + k)])
            except Exception as exc:
                seen["errors"].append(f"{type(exc).__name__}: {exc}")
        seen["size_while_full"], seen["root_unchanged"] = log.size, log.head().root == head.root
        verified = verify_store(path)
        seen["verify_while_full"] = "ok" if verified.ok else verified.message
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # space again
        seen["indices"] = log.append_batch_sync([_record(BEFORE + i) for i in range(AFTER)])
    return seen


@pytest.fixture(scope="module")
def audit_log_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    state = tmp_path_factory.mktemp("full-disk-log")
    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as pool:
        return state, pool.submit(_full_disk_in_a_child, str(state)).result(timeout=120)


def test_appends_to_a_full_audit_store_fail_and_change_nothing(audit_log_run: tuple[Path, dict[str, Any]]) -> None:
    _, seen = audit_log_run
    assert len(seen["errors"]) == TRIES  # every append while full failed; none was taken
    assert seen["size_while_full"] == BEFORE
    assert seen["root_unchanged"]
    assert seen["verify_while_full"] == "ok"  # what is there verifies: no record half-written


def test_the_error_of_a_full_audit_store_says_it_is_full(audit_log_run: tuple[Path, dict[str, Any]]) -> None:
    _, seen = audit_log_run
    first = seen["errors"][0].lower()
    assert any(word in first for word in FULL_WORDS), seen["errors"][0]


def test_after_a_full_disk_the_tree_continues_and_verifies(audit_log_run: tuple[Path, dict[str, Any]]) -> None:
    state, seen = audit_log_run
    assert seen["indices"] == list(range(BEFORE, BEFORE + AFTER))  # no gap, no index taken by a failed append
    assert verify_store(state, check_index=True).ok, verify_store(state).message
    with AuditLog.open(state, read_only=True) as log:
        leaves = [leaf for _, leaf in log.iter_leaves()]
        assert [AuditRecord.from_leaf(leaf).message_id for leaf in leaves] == [
            f"disk-{i}" for i in range(BEFORE + AFTER)
        ]
        assert log.head().root == root(leaf_hashes(leaves))  # the root of exactly these leaves, nothing half-written


# ---------------------------------------------------------------- the live core
@dataclass
class CoreRun:
    """What the live core did through a full disk (see `core_run`)."""

    state: Path
    queued: messages_pb2.ExchangeReply | None = None  # D0, while the host is down
    refusals: list[tuple[grpc.StatusCode, str]] = field(default_factory=list)  # D2 and a consultation, while full
    head_full: tuple[Head, Head] | None = None  # before the disk filled, while full
    again: messages_pb2.ExchangeReply | None = None  # D2 sent again with space
    consistency: str | None = "not checked"
    held_at_end: int = -1
    ids: dict[str, str] = field(default_factory=dict)


def _send(target: Target, sample: samples.Sample) -> messages_pb2.ExchangeReply:
    raw = target.call(sample.sender, EXCHANGE)(sample.envelope.SerializeToString(), timeout=10.0)
    return messages_pb2.ExchangeReply.FromString(raw)


def _refused(target: Target, sample: samples.Sample) -> tuple[grpc.StatusCode, str]:
    try:
        _send(target, sample)
    except grpc.RpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


def _wait(condition: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)


def _through_a_full_disk(
    run: CoreRun, core: CoreProcess, target: Target, injector: FaultInjector, world: World
) -> None:
    rng = np.random.default_rng(11)
    d0, d2, c1 = samples.dimona(world, rng), samples.dimona(world, rng), samples.consultation(world, rng)
    run.ids = {"D0": d0.envelope.message_id, "D2": d2.envelope.message_id, "C1": c1.envelope.message_id}
    outage = threading.Thread(
        target=injector.run,
        args=([Fault(at=0, action="kill_host", duration=4, host="host-0")], time.time(), threading.Event()),
    )
    outage.start()
    _wait(lambda: injector.windows, 10.0)  # the host is gone (the fault's window opens once it is)
    run.queued = _send(target, d0)
    before = fetch_head(target)
    process = psutil.Process(core.pid)
    soft, hard = process.rlimit(psutil.RLIMIT_FSIZE)
    process.rlimit(psutil.RLIMIT_FSIZE, (_wal(run.state).stat().st_size, hard))  # the disk is full now
    run.refusals = [_refused(target, d2), _refused(target, c1)]
    run.head_full = (before, fetch_head(target))
    outage.join()  # the host is back while the disk is still full: redeliveries cannot be marked
    time.sleep(1.0)
    process.rlimit(psutil.RLIMIT_FSIZE, (soft, hard))  # space again
    run.again = _send(target, d2)  # the same bytes, the same message id
    after = fetch_head(target)
    run.consistency = consistency_problem(
        before, after, fetch_proof(target, before.size, after.size), load_public_key(run.state / KEYS_DIR)
    )
    _wait(lambda: not pending(outbox_items(run.state)), 30.0)
    run.held_at_end = pending(outbox_items(run.state))


@pytest.fixture(scope="module")
def core_run(tmp_path_factory: pytest.TempPathFactory) -> CoreRun:
    out = tmp_path_factory.mktemp("full-disk-core")
    state = out / "state"
    state.mkdir()
    scenario = out / "world.yaml"
    scenario.write_text(yaml.safe_dump({"world": dict(SMALL_WORLD)}))
    files = prepare_world(scenario, state)
    world = World.build(load_world_spec(scenario))
    network = start_network(state, files, hosts=1, start_core=False)
    core, target = CoreProcess(state), Target(state / "pki")
    injector = FaultInjector(state, network.endpoints["pids"])
    run = CoreRun(state)
    try:
        target.point_to(core.start())
        _through_a_full_disk(run, core, target, injector, world)
    finally:
        core.stop()
        injector.close()
        network.stop()
        target.close()
    return run


@pytest.mark.slow
def test_the_core_refuses_while_its_disk_is_full_and_writes_nothing(core_run: CoreRun) -> None:
    assert core_run.queued is not None and core_run.queued.outcome == messages_pb2.QUEUED
    assert [code for code, _ in core_run.refusals] == [grpc.StatusCode.UNAVAILABLE] * 2
    assert all("audit log unavailable" in details for _, details in core_run.refusals), core_run.refusals
    assert core_run.head_full is not None
    before, full = core_run.head_full
    assert (full.size, full.root) == (before.size, before.root)


@pytest.mark.slow
def test_the_core_says_its_store_is_full(core_run: CoreRun) -> None:
    details = core_run.refusals[0][1].lower()
    assert any(word in details for word in FULL_WORDS), core_run.refusals[0][1]


@pytest.mark.slow
def test_after_a_full_disk_the_core_carries_on_and_owes_nothing(core_run: CoreRun) -> None:
    assert core_run.again is not None and core_run.again.outcome in (messages_pb2.DELIVERED, messages_pb2.QUEUED)
    assert (
        core_run.head_full is not None and core_run.again.audit_index == core_run.head_full[0].size
    )  # next index: no gap
    assert core_run.consistency is None
    assert core_run.held_at_end == 0  # what was queued before and during the full disk was delivered
    inbox = [(r.agency, r.message_id) for r in received(core_run.state)]
    queued_to = {d.agency for d in core_run.queued.deliveries} if core_run.queued else set()
    assert queued_to and queued_to <= {a for a, m in inbox if m == core_run.ids["D0"]}
    assert verify_store(core_run.state).ok
    records = audit_records(core_run.state, "")
    counts = {name: sum(len(v) for (_, m), v in records.items() if m == mid) for name, mid in core_run.ids.items()}
    assert counts == {"D0": 1, "D2": 1, "C1": 0}  # the refused consultation was never audited as accepted
