"""The machine's speed in each round, and the testbed's latency moved to the calibration's speed.

Why: on this shared machine the whole of it runs faster or slower for minutes at a time, without
the hypervisor reporting time taken from it, and the testbed's latency follows. The load
generator shows it: it does the same work for every request whatever the network does (it
sends requests drawn in advance and counts answers), yet its CPU per request sent moves by a
fifth between rounds of the same rate. On one network offered 450/s fifteen times (2026-12-07),
rounds 1-3 took 502-529 us of the generator's CPU a request and had mean latencies of
4.6-4.8 ms; from round 4 on 552-642 us, and 5.5-7.7 ms (log against log, r = 0.96; the hosts'
CPU a forward moved with it). An I/O stall that made one round's mean 17 ms did not move it.

The reading: `generator_us`, each round's generator CPU per request sent
(testbed/calibration/rounds.py). It falls with the rate (a busier loop does more per wake-up),
so a round is compared with the calibration at the same rate: the `Speed.reference`, the
median of the calibration's rounds at each rate that held, interpolated log against log. A
round's speed ratio is its reading over the reference (above 1: a slower machine).

How far the testbed's latency moves with that ratio is measured by the calibration too, in its
own rounds: within a rate they differ in speed and in latency. The elasticity (d log latency /
d log ratio, one per figure) is fitted by least squares over the rounds of every rate that held,
each rate's rounds centred on their own means, and kept within ELASTICITY_LIMITS. One number, not
a line in the rate: it does grow toward the knee, where a slower machine queues more, but the
calibration's few rounds there cannot pin how fast (2026-12-07, `bench model` s18 run 2: a line
fitted 2.77 per unit of log rate, from one round at 506/s whose mean doubled, and moved the level
at 541.9/s from -1.9 % to -32.6 %; with one number, -12.4 % at worst over the levels).

A validation level at the calibration's speed: each round's figure divided by its ratio to the
power of the elasticity at its rate, and the median over the rounds. Shown beside what was
measured, with the model's error against it: not a goal (the goals are judged on the
measurements as they are), but how much of the model's error is the machine's speed.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from testbed.calibration.errors import goal_of, signed

__all__ = ["ELASTICITY_LIMITS", "FIGURES", "Speed", "at_speed_goals", "row_at_speed", "speed_of"]

FIGURES = ("mean_ms", "p50_ms", "p99_ms")  # the latency figures moved to the calibration's speed
ELASTICITY_LIMITS = (0.0, 4.0)  # an elasticity outside these, read from a handful of rounds, is noise


@dataclass(frozen=True)
class Speed:
    """The calibration's generator CPU a request by rate, and the latency's elasticity to the speed
    ratio, per figure."""

    rates: tuple[float, ...]
    generator_us: tuple[float, ...]
    elasticity: Mapping[str, float]

    def reference(self, rate: float) -> float:
        """The calibration's generator CPU a request at `rate` (log-log interpolation, flat beyond)."""
        return _reference(self.rates, self.generator_us, rate)

    def ratio(self, rate: float, generator_us: float) -> float:
        """How much slower than the calibration's the machine ran a round (above 1: slower)."""
        return generator_us / self.reference(rate)

    def elasticity_of(self, figure: str) -> float:
        low, high = ELASTICITY_LIMITS
        return min(high, max(low, self.elasticity[figure]))

    def at_reference(self, rate: float, repetitions: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
        """A level's latency figures at the calibration's speed (see the module doc) and the
        median ratio of its rounds; None when a round lacks the generator's reading (a figure
        None when a round lacks it: nothing answered)."""
        ratios = [self.ratio(rate, float(r["generator_us"])) for r in repetitions if r.get("generator_us")]
        if not repetitions or len(ratios) < len(repetitions):
            return None
        moved: dict[str, float | None] = {}
        for figure in FIGURES:
            e = self.elasticity_of(figure)
            each = [float(r[figure]) / s**e for r, s in zip(repetitions, ratios, strict=True) if r.get(figure)]
            moved[figure] = round(statistics.median(each), 4) if len(each) == len(repetitions) else None
        return {"ratio": round(statistics.median(ratios), 4), "measured": moved}

    def as_json(self) -> dict[str, Any]:
        pairs = zip(self.rates, self.generator_us, strict=True)
        return {"reference": [{"rate": r, "generator_us": round(g, 1)} for r, g in pairs],
                "elasticity": {f: round(self.elasticity_of(f), 3) for f in self.elasticity}}  # fmt: skip


def _reference(rates: Sequence[float], generator_us: Sequence[float], rate: float) -> float:
    """The generator CPU a request at `rate` of the (rate, generator_us) reference, log against log."""
    return float(np.exp(np.interp(math.log(rate), np.log(rates), np.log(generator_us))))


def _readings(level: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [r for r in level.get("repetitions") or [] if r.get("generator_us")]


def _fit(groups: Sequence[Sequence[tuple[float, Mapping[str, Any]]]], figure: str) -> float | None:
    """The elasticity of `figure` over each rate's (log ratio, round) pairs, each rate centred
    (None: no round faster or slower than another of its rate)."""
    dx_all, dy_all = [], []
    for pairs in groups:
        xs = np.array([x for x, _ in pairs])
        y = np.log([float(r[figure]) for _, r in pairs])
        dx_all.append(xs - xs.mean())
        dy_all.append(y - y.mean())
    if not dx_all:
        return None
    dx, dy = np.concatenate(dx_all), np.concatenate(dy_all)
    spread = float(dx @ dx)
    return float(dx @ dy) / spread if spread > 0 else None


def speed_of(levels: Sequence[Mapping[str, Any]]) -> Speed | None:
    """The calibration's `Speed` from its levels that held (combined, with their rounds), or None
    when it cannot be had: no rate with two rounds read, or no round faster or slower than another."""
    held = [lv for lv in levels if _readings(lv)]
    if not held:
        return None
    held.sort(key=lambda lv: float(lv["rate"]))
    rates = tuple(float(lv["rate"]) for lv in held)
    medians = tuple(statistics.median(float(r["generator_us"]) for r in _readings(lv)) for lv in held)
    groups = []
    for lv, rate in zip(held, rates, strict=True):
        reference = _reference(rates, medians, rate)
        pairs = [(math.log(float(r["generator_us"]) / reference), r) for r in _readings(lv)]
        pairs = [(x, r) for x, r in pairs if all(float(r.get(f) or 0) > 0 for f in FIGURES)]
        if len(pairs) >= 2:
            groups.append(pairs)
    elasticity = {}
    for figure in FIGURES:
        e = _fit(groups, figure)
        if e is None:
            return None
        elasticity[figure] = e
    return Speed(rates, medians, elasticity)


def at_speed_goals(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The latency goals judged against the levels at the calibration's speed (rows below the
    knee that have them): each with the worst error and whether it would be met."""
    below = [at["error"] for row in rows if row.get("below_knee") and (at := row.get("at_speed"))]
    return {figure: goal_of(figure, [error.get(figure) for error in below]) for figure in ("mean_ms", "p99_ms")}


def row_at_speed(speed: Speed, row: Mapping[str, Any]) -> dict[str, Any] | None:
    """A validation row's figures at the calibration's speed, with the model's errors against them."""
    moved = speed.at_reference(float(row["rate"]), row.get("repetitions") or [])
    if moved is None:
        return None
    predicted = row["predicted"]
    moved["error"] = {f: signed(predicted.get(f), moved["measured"][f]) for f in FIGURES}
    return moved
