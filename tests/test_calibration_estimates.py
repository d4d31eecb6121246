"""Service demands recovered from synthetic measurements whose demands are known (network/calibration.py)."""

from __future__ import annotations

import numpy as np
import pytest

from network.calibration import batch_cost, demand, fit_line

LEVELS = (300.0, 600.0, 900.0, 1200.0)


def test_a_line_through_exact_points_is_found_exactly() -> None:
    line = fit_line((1.0, 2.0, 3.0), (5.0, 7.0, 9.0))
    assert line.intercept == pytest.approx(3.0) and line.slope == pytest.approx(2.0) and line.n == 3
    assert line.r2 == pytest.approx(1.0)
    assert fit_line((2.0,), (8.0,)).slope == pytest.approx(4.0)  # one point: through the origin
    with pytest.raises(ValueError, match="do not vary"):
        fit_line((2.0, 2.0), (1.0, 3.0))


@pytest.mark.parametrize("seed", range(5))
def test_the_demand_and_the_background_are_recovered_from_noisy_utilisations(seed: int) -> None:
    rng = np.random.default_rng(seed)
    true_demand, background = 420e-6, 0.02  # 420 us a request, 2 % of a core whatever the load
    measured = [background + true_demand * x + rng.normal(0, 0.004) for x in LEVELS]
    found = demand(LEVELS, measured, "core main thread")
    assert found.value == pytest.approx(true_demand, rel=0.1)
    assert found.background == pytest.approx(background, abs=0.015)
    assert "4 level(s)" in found.source and "core main thread" in found.source


def test_one_level_gives_the_utilisation_law_itself() -> None:
    found = demand((500.0,), (0.2,), "host")
    assert found.value == pytest.approx(0.2 / 500.0) and found.background == 0.0
    assert "through the origin" in found.source


def test_a_resource_that_does_not_grow_with_the_load_has_no_demand() -> None:
    with pytest.raises(ValueError, match="does not grow"):
        demand(LEVELS, (0.3, 0.2, 0.1, 0.0), "idle thread")


def test_a_batch_cost_splits_into_fixed_and_per_record_when_the_batches_vary() -> None:
    batches = (1.1, 2.5, 6.0, 14.0)
    seconds = [180e-6 + 12e-6 * n for n in batches]
    fixed, per_record = batch_cost(batches, seconds, "group commit")
    assert fixed.value == pytest.approx(180e-6) and per_record.value == pytest.approx(12e-6)
    fixed, per_record = batch_cost((1.0, 1.01), (200e-6, 202e-6), "group commit")  # batches that hardly vary
    assert fixed.value == pytest.approx(201e-6) and per_record.value == 0.0
