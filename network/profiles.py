"""Time-varying arrival rates: daily, weekly and monthly profiles, surges, and their integrals.

A source's rate at simulated time t is its year-average rate x multiplier x the profile level
of the calendar hour t falls in x any surge active at t. The model draws arrivals from this
piecewise-constant rate, so the segments below (cut at every calendar hour when a profile is
used, and at every surge's start and end) are exact for a non-homogeneous Poisson process.

Simulated time 0 is the start of the warm-up; the measured window starts at `warmup`, which
is the calendar time `start` of the scenario.
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from scenarios.schema import Event, Profile

__all__ = ["Clock", "Segment", "level", "segments", "window_expected", "year_expected"]

Segment = tuple[float, float, float]  # (from, to, arrivals per second), simulated seconds
HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class Clock:
    """Maps simulated seconds to calendar time: `warmup` seconds is calendar `start`."""

    start: dt.datetime
    warmup: float

    def at(self, t: float) -> dt.datetime:
        return self.start + dt.timedelta(seconds=t - self.warmup)

    def next_hour(self, t: float) -> float:
        """The first simulated time after `t` at which a calendar hour starts."""
        when = self.at(t)
        into = when.minute * 60 + when.second + when.microsecond / 1e6
        return t + (HOUR - into)


def _normalised(levels: Sequence[float], weights: Sequence[float] | None = None) -> tuple[float, ...]:
    w = weights or [1.0] * len(levels)
    mean = sum(x * y for x, y in zip(levels, w, strict=True)) / sum(w)
    return tuple(x / mean for x in levels)


def level(profile: Profile | None, when: dt.datetime) -> float:
    """The profile's relative intensity at calendar time `when` (1.0 without a profile).

    Each part is normalised to mean 1: hours over a day, weekdays over a week, months over a
    year weighted by their number of days.
    """
    if profile is None:
        return 1.0
    daily, weekly, monthly = _parts(profile, when.year)
    return daily[when.hour] * weekly[when.weekday()] * monthly[when.month - 1]


@functools.lru_cache(maxsize=64)
def _parts(profile: Profile, year: int) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    days = [calendar.monthrange(year, m)[1] for m in range(1, 13)]
    return _normalised(profile.daily), _normalised(profile.weekly), _normalised(profile.monthly, days)


def _surge(surges: Sequence[Event], source: str, t: float, warmup: float) -> float:
    factor = 1.0
    for e in surges:
        if e.source in (None, source) and warmup + e.at <= t and (e.until is None or t < warmup + e.until):
            factor *= e.multiplier if e.multiplier is not None else 1.0
    return factor


def segments(
    source: str, rate: float, profile: Profile | None, surges: Sequence[Event], clock: Clock, horizon: float
) -> tuple[Segment, ...]:
    """The piecewise-constant arrival rate of one source over simulated [0, horizon)."""
    cuts = {0.0, horizon}
    for e in surges:
        for when in (e.at, e.until):
            if when is not None and 0 < clock.warmup + when < horizon:
                cuts.add(clock.warmup + when)
    if profile is not None:
        hour = clock.next_hour(0.0)
        while hour < horizon:
            cuts.add(hour)
            hour += HOUR
    times = sorted(cuts)
    return tuple(
        (a, b, rate * level(profile, clock.at(a)) * _surge(surges, source, a, clock.warmup))
        for a, b in itertools.pairwise(times)
    )


def window_expected(parts: Sequence[Segment], t0: float, t1: float) -> float:
    """Expected arrivals in simulated [t0, t1)."""
    return sum(rate * max(0.0, min(b, t1) - max(a, t0)) for a, b, rate in parts)


def year_expected(rate: float, profile: Profile | None, year: int) -> float:
    """Expected arrivals over calendar `year` at this rate and profile (no one-off surges)."""
    hours = np.arange(np.datetime64(f"{year}-01-01T00", "h"), np.datetime64(f"{year + 1}-01-01T00", "h"))
    if profile is None:
        return rate * len(hours) * HOUR
    daily, weekly, monthly = (np.asarray(p) for p in _parts(profile, year))
    days = hours.astype("datetime64[D]")
    hour_of_day = (hours - days).astype(np.int64)
    weekday = (days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday; Monday is 0
    month = days.astype("datetime64[M]").astype(np.int64) % 12
    return rate * HOUR * float(np.sum(daily[hour_of_day] * weekly[weekday] * monthly[month]))
