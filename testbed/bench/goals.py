"""What every benchmark reports: figures against goals, medians, the machine, the files.

Benchmarks are not tests: they measure on this machine and say whether each goal was met. A
goal is a figure, a comparison and a target (`goal`); `goal_lines` tabulates them for people.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc

__all__ = [
    "GOAL_APPENDS_PER_S",
    "GOAL_CORE_RATIO",
    "GOAL_SIM_RATIO",
    "GOAL_SIM_S",
    "GOAL_UP_MB",
    "GOAL_UP_S",
    "GOAL_VERIFY_S",
    "GOAL_WORLD_MB",
    "GOAL_WORLD_S",
    "BenchError",
    "goal",
    "goal_lines",
    "goal_values",
    "load_average",
    "machine_info",
    "medians",
    "say",
    "write_figures",
]

# The goals of the issues the benchmarks answer, in one place.
GOAL_CORE_RATIO = 0.8  # issue 2: core throughput >= 0.8 x the raw one-hop proxy
GOAL_APPENDS_PER_S = 100_000.0  # issue 2: durable audit appends per second
GOAL_VERIFY_S = 5.0  # issue 2: `audit verify` of 1 M records
GOAL_WORLD_S = 60.0  # issue 2: the national world's build
GOAL_WORLD_MB = 4096.0
GOAL_UP_S = 10.0  # issue 2: ~3,000 agencies serving
GOAL_UP_MB = 1024.0
GOAL_SIM_S = 60.0  # issue 13: a simulated national day (scenarios/national_day.yaml) on 2 cores
GOAL_SIM_RATIO = 1.0  # issue 13: sliced, at least as fast as a bare SimPy loop of as many customers

_COMPARE = {">=": lambda v, t: v >= t, "<=": lambda v, t: v <= t, "<": lambda v, t: v < t}


class BenchError(RuntimeError):
    """A benchmark could not run, or what it measured is not what it claims (the message says which)."""


def goal(value: float, op: str, target: float) -> dict[str, Any]:
    """`value` against its goal `op target` (op one of >=, <=, <): value, goal and whether met."""
    return {"value": value, "goal": f"{op} {target:g}", "met": bool(_COMPARE[op](value, target))}


def goal_values(goals: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Each goal's measured value, by name: the last JSON line a benchmark prints."""
    return {name: g["value"] for name, g in goals.items()}


def goal_lines(goals: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """A table of the goals, one line each: name, value, goal, met or NOT met."""
    verdict = {True: "met", False: "NOT met"}
    shown = {name: "-" if g["value"] is None else f"{g['value']:,}" for name, g in goals.items()}
    return [f"{name:28}{shown[name]:>14}  goal {g['goal']:<10} {verdict[g['met']]}" for name, g in goals.items()]


def medians(runs: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """The median of every figure over `runs` (each a mapping of the same figures)."""
    return {key: float(statistics.median(run[key] for run in runs)) for key in runs[0]} if runs else {}


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages: how busy the shared machine was."""
    return [round(x, 2) for x in os.getloadavg()]


def machine_info() -> dict[str, Any]:
    """What the figures were measured on: CPUs, their model, the load when the bench started."""
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "")
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "load_average_1m": load_average()[0],
        "python": sys.version.split()[0],
        "grpcio": grpc.__version__,
    }


def write_figures(out: Path, name: str, figures: Mapping[str, Any]) -> Path:
    """Write `figures` as OUT/NAME (indented JSON); returns the path."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    path.write_text(json.dumps(figures, indent=2) + "\n")
    return path


def say(message: str) -> None:
    """Progress, to stderr (stdout is for the figures)."""
    print(f"crossroads bench: {message}", file=sys.stderr, flush=True)
