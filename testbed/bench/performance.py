"""docs/PERFORMANCE.md keeps its prose; `make bench` rewrites its last section from bench.json."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from testbed.bench.goals import BenchError

__all__ = ["MARKER", "latest_section", "update_performance"]

MARKER = "<!-- make bench rewrites from here to the end of the file -->"


def latest_section(report: Mapping[str, Any], when: dt.date) -> str:
    """The section for the figures of one `bench_all` report (Markdown)."""
    machine = report["machine"]
    lines = [
        f"Measured {when.isoformat()} by `make bench` on {machine['cpus']} CPUs ({machine['cpu_model']}), "
        f"load average {machine['load_average_1m']} at the start, Python {machine['python']}, "
        f"grpcio {machine['grpcio']}.",
        "",
        "| figure | value | goal | met |",
        "|---|---|---|---|",
    ]
    met = {True: "yes", False: "NO"}
    lines += [f"| {name} | {g['value']:,} | {g['goal']} | {met[g['met']]} |" for name, g in report["goals"].items()]
    core, capacity = report["core"], report["capacity"]
    lines += [
        "",
        f"Core / proxy at saturation: ratio of medians {core['ratio']}, paired {core['ratio_paired']} "
        f"({core['runs']} runs per path). Capacity at p99 <= {capacity['p99_limit_ms']:g} ms: core "
        f"{capacity['core_rps']} req/s, proxy {capacity['proxy_rps']} req/s, ratio {capacity['ratio']}.",
    ]
    return "\n".join(lines) + "\n"


def update_performance(path: Path, report: Mapping[str, Any], when: dt.date | None = None) -> None:
    """Replace everything after MARKER in `path` with `latest_section(report)`; BenchError when
    the file has no marker (it would not know what to keep)."""
    text = path.read_text(encoding="utf-8")
    if MARKER not in text:
        raise BenchError(f"{path} has no line {MARKER!r}: nothing to rewrite")
    kept = text[: text.index(MARKER) + len(MARKER)]
    path.write_text(kept + "\n" + latest_section(report, when or dt.date.today()), encoding="utf-8")
