"""The path's delay as a function of load (network/path_delay.py): interpolated between the rates
measured, held below them, continued above them; and drawn through its three quantiles exactly."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from network.path_delay import PiecewiseDelay, quantiles_at
from network.testbed_model import Conditions, predict
from scenarios.calibrated import CalibrationError, Delay, dump_calibrated, load_calibrated
from tests.test_testbed_model import _model

CURVE = [(100.0, 3.0, 5.0, 12.0), (200.0, 2.0, 4.0, 8.0), (400.0, 4.0, 8.0, 20.0)]


def test_between_two_rates_each_quantile_is_on_their_line() -> None:
    assert quantiles_at(CURVE, 150.0) == pytest.approx((2.5, 4.5, 10.0))
    assert quantiles_at(CURVE, 300.0) == pytest.approx((3.0, 6.0, 14.0))
    assert quantiles_at(CURVE, 200.0) == pytest.approx((2.0, 4.0, 8.0))


def test_below_the_lowest_rate_it_is_the_lowest_and_above_the_highest_it_goes_on_rising() -> None:
    assert quantiles_at(CURVE, 10.0) == (3.0, 5.0, 12.0)
    assert quantiles_at(CURVE, 600.0) == pytest.approx((6.0, 12.0, 32.0))  # the 200-400 line continued
    falling = [(100.0, 3.0, 5.0, 12.0), (200.0, 2.0, 4.0, 8.0)]
    assert quantiles_at(falling, 400.0) == (2.0, 4.0, 8.0)  # a falling line is not followed down
    assert quantiles_at([(100.0, 1.0, 2.0, 3.0)], 1000.0) == (1.0, 2.0, 3.0)


def test_quantiles_never_cross() -> None:
    assert quantiles_at([(100.0, 5.0, 4.0, 1.0)], 100.0) == (5.0, 5.0, 5.0)
    with pytest.raises(ValueError, match="at least one point"):
        quantiles_at([], 100.0)


@pytest.mark.parametrize(
    ("p50", "p90", "p99"), [(3.0, 5.0, 12.0), (1.0, 4.0, 30.0), (2.0, 2.5, 3.0), (0.0, 7.2, 30.0), (0.0, 0.0, 9.0)]
)
def test_the_delay_goes_through_its_three_quantiles_whatever_their_shape(p50: float, p90: float, p99: float) -> None:
    """Exactly, and in a large sample drawn as the model draws it (a standard normal per request);
    a median of 0 (the stations explain the typical request) included: the lognormal it replaced
    drew nothing at all for (0, 7.2, 30)."""
    delay = PiecewiseDelay(p50, p90, p99)
    assert [delay.at(q) for q in (0.5, 0.9, 0.99)] == pytest.approx([p50, p90, p99])
    drawn = np.array([delay.of_normal(z) for z in np.random.default_rng(7).standard_normal(200_000)])
    assert np.percentile(drawn, [50, 90, 99]) == pytest.approx([p50, p90, p99], rel=0.03, abs=0.05)
    assert drawn.mean() == pytest.approx(delay.mean_ms, rel=0.02)
    assert drawn.min() >= 0


def test_past_the_p99_each_tenth_of_the_probability_left_adds_what_p90_to_p99_did() -> None:
    delay = PiecewiseDelay(1.0, 4.0, 10.0)
    assert delay.at(0.999) == pytest.approx(16.0) and delay.at(0.9999) == pytest.approx(22.0)
    assert PiecewiseDelay(2.0, 2.0, 2.0).at(0.99999) == pytest.approx(2.0)  # no spread, no tail
    assert math.isfinite(delay.of_normal(40.0))  # far past any draw (1 - Phi(z) underflows): still a number


def test_the_delay_refuses_quantiles_that_do_not_rise_from_0() -> None:
    for wrong in ((5.0, 4.0, 6.0), (1.0, 2.0, 1.5), (-1.0, 0.0, 1.0)):
        with pytest.raises(ValueError, match="rise from 0"):
            PiecewiseDelay(*wrong)


def test_the_p99_never_falls_as_the_quantiles_rise_together() -> None:
    """Extrapolated quantiles whose p90 grows faster than their p99 keep their tail."""
    tails = [PiecewiseDelay(5.0 + k, 10.0 + 3 * k, 30.0 + 3.5 * k).at(0.999) for k in range(20)]
    assert all(later >= earlier for earlier, later in itertools.pairwise(tails))


def test_the_model_draws_the_curve_at_its_rate() -> None:
    low = _model(delay={"curve": [[100.0, 1.0, 1.0, 1.0], [400.0, 21.0, 21.0, 21.0]]})
    at = {rate: predict(low, Conditions(rate=rate, seconds=5.0, seed=2)).figures()["p50_ms"] for rate in (100, 250)}
    assert at[250] - at[100] == pytest.approx(10.0, abs=1.0)  # the delay's 1 ms at 100/s, 11 ms at 250/s


def test_a_curve_is_written_and_read_back_and_refused_when_wrong(tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = _model(delay={"curve": [list(point) for point in CURVE]})
    path = tmp_path / "calibrated.yaml"
    path.write_text(dump_calibrated(model, {"delay.curve": "measured"}))
    assert "curve: [[100, 3, 5, 12], [200, 2, 4, 8], [400, 4, 8, 20]] # measured" in path.read_text()
    assert load_calibrated(path).delay.curve == model.delay.curve
    for wrong, says in (({"curve": [[200.0, 1, 1, 1], [100.0, 1, 1, 1]]}, "rise"),
                        ({"curve": [[100.0, 1, 1, 1]], "mean_ms": 1.0}, "not both")):  # fmt: skip
        path.write_text(dump_calibrated(model, {}).replace("delay:\n", f"delay: {wrong}\n# ", 1))
        with pytest.raises(CalibrationError, match=says):
            load_calibrated(path)
    assert Delay(mean_ms=1.0).curve == []


def test_a_delay_whose_median_is_0_still_delays_the_tail() -> None:
    """The stations explain the typical request (the residual's median is 0) but not the tail: the
    model's p90 and p99 rise by about the delay's, the median hardly (the shape it replaced drew 0)."""
    when = Conditions(rate=100.0, seconds=30.0, seed=3)
    bare = predict(_model(), when).figures()
    delayed = predict(_model(delay={"curve": [[100.0, 0.0, 7.2, 30.0]]}), when).figures()
    assert delayed["p50_ms"] - bare["p50_ms"] < 1.0
    assert delayed["p90_ms"] - bare["p90_ms"] > 4.0
    assert delayed["p99_ms"] - bare["p99_ms"] > 20.0
