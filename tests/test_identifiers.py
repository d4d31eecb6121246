"""NISS and KBO numbers: check digits, the post-2000 rule, bis numbers."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crossroads.identifiers import is_valid_kbo, is_valid_niss, kbo_problem, make_kbo, make_niss, niss_problem


@pytest.mark.parametrize(
    ("birth", "sequence", "expected"),
    [
        (dt.date(1985, 3, 14), 123, "85031412302"),  # 97 - 850314123 mod 97 = 2
        (dt.date(2003, 3, 14), 124, "03031412454"),  # born in 2000 or later: 2 before the 9 digits
    ],
)
def test_known_niss(birth: dt.date, sequence: int, expected: str) -> None:
    assert make_niss(birth, sequence) == expected
    assert is_valid_niss(expected)


def test_post_2000_rule_changes_the_check_digits() -> None:
    old = make_niss(dt.date(1903, 3, 14), 124)
    new = make_niss(dt.date(2003, 3, 14), 124)
    assert old[:9] == new[:9]
    assert old[9:] != new[9:]


def test_bis_numbers_raise_the_month() -> None:
    known = make_niss(dt.date(1990, 7, 1), 11, bis=True)
    unknown = make_niss(dt.date(1990, 7, 1), 11, bis=True, sex_known=False)
    assert known[2:4] == "47"
    assert unknown[2:4] == "27"
    assert is_valid_niss(known) and is_valid_niss(unknown)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("8503141230", "11 digits"),
        ("8503141230a", "11 digits"),
        ("85031412300", "check digits"),
        ("85991412392", "no possible birth date"),  # month 99, valid check digits
    ],
)
def test_bad_niss_says_why(value: str, fragment: str | None) -> None:
    problem = niss_problem(value)
    assert problem is not None
    if fragment:
        assert fragment in problem


def test_known_kbo() -> None:
    assert is_valid_kbo("0203201340")
    assert kbo_problem("0203201341") is not None
    assert "start with 0 or 1" in (kbo_problem("2203201340") or "")


@given(
    st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2099, 12, 31)),
    st.integers(min_value=1, max_value=998),
    st.booleans(),
)
def test_every_made_niss_is_valid(birth: dt.date, sequence: int, bis: bool) -> None:
    niss = make_niss(birth, sequence, bis=bis)
    assert len(niss) == 11
    assert niss_problem(niss) is None


@given(st.integers(min_value=0, max_value=19_999_999))
def test_every_made_kbo_is_valid(serial: int) -> None:
    assert kbo_problem(make_kbo(serial)) is None


@given(st.integers(min_value=0, max_value=19_999_999), st.integers(min_value=1, max_value=99))
def test_a_changed_check_is_refused(serial: int, delta: int) -> None:
    kbo = make_kbo(serial)
    wrong = f"{kbo[:8]}{(int(kbo[8:]) + delta) % 100:02d}"
    assert kbo_problem(wrong) is not None
