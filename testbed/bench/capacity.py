"""The capacity benchmark: the highest rate the core carries while its tail latency holds, against
the raw one-hop proxy, both knees measured in one live network (`crossroads bench capacity`).

The paths are those of `bench core` (testbed/bench/paths.py): routed consultations through the
core, and the very Forwards the core would send through a raw mTLS proxy in front of the same
single agency host. The load generator is open loop (loadtests/loadgen.py: requests sent on a
seeded Poisson schedule, latency from each request's intended send time, so a server that falls
behind cannot hide it), in `processes` processes of its own.

A climb offers `start_rate`, then `factor` times more at each step, to both paths in turn (the
order alternates, so that both meet the same moods of a shared machine). A step is sustained
when its p99 latency is at most `p99_ms`, at most 1 % of its requests failed, and at least 95 %
of what was offered was answered within the step. A path stops climbing after two steps in a row
that were not (one alone may be a neighbour's burst on a shared machine): its knee is the highest
step sustained. When the generator could not offer a step
(loadtests.level_figures: `could_not_offer`), the step measured the generator, not the path:
the path stops there too, and its capacity is reported as a lower bound with the generator's
ceiling as the reason. Each capacity is the median of `repeats` climbs; the ratio core/proxy is
the median of the climbs' ratios (each climb's two knees were measured side by side).

Then, at `fractions` of the proxy's capacity, both paths are loaded again for longer, and their
p50/p90/p99 reported with the latency the core adds over the proxy at each (core minus proxy,
per percentile; the median over `repeats` pairs), and where the core path's time went: the core
runs with its telemetry on (crossroads/telemetry.py: a few clock reads per exchange), which
splits each exchange into the forward round trip, the wait for the audit commit and the core's
own work, and says what the group commits were.

With `proxy_capacity` given (an earlier run's proxy_rps), nothing climbs: only the latency points
are measured, at `fractions` of it, in a few minutes instead of a quarter of an hour; no knee and
no ratio is reported then.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from crossroads.telemetry import PER_COMMIT_FIGURES, TELEMETRY_ENV, over, read_telemetry
from loadtests.level import Level
from loadtests.level_figures import could_not_offer
from scenarios.shipped import default_scenario
from testbed.bench.goals import BenchError, load_average, machine_info, say, write_figures
from testbed.bench.levels import Path_, run_level
from testbed.bench.paths import check_paths, fresh_state, running_proxy, write_workload
from testbed.live import bring_up

__all__ = [
    "CAPACITY_HOSTS",
    "STRIKES",
    "CapacityPlan",
    "capacity_benchmark",
    "capacity_text",
    "measure_capacity",
    "sustained",
]

CAPACITY_HOSTS = 1  # as in `bench core`: both paths end at one host process
MAX_ERRORS = 0.01
MIN_ANSWERED = 0.95
STRIKES = 2  # failed steps in a row that end a path's climb
PATHS = ("core", "proxy")


@dataclass(frozen=True, kw_only=True)
class CapacityPlan:
    """The staircase and the latency points of the capacity benchmark (see the module doc)."""

    start_rate: float = 300.0
    factor: float = 1.2
    max_steps: int = 20  # up to 300 x 1.2**19 = 9,585/s: past what this machine carries
    step_s: float = 6.0
    warmup_s: float = 2.0
    repeats: int = 3
    p99_ms: float = 50.0
    processes: int = 2  # load generator processes
    fractions: tuple[float, ...] = (0.25, 0.5, 0.75)
    point_s: float = 10.0  # seconds of each latency point
    requests: int = 2_000  # distinct prepared consultations, cycled
    seed: int = 0
    proxy_capacity: float | None = None  # given: no climbs, only the points at its fractions (see the module doc)

    def rates(self) -> list[float]:
        return [round(self.start_rate * self.factor**k, 1) for k in range(self.max_steps)]

    def level(self, rate: float, seconds: float, seed: int) -> Level:
        return Level(rate=rate, seconds=seconds, warmup_s=self.warmup_s, processes=self.processes, seed=seed)


def sustained(figures: dict[str, Any], p99_ms: float) -> bool:
    """Whether one step held: p99 within the limit, few errors, nearly all of it answered in time."""
    sent, p99 = max(int(figures["sent"]), 1), figures["p99_ms"]
    return (
        p99 is not None
        and p99 <= p99_ms
        and figures["errors"] / sent <= MAX_ERRORS
        and figures["achieved_per_s"] >= MIN_ANSWERED * figures["offered_per_s"]
    )


def _failure(step: dict[str, Any], p99_ms: float) -> str | None:
    """Why a step did not hold (generator, p99, errors, answers), or None when it held."""
    if could_not_offer(step):
        return "generator"
    if sustained(step, p99_ms):
        return None
    if step["p99_ms"] is None or step["p99_ms"] > p99_ms:
        return "p99"
    return "errors" if step["errors"] / max(int(step["sent"]), 1) > MAX_ERRORS else "answers"


def _stops(steps: Sequence[dict[str, Any]], p99_ms: float) -> bool:
    """Whether a path stops climbing: its generator could not keep up, or two steps in a row failed
    (one failed step alone may be a neighbour's burst on a shared machine)."""
    why = [_failure(s, p99_ms) for s in steps[-STRIKES:]]
    return why[-1] == "generator" or (len(why) == STRIKES and all(w is not None for w in why))


def _knee(steps: Sequence[dict[str, Any]], p99_ms: float) -> dict[str, Any]:
    """A climb's outcome for one path: the highest rate sustained, and what ended the climb."""
    held = [s["rate"] for s in steps if _failure(s, p99_ms) is None]
    last = _failure(steps[-1], p99_ms) if steps else None
    return {"rps": max(held, default=0.0), "limit": last or "top of the staircase"}


@dataclass(frozen=True, slots=True)
class _Bench:
    pki: Path
    paths: dict[str, Path_]
    folder: Path
    plan: CapacityPlan

    @property
    def telemetry(self) -> Path:
        return self.folder / "telemetry.jsonl"


def _climb(bench: _Bench, k: int) -> dict[str, Any]:
    """One climb of both paths, alternating which goes first; every step's figures and each knee."""
    steps: dict[str, list[dict[str, Any]]] = {name: [] for name in PATHS}
    climbing = set(PATHS)
    for s, rate in enumerate(bench.plan.rates()):
        order = PATHS if (s + k) % 2 == 0 else PATHS[::-1]
        for name in (n for n in order if n in climbing):
            level = bench.plan.level(rate, bench.plan.step_s, seed=bench.plan.seed + 1000 * k + s)
            figures = run_level(bench.pki, bench.paths[name], level, bench.folder / "loadgen.log")
            steps[name].append(figures)
            limited = " (generator limited)" if could_not_offer(figures) else ""
            say(f"climb {k + 1}, {name:>5} at {rate:7.1f}/s: p99 {figures['p99_ms']} ms, "
                f"answered {figures['achieved_per_s']:.0f}/s{limited}")  # fmt: skip
            if _stops(steps[name], bench.plan.p99_ms):
                climbing.discard(name)
        if not climbing:
            break
    return {"steps": steps, "knees": {name: _knee(steps[name], bench.plan.p99_ms) for name in PATHS}}


def _points(bench: _Bench, proxy_rps: float) -> list[dict[str, Any]]:
    """Both paths at each fraction of the proxy's capacity, `repeats` times; the core's added latency."""
    points = []
    for fraction in bench.plan.fractions:
        rate = round(fraction * proxy_rps, 1)
        pairs = []
        for k in range(bench.plan.repeats):
            order = PATHS if k % 2 == 0 else PATHS[::-1]
            level = bench.plan.level(rate, bench.plan.point_s, seed=bench.plan.seed + 7 + k)
            got = {name: run_level(bench.pki, bench.paths[name], level, bench.folder / "loadgen.log") for name in order}
            pairs.append(got)
        points.append(_point(fraction, rate, pairs) | {"breakdown": _breakdown(bench, pairs)})
        say(f"{fraction:.0%} of the proxy's capacity ({rate:g}/s): core adds {points[-1]['added_ms']} ms (p50/p90/p99)")
    return points


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 3) if present else None


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _point(fraction: float, rate: float, pairs: Sequence[dict[str, dict[str, Any]]]) -> dict[str, Any]:
    keys = ("p50_ms", "p90_ms", "p99_ms", "mean_ms")
    by_path = {name: {key: _median([p[name][key] for p in pairs]) for key in keys} for name in PATHS}
    added = {key: _median([_minus(p["core"][key], p["proxy"][key]) for p in pairs]) for key in keys}
    return {"fraction": fraction, "rate": rate, **by_path, "added_ms": added, "each": list(pairs)}


