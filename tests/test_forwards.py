"""Where a calibration's forwards went (testbed/calibration/forwards.py): counted from records."""

from __future__ import annotations

import pytest

from testbed.calibration.forwards import count_forwards

HOSTS = [["A", "B"], ["C"], ["D"]]


def test_each_host_s_share_and_its_notices_spread_over_its_agencies() -> None:
    records = [("MUTATION", ["A", "C"]), ("MUTATION", ["A"]), ("DMFA", ["B", "A"]),
               ("CONSULTATION", ["D"]), ("CONSULTATION", ["B"]), ("CONSULTATION", ["unknown"])]  # fmt: skip
    f = count_forwards(HOSTS, records)
    assert f.total == 7 and f.notices == 5
    assert f.shares == pytest.approx((5 / 7, 1 / 7, 1 / 7))
    # host 0's notices: A three times, B once (the consultation to B is not a notice); largest first
    assert f.notice_spread[0] == pytest.approx((0.75, 0.25))
    assert f.notice_spread[1] == (1.0,)
    assert f.notice_spread[2] == (1.0,)  # no notice at all: one line


def test_no_forward_counts_nothing() -> None:
    f = count_forwards(HOSTS, [("CONSULTATION", [])])
    assert f.total == 0 and f.shares == () and f.notice_spread == ((1.0,), (1.0,), (1.0,))
