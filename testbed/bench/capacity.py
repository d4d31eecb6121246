"""The capacity benchmark: the highest rate the core sustains with its tail latency held, against
the raw one-hop proxy, in one live network (`crossroads bench capacity`).

Locust, open loop, climbs a staircase of routed consultations (loadtests/capacity.py plans it
and judges each step); the climbs alternate core, proxy, core, ... so that both meet the same
moods of a shared machine, and each capacity is the median of its climbs. One agency host
serves every agency, as in `bench core`: the proxy's path ends at one host, so the core's must
too, or the comparison is of one host against several.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from loadtests.capacity import DEFAULT_P99_MS, SETTLE_S, Step, evaluate, median_capacity, plan_steps, stairs_scenario
from loadtests.report import capacity_text
from loadtests.resources import mean_cpu_percent
from scenarios.shipped import default_loadtest
from testbed import proxy
from testbed.bench.goals import BenchError, load_average, say, write_figures
from testbed.live import LiveNetwork, bring_up
from testbed.loadtest import LoadtestRun, drive
from testbed.processes import ChildError

__all__ = ["CAPACITY_HOSTS", "CapacityPlan", "capacity_benchmark", "measure_capacity", "stairs_file"]

CAPACITY_HOSTS = 1


@dataclass(frozen=True, kw_only=True)
class CapacityPlan:
    """The staircase of the capacity benchmark (loadtests/capacity.py says how a step is judged)."""

    start_rate: float = 200.0
    factor: float = 1.25
    steps: int = 12  # up to 200 x 1.25**11 = 2,328/s: above what the raw proxy held on the 2-core machine
    step_s: float = 8.0
    warmup_s: float = 8.0  # every agency connects first (`connect: all`), within the warm-up
    repeats: int = 3
    p99_ms: float = DEFAULT_P99_MS

    def to_steps(self) -> list[Step]:
        return plan_steps(self.start_rate, self.factor, self.steps, self.step_s, self.warmup_s)


def stairs_file(out: Path, world: Path, steps: Sequence[Step], seed: int, timeout_s: float) -> Path:
    """OUT/stairs.yaml: a load-test scenario of routed consultations climbing `steps`, on `world`'s world."""
    document = stairs_scenario(yaml.safe_load(world.read_text())["world"], steps, seed, timeout_s)
    path = out / "stairs.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@contextlib.contextmanager
def _proxy(pki: Path, upstream: str, folder: Path) -> Iterator[tuple[str, int]]:
    try:
        with proxy.running(pki, upstream, folder) as (address, pid):
            yield address, pid
    except ChildError as exc:
        raise BenchError(f"the raw proxy did not start: {exc}") from exc


def _staircase(network: LiveNetwork, run: LoadtestRun, target: str, plan: Sequence[Step], p99_ms: float) -> Any:
    """One climb of the staircase against the core ("core") or the raw proxy in front of host-0 ("proxy").

    Each step also gets the mean CPU of every process while it was judged: which one saturated.
    """
    run.out.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        if target == "core":
            address, name, pids = str(network.endpoints["core"]), "core", {}
        else:
            upstream = network.endpoints["hosts"][0]
            address, pid = stack.enter_context(_proxy(network.state / "pki", upstream["address"], run.out))
            name, pids = f"proxy:{upstream['name']}", {"proxy": pid}
        if run.progress:
            say(f"capacity staircase against the {target}")
        m = drive(network, run, run.spec(), name, address, pids)
    judged = [s for s in plan if not s.warmup]
    steps = evaluate(m.requests, m.t0, plan, p99_ms=p99_ms)
    for step, figures in zip(judged, steps, strict=True):
        figures["cpu_percent"] = mean_cpu_percent(m.resources, step.from_s + SETTLE_S, step.until_s)
    return steps


def _climbs(network: LiveNetwork, plan: CapacityPlan, stairs: Path, world: Path, out: Path, processes: int,
            progress: bool) -> dict[str, list[Any]]:  # fmt: skip
    steps = plan.to_steps()
    climbs: dict[str, list[Any]] = {"core": [], "proxy": []}
    for k in range(plan.repeats):
        for target, found in climbs.items():
            if progress:
                say(f"climb {k + 1} of {plan.repeats} against the {target}")
            run = LoadtestRun(scenario=stairs, world=world, out=out / f"{target}-{k}", processes=processes,
                              progress=progress)  # fmt: skip
            found.append(_staircase(network, run, target, steps, plan.p99_ms))
    return climbs


def capacity_benchmark(
    out: Path,
    plan: CapacityPlan = CapacityPlan(),
    *,
    world: Path | None = None,
    processes: int = 1,
    progress: bool = True,
) -> dict[str, Any]:
    """The highest routed-consultation rate the core sustains with p99 <= `plan.p99_ms`, and the same
    for the raw one-hop proxy in front of one agency host, in one live network; their ratio.

    Writes OUT/capacity.json (every step of every climb, the load average before and after) and
    returns it.
    """
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    world = world or default_loadtest()
    steps = plan.to_steps()
    stairs = stairs_file(out, world, steps, seed=7, timeout_s=5.0)
    load_before = load_average()
    with bring_up(world, out / "state", hosts=CAPACITY_HOSTS, progress=progress) as network:
        climbs = _climbs(network, plan, stairs, world, out, processes, progress)
    core, proxy_ = median_capacity(climbs["core"]), median_capacity(climbs["proxy"])
    result: dict[str, Any] = {
        "core_rps": core["rps"],
        "proxy_rps": proxy_["rps"],
        "ratio": round(core["rps"] / proxy_["rps"], 3) if core["rps"] and proxy_["rps"] else None,
        "core_p99_ms": core["p99_ms"],
        "proxy_p99_ms": proxy_["p99_ms"],
        "core_rps_each": core["each"],
        "proxy_rps_each": proxy_["each"],
        # a capacity at the staircase's top step is only a lower bound: it held the highest rate tried
        "core_at_top": core["rps"] == steps[-1].rate,
        "proxy_at_top": proxy_["rps"] == steps[-1].rate,
        "p99_limit_ms": plan.p99_ms,
        "plan": dataclasses.asdict(plan),
        "load_average": {"before": load_before, "after": load_average()},
        "climbs": climbs,
    }
    write_figures(out, "capacity.json", result)
    return result


def measure_capacity(out: Path, plan: CapacityPlan, *, world: Path | None = None, processes: int = 1) -> dict[str, Any]:
    """`capacity_benchmark` in OUT/capacity on a fresh state folder (an empty audit log and outbox),
    with a summary for people in OUT/capacity/capacity.txt."""
    folder = out.resolve() / "capacity"
    shutil.rmtree(folder / "state", ignore_errors=True)
    say(f"capacity: {plan.repeats} climb(s) each of core and proxy, {plan.steps} steps from {plan.start_rate:g}/s")
    figures = capacity_benchmark(folder, plan, world=world, processes=processes)
    (folder / "capacity.txt").write_text(capacity_text(figures) + "\n")
    return figures
