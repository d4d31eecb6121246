"""Running the replications of a plan, each whole or in time slices: in this process, in local
worker processes, or on Dask.

Replication i always uses stream i of `SeedSequence(plan.seed).spawn(plan.replications)`, and
slice j of it the streams network/slicing.py derives from that one, so where a task runs
changes nothing in its result: one process, `workers` local processes or a Dask cluster give
identical results, returned in replication order, the slices of each stitched in order.

Local workers are started with the "spawn" method (no fork of a process that may hold
threads); the plan (plain data) is pickled once and sent to each worker once, when it starts,
and each reports its progress through a queue to the bar here (meter.py). Dask tasks report
when they end.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import pickle
import queue as queues
from collections.abc import Callable, Sequence
from typing import Any

from tqdm import tqdm

from network.meter import Meter
from network.model import replication_seed, run_replication
from network.plan import Plan
from network.recorder import ReplicationResult
from network.slicing import Slice, cut, slice_plan, stitch

__all__ = ["run_replications", "run_task"]

Task = tuple[int, Slice]  # (replication, slice)
_REPORTS: Any = None  # in a worker process: the queue its tasks report progress to ...
_PLAN: Plan | None = None  # ... and the plan they run


def run_task(
    plan: Plan, replication: int, part: Slice, progress: Callable[[float, int], None] | None = None
) -> ReplicationResult:
    """Slice `part` of replication `replication` of `plan` (the whole replication for a single slice)."""
    seq = replication_seed(plan.seed, plan.replications, replication)
    return run_replication(slice_plan(plan, part), replication, seq, progress)


def _start_worker(reports: Any, plan: bytes) -> None:
    global _REPORTS, _PLAN
    _REPORTS, _PLAN = reports, pickle.loads(plan)


def _worker_task(replication: int, part: Slice, task: int) -> ReplicationResult:
    reports, plan = _REPORTS, _PLAN
    assert plan is not None, "a worker task runs in a process started by _start_worker"

    def report(done: float, messages: int) -> None:
        reports.put((task, done, messages))

    return run_task(plan, replication, part, report)


def _sequential(plan: Plan, tasks: Sequence[Task], meter: Meter) -> list[ReplicationResult]:
    results = []
    for k, (i, part) in enumerate(tasks):

        def step(done: float, messages: int, k: int = k) -> None:
            meter.update(k, done, messages)

        results.append(run_task(plan, i, part, step))
        meter.finish(k, results[-1].messages)
    return results


def _local(plan: Plan, tasks: Sequence[Task], workers: int, meter: Meter) -> list[ReplicationResult]:
    context = multiprocessing.get_context("spawn")
    reports = context.Queue()
    shared = pickle.dumps(plan, protocol=pickle.HIGHEST_PROTOCOL)
    with cf.ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_start_worker, initargs=(reports, shared)
    ) as pool:
        futures = {pool.submit(_worker_task, i, part, k): k for k, (i, part) in enumerate(tasks)}
        pending = set(futures)
        while pending:
            done, pending = cf.wait(pending, timeout=0.25, return_when=cf.FIRST_COMPLETED)
            _drain(reports, meter)
            for f in done:
                meter.finish(futures[f], f.result().messages)
        return [f.result() for f in futures]


def _drain(reports: Any, meter: Meter) -> None:
    while True:
        try:
            task, seconds, messages = reports.get_nowait()
        except queues.Empty:
            return
        meter.update(task, seconds, messages)


def _dask(plan: Plan, tasks: Sequence[Task], address: str, meter: Meter) -> list[ReplicationResult]:
    from distributed import Client

    with Client(address, set_as_default=False) as client:
        shared = client.scatter(plan, broadcast=True)
        futures = client.map(run_task, [shared] * len(tasks), [i for i, _ in tasks], [p for _, p in tasks], pure=False)
        results = []
        for k, future in enumerate(futures):  # in submission order: no default client needed
            results.append(future.result())
            meter.finish(k, results[-1].messages)
        return results


def run_replications(
    plan: Plan, *, workers: int = 1, dask: str | None = None, progress: bool = False, slices: int = 1
) -> list[ReplicationResult]:
    """Run every replication of `plan`, in replication order, each cut into `slices` time slices
    (network/slicing.py; fewer if the window has fewer intervals) and stitched back.

    `workers` > 1 runs the tasks (replications x slices) in that many local processes; `dask`
    ("tcp://host:port") runs them on an existing Dask distributed cluster instead. `progress`
    shows a tqdm bar of the simulated time, the simulated clock and the messages per second.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if slices < 1:
        raise ValueError(f"slices must be at least 1, got {slices}")
    parts = cut(plan, slices)
    tasks = [(i, part) for i in range(plan.replications) for part in parts]
    spans = [(part.begin, slice_plan(plan, part).end) for _, part in tasks]
    where = f"on {dask}" if dask else f"in {workers} processes" if workers > 1 else "here"
    what = f"{plan.replications} replications" + (f" x {len(parts)} slices" if len(parts) > 1 else "")
    with tqdm(
        total=round(Meter.total(spans)), desc=f"{plan.name}: {what} {where}", unit="sim s", disable=not progress
    ) as bar:
        meter = Meter(plan, spans, bar)
        if dask:
            results = _dask(plan, tasks, dask, meter)
        elif workers > 1 and len(tasks) > 1:
            results = _local(plan, tasks, workers, meter)
        else:
            results = _sequential(plan, tasks, meter)
    n = len(parts)
    return [stitch(plan, list(zip(parts, results[i * n : (i + 1) * n], strict=True))) for i in range(plan.replications)]
