"""The machine's speed probe (loadtests/speed_probe.py): its reading over a level's window, and
its median over a level's rounds."""

from __future__ import annotations

import time

from loadtests.speed_probe import SpeedProbe, work
from testbed.calibration.rounds import combined


def test_the_work_is_the_same_every_time() -> None:
    assert work() == work() > 0


def test_the_probe_reads_the_cpu_time_of_its_work_over_a_window() -> None:
    start = time.time()
    with SpeedProbe(every_s=0.005) as probe:
        time.sleep(0.4)
    end = time.time()
    median = probe.between(start, end)
    assert median is not None and 0 < median < 400  # ms of one core for a piece of work, not seconds
    assert probe.between(end + 1, end + 2) is None  # no sample there
    assert probe.between(start, start + 1e-6) is None  # fewer than MIN_SAMPLES


def test_repetitions_combined_keep_the_median_speed() -> None:
    def level(mean: float, probe: float | None) -> dict[str, object]:
        return {"rate": 100.0, "achieved_per_s": 100.0, "mean_ms": mean, "p50_ms": mean, "p90_ms": mean,
                "p99_ms": mean, "machine": {"stolen": 0.0, "probe_ms": probe}}  # fmt: skip

    out = combined([level(5.0, 1.0), level(6.0, 1.4), level(7.0, 1.1), level(8.0, None)])
    assert out["machine"]["probe_ms"] == 1.1  # the median of those read
    assert [r["probe_ms"] for r in out["repetitions"]] == [1.0, 1.4, 1.1, None]
