"""The run report: one self-contained HTML page (figures embedded as base64 PNG).

Built from a run's summary and series alone (plain data), so that `crossroads report RUN`
style rebuilds need nothing but the run folder. Every figure has a short explanation beside it
written for a classroom as much as for an architect.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

from reports import figures

__all__ = [
    "CSS",
    "build_report",
    "figure",
    "fmt",
    "fmt_estimate",
    "image",
    "page",
    "signed_percent",
    "signed_points",
    "signed_value",
    "table",
]

Json = Mapping[str, Any]

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
.figure { display: flex; gap: 1.5em; align-items: flex-start; flex-wrap: wrap; }
.figure img { max-width: 720px; width: 100%; border: 1px solid #eee; }
.figure .why { flex: 1; min-width: 240px; font-size: 0.95em; background: #f7f7f9;
  padding: 0.8em 1em; border-radius: 6px; }
table { border-collapse: collapse; font-size: 0.88em; margin: 0.8em 0; }
th, td { border-bottom: 1px solid #e3e3e3; padding: 0.3em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.key { display: flex; gap: 1em; flex-wrap: wrap; }
.key div { background: #eef3fb; padding: 0.6em 1em; border-radius: 6px; }
.key b { display: block; font-size: 1.3em; }
.note { color: #666; font-size: 0.85em; }
.sig { color: #b00; font-weight: 600; }
.left th, .left td { text-align: left; }
"""


