"""Waiting for the live network to go quiet before a level (testbed/calibration/settle.py), on a
simulated clock: CPU snapshots (loadtests.cpu) scripted window by window."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import pytest

from loadtests.cpu import ProcessTimes, Snapshot
from testbed.calibration.settle import Settled, settle


class _Scripted:
    """A clock that moves only when slept on, and CPU readings that add each window's shares."""

    def __init__(self, shares: list[Mapping[str, float]]) -> None:
        self.now = 100.0
        self.slept: list[float] = []
        self._shares: Iterator[Mapping[str, float]] = iter(shares)
        self._spent: dict[str, float] = {}
        self._window = 0.0

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        self._window = seconds

    def cpu_seconds(self) -> dict[str, float]:
        if self._window:  # each reading after a sleep spends that window's shares
            for name, share in next(self._shares).items():
                self._spent[name] = self._spent.get(name, 0.0) + share * self._window
        else:
            self._spent = {"core": 7.0, "host-0": 3.0}  # whatever they spent before
        return dict(self._spent)

    def snapshot(self) -> Snapshot:
        return _snapshot(self.now, self.cpu_seconds())

    def settle(self, **options: float) -> Settled:
        return settle(self.snapshot, sleep=self.sleep, **options)


def _snapshot(at: float, spent: Mapping[str, float]) -> Snapshot:
    """Each process of `spent` (name -> CPU seconds) with a pid of its own; "host-0" is None when missing."""
    pids = {"core": 10, "host-0": 11}
    return Snapshot(at, {name: ProcessTimes(pid, spent[name], ()) if name in spent else None
                         for name, pid in pids.items()})  # fmt: skip


def test_a_busy_network_is_waited_for_until_every_process_is_quiet() -> None:
    script = _Scripted([{"core": 0.9, "host-0": 0.4}, {"core": 0.3, "host-0": 0.01}, {"core": 0.02, "host-0": 0.2},
                        {"core": 0.03, "host-0": 0.01}, {"core": 0.9}])  # fmt: skip
    settled = script.settle(window_s=0.5, quiet_share=0.05)
    assert settled.quiet and settled.waited_s == pytest.approx(2.0)  # the fourth window was the first quiet one
    assert settled.busiest == pytest.approx(0.03)
    assert script.slept == [0.5] * 4
    assert settled.as_dict() == {"waited_s": 2.0, "quiet": True, "busiest": 0.03}


def test_an_idle_network_costs_one_window() -> None:
    script = _Scripted([{"core": 0.01, "host-0": 0.0}])
    settled = script.settle(window_s=0.25)
    assert settled.quiet and settled.waited_s == pytest.approx(0.25)


def test_a_network_that_never_goes_quiet_is_left_at_the_timeout_and_says_so() -> None:
    script = _Scripted([{"core": 0.5}] * 100)
    settled = script.settle(window_s=0.5, timeout_s=3.0)
    assert not settled.quiet and settled.waited_s == pytest.approx(3.0) and settled.busiest == pytest.approx(0.5)


def test_a_process_that_restarted_is_not_judged_on_the_window_it_was_missing_from() -> None:
    script = _Scripted([{"core": 0.0}, {"core": 0.0, "host-0": 0.0}])
    # host-0 is missing from the first window's reading: the core alone is judged, and it is quiet

    def without_host_once() -> Snapshot:
        reading = script.cpu_seconds()
        if len(script.slept) == 1:
            reading.pop("host-0")
        return _snapshot(script.now, reading)

    settled = settle(without_host_once, sleep=script.sleep)
    assert settled.quiet and len(script.slept) == 1
