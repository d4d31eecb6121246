"""The load-test report's figures, drawn with matplotlib (Agg, no pyplot state) as PNG bytes.

Plain data in (the run's series.json and summary.json), as `reports/figures.py` does for the
simulation; every time axis is seconds after the load started, and the fault windows are
shaded on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.figure import Figure

from reports.figures import png

__all__ = ["availability_figure", "latency_figure", "resources_figure", "throughput_figure"]

Json = Mapping[str, Any]
_FAULT_COLOURS = {"kill_host": "crimson", "stop_core": "purple", "slow_host": "darkorange"}


def _edges(series: Json) -> list[float]:
    return [*series["t_s"], series["t_end_s"]]


def _nan(values: Sequence[float | None]) -> list[float]:
    return [float("nan") if v is None else float(v) for v in values]


def _shade(ax: Any, faults: Sequence[Json], end: float) -> None:
    """Each fault window as a shaded span with its name at the top."""
    for f in faults:
        until = end if f["until_s"] is None else f["until_s"]
        colour = _FAULT_COLOURS.get(f["action"], "grey")
        ax.axvspan(f["from_s"], until, color=colour, alpha=0.12)
        ax.annotate(f["what"], (f["from_s"], 1), xycoords=("data", "axes fraction"), fontsize=7, va="top", color=colour)


def throughput_figure(series: Json, faults: Sequence[Json]) -> bytes:
    """Requests per second over time, per name, and the failures, with the fault windows shaded."""
    fig = Figure(figsize=(9, 4.5))
    ax = fig.add_subplot()
    edges = _edges(series)
    for name, values in series["per_name_per_s"].items():
        ax.stairs(values, edges, label=name, linewidth=1.2)
    ax.stairs(series["ok_per_s"], edges, label="all answered", color="black", linewidth=1.8)
    ax.stairs(series["errors_per_s"], edges, label="failed", color="red", linestyle="--", linewidth=1.5)
    _shade(ax, faults, edges[-1])
    ax.set_xlabel("seconds after the load started")
    ax.set_ylabel("requests per second")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7, ncol=3)
    ax.grid(alpha=0.3)
    return png(fig)


def latency_figure(series: Json, faults: Sequence[Json]) -> bytes:
    """Median and 99th percentile latency of the answered requests, second by second (log scale)."""
    fig = Figure(figsize=(9, 4.5))
    ax = fig.add_subplot()
    edges = _edges(series)
    ax.stairs(_nan(series["p50_ms"]), edges, label="median", linewidth=1.5)
    ax.stairs(_nan(series["p99_ms"]), edges, label="99th percentile", linewidth=1.5)
    _shade(ax, faults, edges[-1])
    ax.set_yscale("log")
    ax.set_xlabel("seconds after the load started")
    ax.set_ylabel("latency (ms, logarithmic)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return png(fig)


def availability_figure(windows: Sequence[Json]) -> bytes:
    """Share of requests answered successfully in each fault window, and outside them."""
    names = [w["what"] for w in windows]
    values = [w["availability"] if w["availability"] is not None else 0.0 for w in windows]
    fig = Figure(figsize=(9, 0.45 * len(names) + 1.2))
    ax = fig.add_subplot()
    bars = ax.barh(names, values, color=["#4c72b0" if n == "no fault" else "#c44e52" for n in names])
    for bar, w in zip(bars, windows, strict=True):
        ax.annotate(
            f"{w['requests']} requests", (bar.get_width(), bar.get_y() + bar.get_height() / 2),
            xytext=(4, 0), textcoords="offset points", va="center", fontsize=7,
        )  # fmt: skip
    ax.set_xlim(0, 1.15)
    ax.set_xlabel("availability: share of requests answered successfully")
    ax.invert_yaxis()
    ax.grid(axis="x", alpha=0.3)
    return png(fig)


def resources_figure(resources: Json, faults: Sequence[Json]) -> bytes:
    """CPU (percent of one core) and resident memory of each process over time."""
    fig = Figure(figsize=(9, 6.5))
    cpu_ax, mem_ax = fig.subplots(2, 1, sharex=True)
    t = resources["t_s"]
    for name, values in resources["cpu_percent"].items():
        cpu_ax.plot(t, _nan(values), label=name, linewidth=1.2)
    for name, values in resources["rss_mb"].items():
        mem_ax.plot(t, _nan(values), label=name, linewidth=1.2)
    end = max(t, default=0.0)
    for ax in (cpu_ax, mem_ax):
        _shade(ax, faults, end)
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
    cpu_ax.set_ylabel("CPU (% of one core)")
    mem_ax.set_ylabel("resident memory (MB)")
    mem_ax.set_xlabel("seconds after the load started")
    cpu_ax.legend(fontsize=7, ncol=4)
    return png(fig)
