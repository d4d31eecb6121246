"""The validation page's section on the machine's speed in each round (testbed/calibration/speed.py).

Read from validation.json: `at_speed` {reference: [{rate, generator_us}], elasticity: {figure:
number}, goals (drawn by the page's goals table: reports/validation.py)} and each
level's `at_speed` {ratio, measured: {mean_ms, p50_ms, p99_ms}, error: {same}}. Absent (an older
validation, or a calibration measured once): the section says so. Any number may be null.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from reports import validation_figures as vf
from reports.html import fmt, signed_percent, table

__all__ = ["speed_section"]

Json = Mapping[str, Any]

_WHY = """This machine is shared: for minutes at a time it runs everything slower or faster, and the
hypervisor does not always say so. The load generator does the same work for every request, whatever the
network does, so its CPU time per request tells how fast the machine ran in each round of a level
("speed ratio": that time over the calibration's at the same rate; 1.10 means a tenth slower). The
calibration's own rounds also show how much the testbed's latency moves with that ratio (the
elasticity: 2 means a machine 10% slower makes requests about 21% slower). Below, each level's latency
is moved back to the calibration's speed, round by round, and the model is compared with that. This is
not a goal: the goals above are judged on the latency as measured. It shows how much of the model's
error is the machine's speed rather than the model."""


def _elasticities(at_speed: Json) -> str:
    elasticity = at_speed.get("elasticity") or {}
    said = [f"{name} {fmt(vf.number(elasticity, figure))}" for figure, name in (("mean_ms", "mean"), ("p99_ms", "p99"))]
    return f"<p>Elasticity measured in the calibration's rounds: {'; '.join(said)}.</p>"


def _level_rows(levels: Sequence[Json]) -> list[list[str]]:
    rows = []
    for level in levels:
        at = level.get("at_speed")
        if not isinstance(at, Mapping):
            continue
        measured, error = level.get("measured") or {}, level.get("error") or {}
        moved, moved_error = at.get("measured") or {}, at.get("error") or {}
        past = " (past the knee)" if level.get("below_knee") is False else ""
        row = [vf.rate_text(vf.number(level, "rate")) + past, fmt(vf.number(at, "ratio"))]
        for figure in ("mean_ms", "p99_ms"):
            errors = f"{signed_percent(vf.number(error, figure))} → {signed_percent(vf.number(moved_error, figure))}"
            row += [fmt(vf.number(measured, figure)), fmt(vf.number(moved, figure)), errors]
        rows.append(row)
    return rows


def speed_section(validation: Json, goals_table: str) -> str:
    """The section's HTML: why, the elasticity, `goals_table` (the latency goals at the
    calibration's speed, as the page's goals table draws them), and per level."""
    at_speed = validation.get("at_speed")
    if not isinstance(at_speed, Mapping):
        return "<p>Not read: the calibration measured each level once, or it is older than this reading.</p>"
    levels = [lv for lv in validation.get("levels") or [] if isinstance(lv, Mapping)]
    columns = ["level (requests/s)", "speed ratio", "mean measured (ms)", "at the calibration's speed",
               "model's error: as measured → at that speed", "p99 measured (ms)", "at the calibration's speed",
               "model's error: as measured → at that speed"]  # fmt: skip
    return f"<p>{_WHY}</p>" + _elasticities(at_speed) + goals_table + table(columns, _level_rows(levels))
