"""Replications on a Dask distributed cluster give exactly the replications run here.

The cluster is a LocalCluster on 127.0.0.1 (two worker processes, no dashboard), started and
stopped by the test; `run_replications(..., dask=address)` only gets its scheduler address, as
a user with a real cluster would give it.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from network.explicit import plan_explicit
from network.replications import run_replications
from scenarios.schema import Seconds, parse_scenario

distributed = pytest.importorskip("distributed")

SCENARIO = {
    "name": "dask",
    "seed": 5,
    "replications": 4,
    "warmup": 50,
    "duration": 500,
    "network": {"model": "explicit", "stations": {"s": {"servers": 2, "time": {"dist": "exponential", "mean": 1.0}}}},
    "traffic": [{"name": "in", "kind": "CONSULTATION", "rate": 1.5, "path": ["s"]}],
}


def test_dask_cluster_runs_the_same_replications() -> None:
    plan = plan_explicit(dataclasses.replace(parse_scenario(SCENARIO, "dask.yaml"), duration=Seconds(500)))
    here = run_replications(plan)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", scheduler_port=0, dashboard_address=None
    ) as cluster:
        there = run_replications(plan, dask=cluster.scheduler_address)
    assert [r.index for r in there] == [0, 1, 2, 3]
    for a, b in zip(here, there, strict=True):
        assert np.array_equal(a.latencies[0], b.latencies[0])
        assert np.array_equal(a.station_utilisation, b.station_utilisation)
