"""The validation page (reports/validation.py): what a reader finds on it, built from a synthetic
validation.json (tests/validation_data.py), whole and full of holes."""

from __future__ import annotations

import base64
import html
import math
import re
from typing import Any

import pytest

from reports.validation import build_validation_report, signed_percent, signed_points
from reports.validation_figures import goal_width, rate_text
from tests.validation_data import anchored, realistic, sparse, with_phases

PNG = b"\x89PNG\r\n\x1a\n"


def _images(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def _text(page: str) -> str:
    """The page without its embedded images (base64 may spell anything)."""
    return re.sub(r'src="data:[^"]+"', 'src=""', page)


def _section(page: str, heading: str) -> str:
    """From the heading that starts with `heading` to the next heading."""
    start = page.index(f">{heading}")
    end = re.compile(r"<h[123][ >]").search(page, start)
    return page[start : end.start() if end else len(page)]


def _rows(part: str) -> list[list[str]]:
    """Every table row of `part`, each cell as plain text."""
    cells = re.compile(r"<t[dh]>(.*?)</t[dh]>")
    return [
        [html.unescape(re.sub(r"<[^>]+>", "", c)) for c in cells.findall(row)]
        for row in re.findall(r"<tr>(.*?)</tr>", part)
    ]


def _sound(page: str) -> None:
    """Self-contained, three figures with their explanations, no script, nothing empty spelt out."""
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r'(src|href)="(https?:)?//', page) and "<script" not in page
    images = _images(page)
    assert len(images) == 3 and all(i.startswith(PNG) for i in images)
    assert page.count('class="why"') == 3
    text = _text(page)
    assert "None" not in text and not re.search(r"\bnan\b", text, re.IGNORECASE) and "inf" not in text.split()


@pytest.fixture(scope="module")
def page() -> str:
    return build_validation_report(realistic())


@pytest.fixture(scope="module")
def holes() -> str:
    return build_validation_report(sparse())


# ------------------------------------------------------------------ the numbers' format


@pytest.mark.parametrize(
    ("error", "text"),
    [(0.042, "+4.2%"), (-0.12, "-12.0%"), (2.0, "+200.0%"), (0.0, "+0.0%"), (-0.0004, "+0.0%"),
     (None, "-"), (math.nan, "-"), (math.inf, "-")],
)  # fmt: skip
def test_an_error_is_a_signed_percentage(error: float | None, text: str) -> None:
    assert signed_percent(error) == text


def test_core_cpu_error_is_in_signed_points() -> None:
    assert [signed_points(p) for p in (2.0, -3.04, -0.02, None)] == ["+2.0 pt", "-3.0 pt", "+0.0 pt", "-"]


def test_a_goal_band_is_read_from_its_text_and_a_rate_is_written_as_people_do() -> None:
    assert [goal_width({"goal": g}) for g in ("within 5%", "within 5 points", "within ±12.5 %")] == [5, 5, 12.5]
    assert goal_width({"goal": "as good as it gets"}) is None and goal_width(None) is None
    assert [rate_text(r) for r in (122.5, 100.0, 1250.0, None)] == ["122.5", "100", "1,250", "-"]


# ------------------------------------------------------------------ the page of a whole validation


def test_the_page_is_self_contained_with_three_explained_figures(page: str) -> None:
    _sound(page)
    for heading in ("Latency against offered load", "Core CPU against offered load", "Error per figure"):
        assert f"<h2>{heading}</h2>" in page
    assert "How to read this page" in page and "held out" in page


def test_the_page_says_what_was_measured_and_which_levels_were_held_out(page: str) -> None:
    assert "2-core VM, 2026-11-28" in page and "<code>runs/cal/calibrated.yaml</code>" in page
    assert "5 replications" in page
    assert "<li>cpus: 2</li>" in page and "<li>load_average: 0.520, 0.610, 0.700</li>" in page
    assert "fitted here): <b>100, 150, 225</b>" in page
    assert "tested here): <b>122.5, 187.5, 400, 820</b>" in page


def test_the_goals_table_has_a_row_per_goal(page: str) -> None:
    assert _rows(_section(page, "The goals")) == [
        ["figure", "goal", "worst error", "met"],
        ["throughput", "within 5%", "-0.9%", "yes"],
        ["mean latency", "within 10%", "+15.4%", "no"],
        ["p99 latency", "within 20%", "-12.2%", "yes"],
        ["core CPU", "within 5 points", "+3.0 pt", "yes"],
        ["knee (offered rate where p99 crosses its limit)", "within 15%", "+8.6%", "yes"],
        ["what-ifs (effect of each fault)", "within 35%", "-33.3%", "yes"],
    ]


