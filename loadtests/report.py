"""The load-test report: one self-contained HTML page, in the style of the simulation reports.

Built from the run's summary.json and series.json alone (plain data), with the page, number
format and image helpers of `reports/html.py`; every figure has a short explanation beside it.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from loadtests import figures
from reports.html import figure, fmt, page, table

__all__ = ["build_loadtest_report", "soak_text"]

Json = Mapping[str, Any]

_WHY_THROUGHPUT = """Requests per second, second by second, per kind of message (the black line: all that
were answered; the red dashed line: those that failed). The users send on a schedule of their own
at the stage's target rate (open loop), so when the core or an agency falls behind, the rate does
not quietly drop: the failures and the latency below show it. Shaded spans are the faults."""

_WHY_LATENCY = """How long requests took, second by second: the median and the 99th percentile, on a
logarithmic scale. Time is counted from the moment each request was due, so a request that had to
wait for the user to be free again counts that wait too. A frozen core shows as a wall of latency;
a killed agency host as failed consultations and queued declarations."""

_WHY_AVAILABILITY = """The share of requests answered successfully in each fault window (red) and in the
rest of the run (blue). A consultation whose agency is down fails: the core answers at once that it
could not be delivered. A declaration or mutation for an agency that is down is still accepted: the
core keeps it in its outbox and delivers it when the agency is back (checked below)."""

_WHY_RESOURCES = """CPU (percent of one core; this machine has two) and resident memory of the crossroads
core, the agency hosts and the Locust processes, sampled every second with psutil. A host killed by
a fault disappears and comes back under the same name. The memory slope in the table is taken over
the second half of the load only (the first half is the warm-up: connections open, caches fill)."""


def _share(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f} %"


def _key_figures(summary: Json) -> str:
    o = summary["overall"]
    items = [
        ("requests answered per second", fmt(o["per_s"])),
        ("availability", _share(o["availability"])),
        ("median latency (ms)", fmt(o["p50_ms"])),
        ("p99 latency (ms)", fmt(o["p99_ms"])),
        ("guarantees", "all held" if summary["ok"] else "BROKEN"),
    ]
    return '<div class="key">' + "".join(f"<div><b>{v}</b>{html.escape(k)}</div>" for k, v in items) + "</div>"


def _guarantees(checks: Sequence[Json]) -> str:
    rows = [
        [html.escape(c["name"]), "yes" if c["ok"] else '<span class="sig">NO</span>', html.escape(c["detail"])]
        for c in checks
    ]
    return table(["guarantee", "held", "what was found"], rows)


def _kinds(by_name: Json) -> str:
    rows = [
        [html.escape(name), str(k["requests"]), fmt(k["per_s"]), _share(k["availability"]),
         fmt(k["p50_ms"]), fmt(k["p95_ms"]), fmt(k["p99_ms"]), fmt(k["max_ms"]),
         html.escape(", ".join(f"{e} {n}" for e, n in k["errors"].items()) or "-")]
        for name, k in by_name.items()
    ]  # fmt: skip
    return table(["name", "requests", "per s", "availability", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors"], rows)


def _windows(windows: Sequence[Json]) -> str:
    rows = [
        [html.escape(w["what"]), fmt(w["from_s"]), fmt(w["until_s"]), str(w["requests"]),
         _share(w["availability"]), fmt(w["p99_ms"]),
         html.escape(", ".join(f"{e} {n}" for e, n in w["errors"].items()) or "-")]
        for w in windows
    ]  # fmt: skip
    return table(["window", "from s", "until s", "requests", "availability", "p99 ms", "errors"], rows)


def _resources(resources: Json) -> str:
    names = list(resources["peak_rss_mb"])
    rows = [
        [html.escape(n), fmt(resources["mean_cpu_percent"].get(n)), fmt(resources["peak_cpu_percent"].get(n)),
         fmt(resources["peak_rss_mb"].get(n)), fmt(resources["rss_slope_mb_per_min"].get(n))]
        for n in names
    ]  # fmt: skip
    return table(["process", "mean CPU %", "peak CPU %", "peak memory MB", "memory slope MB/min (second half)"], rows)


def _plan(summary: Json) -> str:
    sc = summary["scenario"]
    stages = "; ".join(
        f"{fmt(s['duration'])} s with {s['users']} users"
        + (f" at {fmt(s['rate'])} requests/s" if s["rate"] is not None else " (closed loop)")
        for s in sc["stages"]
    )
    mix = ", ".join(f"{user} {100 * share:.0f} %" for user, share in sc["user_shares"].items())
    return (
        f"<p>Scenario <code>{html.escape(sc['file'])}</code>, seed {sc['seed']}. Stages: {html.escape(stages)}. "
        f"Users: {html.escape(mix)} (mix: {html.escape(sc['mix_origin'])}). Budget: at most "
        f"{_share(sc['budget']['errors'])} failed"
        + (f", p99 at most {fmt(sc['budget']['p99_ms'])} ms" if sc["budget"]["p99_ms"] else "")
        + ".</p>"
    )


def _files(summary: Json) -> str:
    items = "".join(f'<li><a href="{html.escape(f)}">{html.escape(f)}</a></li>' for f in summary.get("files", []))
    return f"<ul>{items}</ul>"


def build_loadtest_report(summary: Json, series: Json) -> str:
    """The HTML page of one load test."""
    faults = summary["faults"]
    o = summary["overall"]
    outbox = summary["outbox"]
    parts = [
        f"<h1>Load test: {html.escape(summary['scenario']['file'].rsplit('/', 1)[-1])}</h1>",
        _plan(summary),
        f'<p class="note">{o["requests"]} requests in {fmt(summary["run"]["duration_s"])} s from '
        f"{summary['run']['processes']} Locust process(es); {o['acknowledged']} acknowledged by the core "
        f"with an audit index. Outbox after the run: {outbox['pending']} deliveries pending "
        f"after {fmt(outbox['drain_s'])} s of draining.</p>",
        _key_figures(summary),
        "<h2>The guarantees</h2>",
        _guarantees(summary["guarantees"]),
        "<h2>Over time</h2>",
        figure(figures.throughput_figure(series, faults), "throughput over time", _WHY_THROUGHPUT),
        figure(figures.latency_figure(series, faults), "latency over time", _WHY_LATENCY),
        "<h2>The faults</h2>",
        figure(figures.availability_figure(summary["windows"]), "availability per fault window", _WHY_AVAILABILITY),
        _windows(summary["windows"]),
        "<h2>Per kind of message</h2>",
        _kinds(o["by_name"]),
        "<h2>CPU and memory</h2>",
        figure(figures.resources_figure(series["resources"], faults), "cpu and memory", _WHY_RESOURCES),
        _resources(summary["resources"]),
        "<h2>Files of this run</h2>",
        _files(summary),
    ]
    return page(f"Load test: {summary['scenario']['file']}", "\n".join(parts))


def _num(value: float | None, unit: str = "", digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}{unit}"


def _trend_line(name: str, m: Json | None) -> str:
    if m is None:
        return f"  {name:8}  no samples in the second half"
    verdict = "flat" if m["flat"] else "NOT flat"
    return (f"  {name:8}{m['slope_mb_per_min']:+9.2f} MB/min   grew {m['total_growth_mb']:+8.1f} MB "
            f"({m['start_mb']:.0f} -> {m['end_mb']:.0f}), {m['second_half_growth_mb']:+.1f} in the second half   "
            f"{verdict}")  # fmt: skip


def _breakdown_lines(b: Json | None) -> list[str]:
    if b is None:
        return []
    parts = [("resident", b["rss_mb"]), ("SQLite", b["sqlite_mb"]), ("malloc in use", b["malloc_in_use_mb"]),
             ("malloc free but kept", b["malloc_free_mb"]), ("Python traced", b["python_traced_mb"])]  # fmt: skip
    grown = ", ".join(f"{k} {v:+.1f} MB" for k, v in parts if v is not None)
    objects = ", ".join(f"{k} {v:+,}" for k, v in list(b["object_growth"].items())[:5])
    return [
        f"  the core's own snapshots, {b['from_s']:.0f} s to {b['until_s']:.0f} s after it served: {grown}",
        f"  objects {b['objects']:+,} ({objects or 'none grew'})",
    ]


def soak_text(soak: Json) -> str:
    """The soak benchmark's figures (testbed.loadtest.soak_benchmark) as a few lines for people."""
    threshold = soak["flat_threshold_mb_per_min"]

    def verdict(flat: bool | None) -> str:
        return "unknown" if flat is None else "flat" if flat else "NOT flat"

    memory = soak["memory"]
    return "\n".join(
        [
            f"soak: {_num(soak['rate'])} req/s for {soak['duration_s'] / 60:g} min: "
            f"{_num(soak['answered_per_s'])} answered/s, p50 {_num(soak['p50_ms'], ' ms')}, "
            f"p99 {_num(soak['p99_ms'], ' ms')}, {soak['errors']} errors, "
            f"guarantees {'held' if soak['guarantees_ok'] else 'BROKEN'}",
            f"memory: slope over the second half of the load (the first half is the warm-up); "
            f"flat means < {threshold:g} MB/min",
            *(_trend_line(name, m) for name, m in memory.items()),
            f"  core {verdict(soak['core_flat'])}, hosts {verdict(soak['hosts_flat'])} "
            f"(steepest host {_num(soak['hosts_max_slope_mb_per_min'], ' MB/min', 2)})",
            *_breakdown_lines(soak.get("core_breakdown")),
            f"  load average (1, 5, 15 min) before {soak['load_average']['before']}, "
            f"after {soak['load_average']['after']}",
        ]
    )
