"""Running the replications of a plan: in this process, in local worker processes, or on Dask.

Replication i always uses stream i of `SeedSequence(plan.seed).spawn(plan.replications)`, so
where it runs changes nothing in its result: one process, `workers` local processes or a Dask
cluster give identical results, returned in replication order.

Local workers are started with the "spawn" method (no fork of a process that may hold
threads); the plan is sent to each worker once per replication (it is plain data).
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
from collections.abc import Iterable
from typing import Any

from tqdm import tqdm

from network.model import run_replication
from network.plan import Plan
from network.recorder import ReplicationResult

__all__ = ["run_replications"]


def _sequential(plan: Plan, bar: tqdm) -> list[ReplicationResult]:  # type: ignore[type-arg]
    results = []
    for i in range(plan.replications):
        done = float(bar.n)

        def step(fraction: float, done: float = done) -> None:
            bar.update(done + fraction - bar.n)

        results.append(run_replication(plan, i, progress=step))
        bar.update(i + 1 - bar.n)
    return results


def _local(plan: Plan, workers: int, bar: tqdm) -> list[ReplicationResult]:  # type: ignore[type-arg]
    context = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(run_replication, plan, i) for i in range(plan.replications)]
        return _collect(cf.as_completed(futures), bar)


def _dask(plan: Plan, address: str, bar: tqdm) -> list[ReplicationResult]:  # type: ignore[type-arg]
    from distributed import Client

    with Client(address, set_as_default=False) as client:
        shared = client.scatter(plan, broadcast=True)
        futures = client.map(run_replication, [shared] * plan.replications, range(plan.replications), pure=False)
        return _collect(futures, bar)  # in submission order: no default client needed


def _collect(done: Iterable[Any], bar: tqdm) -> list[ReplicationResult]:  # type: ignore[type-arg]
    results = []
    for future in done:
        results.append(future.result())
        bar.update(1)
    return sorted(results, key=lambda r: r.index)


def run_replications(
    plan: Plan, *, workers: int = 1, dask: str | None = None, progress: bool = False
) -> list[ReplicationResult]:
    """Run every replication of `plan`, in replication order.

    `workers` > 1 runs them in that many local processes; `dask` ("tcp://host:port") runs them
    on an existing Dask distributed cluster instead. `progress` shows a tqdm bar.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    where = f"on {dask}" if dask else f"in {workers} processes" if workers > 1 else "here"
    with tqdm(
        total=plan.replications, desc=f"{plan.name}: replications {where}", unit="rep", disable=not progress
    ) as bar:
        if dask:
            return _dask(plan, dask, bar)
        if workers > 1 and plan.replications > 1:
            return _local(plan, workers, bar)
        return _sequential(plan, bar)