def test_each_held_out_level_has_a_table_of_model_measurement_and_signed_error(page: str) -> None:
    level = _rows(_section(page, "400 requests/s"))
    assert level[0] == ["figure", "model", "model's interval", "measured", "signed error"]
    assert level[1:] == [
        ["throughput (answered/s)", "398", "382 – 414", "396", "+0.5%"],
        ["mean latency (ms)", "9.80", "9.41 – 10.2", "11.1", "-12.0%"],
        ["median latency, p50 (ms)", "7.90", "7.58 – 8.22", "8.40", "-5.9%"],
        ["p90 latency (ms)", "16.0", "15.4 – 16.6", "17.0", "-"],  # the validation gives no p90 error
        ["p99 latency (ms)", "31.0", "29.8 – 32.2", "29.8", "+4.2%"],
        ["core CPU (% of one core)", "83.0", "79.7 – 86.3", "80.0", "+3.0 pt"],
    ]
    assert _rows(_section(page, "122.5 requests/s"))[-1][-1] == "+2.0 pt"


def test_a_level_measured_in_rounds_shows_their_range_beside_the_error() -> None:
    validation = realistic()
    level = validation["levels"][1]
    level["repetitions"] = [
        {"achieved_per_s": 395.0, "mean_ms": 10.5, "p50_ms": 8.0, "p90_ms": 16.0, "p99_ms": 27.0, "core_cpu": 0.78},
        {"achieved_per_s": 396.0, "mean_ms": 11.1, "p50_ms": 8.4, "p90_ms": None, "p99_ms": 29.8, "core_cpu": 0.80},
        {"achieved_per_s": 399.0, "mean_ms": 12.9, "p50_ms": 8.9, "p90_ms": 18.0, "p99_ms": 40.0, "core_cpu": 0.84},
    ]
    rows = _rows(_section(build_validation_report(validation), f"{rate_text(level['rate'])} requests/s"))
    assert rows[0][4] == "measured, lowest – highest of 3 rounds" and rows[0][-1] == "signed error"
    by_figure = {row[0]: row for row in rows[1:]}
    assert by_figure["mean latency (ms)"][4] == "10.5 – 12.9"
    assert by_figure["p90 latency (ms)"][4] == "16.0 – 18.0"  # the round without a p90 left out
    assert by_figure["core CPU (% of one core)"][4] == "78.0 – 84.0"
    assert by_figure["throughput (answered/s)"][4] == "395 – 399"
    assert "taken by the hypervisor" not in build_validation_report(validation)  # not measured: not said


def test_what_the_hypervisor_took_in_each_round_is_said_under_the_level() -> None:
    validation = realistic()
    level = validation["levels"][1]
    level["repetitions"] = [
        {"achieved_per_s": 395.0, "mean_ms": 10.5, "p99_ms": 27.0, "stolen": 0.004, "measured_again": 0},
        {"achieved_per_s": 396.0, "mean_ms": 11.1, "p99_ms": 29.8, "stolen": 0.021, "measured_again": 2},
        {"achieved_per_s": 399.0, "mean_ms": 12.9, "p99_ms": 40.0, "stolen": 0.0, "measured_again": 1},
    ]
    for rep, probe in zip(level["repetitions"], (0.8, 1.14, 0.745), strict=True):
        rep["probe_ms"] = probe
    section = _section(build_validation_report(validation), f"{rate_text(level['rate'])} requests/s")
    assert "taken by the hypervisor for another tenant while this level was measured: 0.4 %, 2.1 %, 0.0 %" in section
    assert "; 3 measurements made again for it." in section
    assert "The speed probe's fixed work took 0.80, 1.14, 0.74 ms" in section
    for rep in level["repetitions"]:
        del rep["probe_ms"]  # not read (an older validation): not said
    assert "speed probe" not in build_validation_report(validation)


def test_only_the_levels_past_the_knee_are_marked(page: str) -> None:
    headings = re.findall(r"<h3>(.*?)</h3>", page)
    assert headings == [
        "122.5 requests/s",
        "187.5 requests/s",
        "400 requests/s",
        '820 requests/s <span class="sig">past the knee</span>',
    ]


def test_the_knee_and_the_whatifs(page: str) -> None:
    knee = _section(page, "The knee")
    assert "crosses 50.0 ms" in knee
    assert _rows(knee)[1:] == [
        ["the model puts it at", "760 requests/s"],
        ["the testbed reached it at", "700 requests/s"],
        ["signed error", "+8.6%"],
    ]
    whatifs = _rows(_section(page, "What-ifs"))
    assert whatifs[0] == ["what-if", "rate (requests/s)", "figure", "model", "measured", "signed error"]
    assert whatifs[1:5] == [
        ["host killed: host-1 killed for 3 s at 300/s", "300", "mean latency (ms)", "5.00", "5.40", "-"],
        ["", "", "effect on mean latency (ms)", "-0.200", "-0.300", "-33.3%"],
        ["", "", "requests failed", "40", "44", "-9.1%"],
        ["", "", "deliveries queued", "25", "20", "+25.0%"],
    ]
    assert whatifs[6] == ["", "", "effect on mean latency (ms)", "+3.60", "+4.10", "-12.2%"]
    assert whatifs[7] == ["", "", "requests failed", "0", "0", "-"]


