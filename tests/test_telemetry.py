"""The core's telemetry (crossroads.telemetry): off unless asked; when on, where each exchange's
time went (forward, commit, the core's own) and what the group commits were."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import grpc
import pytest

from crossroads.audit import AuditLog
from crossroads.audit_writer import BATCH_BUCKETS, CommitStats
from crossroads.pki import channel_credentials
from crossroads.server import CoreConfig, start_core
from crossroads.telemetry import EVERY_ENV, TELEMETRY_ENV, Telemetry, commit_figures, over
from protos import messages_pb2 as pb
from tests.test_audit_log import record
from tests.test_core_server import EXCHANGE, _Host, _hosts_json, _start_host, _state
from tests.test_exchange import as_sent, consultation

HOST_DELAY_S = 0.02


def test_commit_stats_count_batches_by_powers_of_two_and_subtract() -> None:
    stats = CommitStats()
    for records in (1, 2, 3, 4, 7, 8, 5000):
        stats.add(records, 0.001)
    earlier = stats.copy()
    stats.add(1, 0.002)
    assert stats.batches[:4] == [2, 2, 2, 1] and stats.batches[BATCH_BUCKETS - 1] == 1
    later = stats.since(earlier)
    assert (later.commits, later.records, later.batches[0]) == (1, 1, 1)
    assert later.commit_s == pytest.approx(0.002)


def test_commit_stats_count_the_time_of_the_commit_statement_apart(tmp_path: Path) -> None:
    """`sync_s` is the time of the COMMIT statements (the WAL written and fsynced), within `commit_s`."""
    slow_s = 0.02

    class SlowCommit:  # the writer's connection, its COMMIT made slow
        def __init__(self, conn: sqlite3.Connection) -> None:
            self._conn = conn

        def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
            if sql == "COMMIT":
                time.sleep(slow_s)
            return self._conn.execute(sql, *args)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._conn, name)

    with AuditLog.open(tmp_path) as log:
        writer = log._writer
        assert writer is not None
        writer._conn = SlowCommit(writer._conn)  # type: ignore[assignment]
        before = log.commit_stats()
        log.append_batch_sync([record(i) for i in range(3)])
        log.append_batch_sync([record(3)])
        stats = log.commit_stats().since(before)
    assert stats.commits == 2 and stats.sync_s >= 2 * slow_s
    assert stats.commit_s >= stats.sync_s + stats.store_wait_s
    assert commit_figures(stats)["mean_sync_ms"] == pytest.approx(stats.sync_s / 2 * 1000, rel=1e-3)


def test_telemetry_is_off_unless_the_environment_asks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TELEMETRY_ENV, raising=False)
    assert Telemetry.from_env(CommitStats) is None


def _consult(tmp_path: Path, calls: int) -> list[dict[str, object]]:
    async def scenario() -> None:
        state = _state(tmp_path)
        host = _Host()
        host.delay = HOST_DELAY_S
        host_server, port = await _start_host(state / "pki", host)
        _hosts_json(state, port)
        core = await start_core(CoreConfig(state=state))
        try:
            async with grpc.aio.secure_channel(core.address, channel_credentials(state / "pki", "CPAS-1")) as ch:
                call = ch.unary_unary(EXCHANGE, response_deserializer=pb.ExchangeReply.FromString)
                for k in range(calls):
                    env = consultation(sender="ONSS")
                    env.message_id = f"t-{k}"
                    await call(as_sent(env), timeout=10)
        finally:
            await core.stop(grace=0.5)
            await host_server.stop(0)

    asyncio.run(scenario())
    path = tmp_path / "telemetry.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_each_exchange_is_split_into_forward_commit_and_the_cores_own_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TELEMETRY_ENV, str(tmp_path / "telemetry.jsonl"))
    monkeypatch.setenv(EVERY_ENV, "60")  # one line, at the stop
    (line,) = _consult(tmp_path, 5)
    exchanges, commits = line["exchanges"], line["commits"]
    assert isinstance(exchanges, dict) and isinstance(commits, dict)
    assert exchanges["count"] == 5
    assert exchanges["forward_ms"]["p50"] >= 1000 * HOST_DELAY_S  # the host's delay is in the round trip
    assert exchanges["handle_ms"]["p50"] >= exchanges["forward_ms"]["p50"] + exchanges["commit_ms"]["p50"] * 0.5
    assert 0 <= exchanges["own_ms"]["p50"] < exchanges["handle_ms"]["p50"]
    assert commits["commits"] >= 1 and commits["records"] >= 5  # one record per exchange, checkpoints aside
    assert sum(commits["batches"]) == commits["commits"]


def test_lines_taken_together_weigh_each_stage_by_its_exchanges() -> None:
    def line(t: float, count: int, handle: float, commits: int) -> dict[str, object]:
        stages = {f"{s}_ms": {"mean": handle if s == "handle" else 1.0} for s in ("handle", "forward", "commit", "own")}
        batches = [commits] + [0] * (BATCH_BUCKETS - 1)
        return {"t": t, "exchanges": {"count": count, **stages},
                "commits": {"commits": commits, "records": commits, "commit_s": 0.001 * commits,
                            "batches": batches, "mean_batch": 1.0, "mean_commit_ms": 1.0}}  # fmt: skip

    lines = [line(10.0, 1, 10.0, 1), line(11.0, 3, 2.0, 3), line(12.0, 100, 99.0, 5)]
    together = over(lines, 9.5, 11.5)
    assert together["exchanges"] == 4 and together["mean"]["handle_ms"] == pytest.approx((10.0 + 3 * 2.0) / 4)
    assert together["commits"]["commits"] == 4 and together["commits"]["mean_commit_ms"] == pytest.approx(1.0)
    assert over(lines, 20.0, 30.0)["mean"]["handle_ms"] is None
