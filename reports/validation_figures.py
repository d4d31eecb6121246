"""The validation page's figures: a calibrated model's predictions beside the live testbed's
measurements at held-out offered rates, drawn with matplotlib (Agg, no pyplot state) as PNG bytes.

Plain data in: validation.json as `crossroads validate` writes it (see reports/validation.py).
Any number may be null where a level had no answer: it is left out of its curve, never drawn as
zero; a bar with no error carries "n/a" instead.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from reports.figures import png

__all__ = [
    "QUANTITIES",
    "Quantity",
    "cpu_figure",
    "error_figure",
    "goal_width",
    "latency_figure",
    "number",
    "rate_text",
    "timeline_figure",
]

Json = Mapping[str, Any]
Point = tuple[float, float]
_GOAL = re.compile(r"within\s*\D?\s*(\d+(?:\.\d+)?)")


@dataclass(frozen=True, slots=True)
class Quantity:
    """One figure the model predicts and the testbed measures, as validation.json names it."""

    key: str  # in a level's "predicted" and "measured"
    label: str  # for people, with its unit
    scale: float  # from the JSON's unit to the shown one (core CPU: a fraction of one core, shown in %)
    error_key: str  # in a level's "error" (and "goals")
    points: bool = False  # the error is in percentage points, not a signed fraction


QUANTITIES = (
    Quantity("throughput", "throughput (answered/s)", 1.0, "throughput"),
    Quantity("mean_ms", "mean latency (ms)", 1.0, "mean_ms"),
    Quantity("p50_ms", "median latency, p50 (ms)", 1.0, "p50_ms"),
    Quantity("p90_ms", "p90 latency (ms)", 1.0, "p90_ms"),
    Quantity("p99_ms", "p99 latency (ms)", 1.0, "p99_ms"),
    Quantity("core_cpu", "core CPU (% of one core)", 100.0, "core_cpu_points", points=True),
)
_BY_KEY = {q.key: q for q in QUANTITIES}
_COLOURS = {"throughput": "C2", "mean_ms": "C0", "p50_ms": "C4", "p90_ms": "C5", "p99_ms": "C1", "core_cpu": "C3"}


def number(side: Json | None, key: str) -> float | None:
    """`side[key]` as a finite float; None where it is absent, null or not a finite number."""
    value = (side or {}).get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def rate_text(rate: float | None) -> str:
    """An offered rate as people write it: "122.5", "100", "1,250"; "-" for none."""
    if rate is None or not math.isfinite(rate):
        return "-"
    return f"{rate:,.2f}".rstrip("0").rstrip(".")


def goal_width(goal: Json | None) -> float | None:
    """The half-width of a goal's band from its text ("within 5%" -> 5, "within 5 points" -> 5),
    in the unit its figure's error is shown in (percent or points); None where it says no number."""
    match = _GOAL.search(str((goal or {}).get("goal", "")))
    return float(match.group(1)) if match else None


def _levels(validation: Json) -> list[Json]:
    return [level for level in validation.get("levels") or [] if number(level, "rate") is not None]


def _points(levels: Sequence[Json], side: str, q: Quantity) -> list[Point]:
    """(rate, value) of `q` on one side ("predicted" or "measured") of every level that has it."""
    values = ((level["rate"], number(level.get(side), q.key)) for level in levels)
    return [(float(rate), v * q.scale) for rate, v in values if v is not None]


def _knee_points(knee: Json, key: str) -> list[Point]:
    """(rate, p99) of the knee's staircase for one side; a null rate or p99 is left out."""
    pairs = zip(knee.get("rates") or [], knee.get(key) or [], strict=False)  # a short list must not crash the page
    return [(float(r), float(v)) for r, v in pairs if r is not None and v is not None]


def _band(levels: Sequence[Json], q: Quantity) -> tuple[list[float], list[float], list[float]]:
    """The model's interval of `q` at each level that has one: rates, lows, highs (by rate)."""
    rows = []
    for level in levels:
        ci = ((level.get("predicted") or {}).get("ci") or {}).get(q.key)
        if isinstance(ci, Sequence) and len(ci) == 2 and None not in ci:
            rows.append((float(level["rate"]), ci[0] * q.scale, ci[1] * q.scale))
    rows.sort()
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]


def _curve(ax: Any, levels: Sequence[Json], q: Quantity, knee: tuple[list[Point], list[Point]]) -> list[float]:
    """The model of `q` as a line over its interval band, the measurements as open circles; the
    knee's staircase points (if any) join the curves. Returns every value drawn."""
    name, colour = q.label.split(" (")[0], _COLOURS[q.key]
    model = sorted(_points(levels, "predicted", q) + knee[0])
    measured = sorted(_points(levels, "measured", q) + knee[1])
    rates, low, high = _band(levels, q)
    _fill(ax, (rates, low, high), [r for r, _ in model], colour)
    if model:
        ax.plot(*zip(*model, strict=True), color=colour, linewidth=1.6, marker=".", label=f"{name}, model")
    if measured:
        ax.plot(*zip(*measured, strict=True), linestyle="none", marker="o", markerfacecolor="white",
                markeredgecolor=colour, markeredgewidth=1.5, label=f"{name}, measured")  # fmt: skip
    return [v for _, v in model + measured] + low + high


