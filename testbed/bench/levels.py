"""One open-loop load level against a server of the live network, with the CPU it cost.

`run_level` runs the load generator (loadtests/loadgen.py, open loop: latency from each
request's intended send time) in processes of its own through testbed.processes, and reads
/proc (loadtests.cpu) of the processes named in `watch` just before and just after: the figures
of the level (loadtests.level_figures) with, under "cpu", each watched process's utilisation
(share of one core) in all and per thread name over the level's whole run (warm-up included:
a level is steady, so the share is the level's), and under "machine" the shares of the
machine's CPU time over the measured window (loadtests.machine: busy, idle, and stolen by the
hypervisor: time our processes were ready and another tenant ran) with "probe_ms", how fast the
machine ran a fixed piece of work then (loadtests.speed_probe: its median, ms; None when not
read). The records of every
request are kept in a file beside the figures when asked (`records`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtests import cpu, machine
from loadtests.level import Level
from loadtests.loadgen import level_args
from loadtests.speed_probe import SpeedProbe
from testbed import processes
from testbed.bench.goals import BenchError

__all__ = ["Path_", "loadgen_figures", "longest_s", "run_level"]

_MARGIN_S = 60.0  # beyond a level's own length, before the generator is called stuck


@dataclass(frozen=True, slots=True)
class Path_:
    """A server to load: its name ("core", "proxy"), address, prepared requests and the pids to watch."""

    name: str
    address: str
    requests: Path
    watch: Mapping[str, int]


def _utilisation(before: cpu.Snapshot, after: cpu.Snapshot) -> dict[str, Any]:
    return {name: None if u is None else u.as_dict() for name, u in cpu.usage(before, after).items()}


def loadgen_figures(args: list[str], log: Path, timeout_s: float, what: str = "") -> dict[str, Any]:
    """One run of the load generator (`args`: its Python arguments, `-m loadtests.loadgen ...`) in
    a process of its own; its figures, the JSON of its last line of output. BenchError (naming
    `what` was run) when it exits with an error; its stderr goes to `log`."""
    code, out = processes.run("loadgen", args, log=log, timeout_s=timeout_s)
    if code != 0:
        raise BenchError(f"the load generator exited with code {code}{what}; see {log}")
    figures: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return figures


def longest_s(level: Level) -> float:
    """The longest `level` may take, from its generator's start to its last answer, before the
    generator is called stuck."""
    return level.warmup_s + level.seconds + level.timeout_s + _MARGIN_S


def run_level(
    pki: Path, path: Path_, level: Level, log: Path, records: Path | None = None, start_file: Path | None = None
) -> dict[str, Any]:
    """Offer `level` to `path`; its figures with "cpu" (see the module doc). BenchError when the
    generator fails; its stderr goes to `log`. `records` and `start_file`: loadtests.loadgen's."""
    started = time.time()
    before = cpu.snapshot(path.watch)
    timeout = longest_s(level)
    args = level_args(pki, path.address, path.requests, level, records, start_file)
    with machine.Sampler() as sampler, SpeedProbe() as probe:
        figures = loadgen_figures(args, log, timeout, f" at {level.rate:g}/s on {path.name}")
    after = cpu.snapshot(path.watch)
    start = float(figures["window_start_unix"])
    end = start + level.seconds
    figures["machine"] = {**sampler.between(start, end).as_dict(), "probe_ms": probe.between(start, end)}
    figures["path"] = path.name
    figures["cpu"] = _utilisation(before, after)
    figures["window"] = [round(started, 3), round(time.time(), 3)]  # UNIX times the level ran in
    return figures
