"""The report's figures, drawn with matplotlib (Agg, no pyplot state) and returned as PNG bytes.

Every function takes plain data (the run's summary and series as written to JSON) and imports
nothing of the testbed, as the floors ask: a report can be rebuilt from a run folder alone.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

__all__ = [
    "availability_figure",
    "difference_figure",
    "latency_figure",
    "network_figure",
    "png",
    "queue_figure",
    "throughput_figure",
]

Json = Mapping[str, Any]
_DPI = 100
_CLASS_MARKERS = {
    "core": ("*", 260),
    "hub": ("s", 70),
    "authentication": ("D", 60),
    "portal": ("^", 70),
    "batch": ("^", 70),
    "secretariat": ("v", 30),
}


def png(fig: Figure) -> bytes:
    """`fig` as PNG bytes, without a timestamp (so the same figure gives the same bytes)."""
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI, bbox_inches="tight", metadata={"Software": None})
    return buffer.getvalue()


def _axis(series: Json) -> tuple[list[float], float, str]:
    """Interval edges in the unit that reads best for the window's length, the unit, its label."""
    edges = [*series["t_s"], series["t_end_s"]]
    scale = _scale(edges)
    unit = {3600.0: "hours", 60.0: "minutes", 1.0: "seconds"}[scale]
    return [e / scale for e in edges], scale, f"{unit} into the measured window"


def _stairs(ax: Any, edges: Sequence[float], values: Sequence[float | None], **style: Any) -> None:
    ax.stairs([math.nan if v is None else v for v in values], edges, **style)


def _mark(ax: Any, events: Sequence[Json], surges: Sequence[Json], scale: float) -> None:
    """Draw the scenario's events as dashed lines and its surges as shaded spans."""
    for e in events[:20]:
        ax.axvline(e["at_s"] / scale, color="crimson", linestyle="--", linewidth=1)
        where = (e["at_s"] / scale, 1)
        ax.annotate(e["what"], where, xycoords=("data", "axes fraction"), rotation=90, fontsize=7, va="top", ha="right")
    for s in surges:
        end = s["until_s"] if s["until_s"] is not None else None
        if end is not None:
            ax.axvspan(s["from_s"] / scale, end / scale, color="orange", alpha=0.15, label=s["what"])


def _scale(t: Sequence[float]) -> float:
    span = max(t) if t else 0.0
    return 3600.0 if span >= 3 * 3600 else 60.0 if span >= 180 else 1.0


def _y_scale(ax: Any) -> None:
    """Linear from 0, or logarithmic above 1 when the curves span orders of magnitude."""
    high = ax.get_ylim()[1]
    if high > 50:
        ax.set_yscale("symlog", linthresh=1)
    ax.set_ylim(bottom=0)


def network_figure(drawing: Json, utilisation: Mapping[str, float]) -> bytes:
    """The network drawn from the core outwards, each node coloured by its utilisation."""
    nodes = drawing.get("nodes", [])
    fig = Figure(figsize=(8, 8))
    ax = fig.add_subplot()
    ax.set_aspect("equal")
    ax.axis("off")
    if not nodes:
        return png(fig)
    if "x" not in nodes[0]:  # explicit networks: stations in a row
        for i, n in enumerate(nodes):
            n = {**n, "x": float(i), "y": 0.0}
            nodes[i] = n
    where = {n["id"]: (n["x"], n["y"]) for n in nodes}
    # spokes straight into the core are left out: thousands of them would only grey the picture
    segments = [
        (where[n["id"]], where[n["parent"]]) for n in nodes if n.get("parent") in where and n["parent"] != "CORE"
    ]
    segments += [(where[a], where[b]) for a, b in drawing.get("edges", []) if a in where and b in where]
    ax.add_collection(LineCollection(segments, colors="#bbbbbb", linewidths=0.3, zorder=1))
    vmax = max(0.05, max((utilisation.get(n["id"], 0.0) for n in nodes), default=0.0))
    for cls in dict.fromkeys(n["class"] for n in nodes):
        group = [n for n in nodes if n["class"] == cls]
        marker, size = _CLASS_MARKERS.get(cls, ("o", 8 if len(nodes) > 100 else 120))
        colours = [utilisation.get(n["id"], 0.0) for n in group]
        xs, ys = [n["x"] for n in group], [n["y"] for n in group]
        points = ax.scatter(
            xs, ys, c=colours, cmap="viridis", vmin=0, vmax=vmax, s=size, marker=marker, zorder=2, label=cls
        )
    fig.colorbar(points, ax=ax, shrink=0.6, label="utilisation (share of server time busy)")
    for n in nodes:
        if n["class"] in ("core", "hub", "authentication", "portal", "batch") or len(nodes) <= 30:
            ax.annotate(n["id"], where[n["id"]], fontsize=7, xytext=(4, 4), textcoords="offset points")
    ax.legend(loc="lower left", fontsize=7, markerscale=0.8, frameon=False)
    ax.autoscale_view()
    return png(fig)


