"""CPU and memory of the processes of a run (core, hosts, Locust), sampled with psutil on a thread.

Each sample asks `pids()` which processes to look at (a host restarted by a fault has a new pid,
under the same name), and records for each its CPU use over that sample's own interval, since
the previous sample (percent of one core: 200 = both cores of this machine busy), and its
resident memory. A process that is gone, or not yet there, has None in that sample; so has the
CPU of a process in the first sample that sees it (a Locust worker, a restarted host): its
count starts there. The processes named when the sampler starts are counted from that moment,
so the first sample measures them over a whole interval.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import psutil

__all__ = [
    "DEFAULT_FLAT_MB_PER_MIN",
    "DEFAULT_INTERVAL_S",
    "MemoryTrend",
    "ResourceSampler",
    "mean_cpu_percent",
    "memory_trend",
    "rss_slope_mb_per_min",
]

DEFAULT_INTERVAL_S = 1.0
DEFAULT_FLAT_MB_PER_MIN = 1.0  # "flat": the second half of a soak grows by less than this
_MB = 2**20


class ResourceSampler:
    """Samples the processes `pids()` names every `interval` seconds until `stop()`."""

    def __init__(self, pids: Callable[[], Mapping[str, int]], interval: float = DEFAULT_INTERVAL_S) -> None:
        self._pids = pids
        self._interval = interval
        self._processes: dict[int, psutil.Process] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.times: list[float] = []
        self.cpu: dict[str, list[float | None]] = {}
        self.rss_mb: dict[str, list[float | None]] = {}

    def start(self) -> None:
        """Start counting the CPU of the processes named now, then sample on a thread."""
        for pid in self._pids().values():
            with contextlib.suppress(psutil.Error):
                self._process(pid)
        self._thread = threading.Thread(target=self._run, name="resource-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.sample()

    def _process(self, pid: int) -> tuple[psutil.Process, bool]:
        """The process `pid` names, and whether it was counted before (False: its count starts now).
        A pid that now names another process (the old one died) starts a new count."""
        found = self._processes.get(pid)
        if found is not None and found.is_running():  # same pid and same creation time
            return found, True
        found = self._processes[pid] = psutil.Process(pid)
        # psutil's cpu_percent(None) is the use since the previous call on this object: the
        # first call only starts the count (it answers 0.0, which is no measure)
        found.cpu_percent(None)
        return found, False

    def _read(self, pid: int) -> tuple[float | None, float | None]:
        """(CPU percent of one core since the previous sample, resident MB) of `pid`, None for
        what cannot be known: a process gone, a zombie, or the CPU of one first seen now."""
        try:
            process, counted = self._process(pid)
            with process.oneshot():
                cpu, rss = process.cpu_percent(None), process.memory_info().rss / _MB
                if process.status() == psutil.STATUS_ZOMBIE:
                    return None, None
        except psutil.Error:
            return None, None
        return (cpu if counted else None), rss

    def sample(self) -> None:
        """Take one sample now."""
        n = len(self.times)
        self.times.append(time.time())
        for name, pid in self._pids().items():
            cpu, rss = self._read(pid)
            self.cpu.setdefault(name, [None] * n).append(cpu)
            self.rss_mb.setdefault(name, [None] * n).append(rss)
        for series in (*self.cpu.values(), *self.rss_mb.values()):
            series.extend([None] * (n + 1 - len(series)))  # a name not asked about this time

    def as_json(self, t0: float) -> dict[str, Any]:
        """{"t_s": seconds after t0, "cpu_percent": {name: [...]}, "rss_mb": {name: [...]}}."""
        return {
            "t_s": [round(t - t0, 3) for t in self.times],
            "cpu_percent": {k: [None if v is None else round(v, 1) for v in vs] for k, vs in self.cpu.items()},
            "rss_mb": {k: [None if v is None else round(v, 2) for v in vs] for k, vs in self.rss_mb.items()},
        }


def rss_slope_mb_per_min(t_s: Sequence[float], rss_mb: Sequence[float | None], skip_share: float = 0.2) -> float | None:
    """Least-squares slope of memory over time (MB per minute), leaving out the first `skip_share`
    of the samples (start-up: caches and connections fill). None with fewer than 3 samples."""
    points = [(t, r) for t, r in zip(t_s, rss_mb, strict=True) if r is not None]
    points = points[int(len(points) * skip_share) :]
    if len(points) < 3:
        return None
    mean_t = sum(t for t, _ in points) / len(points)
    mean_r = sum(r for _, r in points) / len(points)
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return None
    cov = sum((t - mean_t) * (r - mean_r) for t, r in points)
    return cov / var * 60.0


@dataclass(frozen=True, slots=True)
class MemoryTrend:
    """How one process's resident memory moved while the load ran (MB, MB per minute).

    `slope_mb_per_min` is the least-squares slope over the second half of the load only: the
    first half is the warm-up (caches and connections fill, the allocator finds its size).
    `total_growth_mb` is the last sample of the load minus the first, warm-up included;
    `second_half_growth_mb` the same over the second half. `flat` is slope < `threshold`.
    """

    start_mb: float
    end_mb: float
    total_growth_mb: float
    second_half_growth_mb: float
    slope_mb_per_min: float
    threshold_mb_per_min: float
    flat: bool

    def as_json(self) -> dict[str, Any]:
        return {name: round(v, 3) if isinstance(v, float) else v for name, v in asdict(self).items()}


def memory_trend(
    t_s: Sequence[float],
    rss_mb: Sequence[float | None],
    duration_s: float,
    threshold: float = DEFAULT_FLAT_MB_PER_MIN,
) -> MemoryTrend | None:
    """The trend of `rss_mb` sampled at `t_s` (seconds after the load started) during a load of
    `duration_s` seconds (samples outside [0, duration_s] are left out: start-up and drain).
    None when the second half has fewer than 3 samples (the process was gone, or the load too short).
    """
    during = [(t, r) for t, r in zip(t_s, rss_mb, strict=True) if r is not None and 0.0 <= t <= duration_s]
    late = [(t, r) for t, r in during if t >= duration_s / 2]
    slope = rss_slope_mb_per_min([t for t, _ in late], [r for _, r in late], skip_share=0.0)
    if slope is None:
        return None
    return MemoryTrend(
        start_mb=during[0][1],
        end_mb=during[-1][1],
        total_growth_mb=during[-1][1] - during[0][1],
        second_half_growth_mb=late[-1][1] - late[0][1],
        slope_mb_per_min=slope,
        threshold_mb_per_min=threshold,
        flat=slope < threshold,
    )


def mean_cpu_percent(resources: Mapping[str, Any], from_s: float, until_s: float) -> dict[str, float]:
    """Each process's mean CPU (percent of one core) over the samples of `resources` (the form of
    `ResourceSampler.as_json`) taken in [from_s, until_s); a process without such samples is left out."""
    inside = [k for k, t in enumerate(resources["t_s"]) if from_s <= t < until_s]
    means = {}
    for name, values in resources["cpu_percent"].items():
        found = [values[k] for k in inside if values[k] is not None]
        if found:
            means[name] = round(sum(found) / len(found), 1)
    return means
