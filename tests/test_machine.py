"""The machine's CPU shares from /proc/stat (loadtests/machine.py): the aggregate line read right,
stolen time kept apart from busy and idle, and a window of real spinning read as busy; and a
live level measured again while the hypervisor took too much of the machine
(testbed/calibration/measure.py least_stolen)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from loadtests.machine import MachineTimes, Sampler, over, parse, snapshot
from testbed.calibration.measure import least_stolen

# user nice system idle iowait irq softirq steal guest guest_nice
LINE = "cpu  6340 10 2589 15787 339 5 61 72 40 0"


def test_the_aggregate_line_is_read_by_what_the_kernel_did() -> None:
    times = parse(LINE, at=3.0)
    assert times == MachineTimes(at=3.0, busy=6340 + 10 + 2589 + 5 + 61, idle=15787 + 339, stolen=72)
    assert times.total == 6340 + 10 + 2589 + 15787 + 339 + 5 + 61 + 72  # guest is already in user
    with pytest.raises(ValueError, match="aggregate"):
        parse("cpu0 1 2 3 4 5 6 7 8")
    with pytest.raises(ValueError, match="aggregate"):
        parse("cpu 1 2 3")


def test_a_window_gives_shares_that_add_up_to_one() -> None:
    before = MachineTimes(at=10.0, busy=100, idle=300, stolen=0)
    after = MachineTimes(at=12.0, busy=200, idle=350, stolen=50)  # 2 s of 2 cores: 200 ticks
    shares = over(before, after)
    assert (shares.busy, shares.idle, shares.stolen) == (0.5, 0.25, 0.25)
    assert shares.seconds == 2.0
    assert shares.as_dict() == {"seconds": 2.0, "busy": 0.5, "idle": 0.25, "stolen": 0.25}
    empty = over(after, after)
    assert (empty.busy, empty.idle, empty.stolen) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="older"):
        over(after, before)


def test_the_live_file_reads_and_a_spinning_window_is_busy(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    stat.write_text(LINE + "\ncpu0 1 2 3 4 5 6 7 8 9 10\n")
    assert snapshot(stat).stolen == 72
    before = snapshot()
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:  # one core kept busy for half a second: 50 ticks at least
        pass
    shares = over(before, snapshot())
    assert shares.busy > 0.0 and shares.seconds >= 0.5
    assert shares.busy + shares.idle + shares.stolen == pytest.approx(1.0)


def test_a_sampler_gives_the_shares_of_a_window_known_afterwards(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    ticks = iter(range(0, 10_000, 10))  # each read: 10 ticks more of each kind

    def write() -> None:
        t = next(ticks)
        fresh = tmp_path / "stat.new"
        fresh.write_text(f"cpu {t} 0 0 {t} 0 0 0 {t}\n")
        fresh.replace(stat)  # whole, as the kernel gives it

    write()
    with Sampler(every_s=0.01, stat=stat) as sampler:
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            write()
            time.sleep(0.005)
        start, end = time.time() - 0.2, time.time() - 0.1
    inside = sampler.between(start, end)
    assert inside.stolen == pytest.approx(1 / 3) and inside.busy == pytest.approx(1 / 3)
    assert 0.1 <= inside.seconds < 0.2  # from the sample before the start to the one after the end
    whole = sampler.between(0.0, time.time() + 60)
    assert whole.seconds >= 0.3  # a window past the samples: the first and the last
    with pytest.raises(ValueError, match="not run"):
        Sampler(stat=stat).between(0.0, 1.0)


def _attempts(*stolen: float) -> tuple[list[float], Any]:
    made: list[float] = []

    def attempt() -> dict[str, Any]:
        share = stolen[len(made)]
        made.append(share)
        return {"rate": 100.0, "achieved_per_s": 100.0, "mean_ms": 5.0 + 100 * share, "p99_ms": 20.0,
                "machine": {"seconds": 10.0, "busy": 0.5, "idle": 0.5 - share, "stolen": share}}  # fmt: skip

    return made, attempt


def test_a_level_the_hypervisor_took_from_is_measured_again_and_the_least_stolen_kept() -> None:
    made, attempt = _attempts(0.01, 0.2)
    level = least_stolen(attempt, limit=0.03, retries=2)
    assert made == [0.01] and level["stolen_attempts"] == []  # under the limit: kept at once
    made, attempt = _attempts(0.2, 0.08, 0.02, 0.0)
    said: list[str] = []
    level = least_stolen(attempt, limit=0.03, retries=2, say=said.append)
    assert made == [0.2, 0.08, 0.02] and level["machine"]["stolen"] == 0.02
    assert said == ["100/s measured again: the hypervisor took 20.0% of the machine (mean 25.0 ms)",
                    "100/s measured again: the hypervisor took 8.0% of the machine (mean 13.0 ms)"]  # fmt: skip
    assert [a["machine"]["stolen"] for a in level["stolen_attempts"]] == [0.2, 0.08]
    first = level["stolen_attempts"][0]
    assert {k: first[k] for k in ("rate", "achieved_per_s", "mean_ms", "p99_ms")} == {
        "rate": 100.0, "achieved_per_s": 100.0, "mean_ms": 25.0, "p99_ms": 20.0}  # fmt: skip


def test_retries_are_bounded_and_the_least_stolen_of_them_kept() -> None:
    made, attempt = _attempts(0.2, 0.05, 0.1, 0.0)
    level = least_stolen(attempt, limit=0.03, retries=2)
    assert made == [0.2, 0.05, 0.1] and level["machine"]["stolen"] == 0.05
    made, attempt = _attempts(0.2, 0.0)
    assert least_stolen(attempt, limit=0.03, retries=0)["machine"]["stolen"] == 0.2 and made == [0.2]
    made, attempt = _attempts(0.5, 0.0)
    assert least_stolen(attempt, limit=1.0, retries=2)["stolen_attempts"] == [] and made == [0.5]
