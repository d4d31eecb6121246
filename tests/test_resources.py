"""The CPU figures of a load test: each sample is the percent of one core a process used over that
sample's own interval, checked against real children (one spinning, one asleep) started the way
the testbed starts every child."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from loadtests.resources import ResourceSampler
from testbed import processes

INTERVAL_S = 0.25
SAMPLES = 8
BY_HAND = 3600.0  # a sampler whose own thread never samples: the test calls sample()
SPIN = ["-c", "while True: pass"]
SLEEP = ["-c", "import time; time.sleep(600)"]
CEILING = 100.0 * (os.cpu_count() or 1)  # every core of the machine busy


@pytest.fixture
def children(tmp_path: Path) -> Iterator[dict[str, processes.Child]]:
    started = {name: processes.start(name, args, log=tmp_path / f"{name}.log") for name, args in (
        ("spinner", SPIN), ("sleeper", SLEEP), ("late", SPIN))}  # fmt: skip
    try:
        yield started
    finally:
        processes.stop(started.values(), timeout_s=5)


def _cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def _numbers(values: list[float | None]) -> list[float]:
    return [v for v in values if v is not None]


def test_each_cpu_sample_is_the_share_of_a_core_over_its_own_interval(children: dict[str, processes.Child]) -> None:
    spinner, sleeper, late = children["spinner"], children["sleeper"], children["late"]
    named = {"spinner": spinner.pid, "sleeper": sleeper.pid}
    sampler = ResourceSampler(lambda: dict(named), interval=BY_HAND)
    # the truth: the CPU seconds the spinner used over the sampled time, whatever its share of
    # the (shared, perhaps busy) machine was
    before, started = _cpu_seconds(spinner.pid), time.monotonic()
    sampler.start()
    for k in range(SAMPLES):
        time.sleep(INTERVAL_S)
        sampler.sample()
        if k == SAMPLES // 2:
            named["late"] = late.pid  # a process that appears while the sampler runs
    truth = 100.0 * (_cpu_seconds(spinner.pid) - before) / (time.monotonic() - started)
    sampler.stop()

    spin, sleep, later = sampler.cpu["spinner"], sampler.cpu["sleeper"], sampler.cpu["late"]
    assert len(_numbers(spin)) == SAMPLES, "processes named at start are measured from the first sample"
    assert abs(sum(_numbers(spin)) / SAMPLES - truth) < 20, (spin, truth)
    assert max(_numbers(sleep)) < 20, sleep
    seen = SAMPLES // 2 + 1  # the sample that first sees it
    assert later[: seen + 1] == [None] * (seen + 1), "not there yet, then first seen: no interval to measure over"
    assert len(_numbers(later)) == SAMPLES - seen - 1
    assert all(0 <= v <= CEILING for vs in sampler.cpu.values() for v in _numbers(vs)), sampler.cpu


def test_a_spinning_child_reads_at_most_one_core_on_its_own_thread(
    children: dict[str, processes.Child],
) -> None:
    sampler = ResourceSampler(lambda: {"spinner": children["spinner"].pid}, interval=INTERVAL_S)
    sampler.start()
    time.sleep(INTERVAL_S * SAMPLES)
    sampler.stop()
    spin = _numbers(sampler.cpu["spinner"])
    assert len(spin) >= SAMPLES // 2
    # one thread cannot use more than one core; a busy machine may give it less
    assert all(0 < v <= min(CEILING, 110) for v in spin), spin


def test_a_new_process_under_an_old_name_starts_a_new_count(children: dict[str, processes.Child]) -> None:
    named = {"host-1": children["sleeper"].pid}
    sampler = ResourceSampler(lambda: dict(named), interval=BY_HAND)
    sampler.start()
    for pid in (children["sleeper"].pid, children["spinner"].pid, children["spinner"].pid):
        named["host-1"] = pid  # a host restarted by a fault comes back with a new pid
        time.sleep(INTERVAL_S)
        sampler.sample()
    sampler.stop()
    host = sampler.cpu["host-1"]
    assert host[0] is not None and host[0] < 20
    assert host[1] is None  # the restarted host's count starts here
    assert host[2] is not None and 0 < host[2] <= CEILING


def test_a_process_gone_has_no_sample(tmp_path: Path) -> None:
    child = processes.start("brief", ["-c", "pass"], log=tmp_path / "brief.log")
    child.popen.wait()
    sampler = ResourceSampler(lambda: {"brief": child.pid}, interval=BY_HAND)
    sampler.start()
    sampler.sample()
    sampler.stop()
    assert sampler.cpu["brief"] == [None] and sampler.rss_mb["brief"] == [None]
