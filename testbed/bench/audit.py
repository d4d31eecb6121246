"""Benchmarks of the audit log: durable appends (batched and concurrent), verification, proofs.

Each function builds its own logs under `tmp_dir` and returns plain figures (records/s,
seconds); `audit_figures` runs them several times against the goals (`crossroads bench audit`).
Records are synthetic and deterministic per seed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import numpy as np

from crossroads.audit import AuditLog, verify_store
from crossroads.audit_record import AuditRecord, audit_time
from crossroads.identifiers import make_niss
from crossroads.merkle import leaf_hashes, root
from testbed.bench.goals import GOAL_APPENDS_PER_S, GOAL_VERIFY_S, goal, medians, say

__all__ = [
    "DEFAULT_APPENDS",
    "DEFAULT_AUDIT_RUNS",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_VERIFY",
    "audit_figures",
    "bench_appends",
    "bench_verify",
    "synthetic_records",
]

DEFAULT_AUDIT_RUNS = 3
DEFAULT_APPENDS = 200_000
DEFAULT_VERIFY = 1_000_000
DEFAULT_BATCH = 10_000
DEFAULT_CONCURRENCY = 10_000
DEFAULT_MANY = 100  # records per `append_many` call in the concurrent batching mode
_PERSONS = 10_000  # distinct persons the synthetic exchanges are about
_EPOCH = dt.datetime(2026, 1, 5, 8, 0, tzinfo=dt.UTC)


def _persons(rng: np.random.Generator, n: int) -> list[str]:
    days = rng.integers(0, 365 * 80, size=n)
    sequences = rng.integers(1, 999, size=n)
    return [
        make_niss(dt.date(1940, 1, 1) + dt.timedelta(days=int(d)), int(s)) for d, s in zip(days, sequences, strict=True)
    ]


def synthetic_records(n: int, *, seed: int = 0, batch: int = DEFAULT_BATCH) -> Iterator[list[AuditRecord]]:
    """`n` consultation records in lists of `batch`, deterministic for `seed`: about 300 bytes each."""
    rng = np.random.default_rng(seed)
    persons = _persons(rng, _PERSONS)
    for start in range(0, n, batch):
        size = min(batch, n - start)
        who = rng.integers(0, _PERSONS, size=size)
        yield [
            AuditRecord(
                time=audit_time(_EPOCH + dt.timedelta(milliseconds=start + k)),
                message_id=f"bench-{start + k:09d}",
                kind="CONSULTATION",
                sender="ocmw-0123",
                destinations=("riziv",),
                subject_niss=persons[int(w)],
                subject_kbo="",
                related_niss=(),
                quality=1,
                deliberation="08/020",
                outcome="DELIVERED",
                detail="routed by deliberation 08/020",
            )
            for k, w in enumerate(who)
        ]


def _per_second(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


async def _drive(log: AuditLog, records: Sequence[AuditRecord], concurrency: int, many: int = 1) -> None:
    """`concurrency` coroutines, each appending the next record (or `many` records) and awaiting their durability."""
    if many > 1:
        chunks = iter([records[k : k + many] for k in range(0, len(records), many)])

        async def batches() -> None:
            for chunk in chunks:
                await log.append_many(chunk)

        await asyncio.gather(*(batches() for _ in range(concurrency)))
        return
    feed = iter(records)

    async def worker() -> None:
        for record in feed:
            await log.append(record)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def _timed_drive(tmp_dir: Path, records: Sequence[AuditRecord], concurrency: int, many: int) -> tuple[float, float]:
    """Wall and CPU seconds of `_drive` on a fresh log under `tmp_dir`."""
    with AuditLog.open(tmp_dir) as log:
        started, cpu = time.perf_counter(), time.process_time()
        asyncio.run(_drive(log, records, concurrency, many))
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
        if log.size != len(records):
            raise RuntimeError(f"{log.size} records committed of {len(records)}")
    return seconds, cpu_seconds


def bench_appends(
    tmp_dir: Path,
    n: int = DEFAULT_APPENDS,
    *,
    batch: int = DEFAULT_BATCH,
    concurrency: int = DEFAULT_CONCURRENCY,
    seed: int = 0,
) -> dict[str, float]:
    """Durable appends: `append_batch_sync` in batches of `batch`; `concurrency` concurrent `append`
    calls; and `DEFAULT_MANY`-record `append_many` calls from `concurrency // DEFAULT_MANY` coroutines.

    Each mode writes `n` records to a fresh log under `tmp_dir`. Records are built before
    the clock starts: the figures are the log's cost, not the records'. The CPU figures
    (process CPU time per record, all threads) hold better than wall time on a shared
    machine: with the GIL, 1e6 / cpu_us_per_record is about the ceiling on one idle core
    pair.
    """
    batches = list(synthetic_records(n, seed=seed, batch=batch))
    with AuditLog.open(tmp_dir / "sync") as log:
        started, cpu = time.perf_counter(), time.process_time()
        for chunk in batches:
            log.append_batch_sync(chunk)
        sync_seconds, sync_cpu = time.perf_counter() - started, time.process_time() - cpu
    flat = [r for chunk in batches for r in chunk]
    async_seconds, async_cpu = _timed_drive(tmp_dir / "async", flat, concurrency, 1)
    many_seconds, many_cpu = _timed_drive(tmp_dir / "many", flat, max(1, concurrency // DEFAULT_MANY), DEFAULT_MANY)
    return {
        "records": n,
        "sync_batch": batch,
        "sync_seconds": sync_seconds,
        "sync_records_per_s": _per_second(n, sync_seconds),
        "sync_cpu_us_per_record": sync_cpu / n * 1e6,
        "async_concurrency": concurrency,
        "async_seconds": async_seconds,
        "async_records_per_s": _per_second(n, async_seconds),
        "async_cpu_us_per_record": async_cpu / n * 1e6,
        "many_batch": DEFAULT_MANY,
        "many_seconds": many_seconds,
        "many_records_per_s": _per_second(n, many_seconds),
        "many_cpu_us_per_record": many_cpu / n * 1e6,
    }


def _timed_ms(action: Callable[..., object], calls: Sequence[tuple[int, ...]]) -> float:
    """The median wall time of `action(*args)` over `calls`, in milliseconds."""
    times = []
    for args in calls:
        started = time.perf_counter()
        action(*args)
        times.append((time.perf_counter() - started) * 1000)
    return float(statistics.median(times))


def bench_verify(tmp_dir: Path, n: int = DEFAULT_VERIFY, *, seed: int = 0) -> dict[str, float]:
    """Build a log of `n` records, then time `verify_store`, reopening, proofs and the pure root.

    Proof times are the median of 25 random requests against the full tree; `root_seconds`
    is `merkle.root` over all `n` leaf hashes (the recomputation the tiles avoid).
    """
    state = tmp_dir / "verify"
    started = time.perf_counter()
    with AuditLog.open(state) as log:
        for chunk in synthetic_records(n, seed=seed, batch=20_000):
            log.append_batch_sync(chunk)
    build_seconds = time.perf_counter() - started
    started = time.perf_counter()
    result = verify_store(state)
    verify_seconds = time.perf_counter() - started
    if not result.ok:
        raise RuntimeError(f"verify_store failed on an untouched log: {result.message}")
    started = time.perf_counter()
    log = AuditLog.open(state, read_only=True)
    open_seconds = time.perf_counter() - started
    rng = np.random.default_rng(seed + 1)
    picks = [int(i) for i in rng.integers(0, n, size=25)]
    with log:
        inclusion_ms = _timed_ms(log.inclusion_proof, [(i,) for i in picks])
        consistency_ms = _timed_ms(log.consistency_proof, [(max(i, 1),) for i in picks])
        hashes = leaf_hashes(leaf for _, leaf in log.iter_leaves())
    started = time.perf_counter()
    root(hashes)
    root_seconds = time.perf_counter() - started
    return {
        "records": n,
        "build_seconds": build_seconds,
        "build_records_per_s": _per_second(n, build_seconds),
        "verify_seconds": verify_seconds,
        "verify_records_per_s": _per_second(n, verify_seconds),
        "open_seconds": open_seconds,
        "inclusion_proof_ms": inclusion_ms,
        "consistency_proof_ms": consistency_ms,
        "root_seconds": root_seconds,
    }


def audit_figures(
    out: Path,
    runs: int = DEFAULT_AUDIT_RUNS,
    appends: int = DEFAULT_APPENDS,
    verify: int = DEFAULT_VERIFY,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> dict[str, Any]:
    """Medians of `runs` runs of the append and verify benchmarks (logs in temporary folders
    under `out`, on the run folder's disk), with the goals of issue 2."""
    out.mkdir(parents=True, exist_ok=True)
    append_runs, verify_runs = [], []
    for run in range(runs):
        with TemporaryDirectory(prefix="bench-audit-", dir=out) as tmp:
            say(f"audit run {run + 1}/{runs}: {appends:,} appends per mode")
            append_runs.append(bench_appends(Path(tmp), appends, concurrency=concurrency, seed=run))
            if verify:
                say(f"audit run {run + 1}/{runs}: building and verifying {verify:,} records")
                verify_runs.append(bench_verify(Path(tmp), verify, seed=run))
    appended, verified = medians(append_runs), medians(verify_runs)
    goals = {
        f"audit_{mode}_appends_per_s": goal(round(appended[f"{mode}_records_per_s"]), ">=", GOAL_APPENDS_PER_S)
        for mode in ("sync", "async", "many")
    }
    if verified:
        goals["audit_verify_s"] = goal(round(verified["verify_seconds"], 3), "<=", GOAL_VERIFY_S)
    each = {"appends": append_runs, "verify": verify_runs}
    return {"runs": runs, "appends": appended, "verify": verified, "goals": goals, "each": each}
