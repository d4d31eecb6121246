"""A simulation run from start to finish: load, validate, build, replicate, summarise, write.

    scenario.yaml --validate--> Scenario --(world)--> Plan --replications--> results --> run folder

The run folder receives:
  summary.json      estimates with 95% confidence intervals (reproducible byte for byte)
  series.json       per-interval series, mean of the replications
  series.csv        the same, one row per interval, for spreadsheets
  performance.json  wall-clock figures (not reproducible by nature)
  scenario.yaml     the scenario as given, for the record
  report.html       written by the caller with `reports` (this floor does not render)
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import time
from pathlib import Path
from typing import Any

from agencies.spec import WorldSpec
from agencies.world import World
from network.explicit import plan_explicit
from network.plan import Plan
from network.recorder import ReplicationResult
from network.replications import run_replications
from network.slicing import default_slices
from network.summary import performance, series, summarise
from network.world_plan import plan_world
from scenarios.schema import ExplicitNetwork, Scenario, load_scenario

__all__ = [
    "Overrides",
    "Run",
    "build_plan",
    "clean_json",
    "load",
    "simulate",
    "write_json",
    "write_run",
    "write_series_csv",
]


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Overrides:
    """Command-line changes to a scenario, applied after it was validated (None: keep)."""

    replications: int | None = None
    seed: int | None = None
    duration: float | None = None
    warmup: float | None = None

    def apply(self, scenario: Scenario[Any]) -> Scenario[Any]:
        changes = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        for key, value in changes.items():
            low = 1 if key in ("replications", "duration") else 0
            if value < low:
                raise ValueError(f"--{key} must be at least {low}, got {value}")
        return dataclasses.replace(scenario, **changes)


@dataclasses.dataclass(frozen=True, slots=True)
class Run:
    plan: Plan
    results: list[ReplicationResult]
    summary: dict[str, Any]
    series: dict[str, Any]
    performance: dict[str, Any]


def load(path: str | Path) -> Scenario[WorldSpec]:
    """Read and validate a scenario, its world section by the world's own parser."""
    return load_scenario(path, WorldSpec.from_mapping)


def build_plan(scenario: Scenario[Any], *, progress: bool = False) -> Plan:
    """The Plan of a validated scenario (building its world first, for the world model)."""
    if isinstance(scenario.network, ExplicitNetwork):
        return plan_explicit(scenario)
    if not isinstance(scenario.world, WorldSpec):
        raise ValueError(f"{scenario.source_file}: the world network needs a world: section read by WorldSpec")
    world = World.build(scenario.world, progress=progress)
    return plan_world(scenario, world)


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def simulate(
    scenario: Scenario[Any],
    *,
    workers: int | None = None,
    dask: str | None = None,
    progress: bool = False,
    slices: int | None = None,
) -> Run:
    """Build and run every replication of `scenario`, each in `slices` time slices; summarise.

    `slices` None: network.slicing.default_slices, a function of the scenario alone (the summary
    depends on the slicing, never on the machine). `workers` None: 1, or when sliced one per core
    (at most one per task): the machine decides only how many processes run the same tasks.
    """
    plan = build_plan(scenario, progress=progress)
    n = slices if slices is not None else default_slices(plan)
    if workers is None:
        workers = min(cores(), plan.replications * n) if n > 1 else 1
    started = time.perf_counter()
    results = run_replications(plan, workers=workers, dask=dask, progress=progress, slices=n)
    wall = time.perf_counter() - started
    figures = {**performance(results, wall, workers), "slices": n}
    return Run(plan, results, summarise(plan, results), series(plan, results), figures)


def clean_json(value: Any) -> Any:
    """`value` with NaN and infinities as null (JSON has no NaN), numpy scalars as Python ones."""
    if isinstance(value, dict):
        return {str(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v) for v in value]
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(clean_json(data), indent=1, allow_nan=False) + "\n", encoding="utf-8")


def write_series_csv(path: Path, data: dict[str, Any]) -> None:
    columns: list[tuple[str, list[float]]] = []
    for group in ("throughput_per_s", "latency_mean_s", "queue", "utilisation", "class_queue", "class_utilisation"):
        columns += [(f"{group}:{name}", values) for name, values in data[group].items()]
    columns.append(("lost_per_s", data["lost_per_s"]))
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["t_s", *(name for name, _ in columns)])
        for i, t in enumerate(data["t_s"]):
            out.writerow([t, *(clean_json(values[i]) for _, values in columns)])


def write_run(out: Path, run: Run, scenario_file: Path) -> None:
    """Write the machine-readable outputs of `run` into the folder `out` (created if needed)."""
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "summary.json", run.summary)
    write_json(out / "series.json", run.series)
    write_series_csv(out / "series.csv", run.series)
    write_json(out / "performance.json", run.performance)
    (out / "scenario.yaml").write_text(scenario_file.read_text(encoding="utf-8"), encoding="utf-8")
