"""THE percentile of the project (nearest rank) and the mean, against ranks computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from crossroads.statistics import mean, nearest_rank, percentile, percentiles

# (values, q, expected): the smallest value with at least q% of the values at or below it
CASES = [
    ([7.0], 0, 7.0),  # n = 1: every percentile is the one value
    ([7.0], 50, 7.0),
    ([7.0], 100, 7.0),
    ([3.0, 1.0], 0, 1.0),  # n = 2, unsorted input
    ([3.0, 1.0], 50, 1.0),  # 50% of 2 = 1 value: the first
    ([3.0, 1.0], 50.0001, 3.0),  # just past it: the second
    ([3.0, 1.0], 100, 3.0),
    ([1.0, 2.0, 2.0, 2.0, 9.0], 20, 1.0),  # ties: rank 1
    ([1.0, 2.0, 2.0, 2.0, 9.0], 21, 2.0),  # rank ceil(1.05) = 2
    ([1.0, 2.0, 2.0, 2.0, 9.0], 80, 2.0),  # rank 4, a tie
    ([1.0, 2.0, 2.0, 2.0, 9.0], 81, 9.0),  # rank 5
    ([10.0, 20.0, 30.0, 40.0], 25, 10.0),  # q exactly on a rank boundary
    ([10.0, 20.0, 30.0, 40.0], 30, 20.0),  # q between ranks: the next one up, no interpolation
    ([10.0, 20.0, 30.0, 40.0], 74.9, 30.0),
    ([10.0, 20.0, 30.0, 40.0], 99, 40.0),
    (list(range(1, 101)), 7, 7.0),  # numpy's inverted_cdf says 8 here (0.07 * 100 > 7 in binary)
    (list(range(1, 1001)), 99.9, 999.0),  # numpy says 1000
    (list(range(1, 1001)), 99.95, 1000.0),
]


@pytest.mark.parametrize(("values", "q", "expected"), CASES)
def test_the_percentile_is_the_nearest_rank(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == expected
    assert percentile(np.array(values), q) == expected


@pytest.mark.parametrize(
    ("n", "q", "rank"), [(1, 0, 1), (1, 100, 1), (4, 0, 1), (4, 25, 1), (4, 26, 2), (200, 99, 198)]
)
def test_nearest_rank_by_hand(n: int, q: float, rank: int) -> None:
    assert nearest_rank(n, q) == rank


def test_no_values_give_nan_not_zero() -> None:
    assert math.isnan(percentile([], 50))
    assert all(math.isnan(p) for p in percentiles(np.array([]), (50, 99)))
    assert math.isnan(mean([]))


@pytest.mark.parametrize("q", [-0.1, 100.1, math.nan])
def test_a_percentile_outside_0_to_100_is_refused(q: float) -> None:
    with pytest.raises(ValueError, match="between 0 and 100"):
        percentile([1.0], q)
    with pytest.raises(ValueError, match="between 0 and 100"):
        percentiles([], (50, q))


def test_percentiles_come_in_the_order_asked() -> None:
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert percentiles(values, (100, 0, 50)) == (5.0, 1.0, 3.0)


def test_it_agrees_with_numpy_inverted_cdf_on_random_data() -> None:
    rng = np.random.default_rng(20260601)
    qs = (0, 1, 5, 10, 25, 50, 75, 90, 95, 99, 99.5, 100)
    for _ in range(200):
        n = int(rng.integers(1, 5000))
        values = rng.lognormal(mean=-4, sigma=1.0, size=n)
        expected = tuple(float(v) for v in np.percentile(values, qs, method="inverted_cdf"))
        assert percentiles(values, qs) == expected, n
    # and for any q drawn at random, wherever numpy's q/100 * n is not a whole number in binary
    for _ in range(500):
        n, q = int(rng.integers(1, 3000)), float(rng.uniform(0, 100))
        values = rng.normal(size=n)
        assert percentile(values, q) == float(np.percentile(values, q, method="inverted_cdf")), (n, q)


def test_the_mean() -> None:
    assert mean([1.0, 2.0, 6.0]) == 3.0
    assert mean(np.array([0.5])) == 0.5