def fmt(value: float | None, digits: int = 3) -> str:
    """A number with `digits` significant digits and thousands separators; "-" for none."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    decimals = max(0, digits - 1 - magnitude)
    return f"{value:,.{decimals}f}"


def signed_percent(error: float | None) -> str:
    """A signed fraction as a signed percentage with one decimal ("+4.2%", "-12.0%"); "-" for none."""
    if error is None or not math.isfinite(error):
        return "-"
    return f"{_no_minus_zero(100 * error):+.1f}%"


def signed_points(points: float | None) -> str:
    """A difference in percentage points, signed ("+2.0 pt"); "-" for none."""
    if points is None or not math.isfinite(points):
        return "-"
    return f"{_no_minus_zero(points):+.1f} pt"


def _no_minus_zero(value: float) -> float:
    # -0.04 would print as "-0.0": round first, and adding 0.0 turns -0.0 into 0.0
    return round(value, 1) + 0.0


def signed_value(value: float | None) -> str:
    """An effect (a difference in the figure's own unit), with its sign: "+0.300", "-0.200"."""
    text = fmt(value)
    return f"+{text}" if value is not None and text not in ("-", "0") and value > 0 else text


def fmt_estimate(e: Json | None, digits: int = 3) -> str:
    """ "mean ± half-width of the 95% interval"."""
    if not e or e.get("mean") is None:
        return "-"
    ci = e.get("ci95")
    return fmt(e["mean"], digits) + (f" ± {fmt(ci, 2)}" if ci else "")


def image(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def figure(png: bytes, alt: str, why: str) -> str:
    """A figure with its plain-language explanation beside it."""
    return f'<div class="figure">{image(png, alt)}<div class="why">{why}</div></div>'


def table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """An HTML table; `head` is escaped, the cells are HTML already."""
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def page(title: str, body: str) -> str:
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{CSS}</style></head><body>{body}</body></html>\n"
    )


def _key_figures(summary: Json) -> str:
    sc = summary["scenario"]
    items = [
        ("functional messages a year", fmt_estimate(summary.get("functional_messages_per_year"))),
        ("employer declarations a year", fmt_estimate(summary.get("employer_declarations_per_year"))),
        ("replications", str(sc["replications"])),
        ("measured window", f"{fmt(sc['duration_s'] / 3600)} h after {fmt(sc['warmup_s'] / 60)} min warm-up"),
    ]
    burden = summary.get("employer_burden_hours_per_year") or {}
    if burden.get("mean"):
        items.insert(2, ("employers' burden, hours a year", fmt_estimate(burden)))
    figures = "".join(f"<div><b>{v}</b>{html.escape(k)}</div>" for k, v in items)
    return _provenance_line(summary) + f'<div class="key">{figures}</div>'


def _calibrated(numbers: Sequence[Json]) -> int:
    return sum(1 for n in numbers if n["source"] != "assumed")


def _provenance_line(summary: Json) -> str:
    """One sentence: how many of the run's service times and latencies are assumed, how many calibrated."""
    numbers = summary.get("provenance")
    if numbers is None:  # a summary written before runs recorded it
        return ""
    calibrated = _calibrated(numbers)
    return (
        f"<p>Service times and latencies: {len(numbers) - calibrated} assumed, {calibrated} calibrated "
        '(see <a href="#provenance">where the numbers come from</a>).</p>'
    )


def _kinds_table(kinds: Json) -> str:
    rows = []
    for name, k in kinds.items():
        lat = k["latency_s"]
        rows.append(
            [
                html.escape(name),
                fmt_estimate(k["throughput_per_s"]),
                fmt_estimate(lat["mean"]),
                fmt_estimate(lat["p50"]),
                fmt_estimate(lat["p95"]),
                fmt_estimate(lat["p99"]),
                fmt(k.get("deadline_s")),
                fmt_estimate(k["availability"], 4),
                fmt_estimate(k["lost"]),
            ]
        )
    head = ["kind", "deliveries/s", "mean (s)", "p50 (s)", "p95 (s)", "p99 (s)", "deadline (s)", "availability", "lost"]
    return table(head, rows)


def _nodes_table(nodes: Sequence[Json], top: int = 15) -> str:
    busiest = sorted(nodes, key=lambda n: -(n["utilisation"]["mean"] or 0.0))[:top]
    rows = [
        [
            html.escape(n["id"]),
            html.escape(n["class"]),
            str(n["servers"]),
            fmt_estimate(n["utilisation"]),
            fmt_estimate(n["queue_mean"]),
            fmt_estimate(n["queue_max"]),
            fmt_estimate(n["served_per_s"]),
            fmt_estimate(n["lost"]),
        ]
        for n in busiest
    ]
    return table(["node", "class", "servers", "utilisation", "mean line", "longest line", "served/s", "lost"], rows)


def _sources_table(sources: Sequence[Json]) -> str:
    rows = [
        [
            html.escape(s["name"]),
            html.escape(s["kind"]),
            fmt_estimate(s["arrivals"]),
            fmt(s["expected_arrivals_in_window"]),
            fmt(100 * s["functional_share_of_pool"]) + " %",
            fmt(s["mean_deliveries_per_arrival"]),
            fmt_estimate(s["functional_messages"]),
        ]
        for s in sources
    ]
    head = ["source", "kind", "arrivals", "expected", "passed the checks", "deliveries each", "functional messages"]
    return table(head, rows)


def _events(summary: Json) -> str:
    items = [f"<li>{fmt(e['at_s'] / 60)} min: {html.escape(e['what'])}</li>" for e in summary.get("events", [])]
    items += [
        f"<li>{fmt(s['from_s'] / 60)} min: {html.escape(s['what'])}"
        + (f" until {fmt(s['until_s'] / 60)} min" if s["until_s"] is not None else "")
        + "</li>"
        for s in summary.get("surges", [])
    ]
    return f"<ul>{''.join(items)}</ul>" if items else "<p>No timed events in this scenario.</p>"


_WHY_NETWORK = """Each dot is a node of the network: the crossroads core in the middle (star), the sector hubs
of the secondary networks (squares) with their members fanned out behind them, the access points of
employers and citizens (triangles) and the authentication service (diamond). The colour says how busy
each node was: the share of its servers' time spent working. Yellow nodes are the ones to watch: a
node near 1 cannot keep up, and messages queue in front of it."""

_WHY_LATENCY = """For every kind of message: how long it took from the moment it was sent until it was
delivered (for a consultation: until the answer was back with the sender). The horizontal axis is
logarithmic: each step to the right is ten times longer. A dotted line marks the kind's deadline;
whatever lies to its right arrived too late. Fan-outs count each destination separately."""

_WHY_THROUGHPUT = """Deliveries per second, interval by interval, per kind of message: the daily rhythm of
citizens and offices, the peaks of the declarations. Red dashed lines are the scenario's timed events
(a node failing or coming back, a capacity change); orange bands are traffic surges. A dashed black
line shows messages lost, if any."""

_WHY_QUEUE = """How many messages were waiting, on average over each interval, in front of the busiest
nodes (and at all agency sites together). A line that keeps rising means arrivals outpace the node's
servers: the backlog grows until the load drops or capacity returns."""

_WHY_AVAILABILITY = """For the agencies of each sector: the share of the messages meant for them that
arrived within their deadline. 1 means every message on time. Messages lost, late, or still under way
when the run ended all count against it. The bars show the 95% confidence interval over the
replications."""


def _footnote(summary: Json) -> str:
    lost = ", ".join(f"{k} {fmt_estimate(v)}" for k, v in summary.get("lost_by_reason", {}).items()) or "none"
    return (
        f'<p class="note">Scaled to a year: {html.escape(str(summary.get("year_scaling", "")))}. '
        f"Lost by reason: {html.escape(lost)}. "
        f"Still under way when the run ended: {fmt_estimate(summary.get('unresolved_at_end'))}.</p>"
    )


_ALL_ASSUMED = """Every service time and latency of this scenario is an assumption, not a measurement.
The shipped scenarios' numbers are assumptions about CBSS: no public source gives its service times,
so they were chosen to keep the baseline well below saturation and let a what-if push it. To run the
model on measured numbers, calibrate it against your own deployment with
<code>crossroads calibrate</code> (docs/CALIBRATION.md), copy the calibrated numbers into a scenario
and name each under its <code>sources:</code>: this table then says which are calibrated, and from what."""

_NOT_LISTED = """Server counts, queue limits, bandwidths, losses and traffic volumes are the scenario's too, and
are not listed here."""


def _provenance_section(summary: Json) -> str:
    """The table of the run's service times and latencies, each with its source."""
    heading = '<h2 id="provenance">Where the numbers come from</h2>'
    numbers = summary.get("provenance")
    if numbers is None:
        return heading + "<p>This run's summary does not say (it was written before runs recorded it).</p>"
    calibrated = _calibrated(numbers)
    intro = (
        _ALL_ASSUMED
        if not calibrated
        else f"Calibrated: {calibrated} of these {len(numbers)} numbers (the source column says from what, as the "
        f"scenario's <code>sources:</code> gives it). Assumed: the other {len(numbers) - calibrated}, assumptions "
        "rather than measurements."
    )
    rows = [[html.escape(n["path"]), html.escape(n["value"]), html.escape(n["source"])] for n in numbers]
    listing = table(["number (YAML path in the scenario)", "value", "source"], rows)
    return f'{heading}<p>{intro}</p><div class="left">{listing}</div><p class="note">{_NOT_LISTED}</p>'


def build_report(summary: Json, series: Json) -> str:
    """The HTML page of one run."""
    sc = summary["scenario"]
    utilisation = {n["id"]: n["utilisation"]["mean"] or 0.0 for n in summary["nodes"]}
    events, surges = summary.get("events", []), summary.get("surges", [])
    parts = [
        f"<h1>What-if simulation: {html.escape(sc['name'])}</h1>",
        f"<p>{html.escape(sc.get('description', ''))}</p>",
        f'<p class="note">seed {sc["seed"]}, {sc["replications"]} replications, calendar start {sc["start"]}. '
        "Figures are means over the replications with their 95% confidence interval (±); "
        "the warm-up is left out.</p>",
        _key_figures(summary),
        "<h2>The network</h2>",
        figure(figures.network_figure(summary.get("drawing", {}), utilisation), "network", _WHY_NETWORK),
        "<h2>How long messages take</h2>",
        figure(figures.latency_figure(summary["kinds"]), "latency distributions", _WHY_LATENCY),
        _kinds_table(summary["kinds"]),
        "<h2>Over time</h2>",
        figure(figures.throughput_figure(series, events, surges), "throughput over time", _WHY_THROUGHPUT),
        figure(figures.queue_figure(series, events, surges), "queue lengths over time", _WHY_QUEUE),
        "<h3>Events</h3>",
        _events(summary),
        "<h2>Availability per sector</h2>",
        figure(
            figures.availability_figure(summary.get("availability_by_group", {})), "availability", _WHY_AVAILABILITY
        ),
        "<h2>The busiest nodes</h2>",
        _nodes_table(summary["nodes"]),
        "<h2>Where the traffic comes from</h2>",
        _sources_table(summary["sources"]),
        _footnote(summary),
        _provenance_section(summary),
    ]
    return page(f"What-if: {sc['name']}", "\n".join(parts))
