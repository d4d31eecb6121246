"""Helpers for the columnar world: days as integers, and seeded vectorized draws.

Dates in the world's arrays are int32 days since 1970-01-01 (`OPEN` marks an open end), so
that 11 M persons and ~30 M directory rows stay numpy arrays, never Python objects.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "OPEN",
    "Days",
    "Ints",
    "assign_with_cover",
    "day_number",
    "day_of",
    "group_offsets",
    "last_full_quarter",
    "pick",
    "plus_years",
    "sizes",
    "ymd",
]

Days = NDArray[np.int32]
Ints = NDArray[np.int64]

OPEN = np.int32(np.iinfo(np.int32).max)  # the end "day" of an open file
_EPOCH = dt.date(1970, 1, 1).toordinal()


def day_number(day: dt.date) -> int:
    """`day` as days since 1970-01-01."""
    return day.toordinal() - _EPOCH


def day_of(number: int) -> dt.date:
    """The date `number` days after 1970-01-01."""
    return dt.date.fromordinal(number + _EPOCH)


def ymd(days: Days) -> tuple[Ints, Ints, Ints]:
    """Year, month (1-12) and day (1-31) of each day number."""
    d = days.astype("datetime64[D]")
    months = d.astype("datetime64[M]")
    years = d.astype("datetime64[Y]")
    year = years.astype(np.int64) + 1970
    month = (months - years).astype(np.int64) + 1
    day = (d - months).astype(np.int64) + 1
    return year, month, day


def plus_years(days: Days, years: int) -> Ints:
    """The same calendar day `years` later (29 February -> 1 March), as day numbers."""
    d = days.astype("datetime64[D]")
    month = d.astype("datetime64[M]")
    later = (month + 12 * years).astype("datetime64[D]") + (d - month)
    result: Ints = later.astype(np.int64)
    return result


def last_full_quarter(day: dt.date) -> str:
    """The last quarter that ended before `day`, e.g. "2026Q2" for 2026-08-15."""
    q = (day.month - 1) // 3  # quarters of `day`'s year already over
    return f"{day.year}Q{q}" if q else f"{day.year - 1}Q4"


def group_offsets(group: NDArray[np.integer], groups: int) -> Ints:
    """Where each group's rows begin once the rows are ordered by `group` (ids 0..groups-1): the rows
    of group g are offsets[g]:offsets[g+1]; groups + 1 entries, the last the number of rows."""
    offsets = np.zeros(groups + 1, dtype=np.int64)
    np.cumsum(np.bincount(group, minlength=groups), out=offsets[1:])
    return offsets


def assign_with_cover(rng: np.random.Generator, n: int, groups: int, weights: NDArray[np.float64]) -> Ints:
    """A group 0..groups-1 for each of `n` items, drawn by `weights` (need not sum to 1).

    When n >= groups every group gets at least one item (a random one), so that every
    agency of a small world still has somebody in its files.
    """
    p = weights / weights.sum()
    out = rng.choice(groups, size=n, p=p).astype(np.int64)
    if n >= groups:
        out[rng.permutation(n)[:groups]] = np.arange(groups)
    return out


def pick(rng: np.random.Generator, mask: NDArray[np.bool_], share: float) -> Ints:
    """Indices where `mask` holds, each kept with probability `share`, in ascending order."""
    candidates = np.flatnonzero(mask)
    return candidates[rng.random(candidates.size) < share]


def sizes(rng: np.random.Generator, groups: int, sigma: float) -> NDArray[np.float64]:
    """Lognormal relative sizes of `groups` agencies or employers (a few big, many small)."""
    return rng.lognormal(0.0, sigma, size=groups)