def test_a_knee_beyond_the_stairs_climbed_is_shown_as_a_lower_bound() -> None:
    validation = realistic()
    validation["knee"]["at_least"] = True
    rows = _rows(_section(build_validation_report(validation), "The knee"))
    assert rows[2] == ["the testbed reached it at", "at least 700 requests/s (every stair climbed held by its median)"]
    assert rows[3] == ["signed error", "+8.6% (against that lower bound)"]


def test_the_control_level_shows_how_far_the_machine_moved(page: str, holes: str) -> None:
    drift = _section(page, "The machine since calibrating")
    assert "Measured again: 225 requests/s" in drift
    rows = _rows(drift)
    assert rows[0] == ["figure", "at calibration", "now", "signed change"]
    assert ["mean latency (ms)", "5.10", "4.50", "-11.8%"] in rows
    assert rows[-1][0].startswith("core CPU") and rows[-1][2:] == ["-", "-"]
    assert "<p>The machine since calibrating: not measured.</p>" in holes


def test_an_anchored_model_is_shown_beside_the_model_as_calibrated() -> None:
    page = build_validation_report(anchored())
    _sound(page)
    goals = _rows(_section(page, "The goals"))
    assert goals[0] == ["figure", "goal", "worst error", "met", "anchored model: worst error", "met"]
    assert goals[2] == ["mean latency", "within 10%", "+15.4%", "no", "+26.9%", "no"]
    level = _rows(_section(page, "400 requests/s"))
    assert level[0][-3:] == ["signed error", "anchored model", "its error"]
    assert level[2] == ["mean latency (ms)", "9.80", "9.41 – 10.2", "11.1", "-12.0%", "10.8", "-3.2%"]
    drift = _section(page, "The machine since calibrating")
    assert "every CPU demand &times;0.972" in drift and "p99 &times;1.12" in drift
    assert ["the anchored model puts it at", "690 requests/s (-1.4%)"] in _rows(_section(page, "The knee"))


def test_the_same_validation_gives_the_same_page(page: str) -> None:
    assert build_validation_report(realistic()) == page


def test_text_from_the_json_is_escaped() -> None:
    v = realistic()
    v["description"] = "<b>bold</b> & more"
    v["machine"] = {"<i>": "<script>"}
    page = build_validation_report(v)
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; more" in page and "<li>&lt;i&gt;: &lt;script&gt;</li>" in page
    assert "<script" not in page


# ------------------------------------------------------------------ the page of a validation with holes


def test_nulls_show_as_dashes_and_missing_parts_as_not_measured(holes: str) -> None:
    _sound(holes)
    assert "<p>The knee: not measured.</p>" in holes and "<p>What-ifs: not measured.</p>" in holes
    assert "<li>cpus: -</li>" in holes and "<li>load_average: -, 0.500, -</li>" in holes
    assert "<h3>187.5 requests/s</h3>" in holes  # below the knee or not, unknown: not marked
    unanswered = _rows(_section(holes, "187.5 requests/s"))[1:]
    assert [row[3:] for row in unanswered] == [["-", "-"]] * 6
    assert _rows(_section(holes, "122.5 requests/s"))[5] == ["p99 latency (ms)", "-", "-", "13.6", "+4.4%"]
    assert _rows(_section(holes, "400 requests/s"))[6][-1] == "-"
    assert ["mean latency", "within 10%", "-", "-"] in _rows(_section(holes, "The goals"))
    no_model = _rows(_section(holes, "820 requests/s"))[1]
    assert no_model == ["throughput (answered/s)", "-", "-", "690", "+1.5%"]


@pytest.mark.parametrize(
    "validation",
    [
        {},
        {"levels": [], "knee": None, "whatifs": None, "goals": None, "machine": None},
        {"levels": [{"rate": None}, {"rate": 10.0}], "knee": {"rates": [1.0, 2.0], "predicted_p99_ms": [3.0]}},
        {"levels": [{"rate": 10.0, "predicted": {"ci": {"p99_ms": [None, 2.0]}}, "error": {"p99_ms": None}}]},
    ],
    ids=["empty", "all null", "short knee lists", "half an interval"],
)
def test_a_validation_with_almost_nothing_in_it_still_makes_a_page(validation: dict[str, Any]) -> None:
    page = build_validation_report(validation)
    _sound(page)
    assert "not measured" in page


def test_a_fault_with_a_window_is_shown_over_time_with_its_phases() -> None:
    page = build_validation_report(with_phases())
    assert len(_images(page)) == 4 and page.count('class="why"') == 4  # the timeline beside the three
    over_time = _section(page, "host killed: over time")
    assert "read over time" in over_time
    rows = _rows(over_time)
    assert rows[0][0] == "phase" and rows[0][-1] == "signed error of the effect"
    assert rows[2] == ["during the fault", "2.00-5.50 s", "4.50", "4.00", "-0.500", "-1.50", "+66.7%"]
    assert rows[3] == ["its first seconds after", "5.50-7.50 s", "7.00", "-", "+2.00", "-", "-"]
    assert "core stopped: over time" not in page  # no phases, no section
