"""Every benchmark, one after the other, with every figure against its goal (`crossroads bench all`,
`make bench`): the core against the raw proxy, the audit log, the national world, start-up,
capacity, a soak at SOAK_SHARE of that capacity, a simulated national day, and the calibrated
model's errors against the live testbed. Writes OUT/bench.json."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scenarios.shipped import default_scenario, shipped
from testbed.bench import core as bc
from testbed.bench.audit import DEFAULT_AUDIT_RUNS, audit_figures
from testbed.bench.capacity import CapacityPlan
from testbed.bench.goals import GOAL_CORE_RATIO, goal, machine_info, write_figures
from testbed.bench.model import model_figures
from testbed.bench.sim import DEFAULT_SIM_RUNS, sim_figures
from testbed.bench.soak import SoakPlan, capacity_and_soak, soak_goals
from testbed.bench.up import up_figures
from testbed.bench.world import DEFAULT_WORLD_RUNS, world_figures

__all__ = ["AllPlan", "bench_all"]


@dataclass(frozen=True, kw_only=True)
class AllPlan:
    """What `bench_all` runs: `runs` of every benchmark (None: each its own default)."""

    out: Path
    runs: int | None = None
    seconds: float = bc.DEFAULT_SECONDS
    concurrency: int = bc.DEFAULT_CONCURRENCY
    capacity: CapacityPlan = field(default_factory=CapacityPlan)
    soak: SoakPlan = field(default_factory=SoakPlan)
    world: Path | None = None  # the load tests' world (default: the shipped demo world)
    processes: int = 1  # Locust processes


def bench_all(plan: AllPlan) -> dict[str, Any]:
    """Run every benchmark; write OUT/bench.json (every figure, every goal) and return it."""
    out = plan.out
    out.mkdir(parents=True, exist_ok=True)
    core = bc.bench_core(bc.CoreBenchConfig(out=out / "core", scenario=plan.world or default_scenario(),
                                            seconds=plan.seconds, concurrency=plan.concurrency,
                                            runs=plan.runs or bc.DEFAULT_RUNS))  # fmt: skip
    audit = audit_figures(out, plan.runs or DEFAULT_AUDIT_RUNS)
    world = world_figures(shipped("national.yaml"), plan.runs or DEFAULT_WORLD_RUNS)
    up = up_figures(out)
    capacity, soak = capacity_and_soak(out, plan.capacity, plan.soak, world=plan.world, processes=plan.processes)
    goals = {"core_ratio": goal(core["ratio"], ">=", GOAL_CORE_RATIO)} | audit["goals"] | world["goals"] | up["goals"]
    goals |= soak_goals(soak) if soak else {}
    sim = sim_figures(runs=plan.runs or DEFAULT_SIM_RUNS)
    goals |= sim["goals"]
    model = model_figures(out / "model")
    goals |= model["goals"]
    report = {"machine": machine_info(), "goals": goals, "core": core, "audit": audit, "world": world, "up": up,
              "capacity": capacity, "soak": soak, "sim": sim, "model": model}  # fmt: skip
    write_figures(out, "bench.json", report)
    return report