def _breakdown(bench: _Bench, pairs: Sequence[dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Where an acknowledged exchange's time went at one point, means in milliseconds: the core's
    telemetry (crossroads/telemetry.py) over the core path's measured windows, beside what the
    client saw. Outside the handler: gRPC and the transport, both ways, and the client."""
    lines = read_telemetry(bench.telemetry)
    windows = [(p["core"]["window"][0] + bench.plan.warmup_s, p["core"]["window"][1]) for p in pairs]
    parts = [over(lines, a, b) for a, b in windows]
    seen = sum(part["exchanges"] for part in parts)
    stages = ("handle_ms", "forward_ms", "commit_ms", "own_ms")
    mean = {stage: _weighted([(part["mean"][stage], part["exchanges"]) for part in parts]) for stage in stages}
    client = _median([p["core"]["mean_ms"] for p in pairs])
    commits = [part["commits"] for part in parts]
    return {
        "exchanges": seen,
        "client_ms": client,
        "outside_handler_ms": _minus(client, mean["handle_ms"]),
        **mean,
        "proxy_client_ms": _median([p["proxy"]["mean_ms"] for p in pairs]),
        **{name: _weighted([(c[name], c["commits"]) for c in commits]) for name in PER_COMMIT_FIGURES},
    }


def _weighted(values: Sequence[tuple[float | None, int]]) -> float | None:
    present = [(v, n) for v, n in values if v is not None and n]
    total = sum(n for _, n in present)
    return round(sum(v * n for v, n in present) / total, 4) if total else None


def _summary(plan: CapacityPlan, climbs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    if not climbs:  # the proxy's capacity given: the points only
        return {"core_rps": None, "proxy_rps": plan.proxy_capacity, "proxy_rps_given": True, "ratio": None,
                "ratio_each": [], "core_rps_each": [], "proxy_rps_each": [], "core_limits": [], "proxy_limits": [],
                "p99_limit_ms": plan.p99_ms}  # fmt: skip
    knees = {name: [c["knees"][name] for c in climbs] for name in PATHS}
    rps = {name: [k["rps"] for k in knees[name]] for name in PATHS}
    ratios = [c["knees"]["core"]["rps"] / c["knees"]["proxy"]["rps"] for c in climbs if c["knees"]["proxy"]["rps"]]
    return {
        "core_rps": statistics.median(rps["core"]),
        "proxy_rps": statistics.median(rps["proxy"]),
        "ratio": round(statistics.median(ratios), 3) if ratios else None,
        "ratio_each": [round(r, 3) for r in ratios],
        "core_rps_each": rps["core"],
        "proxy_rps_each": rps["proxy"],
        "core_limits": [k["limit"] for k in knees["core"]],
        "proxy_limits": [k["limit"] for k in knees["proxy"]],
        "p99_limit_ms": plan.p99_ms,
    }


def capacity_benchmark(
    out: Path, plan: CapacityPlan = CapacityPlan(), *, scenario: Path | None = None
) -> dict[str, Any]:
    """Both knees, then the latency points (see the module doc); writes OUT/capacity.json and returns it.

    BenchError if the network, the proxy or the generator fails, or the paths disagree.
    """
    out = out.resolve()
    scenario = scenario or default_scenario()
    state = out / "state"
    state.mkdir(parents=True, exist_ok=True)
    fresh_state(state)
    load_before = load_average()
    telemetry = out / "telemetry.jsonl"
    telemetry.unlink(missing_ok=True)
    env = {TELEMETRY_ENV: str(telemetry)}
    with bring_up(scenario, state, hosts=CAPACITY_HOSTS, progress=True, core_env=env) as network:
        workload, requests = write_workload(scenario, state, out, plan.requests, plan.seed)
        core, host = network.core, network.hosts[0]
        if core is None or core.address is None or host.address is None:
            raise BenchError("the live network came up without a core or a host address")
        with running_proxy(state / "pki", host.address, state / "logs") as (proxy_address, proxy_pid):
            check_paths(state / "pki", core.address, proxy_address, workload)
            paths = {
                "core": Path_("core", core.address, requests["core"], {"core": core.pid, "host": host.pid}),
                "proxy": Path_("proxy", proxy_address, requests["proxy"], {"proxy": proxy_pid, "host": host.pid}),
            }
            bench = _Bench(state / "pki", paths, out, plan)
            climbs = [] if plan.proxy_capacity else [_climb(bench, k) for k in range(plan.repeats)]
            result = _summary(plan, climbs)
            result["points"] = _points(bench, float(result["proxy_rps"])) if result["proxy_rps"] else []
    result |= {"plan": asdict(plan), "machine": machine_info(),
               "load_average": {"before": load_before, "after": load_average()}, "climbs": climbs}  # fmt: skip
    write_figures(out, "capacity.json", result)
    return result


def _cells(row: dict[str, Any]) -> str:
    return "".join(f"{'-' if row[k] is None else row[k]:>8}" for k in ("p50_ms", "p90_ms", "p99_ms"))


def _breakdown_line(b: dict[str, Any]) -> str:
    def ms(key: str) -> str:
        return "-" if b[key] is None else f"{b[key]:.2f}"

    return (f"{'':14}core path, means: client {ms('client_ms')} ms = gRPC and transport {ms('outside_handler_ms')}"
            f" + forward {ms('forward_ms')} + audit commit {ms('commit_ms')} + the core's own {ms('own_ms')}; "
            f"commits of {ms('mean_batch')} records, {ms('mean_commit_ms')} ms each "
            f"({ms('mean_sync_ms')} of it the COMMIT: the WAL written and fsynced)")  # fmt: skip


def capacity_text(result: dict[str, Any]) -> str:
    """A few lines for people: both knees, their ratio, and the latency the core adds."""
    limit = result["p99_limit_ms"]
    if result.get("proxy_rps_given"):
        head = (
            f"capacity not measured: the points at fractions of the proxy's capacity given, {result['proxy_rps']:g}/s"
        )
    else:
        climbs, core, proxy = len(result["core_rps_each"]), result["core_rps"], result["proxy_rps"]
        head = (f"capacity at p99 <= {limit:g} ms (open loop, median of {climbs} climbs): "
                f"core {core:g}/s ({', '.join(result['core_limits'])}), "
                f"proxy {proxy:g}/s ({', '.join(result['proxy_limits'])}); ratio {result['ratio']}")  # fmt: skip
    lines = [head, f"{'':28}{'p50':>8}{'p90':>8}{'p99':>8}  (ms)"]
    for p in result["points"]:
        for name in ("proxy", "core"):
            lines.append(f"{p['fraction']:>4.0%} {p['rate']:>8g}/s {name:>8}   " + _cells(p[name]))
        lines.append(f"{'':14}core adds   " + _cells(p["added_ms"]))
        lines.append(_breakdown_line(p["breakdown"]))
    return "\n".join(lines)


def measure_capacity(out: Path, plan: CapacityPlan, *, scenario: Path | None = None) -> dict[str, Any]:
    """`capacity_benchmark` in OUT/capacity, with a summary for people in OUT/capacity/capacity.txt."""
    folder = out.resolve() / "capacity"
    if plan.proxy_capacity:
        shares = ", ".join(f"{f:.0%}" for f in plan.fractions)
        say(f"capacity: no climbs; core and proxy at {shares} of the given {plan.proxy_capacity:g}/s")
    else:
        say(f"capacity: {plan.repeats} climb(s) of core and proxy from {plan.start_rate:g}/s, x{plan.factor:g} a step")
    result = capacity_benchmark(folder, plan, scenario=scenario)
    (folder / "capacity.txt").write_text(capacity_text(result) + "\n")
    return result
