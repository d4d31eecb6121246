"""A what-if simulation run to its folder: the run's files and its report (`crossroads simulate`,
the demo)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from network.run import simulate, write_run
from reports.html import build_report
from scenarios.schema import Scenario

__all__ = ["simulate_to"]


def simulate_to(
    out: Path,
    scenario_file: Path,
    scenario: Scenario[Any],
    *,
    workers: int | None = None,
    dask: str | None = None,
    progress: bool = True,
    say: Callable[[str], None] = print,
    slices: int | None = None,
) -> Path:
    """Run `scenario` (read from `scenario_file`), write its run folder and report; the report's path."""
    started = time.perf_counter()
    run = simulate(scenario, workers=workers, dask=dask, progress=progress, slices=slices)
    write_run(out, run, scenario_file)
    report = out / "report.html"
    report.write_text(build_report(run.summary, run.series), encoding="utf-8")
    per_year = run.summary["functional_messages_per_year"]
    sliced = f" x {run.performance['slices']} slices" if run.performance["slices"] > 1 else ""
    say(f"{scenario.name}: {len(run.results)} replications{sliced} in {time.perf_counter() - started:.1f} s")
    say(f"functional messages a year: {per_year['mean']:,.0f} (± {per_year['ci95'] or 0:,.0f})")
    say(f"report: {report.resolve()}")
    return report
