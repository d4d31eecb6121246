"""A generated report opened in a real browser: Debian's headless Chromium, driven by Playwright.

`open_report(browser, report, screenshot)` loads one HTML file from disk, the way a person opens
it, and says what went wrong: console errors and warnings, uncaught script errors, requests that
failed, every request for anything but the file itself (a report must be self-contained: its
figures are data: URLs, which Chromium does not even ask the network for), and figures that did
not load (an <img> with no natural width, an <svg> with no size). It also takes a full-page PNG
screenshot, to look at.

The `browser` fixture (tests/conftest.py) launches Chromium once per test module, with a new
empty profile. A module marked `needs_chromium()` is skipped where /usr/bin/chromium (which
`make setup` installs) is absent, except in CI, where the browser must be there. Playwright is a development dependency
only, so this lives with the tests rather than in testbed/.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, ConsoleMessage, Page, Request, Route, sync_playwright

__all__ = ["CHROMIUM", "ReportCheck", "chromium_missing_reason", "launch", "needs_chromium", "open_report"]

CHROMIUM = Path("/usr/bin/chromium")  # Debian's chromium package; `make setup` installs it
# As root (no sandbox possible), headless, and quiet: nothing of Chromium's own phones home.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
LOAD_TIMEOUT_MS = 30_000
_PROBLEM_CONSOLE_TYPES = ("error", "warning")

# Every <img> and inline <svg> of the page, with what a reader would see of it.
_FIGURES_JS = """() => [
  ...Array.from(document.images, (i) => ({
    what: "img " + (i.alt || i.src.slice(0, 60)), ok: i.complete && i.naturalWidth > 0 })),
  ...Array.from(document.querySelectorAll("svg"), (s, k) => {
    const box = s.getBoundingClientRect();
    return { what: "svg #" + k, ok: box.width > 0 && box.height > 0 };
  }),
]"""


@dataclass(slots=True)
class ReportCheck:
    """What the browser saw of one report: each list holds one line per problem found."""

    url: str
    screenshot: Path
    figures: int = 0
    console: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    outside_requests: list[str] = field(default_factory=list)
    broken_figures: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        """Every problem, each prefixed by its kind; empty when the report is sound."""
        kinds = {
            "console": self.console,
            "page error": self.page_errors,
            "request failed": self.failed_requests,
            "request leaving the file": self.outside_requests,
            "figure not loaded": self.broken_figures,
        }
        return [f"{kind}: {line}" for kind, lines in kinds.items() for line in lines]


def needs_chromium() -> pytest.MarkDecorator:
    """The mark of a module that opens reports in the browser: skipped, with the reason, where
    Chromium is absent and could not be installed, except in CI (CI=true), where it must run."""
    missing = chromium_missing_reason()
    return pytest.mark.skipif(missing is not None and not os.environ.get("CI"), reason=missing or "")


def chromium_missing_reason() -> str | None:
    """Why the browser tests cannot run here (None when they can)."""
    if CHROMIUM.exists():
        return None
    return f"{CHROMIUM} is absent and `make setup` could not install it (Debian's package chromium)"


@contextlib.contextmanager
def launch(profile: Path) -> Iterator[BrowserContext]:
    """Headless Chromium running on the empty folder `profile`, closed on leaving."""
    with sync_playwright() as driver:
        context = driver.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=list(FLAGS)
        )
        try:
            yield context
        finally:
            context.close()


def open_report(browser: BrowserContext, report: Path, screenshot: Path) -> ReportCheck:
    """Open `report` (an HTML file) in a new tab of `browser`, wait until it has loaded, check it
    and save a full-page screenshot to `screenshot`. Nothing is fetched from outside the file: any
    such request is recorded and aborted before it leaves the browser."""
    url = report.resolve().as_uri()
    check = ReportCheck(url=url, screenshot=screenshot)
    page = browser.new_page()
    try:
        _listen(page, check)
        page.goto(url, wait_until="load", timeout=LOAD_TIMEOUT_MS)
        figures = page.evaluate(_FIGURES_JS)
        check.figures = len(figures)
        check.broken_figures += [f["what"] for f in figures if not f["ok"]]
        page.screenshot(path=screenshot, full_page=True)
    finally:
        page.close()
    return check


def _listen(page: Page, check: ReportCheck) -> None:
    def on_console(message: ConsoleMessage) -> None:
        if message.type in _PROBLEM_CONSOLE_TYPES:
            check.console.append(f"{message.type}: {message.text}")

    def on_request(request: Request) -> None:
        if request.url != check.url and not request.url.startswith("data:"):
            check.outside_requests.append(request.url)

    def on_route(route: Route) -> None:
        # the network is off limits: only the report itself may load
        if route.request.url == check.url:
            route.continue_()
        else:
            route.abort()

    page.on("console", on_console)
    page.on("pageerror", lambda error: check.page_errors.append(str(error)))
    page.on("request", on_request)
    page.on("requestfailed", lambda r: check.failed_requests.append(f"{r.url}: {r.failure}"))
    page.route("**/*", on_route)
