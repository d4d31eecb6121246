"""The core's switch interval knob (crossroads/switching.py)."""

from __future__ import annotations

import sys

import pytest

from crossroads.switching import SWITCH_ENV, apply_from_env, switch_interval_from_env


def test_unset_keeps_cpythons_interval_and_a_value_is_milliseconds() -> None:
    assert switch_interval_from_env({}) is None
    assert switch_interval_from_env({SWITCH_ENV: " "}) is None
    assert switch_interval_from_env({SWITCH_ENV: "0.5"}) == pytest.approx(0.0005)


@pytest.mark.parametrize("text", ["0", "-1", "nan", "inf", "fast"])
def test_a_value_that_is_no_positive_number_is_refused_naming_the_variable(text: str) -> None:
    with pytest.raises(ValueError, match=f"{SWITCH_ENV}: expected milliseconds > 0, got '{text}'"):
        switch_interval_from_env({SWITCH_ENV: text})


def test_applying_sets_the_interval_and_unset_leaves_it() -> None:
    before = sys.getswitchinterval()
    try:
        assert apply_from_env({}) == before
        assert apply_from_env({SWITCH_ENV: "1"}) == pytest.approx(0.001)
    finally:
        sys.setswitchinterval(before)