def _fill(ax: Any, band: tuple[list[float], list[float], list[float]], line: Sequence[float], colour: str) -> None:
    """The model's interval band, broken wherever its line has points the band has not (the knee's
    staircase carries no interval): a band drawn straight across them would stray from its line.
    A level left on its own shows its interval as a short vertical bar."""
    rates, low, high = band
    runs: list[list[int]] = []
    for i, rate in enumerate(rates):
        if runs and not any(rates[i - 1] < r < rate for r in line):
            runs[-1].append(i)
        else:
            runs.append([i])
    for run in runs:
        if len(run) > 1:
            ax.fill_between([rates[i] for i in run], [low[i] for i in run], [high[i] for i in run],
                            color=colour, alpha=0.2, linewidth=0)  # fmt: skip
        else:
            ax.vlines(rates[run[0]], low[run[0]], high[run[0]], color=colour, alpha=0.3, linewidth=6)


def _calibration_rug(ax: Any, validation: Json) -> None:
    """The rates the model was fitted at, as ticks along the bottom of the axes."""
    rates = [float(r) for r in validation.get("calibration_levels") or [] if r is not None]
    if rates:
        ax.plot(rates, [0.0] * len(rates), linestyle="none", marker="|", markersize=18, markeredgewidth=2,
                color="dimgrey", transform=ax.get_xaxis_transform(), clip_on=False,
                label="calibration levels (model fitted here)")  # fmt: skip


def _knee_marks(ax: Any, knee: Json) -> None:
    """The p99 limit that defines the knee, and the knee's rate as the model and the testbed put it."""
    limit = number(knee, "p99_limit_ms")
    if limit is not None:
        ax.axhline(limit, color="crimson", linestyle="--", linewidth=1, label=f"p99 limit ({rate_text(limit)} ms)")
    for side, style in (("predicted", "-."), ("measured", ":")):
        rate = number(knee, side)
        if rate is not None:
            label = f"knee, {'model' if side == 'predicted' else 'measured'} ({rate_text(rate)}/s)"
            ax.axvline(rate, color="crimson", linestyle=style, linewidth=1.2, label=label)


