"""Fixtures shared by several test modules: the headless browser that opens the reports, and the
suite's one short live load test (run once, checked by its own tests and in the browser)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import BrowserContext

from testbed.loadtest import LoadtestResult
from tests.browser import chromium_missing_reason, launch
from tests.short_loadtest import run_short_loadtest


@pytest.fixture(scope="session")
def short_loadtest(tmp_path_factory: pytest.TempPathFactory) -> LoadtestResult:
    """tests/short_loadtest.py's load test, run once a session."""
    return run_short_loadtest(tmp_path_factory.mktemp("loadtest"))


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    """Headless Chromium with a new empty profile, for the tests of one module (tests/browser.py).
    A module that uses it carries tests.browser.needs_chromium(); where that let it run without
    the browser (in CI), this fails and says why."""
    missing = chromium_missing_reason()
    if missing is not None:
        pytest.fail(f"{missing}; CI must run the browser tests")
    with launch(tmp_path_factory.mktemp("chromium-profile")) as context:
        yield context
