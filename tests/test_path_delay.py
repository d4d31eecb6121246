"""The path's delay as a function of load (network/path_delay.py): interpolated between the rates
measured, held below them, continued above them; and a fixed + lognormal through three quantiles."""

from __future__ import annotations

import itertools
import math

import pytest

from network.path_delay import quantiles_at, shifted_lognormal
from network.testbed_model import Conditions, predict
from scenarios.calibrated import CalibrationError, Delay, dump_calibrated, load_calibrated
from tests.test_testbed_model import _model

CURVE = [(100.0, 3.0, 5.0, 12.0), (200.0, 2.0, 4.0, 8.0), (400.0, 4.0, 8.0, 20.0)]
_Z90, _Z99 = 1.2815516, 2.3263479


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


@pytest.mark.parametrize(("p50", "p90", "p99"), [(3.0, 5.0, 12.0), (1.0, 4.0, 30.0), (2.0, 2.5, 3.0)])
def test_the_shifted_lognormal_goes_through_the_three_quantiles(p50: float, p90: float, p99: float) -> None:
    fixed, mean, cv = shifted_lognormal(p50, p90, p99)
    sigma = math.sqrt(math.log1p(cv**2))
    mu = math.log(mean) - sigma**2 / 2
    at = [fixed + math.exp(mu + z * sigma) for z in (0.0, _Z90, _Z99)]
    if fixed > 0:  # three quantiles, three parameters: all of them met
        assert at == pytest.approx([p50, p90, p99], rel=1e-3)
    else:  # no shift possible: a plain lognormal through p50 and p99
        assert (at[0], at[2]) == pytest.approx((p50, p99), rel=1e-3)


def test_lighter_tails_than_any_lognormal_keep_the_median_and_the_p99() -> None:
    fixed, mean, cv = shifted_lognormal(5.0, 6.0, 6.5)  # p90 too near p99 for any shifted lognormal
    sigma = math.sqrt(math.log1p(cv**2))
    median = mean / math.exp(sigma**2 / 2)
    assert fixed == 0 and median == pytest.approx(5.0) and median * math.exp(_Z99 * sigma) == pytest.approx(6.5)
    fixed, mean, _ = shifted_lognormal(5.0, 5.0, 5.0)  # no spread at all: 5 ms, whatever its shape
    assert fixed + mean == pytest.approx(5.0)


def test_the_p99_never_falls_as_the_quantiles_rise_together() -> None:
    """Extrapolated quantiles whose p90 grows faster than their p99 keep their tail."""
    p99 = []
    for k in range(20):
        fixed, mean, cv = shifted_lognormal(5.0 + k, 10.0 + 3 * k, 30.0 + 3.5 * k)
        sigma = math.sqrt(math.log1p(cv**2))
        p99.append(fixed + mean / math.exp(sigma**2 / 2) * math.exp(_Z99 * sigma))
    assert all(later >= earlier - 1e-6 for earlier, later in itertools.pairwise(p99))


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
