"""The noise floor of a what-if's measured effect (testbed/calibration/noise.py) and the what-ifs'
goal judged by the errors that stand out of it (errors.resolved_whatifs), and how the page says it."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

from reports.validation_whatifs import whatifs_section
from testbed.calibration.errors import resolved_whatifs
from testbed.calibration.noise import MEDIAN_LOSS, count_noise, noise_of, resolved


def _pairs(*means: tuple[float, float]) -> list[tuple[dict[str, float], dict[str, float]]]:
    return [({"mean_ms": a}, {"mean_ms": b}) for a, b in means]


def test_the_noise_is_what_two_baselines_at_one_rate_differ_by() -> None:
    noise = noise_of(_pairs((5.0, 7.0), (6.0, 5.0), (8.0, 10.0)))
    assert noise is not None
    assert noise["null_effects_ms"] == [2.0, -1.0, 2.0]
    assert noise["rms_ms"] == pytest.approx(math.sqrt(3.0), abs=1e-3)
    # the median of three rounds' effects: a mean's standard error times the median's loss
    assert noise["standard_error_ms"] == pytest.approx(MEDIAN_LOSS * math.sqrt(3.0) / math.sqrt(3), abs=1e-3)
    assert noise["rounds"] == 3
    # more rounds: a smaller standard error from the same spread
    more = noise_of(_pairs((5.0, 7.0), (6.0, 5.0), (8.0, 10.0)) * 4)
    assert more is not None and more["standard_error_ms"] == pytest.approx(noise["standard_error_ms"] / 2, abs=1e-3)


def test_no_pair_no_noise() -> None:
    assert noise_of([]) is None


def test_a_count_s_noise_is_the_spread_of_its_rounds() -> None:
    noise = count_noise([82.0, 58.0, 63.0])  # run s19's QUEUED
    assert noise is not None and noise["counts"] == [82.0, 58.0, 63.0] and noise["rounds"] == 3
    assert noise["sd"] == pytest.approx(12.66, abs=0.01)  # the sample standard deviation (n - 1)
    assert noise["standard_error"] == pytest.approx(MEDIAN_LOSS * 12.662 / math.sqrt(3), abs=0.01)
    assert count_noise([5.0, 5.0])["standard_error"] == 0  # type: ignore[index]
    assert count_noise([82.0]) is None and count_noise([]) is None  # one round: no spread to read


def test_an_effect_is_resolved_two_standard_errors_from_zero() -> None:
    noise = {"standard_error_ms": 0.5}
    assert resolved(1.0, noise) and resolved(-1.2, noise)
    assert resolved(0.99, noise) is False and resolved(-0.3, noise) is False
    assert resolved(None, noise) is None and resolved(1.0, None) is None


def _whatif(name: str, effect_error: float, is_resolved: bool | None, counts: float | None = 0.05) -> dict[str, Any]:
    return {"name": name, "what": f"{name} at 300/s", "rate": 300.0,
            "predicted": {"mean_ms": 5.0, "effect_mean_ms": 0.1, "failed": 40, "queued": 30},
            "measured": {"mean_ms": 6.0, "effect_mean_ms": 0.7, "failed": 38, "queued": 28},
            "error": {"effect_mean_ms": effect_error, "failed": counts, "queued": counts},
            "noise": {"null_effects_ms": [1.66, 2.29, 1.91], "rms_ms": 1.96, "standard_error_ms": 1.419, "rounds": 3},
            "resolved": is_resolved}  # fmt: skip


def test_an_effect_within_the_noise_is_left_out_of_the_resolved_judgement_but_its_counts_are_not() -> None:
    kill = _whatif("host killed", -0.84, False, counts=0.146)
    stop = _whatif("core stopped", 0.081, True, counts=None)
    out = resolved_whatifs([kill, stop])
    assert out["worst"] == 0.146 and out["met"] is True  # the kill's counts and the stop's effect
    assert out["within_noise"] == ["host killed"]
    # a resolved effect's error counts, however large
    assert resolved_whatifs([_whatif("host killed", -0.84, True)])["worst"] == -0.84
    # nothing to judge by: not met
    empty = resolved_whatifs([_whatif("host killed", -0.84, False, counts=None)])
    assert empty["worst"] is None and not empty["met"]


def test_the_page_gives_each_effect_its_standard_error_and_says_what_the_noise_is() -> None:
    kill = _whatif("host killed", -0.84, False)
    stop = _whatif("core stopped", 0.081, True)
    text = whatifs_section([kill, stop], resolved_whatifs([kill, stop]))
    cells = re.findall(r"<td>(.*?)</td>", text)
    assert "+0.700 &plusmn; 1.42 <i>(within the noise)</i>" in cells  # the kill's: within it
    assert cells.count("+0.700 &plusmn; 1.42") == 1  # the stop's: out of it, unmarked
    assert "differed by +1.66, +2.29, +1.91 ms (root mean square 1.96 ms)" in text
    assert "median of 3 round(s)" in text and "worst error is +8.1%" in text
    # the judged counts with their own standard error, and what it is
    counted = kill | {"count_noise": {"failed": count_noise([40.0, 38.0, 36.0]), "queued": count_noise([30.0, 20.0])}}
    text = whatifs_section([counted])
    cells = re.findall(r"<td>(.*?)</td>", text)
    assert "38 &plusmn; 1.4" in cells and "28 &plusmn; 6.3" in cells
    assert "A count's &plusmn; is its own standard error" in text
    assert "38 &plusmn;" not in whatifs_section([stop]) and "A count's" not in whatifs_section([stop])
    # without noise (a validation of before 2026-12-08): the effect alone and no paragraph
    bare = {k: v for k, v in kill.items() if k not in ("noise", "resolved")}
    plain = whatifs_section([bare])
    assert "&plusmn;" not in plain and "root mean square" not in plain