def _finish(ax: Any, drawn: Sequence[float], ylabel: str, empty: str) -> None:
    ax.set_xlabel("offered load (requests per second)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, which="both")
    if not drawn:  # say so, rather than draw empty axes
        ax.text(0.5, 0.5, empty, ha="center", va="center", transform=ax.transAxes)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper left", ncol=2)


def latency_figure(validation: Json) -> bytes:
    """Mean and p99 latency against offered load: the model's lines and bands, the measured points,
    the knee's staircase on the p99 curves, the p99 limit, the calibration rates; log y-axis."""
    levels, knee = _levels(validation), validation.get("knee") or {}
    fig = Figure(figsize=(9, 5))
    ax = fig.add_subplot()
    drawn = _curve(ax, levels, _BY_KEY["mean_ms"], ([], []))
    staircase = (_knee_points(knee, "predicted_p99_ms"), _knee_points(knee, "measured_p99_ms"))
    drawn += _curve(ax, levels, _BY_KEY["p99_ms"], staircase)
    _knee_marks(ax, knee)
    _calibration_rug(ax, validation)
    if any(v > 0 for v in drawn):
        ax.set_yscale("log")
    _finish(ax, drawn, "latency (ms, logarithmic)", "no latency predicted or measured")
    return png(fig)


def cpu_figure(validation: Json) -> bytes:
    """The crossroads core's CPU against offered load: the model's line and band, the measured points."""
    levels = _levels(validation)
    fig = Figure(figsize=(9, 4.5))
    ax = fig.add_subplot()
    drawn = _curve(ax, levels, _BY_KEY["core_cpu"], ([], []))
    _calibration_rug(ax, validation)
    ax.set_ylim(bottom=0, top=max([*drawn, 10.0]) * 1.15)
    _finish(ax, drawn, "core CPU (% of one core)", "no core CPU predicted or measured")
    return png(fig)


def error_figure(validation: Json) -> bytes:
    """The signed error of each figure at each held-out level, as grouped bars (percent; core CPU in
    points of one core), each bar over a shaded band as wide as its goal. The axis is sized to the
    goals and the errors below the knee; a bar beyond it is cut at the edge and carries its value."""
    levels, goals = _levels(validation), validation.get("goals") or {}
    shown = [q for q in QUANTITIES if any(q.error_key in (level.get("error") or {}) for level in levels)]
    errors = {q.key: [_error(level, q) for level in levels] for q in shown}
    widths = {q.key: goal_width(goals.get(q.error_key)) for q in shown}
    top = _error_limit(levels, errors, [w for w in widths.values() if w is not None])
    fig = Figure(figsize=(9, 4.8))
    ax = fig.add_subplot()
    width = 0.84 / max(1, len(shown))
    for i, q in enumerate(shown):
        xs = np.arange(len(levels)) - 0.42 + width * (i + 0.5)
        half = widths[q.key]
        if half is not None:
            ax.bar(xs, 2 * half, bottom=-half, width=width, color=_COLOURS[q.key], alpha=0.15, linewidth=0, zorder=0)
        _error_bars(ax, xs, errors[q.key], q, (width, top))
    _error_axes(ax, levels, top)
    return png(fig)


def _error(level: Json, q: Quantity) -> float | None:
    """A level's error of `q` in the unit shown: percent, or points for core CPU."""
    e = number(level.get("error"), q.error_key)
    return None if e is None else e * (1.0 if q.points else 100.0)


def _error_limit(levels: Sequence[Json], errors: Mapping[str, Sequence[float | None]], goals: Sequence[float]) -> float:
    """The axis' half-height: room for every goal band and every error below the knee (past it,
    errors of hundreds of percent would flatten the ones that matter to nothing)."""
    below = [i for i, level in enumerate(levels) if level.get("below_knee") is not False]
    sizes = [abs(e) for values in errors.values() for i in below if (e := values[i]) is not None]
    return 1.2 * max([*sizes, *goals, 5.0])


def _error_bars(ax: Any, xs: Any, errors: Sequence[float | None], q: Quantity, size: tuple[float, float]) -> None:
    """One bar per level for `q`'s error: "n/a" where there is none, its value where it is cut."""
    width, top = size
    cut = [0.0 if e is None else max(-top, min(top, e)) for e in errors]
    label = q.label.split(" (")[0] + (" (points)" if q.points else "")
    ax.bar(xs, cut, width=width * 0.8, color=_COLOURS[q.key], label=label, zorder=2)
    for x, e, c in zip(xs, errors, cut, strict=True):
        if e is None:
            ax.text(x, 0, "n/a", rotation=90, fontsize=7, ha="center", va="bottom", color="dimgrey")
        elif e != c:
            text = f"{e:+.0f}{' pt' if q.points else '%'}"
            ax.text(x, c * 0.97, text, rotation=90, fontsize=7, ha="center", va="top" if c > 0 else "bottom",
                    color="white", fontweight="bold", zorder=3)  # fmt: skip


def _error_axes(ax: Any, levels: Sequence[Json], top: float) -> None:
    """Level names on x (past the knee marked), the zero line, the legend above."""
    ax.set_xticks(range(len(levels)))
    ax.set_xticklabels(
        [f"{rate_text(level['rate'])}/s" + ("\npast knee" if level.get("below_knee") is False else "")
         for level in levels], fontsize=8,
    )  # fmt: skip
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_ylim(-top, top)
    ax.set_ylabel("signed error: model - measured\n(% of measured; core CPU: points of one core)")
    ax.set_xlabel("held-out level (offered requests per second)")
    ax.grid(axis="y", alpha=0.3)
    if not levels:
        ax.text(0.5, 0.5, "no held-out level", ha="center", va="center", transform=ax.transAxes)
        return
    handles, labels = ax.get_legend_handles_labels()
    goal = Patch(color="grey", alpha=0.25, label="shaded: the figure's goal")
    ax.legend([*handles, goal], [*labels, goal.get_label()], fontsize=7, ncol=3, loc="lower center",
              bbox_to_anchor=(0.5, 1.0), frameon=False)  # fmt: skip


def timeline_figure(whatif: Json) -> bytes:
    """A fault what-if's mean latency in each step of the measured window: the model's and the
    testbed's, with the fault (solid) and without it (dashed), the fault's window shaded."""
    line = whatif.get("timeline") or {}
    step = number(line, "step_s") or 0.5
    fig = Figure(figsize=(9, 4.2))
    ax = fig.add_subplot()
    drawn: list[float] = []
    for side, colour, who in (("predicted", "C0", "model"), ("measured", "C1", "testbed")):
        for suffix, style, what in (("", "-", "with the fault"), ("_baseline", "--", "without")):
            points = [(step * (i + 0.5), float(v)) for i, v in enumerate(line.get(side + suffix) or [])
                      if isinstance(v, (int, float))]  # fmt: skip
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, style, color=colour, marker="o" if suffix == "" else None, markersize=3,
                        linewidth=1.4 if suffix == "" else 1.0, label=f"{who}, {what}")  # fmt: skip
                drawn += list(ys)
    for fault in whatif.get("faults") or []:
        start, until = number(fault, "from_s"), number(fault, "until_s")
        if start is not None:
            ax.axvspan(start, until if until is not None else start + step, color="grey", alpha=0.2, linewidth=0)
    ax.set_xlabel("seconds into the measured window (each point: the requests due in that half second)")
    ax.set_ylabel("mean latency (ms)")
    ax.set_ylim(0, max(drawn, default=1.0) * 1.35)  # room above the lines for the legend
    ax.grid(alpha=0.3)
    if not drawn:
        ax.text(0.5, 0.5, "no timeline predicted or measured", ha="center", va="center", transform=ax.transAxes)
    else:
        ax.legend(fontsize=7, loc="upper right", ncol=2)
    return png(fig)
