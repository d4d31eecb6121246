"""An open-loop level's schedule and figures, without a server: seeded schedules, and what the
figures say about records made up by hand (the generator kept its schedule, or did not)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from loadtests.level import NOT_SENT, RECORD, Level, read_records, write_records
from loadtests.level_figures import LAG_LIMIT_MS, figures_of
from loadtests.pacing import arrival_times


def test_a_poisson_schedule_is_seeded_and_has_about_rate_times_seconds_arrivals() -> None:
    level = Level(rate=500, seconds=4.0, warmup_s=1.0, seed=11)
    times = level.schedule(0)
    assert np.array_equal(times, Level(rate=500, seconds=4.0, warmup_s=1.0, seed=11).schedule(0))
    assert not np.array_equal(times, Level(rate=500, seconds=4.0, warmup_s=1.0, seed=12).schedule(0))
    assert times.min() >= -1.0 and times.max() < 4.0 and np.all(np.diff(times) >= 0)
    assert abs(times.size - 2500) < 4 * math.sqrt(2500)
    gaps = np.diff(times)  # exponential gaps: mean 1/rate, as many shorter than the mean as e says
    assert gaps.mean() == pytest.approx(1 / 500, rel=0.1)
    assert np.mean(gaps < 1 / 500) == pytest.approx(1 - math.exp(-1), abs=0.03)


def test_sender_processes_share_the_rate_on_schedules_of_their_own() -> None:
    level = Level(rate=600, seconds=5.0, warmup_s=0.0, processes=3, seed=2)
    parts = [level.schedule(k) for k in range(3)]
    assert all(abs(p.size - 1000) < 4 * math.sqrt(1000) for p in parts)
    assert len({p[:5].tobytes() for p in parts}) == 3
    with pytest.raises(ValueError, match="sender 3"):
        level.schedule(3)


def test_even_schedules_of_several_senders_interleave_into_one_even_schedule() -> None:
    level = Level(rate=100, seconds=1.0, warmup_s=0.5, processes=4, arrivals="uniform")
    merged = level.intended()
    assert merged.size == 150
    assert np.allclose(merged, -0.5 + np.arange(150) / 100)


def test_the_intended_times_are_every_sender_s_schedule_together() -> None:
    level = Level(rate=300, seconds=2.0, warmup_s=1.0, processes=3, seed=5)
    merged = level.intended()
    assert np.all(np.diff(merged) >= 0)
    assert sorted(merged.tolist()) == sorted(np.concatenate([level.schedule(k) for k in range(3)]).tolist())


def test_arrival_times_refuse_what_is_no_schedule() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="> 0"):
        arrival_times(0, 1.0, poisson=True, rng=rng)
    with pytest.raises(ValueError, match="phase"):
        arrival_times(10, 1.0, poisson=False, rng=rng, phase=0.1)


def _records(n: int, *, lag_s: float = 0.001, latency_s: float = 0.02, code: int = 0) -> np.ndarray:
    records = np.zeros(n, dtype=RECORD)
    records["intended_s"] = np.arange(n) / n * 10.0  # n over a 10 s window
    records["lag_s"], records["latency_s"], records["code"] = lag_s, latency_s, code
    return records


LEVEL = Level(rate=100, seconds=10.0, warmup_s=1.0)


def test_a_kept_schedule_gives_rates_latencies_and_no_limit() -> None:
    records = _records(1000)
    records["latency_s"][:10] = 0.5  # the slowest 1%
    warm = _records(5)
    warm["intended_s"], warm["latency_s"] = -0.5, 0.6  # warm-up: sent, not counted; answered at 0.1 s
    figures = figures_of(np.concatenate([warm, records]), LEVEL, [0.5, 0.7])
    assert (figures["scheduled"], figures["sent"], figures["ok"], figures["errors"]) == (1000, 1000, 1000, 0)
    # within the window: every send; the warm-up's 5 answers, not the window's last 2 (at 10.0 and 10.01 s)
    assert (figures["offered_per_s"], figures["sent_per_s"], figures["achieved_per_s"]) == (100.0, 100.0, 100.3)
    assert (figures["p50_ms"], figures["p99_ms"], figures["max_ms"]) == (20.0, 20.0, 500.0)
    assert figures["p90_ms"] == 20.0 and figures["mean_ms"] == pytest.approx(24.8)
    assert figures["lag_p99_ms"] == 1.0 and figures["generator_limited"] is False and figures["limited_by"] == []
    assert figures["cpu_s"] == 1.2 and figures["cpu_us_per_call"] == pytest.approx(1.2 / 1005 * 1e6, abs=0.1)


def test_errors_count_by_code_and_stay_out_of_the_latency() -> None:
    records = _records(100)
    records["code"][:3] = 14  # UNAVAILABLE
    records["code"][3] = 4  # DEADLINE_EXCEEDED
    records["latency_s"][:4] = 10.0
    figures = figures_of(records, LEVEL, [0.1])
    assert figures["errors"] == 4 and figures["ok"] == 96
    assert figures["errors_by_code"] == {"UNAVAILABLE": 3, "DEADLINE_EXCEEDED": 1}
    assert figures["max_ms"] == 20.0


def test_a_late_sender_is_generator_limited() -> None:
    records = _records(1000, lag_s=(LAG_LIMIT_MS + 1) / 1000)
    figures = figures_of(records, LEVEL, [1.0])
    assert figures["generator_limited"] is True and figures["limited_by"] == ["send_lag"]
    # falling further and further behind: the last send went out 2 s after the window; within
    # it, the sends of i / 100 + 2 i / 999 < 10 s, i.e. i <= 833
    records["lag_s"] = np.linspace(0, 2.0, 1000)
    figures = figures_of(records, LEVEL, [1.0])
    assert figures["limited_by"] == ["send_lag", "sent_rate"]
    assert figures["sent_per_s"] == 83.4 and figures["sent"] == 1000


def test_sends_the_in_flight_cap_stopped_are_not_sent() -> None:
    records = _records(1000)
    records["code"][::100] = NOT_SENT
    figures = figures_of(records, LEVEL, [1.0])
    assert figures["not_sent"] == 10 and figures["sent"] == 990
    assert figures["limited_by"] == ["in_flight_cap"]


def test_no_answer_gives_null_figures_not_zero() -> None:
    figures = figures_of(_records(10, code=14), LEVEL, [0.0])
    assert figures["p50_ms"] is None and figures["mean_ms"] is None and figures["achieved_per_s"] == 0.0


def test_records_go_to_a_file_and_back(tmp_path: Path) -> None:
    records = _records(7)
    write_records(tmp_path / "r.npy", records)
    assert np.array_equal(read_records(tmp_path / "r.npy"), records)
    np.save(tmp_path / "other.npy", np.arange(3))
    with pytest.raises(ValueError, match="no load generator records"):
        read_records(tmp_path / "other.npy")