def latency_figure(kinds: Json) -> bytes:
    """How long deliveries took, per message kind: share of deliveries per (logarithmic) time bin."""
    fig = Figure(figsize=(9, 4.5))
    ax = fig.add_subplot()
    for name, k in kinds.items():
        h = k["histogram"]
        edges, share = h["edges_s"], h["share"]
        if not any(share):
            continue
        line = ax.stairs(share, edges, label=name, linewidth=1.5)
        if k.get("deadline_s"):
            ax.axvline(k["deadline_s"], color=line.get_edgecolor(), linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlabel("time from sending to delivery (seconds, logarithmic; dotted: the kind's deadline)")
    ax.set_ylabel("share of deliveries")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return png(fig)


def throughput_figure(series: Json, events: Sequence[Json], surges: Sequence[Json]) -> bytes:
    """Deliveries per second over time, per kind, with the scenario's events marked."""
    fig = Figure(figsize=(9, 4.5))
    ax = fig.add_subplot()
    edges, scale, label = _axis(series)
    for name, values in series["throughput_per_s"].items():
        _stairs(ax, edges, values, label=name, linewidth=1.5)
    lost = series.get("lost_per_s", [])
    if any(v for v in lost if v):
        _stairs(ax, edges, lost, label="lost", color="black", linestyle="--")
    return _timeline(fig, ax, (events, surges, scale), label, "deliveries per second")


def queue_figure(series: Json, events: Sequence[Json], surges: Sequence[Json], top: int = 6) -> bytes:
    """Mean length of the waiting line over time: the busiest tracked nodes, and all agencies together."""
    fig = Figure(figsize=(9, 4.5))
    ax = fig.add_subplot()
    edges, scale, label = _axis(series)
    queues = series["queue"]
    busiest = sorted(queues, key=lambda n: -max((v or 0.0 for v in queues[n]), default=0.0))[:top]
    for name in busiest:
        _stairs(ax, edges, queues[name], label=name, linewidth=1.5)
    if "agency" in series.get("class_queue", {}):
        _stairs(ax, edges, series["class_queue"]["agency"], label="all agency sites", color="grey", linestyle="--")
    return _timeline(fig, ax, (events, surges, scale), label, "messages waiting (time-average)")


def _timeline(
    fig: Figure, ax: Any, marks: tuple[Sequence[Json], Sequence[Json], float], xlabel: str, ylabel: str
) -> bytes:
    """A figure over the run's time, finished: the scenario's events and surges marked (`_mark`),
    the axes labelled and scaled, a legend, a grid; its PNG."""
    _mark(ax, *marks)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    _y_scale(ax)
    ax.legend(fontsize=8, ncol=2)
    ax.grid(alpha=0.3)
    return png(fig)


def availability_figure(groups: Json) -> bytes:
    """Share of messages delivered within their deadline, per destination sector, with 95% intervals."""
    names = list(groups)
    fig = Figure(figsize=(9, 0.35 * len(names) + 1.2))
    ax = fig.add_subplot()
    means = [groups[n]["mean"] for n in names]
    errors = [groups[n]["ci95"] or 0.0 for n in names]
    ax.barh(names, means, xerr=errors, color="#4c72b0", capsize=3)
    ax.set_xlim(min(0.9, min(means, default=1.0) - 0.02) if means else 0, 1.0)
    ax.set_xlabel("availability: share delivered within the deadline (bars: 95% confidence interval)")
    ax.invert_yaxis()
    ax.grid(axis="x", alpha=0.3)
    return png(fig)


def difference_figure(rows: Sequence[Json], limit: int = 25) -> bytes:
    """Relative change B vs A of the significant figures (largest first)."""
    usable = [r for r in rows if r["significant"] and r["relative"] is not None and math.isfinite(r["relative"])]
    chosen = sorted(usable, key=lambda r: -abs(r["relative"]))[:limit]
    fig = Figure(figsize=(9, 0.3 * len(chosen) + 1.2))
    ax = fig.add_subplot()
    labels = [f"{r['group']}: {r['figure']}" for r in chosen]
    values = [100 * r["relative"] for r in chosen]
    ax.barh(labels, values, color=["#c44e52" if v > 0 else "#55a868" for v in values])
    ax.set_xlabel("change of B against A (%), significant differences only")
    if chosen:
        ax.axvline(0, color="black", linewidth=0.8)
    else:  # say so, rather than draw empty axes with meaningless ticks
        ax.set_xticks([])
        ax.set_yticks([])
        ax.text(0.5, 0.5, "no figure differs significantly", ha="center", va="center", transform=ax.transAxes)
    ax.invert_yaxis()
    ax.grid(axis="x", alpha=0.3)
    return png(fig)
