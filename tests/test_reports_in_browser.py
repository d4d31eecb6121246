"""Every kind of generated report, opened in headless Chromium as a person would open it: no console
error or warning, no script error, every figure loaded, and nothing fetched from outside the file.
The checker itself (tests/browser.py) is first shown to catch each of those problems.

Each report's full-page screenshot is left in the test's tmp folder (PNG), to look at. The
validation report is built from a synthetic validation.json (tests/validation_data.py), as
`crossroads validate` would write it, once whole and once full of holes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext

from reports.validation import build_validation_report
from testbed.cli import main
from testbed.loadtest import LoadtestResult
from tests import browser as browser_module
from tests.browser import ReportCheck, needs_chromium, open_report
from tests.validation_data import realistic, sparse, with_phases

pytestmark = [needs_chromium(), pytest.mark.slow]

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "queue_tandem.yaml"
PNG = b"\x89PNG\r\n\x1a\n"
# a 1x1 PNG: a figure that loads
DOT = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def _assert_sound(check: ReportCheck, figures: int) -> None:
    assert check.problems == [], check.problems
    assert check.figures >= figures, f"{check.url}: {check.figures} figure(s), expected at least {figures}"
    assert check.screenshot.read_bytes().startswith(PNG)


def _page(tmp_path: Path, name: str, body: str) -> Path:
    page = tmp_path / f"{name}.html"
    head = f"<meta charset='utf-8'><title>{name}</title>"
    page.write_text(f"<!DOCTYPE html><html><head>{head}</head><body>{body}</body></html>")
    return page


def _simulate(out: Path, *extra: str) -> Path:
    assert main(["simulate", str(SCENARIO), "--out", str(out), "--replications", "2", "--duration", "15min",
                 "--quiet", *extra]) == 0  # fmt: skip
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two short simulation runs of a shipped scenario, with different seeds."""
    folder = tmp_path_factory.mktemp("simulate")
    return _simulate(folder / "a"), _simulate(folder / "b", "--seed", "99")


# ------------------------------------------------------------------ the checker catches each problem


def test_a_sound_page_passes(browser: BrowserContext, tmp_path: Path) -> None:
    body = f'<img alt="dot" src="data:image/png;base64,{DOT}"><svg width="20" height="20"></svg>'
    page = _page(tmp_path, "sound", body)
    check = open_report(browser, page, tmp_path / "sound.png")
    _assert_sound(check, figures=2)


def test_a_console_error_and_a_script_error_fail(browser: BrowserContext, tmp_path: Path) -> None:
    page = _page(tmp_path, "console", "<script>console.error('figure data missing'); undefinedFunction();</script>")
    check = open_report(browser, page, tmp_path / "console.png")
    assert check.console == ["error: figure data missing"]
    assert len(check.page_errors) == 1 and "undefinedFunction" in check.page_errors[0]


def test_a_request_leaving_the_file_fails_and_is_never_sent(browser: BrowserContext, tmp_path: Path) -> None:
    page = _page(tmp_path, "external", '<img alt="remote" src="http://127.0.0.1:9/x.png">')
    check = open_report(browser, page, tmp_path / "external.png")
    assert check.outside_requests == ["http://127.0.0.1:9/x.png"]
    assert [r.split(":")[0] for r in check.failed_requests] == ["http"]  # aborted before it left
    assert check.broken_figures == ["img remote"]


def test_a_figure_that_does_not_load_fails(browser: BrowserContext, tmp_path: Path) -> None:
    body = '<img alt="corrupt" src="data:image/png;base64,AAAA"><svg width="0" height="0"></svg>'
    check = open_report(browser, _page(tmp_path, "broken", body), tmp_path / "broken.png")
    assert check.broken_figures == ["img corrupt", "svg #0"]
    assert check.outside_requests == []


def test_a_figure_beside_the_file_is_a_request_leaving_it(browser: BrowserContext, tmp_path: Path) -> None:
    (tmp_path / "beside.png").write_bytes(b"")
    check = open_report(browser, _page(tmp_path, "beside", '<img alt="beside" src="beside.png">'), tmp_path / "b.png")
    assert check.outside_requests == [(tmp_path / "beside.png").as_uri()]
    assert check.problems


def test_without_chromium_the_tests_are_skipped_except_in_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(browser_module, "CHROMIUM", tmp_path / "chromium")
    monkeypatch.delenv("CI", raising=False)
    mark = needs_chromium()
    assert mark.args == (True,) and "could not install it" in mark.kwargs["reason"]
    monkeypatch.setenv("CI", "true")
    assert needs_chromium().args == (False,)


# ------------------------------------------------------------------ the reports


def test_the_simulation_report(browser: BrowserContext, runs: tuple[Path, Path], tmp_path: Path) -> None:
    _assert_sound(open_report(browser, runs[0] / "report.html", tmp_path / "simulation.png"), figures=5)


def test_the_comparison_report(browser: BrowserContext, runs: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = runs
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "compare")]) == 0
    _assert_sound(open_report(browser, tmp_path / "compare" / "comparison.html", tmp_path / "comparison.png"), 3)


def test_the_load_test_report(browser: BrowserContext, short_loadtest: LoadtestResult, tmp_path: Path) -> None:
    _assert_sound(open_report(browser, short_loadtest.out / "report.html", tmp_path / "loadtest.png"), figures=4)


@pytest.mark.parametrize(
    ("validation", "figures"), [(realistic, 3), (sparse, 3), (with_phases, 4)], ids=["realistic", "sparse", "phases"]
)
def test_the_validation_report(
    browser: BrowserContext, tmp_path: Path, validation: Callable[[], dict[str, Any]], figures: int
) -> None:
    report = tmp_path / "validation.html"
    report.write_text(build_validation_report(validation()))
    _assert_sound(open_report(browser, report, tmp_path / "validation.png"), figures=figures)
