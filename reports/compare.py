"""The what-if comparison page: run A beside run B, the differences and whether they are significant.

Takes the two runs' summaries and series and the comparison rows (computed by the caller with
Welch's test; this floor only renders).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from reports import figures
from reports.html import fmt, image, page

__all__ = ["build_comparison"]

Json = Mapping[str, Any]

_WHY_DIFF = """Each bar is a figure that changed between the two runs by more than chance explains: its
95% confidence interval for the difference (Welch's test over the replications) excludes zero.
Red: higher in B than in A; green: lower. Whether higher is better depends on the figure: more
throughput or availability is good, more latency or loss is not."""


def _rows_table(rows: Sequence[Json]) -> str:
    head = ["", "figure", "A", "B", "B - A", "± (95%)", "change", "significant"]
    out = [f"<tr>{''.join(f'<th>{h}</th>' for h in head)}</tr>"]
    for r in rows:
        relative = r["relative"]
        change = "-" if relative is None else fmt(100 * relative, 2) + " %"
        sig = '<span class="sig">yes</span>' if r["significant"] else "no"
        cells = [html.escape(r["group"]), html.escape(r["figure"]), fmt(r["a"]), fmt(r["b"]), fmt(r["diff"]),
                 fmt(r["ci95"], 2), change, sig]  # fmt: skip
        out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f"<table>{''.join(out)}</table>"


def _side_by_side(a: Json, b: Json, series_a: Json, series_b: Json) -> str:
    cells = []
    for label, s, ser in (("A", a, series_a), ("B", b, series_b)):
        png = figures.throughput_figure(ser, s.get("events", []), s.get("surges", []))
        cells.append(
            f"<div><h3>{label}: {html.escape(s['scenario']['name'])}</h3>{image(png, f'throughput {label}')}</div>"
        )
    return f'<div class="figure">{"".join(cells)}</div>'


def build_comparison(comparison: Json, a: Json, b: Json, series_a: Json, series_b: Json) -> str:
    """The HTML page comparing run A (before, or the reference) with run B (the what-if)."""
    name_a, name_b = html.escape(a["scenario"]["name"]), html.escape(b["scenario"]["name"])
    significant = [r for r in comparison["rows"] if r["significant"]]
    parts = [
        f"<h1>What-if: {name_b} against {name_a}</h1>",
        f"<p><b>A</b> {name_a}: {html.escape(a['scenario'].get('description', ''))}<br>"
        f"<b>B</b> {name_b}: {html.escape(b['scenario'].get('description', ''))}</p>",
        f"<p>{len(significant)} of {len(comparison['rows'])} figures differ significantly. "
        f'<span class="note">{html.escape(comparison["method"])}.</span></p>',
        "<h2>What changed</h2>",
        f'<div class="figure">{image(figures.difference_figure(comparison["rows"]), "differences")}'
        f'<div class="why">{_WHY_DIFF}</div></div>',
        "<h2>Throughput over time, side by side</h2>",
        _side_by_side(a, b, series_a, series_b),
        "<h2>Every figure compared</h2>",
        _rows_table(comparison["rows"]),
    ]
    return page(f"What-if: {a['scenario']['name']} vs {b['scenario']['name']}", "\n".join(parts))
