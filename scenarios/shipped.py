"""The scenario files shipped with the testbed (installed with the `scenarios` package)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

__all__ = [
    "DEFAULT_LOADTEST",
    "DEFAULT_SCENARIO",
    "default_loadtest",
    "default_scenario",
    "shipped",
    "shipped_folder",
]

DEFAULT_SCENARIO = "demo.yaml"  # the world of `crossroads up`, `send`, the demo and the benchmarks
DEFAULT_LOADTEST = "loadtest_smoke.yaml"  # the load test (and world) of Locust and the load benchmarks


def shipped_folder() -> Path:
    """The folder of the shipped scenarios."""
    return Path(str(files("scenarios")))


def shipped(name: str) -> Path:
    """The shipped scenario file `name` (e.g. "national.yaml")."""
    return shipped_folder() / name


def default_scenario() -> Path:
    """The demo world's scenario: what commands use when given none."""
    return shipped(DEFAULT_SCENARIO)


def default_loadtest() -> Path:
    """The smoke load test's scenario: what load tests and load benchmarks use when given none."""
    return shipped(DEFAULT_LOADTEST)
