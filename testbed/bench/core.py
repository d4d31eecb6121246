"""The core's benchmark: routed consultations through the crossroads core against a raw proxy.

`bench_core(config)` brings up the demo world's live network with one agency host, starts a
raw one-hop byte-forwarding proxy (testbed/proxy.py, mutual TLS on both hops) in front of that
same host, and drives both with the same closed-loop client (loadtests/loadgen.py, a process of
its own, one mutual-TLS channel per sending agency):
- through the core: `Crossroads/Exchange` with consultation Envelopes drawn from the world
  (agencies.exchanges.samples), each sent as the agency the sample names, so that the core
  authenticates, validates, authorizes by deliberation, routes through the directory,
  forwards, and appends a durable audit record before answering;
- through the proxy: `Agency/Deliver` with the very `Forward` the core would send for each
  of those envelopes (same destination, sender and envelope bytes), so the host does the same
  work on both paths and the proxy only moves bytes.
Runs alternate (proxy, core, core, proxy, ...) so that a slow spell of a shared machine falls
on both; each figure is the median over its runs, and `ratio` = core_rps / proxy_rps.
Before measuring, a few requests go through both paths and must get the same agency answer;
after measuring, the audit records the core wrote are counted by outcome (all DELIVERED when
every consultation was authorized, routed and answered) and reported with the figures.

Besides throughput and latency, each run records the CPU time per call of the server under
test, the host and the load generator (from /proc: loadtests.cpu): on a shared machine a neighbour's burst
moves throughput a lot and CPU per call little, so those say where a difference comes from.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from loadtests.cpu import snapshot, usage
from testbed.bench.goals import GOAL_CORE_RATIO, BenchError, machine_info
from testbed.bench.levels import Path_, loadgen_figures
from testbed.bench.paths import (
    Workload,
    audit_outcomes,
    audit_size,
    check_paths,
    fresh_state,
    running_proxy,
    write_workload,
)
from testbed.live import LiveNetwork, bring_up

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_REQUESTS",
    "DEFAULT_RUNS",
    "DEFAULT_SECONDS",
    "DEFAULT_WARMUP_S",
    "CoreBenchConfig",
    "audit_outcomes",
    "bench_core",
    "format_summary",
    "headline",
    "paired_ratios",
    "run_loadgen",
]

# The headline compares capacities: at 256 calls in flight both servers are saturated on the
# 2-core machine (the core from ~128 on, where its one busy CPU is the limit; the proxy from
# ~256, where the machine is), while p99 latency stays under ~200 ms. At 64 in flight neither
# is quite saturated and the ratio is higher: run `--concurrency 64` for that point.
DEFAULT_CONCURRENCY = 256
DEFAULT_SECONDS = 10.0
DEFAULT_RUNS = 5
DEFAULT_WARMUP_S = 2.0  # covers the TLS handshakes of a few hundred sender channels
DEFAULT_REQUESTS = 2_000  # distinct prepared consultations, cycled; ~340 distinct senders
DEFAULT_SEED = 0
CHECKED_REQUESTS = 5  # sent through both paths before measuring; their answers must agree
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
CALL_TIMEOUT_S = 10.0


@dataclass(frozen=True, kw_only=True)
class CoreBenchConfig:
    """One `bench core` run. `out` receives bench_core.json, the state folder and the logs."""

    out: Path
    scenario: Path
    seconds: float = DEFAULT_SECONDS
    concurrency: int = DEFAULT_CONCURRENCY
    runs: int = DEFAULT_RUNS
    warmup_s: float = DEFAULT_WARMUP_S
    requests: int = DEFAULT_REQUESTS
    seed: int = DEFAULT_SEED

    def __post_init__(self) -> None:
        if self.seconds <= 0 or self.warmup_s < 0:
            raise ValueError(f"seconds must be > 0 and warm-up >= 0, got {self.seconds} and {self.warmup_s}")
        if self.concurrency < 1 or self.runs < 1 or self.requests < 1:
            raise ValueError("concurrency, runs and requests must each be at least 1")


def _say(message: str) -> None:
    print(f"bench core: {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ processes


def run_loadgen(pki: Path, target: str, requests: Path, config: CoreBenchConfig, log: Path) -> dict[str, float]:
    """One closed-loop run of loadtests/loadgen.py in a process of its own; its JSON figures."""
    args = ["--pki", str(pki), "--target", target, "--requests", str(requests)]
    args += ["--concurrency", str(config.concurrency), "--seconds", str(config.seconds)]
    args += ["--warmup", str(config.warmup_s)]
    timeout = config.seconds + config.warmup_s + 60.0
    return loadgen_figures(["-m", "loadtests.loadgen", *args], log, timeout)


# ------------------------------------------------------------------ the benchmark


def _one_run(config: CoreBenchConfig, pki: Path, path: Path_, log: Path) -> dict[str, float]:
    """A load generator run, plus the CPU time per call of the server and the host during it
    (`path.watch` names them "server" and "host").

    CPU per call holds better than throughput on a shared machine: a neighbour's burst
    slows both the server and the client, but hardly changes what one call costs.
    """
    before = snapshot(path.watch)
    figures = run_loadgen(pki, path.address, path.requests, config, log)
    spent = usage(before, snapshot(path.watch))
    server, host = spent["server"], spent["host"]
    if server is None or host is None:
        raise BenchError(f"the server under test or the host ended during a run: {spent}")
    calls = max(figures["calls"], 1.0)
    figures["server_cpu_us"] = server.cpu_s / calls * 1e6
    figures["host_cpu_us"] = host.cpu_s / calls * 1e6
    figures["client_cpu_us"] = figures["cpu_s"] / calls * 1e6
    return figures


def _alternate(
    config: CoreBenchConfig, pki: Path, paths: dict[str, Path_], log: Path
) -> dict[str, list[dict[str, float]]]:
    """`runs` runs of each path, alternating which goes first (ABBA): a drift falls on both."""
    each: dict[str, list[dict[str, float]]] = {"proxy": [], "core": []}
    for run in range(config.runs):
        for name in ("proxy", "core") if run % 2 == 0 else ("core", "proxy"):
            figures = _one_run(config, pki, paths[name], log)
            each[name].append(figures)
            _say(
                f"run {run + 1}/{config.runs} {name:>5}: {figures['rps']:8.1f} req/s, "
                f"p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms, errors {figures['errors']:.0f}, "
                f"CPU us/call: server {figures['server_cpu_us']:.0f}, host {figures['host_cpu_us']:.0f}, "
                f"client {figures['client_cpu_us']:.0f}"
            )
    return each


def _median(runs: Sequence[dict[str, float]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def paired_ratios(each: dict[str, list[dict[str, float]]]) -> list[float]:
    """core/proxy req/s of each run, against the proxy run made just before or after it."""
    return [c["rps"] / p["rps"] for c, p in zip(each["core"], each["proxy"], strict=True) if p["rps"]]


def _figures(
    config: CoreBenchConfig, each: dict[str, list[dict[str, float]]], workload: Workload, outcomes: dict[str, int]
) -> dict[str, Any]:
    core, proxy = each["core"], each["proxy"]
    core_rps, proxy_rps = _median(core, "rps"), _median(proxy, "rps")
    ratio = core_rps / proxy_rps if proxy_rps else 0.0
    pairs = paired_ratios(each)
    return {
        "core_rps": round(core_rps, 1),
        "proxy_rps": round(proxy_rps, 1),
        "ratio": round(ratio, 3),
        "core_p50_ms": round(_median(core, "p50_ms"), 2),
        "core_p99_ms": round(_median(core, "p99_ms"), 2),
        "proxy_p50_ms": round(_median(proxy, "p50_ms"), 2),
        "proxy_p99_ms": round(_median(proxy, "p99_ms"), 2),
        "runs": config.runs,
        "core_cpu_us_per_call": round(_median(core, "server_cpu_us"), 1),
        "proxy_cpu_us_per_call": round(_median(proxy, "server_cpu_us"), 1),
        "host_cpu_us_per_call": round(_median(core + proxy, "host_cpu_us"), 1),
        "client_cpu_us_per_call": round(_median(core + proxy, "client_cpu_us"), 1),
        "concurrency": config.concurrency,
        "seconds": config.seconds,
        # each core run against the proxy run next to it (ABBA): steadier than the ratio of the
        # medians when the machine drifts between runs (seen here: benchmark medians of the same
        # code from 0.75 to 0.88, paired medians within a few hundredths)
        "ratio_paired": round(statistics.median(pairs), 3) if pairs else 0.0,
        "ratio_paired_each": [round(r, 3) for r in pairs],
        "goal_ratio": GOAL_CORE_RATIO,
        "meets_goal": ratio >= GOAL_CORE_RATIO,
        "core_ok": sum(int(r["ok"]) for r in core),
        "proxy_ok": sum(int(r["ok"]) for r in proxy),
        "core_errors": sum(int(r["errors"]) for r in core),
        "proxy_errors": sum(int(r["errors"]) for r in proxy),
        "audit_outcomes": outcomes,
        "requests": len(workload.core),
        "senders": workload.senders,
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()},
        "machine": machine_info(),
        "each": each,
    }


def bench_core(config: CoreBenchConfig) -> dict[str, Any]:
    """Run the benchmark (see the module doc); write OUT/bench_core.json and return its figures.

    Raises BenchError if the network, the proxy or a load generator fails, if the two paths
    answer differently, or if a path served no request.
    """
    out = config.out.resolve()
    config = CoreBenchConfig(**{**asdict(config), "out": out})
    state = out / "state"
    state.mkdir(parents=True, exist_ok=True)
    fresh_state(state)
    log = out / "loadgen.log"
    log.unlink(missing_ok=True)
    with bring_up(config.scenario, state, hosts=1, progress=True) as network:
        workload, requests = write_workload(config.scenario, state, config.out, config.requests, config.seed)
        _say(f"{len(workload.core)} consultations from {workload.senders} senders prepared")
        each, start = _measure(config, network, workload, requests, log)
    figures = _figures(config, each, workload, audit_outcomes(state, start))
    if not figures["core_ok"] or not figures["proxy_ok"]:
        raise BenchError(f"a path served no request (core {figures['core_ok']}, proxy {figures['proxy_ok']})")
    (out / "bench_core.json").write_text(json.dumps(figures, indent=2) + "\n")
    return figures


def _measure(
    config: CoreBenchConfig, network: LiveNetwork, workload: Workload, requests: dict[str, Path], log: Path
) -> tuple[dict[str, list[dict[str, float]]], int]:
    pki, core, host = network.state / "pki", network.core, network.hosts[0]
    if core is None or core.address is None or host.address is None:
        raise BenchError("the live network came up without a core or a host address")
    with running_proxy(pki, host.address, network.state / "logs") as (proxy, proxy_pid):
        check_paths(pki, core.address, proxy, workload)
        paths = {
            "core": Path_("core", core.address, requests["core"], {"server": core.pid, "host": host.pid}),
            "proxy": Path_("proxy", proxy, requests["proxy"], {"server": proxy_pid, "host": host.pid}),
        }
        start = audit_size(network.state)
        _say(f"{config.runs} runs per path, {config.seconds:g} s each, {config.concurrency} in flight")
        return _alternate(config, pki, paths, log), start


def headline(figures: dict[str, Any]) -> dict[str, Any]:
    """The figures of the last output line, in the order issue 2 names them."""
    keys = ("core_rps", "proxy_rps", "ratio", "core_p50_ms", "core_p99_ms", "proxy_p50_ms", "proxy_p99_ms", "runs")
    return {k: figures[k] for k in keys} | {"concurrency": figures["concurrency"]}


def _row(label: str, figures: dict[str, Any], path: str) -> str:
    return (
        f"{label:12}{figures[path + '_rps']:>10.1f}{figures[path + '_p50_ms']:>10.2f}{figures[path + '_p99_ms']:>10.2f}"
    )


def format_summary(figures: dict[str, Any]) -> str:
    """A few lines for people: the medians, the ratio against its goal, every run."""
    verdict = "met" if figures["meets_goal"] else "NOT met"
    lines = [
        f"crossroads core vs raw one-hop proxy (mTLS both hops): {figures['runs']} alternating runs per path, "
        f"{figures['seconds']:g} s each, {figures['concurrency']} calls in flight, "
        f"{figures['requests']} consultations from {figures['senders']} senders",
        f"{'':12}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}   (medians)",
        _row("raw proxy", figures, "proxy"),
        _row("core", figures, "core"),
        f"ratio core/proxy {figures['ratio']:.3f} (goal >= {figures['goal_ratio']}: {verdict}); "
        f"run by run, paired: median {figures['ratio_paired']:.3f} of "
        + ", ".join(f"{r:.3f}" for r in figures["ratio_paired_each"]),
        f"CPU per call, medians: core {figures['core_cpu_us_per_call']:.0f} us, "
        f"proxy {figures['proxy_cpu_us_per_call']:.0f} us, agency host {figures['host_cpu_us_per_call']:.0f} us, "
        f"load generator {figures['client_cpu_us_per_call']:.0f} us",
        "runs, req/s: proxy " + ", ".join(f"{r['rps']:.0f}" for r in figures["each"]["proxy"])
        + "; core " + ", ".join(f"{r['rps']:.0f}" for r in figures["each"]["core"]),
        f"errors: proxy {figures['proxy_errors']}, core {figures['core_errors']}; "
        f"audit records of the core runs by outcome: {figures['audit_outcomes']}",
    ]  # fmt: skip
    return "\n".join(lines)
