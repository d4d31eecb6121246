"""Belgian identifiers: the NISS/INSZ of a person and the KBO/BCE number of an enterprise.

NISS: 11 digits YYMMDDNNNCC. NNN is a sequence (odd for men, even for women);
CC = 97 - (first 9 digits mod 97), where for births from 2000 on a "2" is put before the
9 digits before taking the modulus. A "bis" number (issued by the CBSS to people who are not
in the National Register) raises the birth month by 40 when the sex is known, by 20 when not.

KBO/BCE: 10 digits, the last two = 97 - (first 8 digits mod 97).
"""

from __future__ import annotations

import datetime as dt
from typing import NewType

Niss = NewType("Niss", str)
Kbo = NewType("Kbo", str)

__all__ = [
    "Kbo",
    "Niss",
    "is_valid_kbo",
    "is_valid_niss",
    "kbo_problem",
    "make_kbo",
    "make_niss",
    "niss_problem",
]


def _niss_check(nine: int, born_2000_or_later: bool) -> int:
    base = 2_000_000_000 + nine if born_2000_or_later else nine
    return 97 - base % 97


def make_niss(birth: dt.date, sequence: int, *, bis: bool = False, sex_known: bool = True) -> Niss:
    """The NISS of a person born on `birth` with day sequence `sequence` (1..998).

    `bis=True` gives a CBSS bis number (month + 40, or + 20 when the sex is unknown).
    """
    if not 1 <= sequence <= 998:
        raise ValueError(f"NISS sequence must be 1..998, got {sequence}")
    month = birth.month + ((40 if sex_known else 20) if bis else 0)
    nine = int(f"{birth.year % 100:02d}{month:02d}{birth.day:02d}{sequence:03d}")
    check = _niss_check(nine, birth.year >= 2000)
    return Niss(f"{nine:09d}{check:02d}")


def niss_problem(value: str) -> str | None:
    """None when `value` is a well-formed NISS (ordinary or bis), else what is wrong with it."""
    if len(value) != 11 or not (value.isascii() and value.isdigit()):
        return f"NISS must be 11 digits, got {value!r}"
    # the number is parsed once and taken apart with arithmetic: this runs for every person named
    # in every message the core validates (about half the time of slicing and parsing each part)
    nine, check = divmod(int(value), 100)
    if check != 97 - nine % 97 and check != 97 - (2_000_000_000 + nine) % 97:  # born before 2000, or from 2000 on
        return f"NISS {value} fails its check digits"
    month = nine // 100_000 % 100
    day = nine // 1_000 % 100
    # month 0 / day 0 occur for people whose birth date is (partly) unknown
    if not (month % 20 <= 12 and month <= 52) or day > 31:
        return f"NISS {value} encodes no possible birth date"
    return None


def is_valid_niss(value: str) -> bool:
    return niss_problem(value) is None


def make_kbo(serial: int) -> Kbo:
    """The KBO number whose first 8 digits are `serial`, zero-padded."""
    if not 0 <= serial < 20_000_000:
        raise ValueError(f"KBO serial out of range: {serial}")
    # serials below 20,000,000 give first digits "0" or "1", as real numbers have
    return Kbo(f"{serial:08d}{97 - serial % 97:02d}")


def kbo_problem(value: str) -> str | None:
    """None when `value` is a well-formed KBO/BCE number, else what is wrong with it."""
    if len(value) != 10 or not (value.isascii() and value.isdigit()):
        return f"KBO number must be 10 digits, got {value!r}"
    if value[0] not in "01":
        return f"KBO number {value} must start with 0 or 1"
    if int(value[8:]) != 97 - int(value[:8]) % 97:
        return f"KBO number {value} fails its check digits"
    return None


def is_valid_kbo(value: str) -> bool:
    return kbo_problem(value) is None
