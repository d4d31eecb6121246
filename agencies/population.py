"""The persons of the world, as columns: birth date, sex, NISS sequence, bis kind, residence.

No person is a Python object: person i is row i of each array, and the rows are sorted by
NISS, so that the NISS -> index lookup is a binary search. NISS numbers are unique by
construction: the sequence is the rank of the person among those sharing birth date, sex and
bis kind (odd for men, even for women, as the NISS rules say).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from agencies.columns import Days, Ints, assign_with_cover, day_number, sizes, ymd
from crossroads.identifiers import Niss

__all__ = [
    "BIS_SEX_KNOWN",
    "BIS_SEX_UNKNOWN",
    "ORDINARY",
    "Persons",
    "build_persons",
    "niss_numbers",
]

ORDINARY, BIS_SEX_KNOWN, BIS_SEX_UNKNOWN = 0, 1, 2  # bis kinds: month + 0, + 40, + 20
_BIS_MONTH_SHIFT = np.array([0, 40, 20], dtype=np.int64)
_MALE_SHARE = 0.49
_BIS_SEX_UNKNOWN_SHARE = 0.1  # of bis numbers (assumption)
_MAX_AGE = 104
_DAYS_PER_YEAR = 365.2425
_MUNICIPALITY_SIGMA = 1.0  # spread of municipality sizes (a few cities, many villages)


@dataclass(frozen=True, slots=True, eq=False)
class Persons:
    """Column arrays, one row per person, rows in ascending NISS order."""

    niss: Ints  # the NISS as an integer (11 digits), strictly ascending
    birth: Days  # birth date, days since 1970-01-01
    sequence: NDArray[np.int16]  # NISS day sequence 1..998
    male: NDArray[np.bool_]  # meaningful unless bis == BIS_SEX_UNKNOWN
    bis: NDArray[np.int8]  # ORDINARY, BIS_SEX_KNOWN or BIS_SEX_UNKNOWN
    municipality: NDArray[np.int16]  # residence: index of the municipality (and of its CPAS)

    @property
    def count(self) -> int:
        return int(self.niss.size)

    def niss_of(self, i: int) -> Niss:
        return Niss(f"{int(self.niss[i]):011d}")

    def index_of(self, niss: str) -> int | None:
        """The index of the person with this NISS, None if there is none (or it is malformed)."""
        if len(niss) != 11 or not niss.isdigit():
            return None
        value = int(niss)
        i = int(np.searchsorted(self.niss, value))
        return i if i < self.niss.size and int(self.niss[i]) == value else None

    def ages_on(self, day: dt.date) -> Ints:
        """Each person's age in whole years on `day` (0 for those born on it)."""
        year, month, dom = ymd(self.birth)
        before_birthday = (month > day.month) | ((month == day.month) & (dom > day.day))
        ages: Ints = day.year - year - before_birthday.astype(np.int64)
        return ages


def niss_numbers(birth: Days, sequence: NDArray[np.int16], bis: NDArray[np.int8]) -> Ints:
    """The NISS of each person as an integer; agrees with `crossroads.identifiers.make_niss`.

    Vectorized because 11 M calls of `make_niss` would cost the national build ~20 s; the
    test suite checks the two agree on every person of the demo world.
    """
    year, month, day = ymd(birth)
    month = month + _BIS_MONTH_SHIFT[bis]
    nine = (year % 100) * 10_000_000 + month * 100_000 + day * 1_000 + sequence.astype(np.int64)
    # births from 2000 on: a "2" before the 9 digits for the check
    base = nine + np.where(year >= 2000, 2_000_000_000, 0)
    niss: Ints = nine * 100 + (97 - base % 97)
    return niss


def build_persons(
    rng: np.random.Generator, count: int, as_of: dt.date, bis_share: float, municipalities: int
) -> Persons:
    """`count` persons alive on `as_of`, `bis_share` of them with a bis number."""
    birth = _birth_days(rng, count, as_of)
    male = rng.random(count) < _MALE_SHARE
    is_bis = rng.random(count) < bis_share
    sex_unknown = rng.random(count) < _BIS_SEX_UNKNOWN_SHARE
    bis = np.where(is_bis, np.where(sex_unknown, BIS_SEX_UNKNOWN, BIS_SEX_KNOWN), ORDINARY).astype(np.int8)
    birth, sequence = _sequences(birth, male, bis)
    municipality = assign_with_cover(rng, count, municipalities, sizes(rng, municipalities, _MUNICIPALITY_SIGMA))
    niss = niss_numbers(birth, sequence, bis)
    order = np.argsort(niss, kind="stable")
    return Persons(
        niss=niss[order],
        birth=birth[order],
        sequence=sequence[order],
        male=male[order],
        bis=bis[order],
        municipality=municipality[order].astype(np.int16),
    )


def _birth_days(rng: np.random.Generator, count: int, as_of: dt.date) -> Days:
    """Birth days by a rough Belgian age pyramid: flat to 60, thinning out to 104."""
    ages = np.arange(_MAX_AGE + 1, dtype=np.float64)
    weights = np.clip(1.0 - (ages - 60.0) / (_MAX_AGE + 1 - 60.0), 0.0, 1.0) ** 1.5
    age = rng.choice(ages.size, size=count, p=weights / weights.sum()) + rng.random(count)
    birth: Days = (day_number(as_of) - np.floor(age * _DAYS_PER_YEAR)).astype(np.int32)
    return birth


def _sequences(birth: Days, male: NDArray[np.bool_], bis: NDArray[np.int8]) -> tuple[Days, NDArray[np.int16]]:
    """A NISS day sequence for each person, unique within (birth day, bis kind).

    Men get odd numbers, women even ones (499 each per day); when the sex is unknown any of
    1..998. A day that runs out moves its surplus to the day before: it never happens at
    national scale (~200 births of one sex per day), but it keeps uniqueness a certainty.
    """
    birth = birth.copy()
    while True:
        rank, capacity = _ranks(birth, male, bis)
        overflow = rank >= capacity
        if not overflow.any():
            break
        birth[overflow] -= 1
    unknown = bis == BIS_SEX_UNKNOWN
    sequence = np.where(unknown, rank + 1, 2 * rank + np.where(male, 1, 2))
    return birth, sequence.astype(np.int16)


def _ranks(birth: Days, male: NDArray[np.bool_], bis: NDArray[np.int8]) -> tuple[Ints, Ints]:
    """Each person's rank within its (birth day, bis kind, sex) group, and the group's capacity."""
    unknown = bis == BIS_SEX_UNKNOWN
    sex = np.where(unknown, 0, male.astype(np.int64))
    key = birth.astype(np.int64) * 8 + bis.astype(np.int64) * 2 + sex
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    positions = np.arange(key.size, dtype=np.int64)
    starts = np.ones(key.size, dtype=bool)
    starts[1:] = sorted_key[1:] != sorted_key[:-1]
    first = np.maximum.accumulate(np.where(starts, positions, 0))
    rank = np.empty(key.size, dtype=np.int64)
    rank[order] = positions - first
    capacity = np.where(unknown, 998, 499)
    return rank, capacity
