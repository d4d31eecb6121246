"""Levels measured in interleaved rounds, each rate's repetitions combined by their medians.

Why: this machine is shared, and another tenant's load comes in episodes of tens of seconds to
minutes. One 10-second level can fall in one (runs of `crossroads bench model` saw the same rate's
mean latency move by 40% within the same minute, and by a factor of two between calibrating and
validating), while a level measured three times, in rounds over all the rates (1, 2, 3, ... then
1, 2, 3, ... again), is measured across three moments: the median of each figure is what the
machine does most of the time, and each rate sees the same moments as its neighbours.

`in_rounds` measures; `combined` makes one level of a rate's repetitions: the repetition whose
mean latency is the median is kept whole (its CPU per thread, telemetry and outcomes stay
consistent with each other), with its headline figures (throughput, mean, p50/p90/p99, the core's
CPU, and the machine's speed: loadtests/speed_probe.py) replaced by each figure's median over the
repetitions, and every repetition's figures listed under "repetitions" (with the share of the
machine the hypervisor took during it, and how many times it was measured again for that:
testbed/calibration/measure.py) and the load generator's CPU per request sent (`generator_us`: the
same work whatever the network does, so another reading of the machine's speed).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["HEADLINE", "combined", "in_rounds"]

HEADLINE = ("achieved_per_s", "mean_ms", "p50_ms", "p90_ms", "p99_ms")

Measure = Callable[[float], dict[str, Any]]


def _core_cpu(level: dict[str, Any]) -> float | None:
    core = level.get("cpu", {}).get("core")
    return None if core is None else float(core["utilisation"])


def _summary(level: dict[str, Any]) -> dict[str, Any]:
    return {**{name: level[name] for name in HEADLINE}, "core_cpu": _core_cpu(level), "window": level.get("window"),
            "stolen": level.get("machine", {}).get("stolen"), "probe_ms": level.get("machine", {}).get("probe_ms"),
            "generator_us": level.get("cpu_us_per_call"),
            "measured_again": len(level.get("stolen_attempts", []))}  # fmt: skip


def combined(repetitions: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One level of the same rate's `repetitions` (see the module doc); a lone one unchanged but
    for its "repetitions" entry."""
    if not repetitions:
        raise ValueError("no repetitions to combine")
    by_mean = sorted(repetitions, key=lambda lv: float(lv["mean_ms"]))
    level = dict(by_mean[(len(by_mean) - 1) // 2])  # the lower median: a repetition that happened
    for name in HEADLINE:
        level[name] = statistics.median(float(lv[name]) for lv in repetitions)
    cpus = [c for c in map(_core_cpu, repetitions) if c is not None]
    if cpus and level.get("cpu", {}).get("core") is not None:
        level["cpu"] = {**level["cpu"], "core": {**level["cpu"]["core"], "utilisation": statistics.median(cpus)}}
    probes = [p for lv in repetitions if (p := lv.get("machine", {}).get("probe_ms")) is not None]
    if probes and "machine" in level:
        level["machine"] = {**level["machine"], "probe_ms": statistics.median(probes)}
    level["repetitions"] = [_summary(lv) for lv in repetitions]
    return level


def in_rounds(
    measure: Measure,
    rates: Sequence[float],
    repeats: int,
    say: Callable[[str], None],
    first: Sequence[dict[str, Any]] = (),
) -> list[dict[str, Any]]:
    """Each of `rates` measured `repeats` times, round after round, and combined: one level per
    rate, in the order given. `first` are the first round's levels when it was measured already
    (a calibration's climb), one per rate."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    taken: dict[float, list[dict[str, Any]]] = {rate: [] for rate in rates}
    for level in first:
        taken[level["rate"]].append(level)
    for round_ in range(1 if first else 0, repeats):
        for rate in rates:
            level = measure(rate)
            taken[rate].append(level)
            if round_:
                say(
                    f"round {round_ + 1} of {repeats}, {rate:g}/s: mean {level['mean_ms']} ms, p99 {level['p99_ms']} ms"
                )
    return [combined(taken[rate]) for rate in rates]
