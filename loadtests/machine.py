"""The machine's CPU as its kernel accounts it, over a window: how much the hypervisor took.

This machine is a virtual one (2 vCPUs of a shared host). When the host runs another tenant on
the physical core behind one of our vCPUs, the guest's kernel counts that time as *stolen*
(/proc/stat, the eighth figure of the "cpu" line, in clock ticks: SC_CLK_TCK, 10 ms here): our
processes were ready to run and did not. Stolen time is invisible in a process's own CPU times
(loadtests.cpu), but it is in every latency measured while it lasts.

`snapshot()` reads the aggregate "cpu" line; `over(before, after)` gives the window's shares of
the machine's CPU time (all its cores together, 1.0 = every core the whole window): busy (user,
nice, system, irq, softirq), idle (idle, iowait) and stolen. A `Sampler` (a thread reading the
line every half second) gives them over a window known only afterwards, such as a load level's
measured window once its generator has fixed it. Measured over a whole load level on
this machine (2026-12-06, AMD EPYC host): one second could lose 0-32 % of the machine to the host,
in episodes of ten to thirty seconds.
"""

from __future__ import annotations

import bisect
import threading
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MachineShares", "MachineTimes", "Sampler", "over", "snapshot"]

_STAT = Path("/proc/stat")


@dataclass(frozen=True, slots=True)
class MachineTimes:
    """The machine's CPU ticks so far (all cores), by what the kernel did with them, at `at`
    (UNIX time, as the load generator's windows are given)."""

    at: float
    busy: int
    idle: int
    stolen: int

    @property
    def total(self) -> int:
        return self.busy + self.idle + self.stolen


@dataclass(frozen=True, slots=True)
class MachineShares:
    """A window's shares of the machine's CPU time (they add up to 1), and its length."""

    seconds: float
    busy: float
    idle: float
    stolen: float

    def as_dict(self) -> dict[str, float]:
        return {"seconds": round(self.seconds, 3), "busy": round(self.busy, 4),
                "idle": round(self.idle, 4), "stolen": round(self.stolen, 4)}  # fmt: skip


def parse(line: str, at: float = 0.0) -> MachineTimes:
    """The aggregate "cpu" line of /proc/stat: user nice system idle iowait irq softirq steal
    [guest guest_nice] (guest time is already in user and nice, so it is not added again)."""
    name, *fields = line.split()
    if name != "cpu" or len(fields) < 8:
        raise ValueError(f"not the aggregate cpu line of /proc/stat: {line!r}")
    user, nice, system, idle, iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return MachineTimes(at=at, busy=user + nice + system + irq + softirq, idle=idle + iowait, stolen=steal)


def snapshot(stat: Path = _STAT) -> MachineTimes:
    """The machine's CPU ticks now."""
    with stat.open() as f:
        return parse(f.readline(), time.time())


def over(before: MachineTimes, after: MachineTimes) -> MachineShares:
    """The shares of the machine's CPU time between two snapshots (all zero for an empty window)."""
    busy, idle, stolen = after.busy - before.busy, after.idle - before.idle, after.stolen - before.stolen
    if min(busy, idle, stolen) < 0:
        raise ValueError("the second snapshot is older than the first")
    total = after.total - before.total
    seconds = after.at - before.at
    if total == 0:
        return MachineShares(seconds=seconds, busy=0.0, idle=0.0, stolen=0.0)
    return MachineShares(seconds=seconds, busy=busy / total, idle=idle / total, stolen=stolen / total)


class Sampler:
    """The machine's CPU ticks read every `every_s` by a thread of its own, from `start()` to
    `stop()` (a context manager), for `between(start, end)` afterwards."""

    def __init__(self, every_s: float = 0.5, stat: Path = _STAT) -> None:
        self.every_s = every_s
        self._stat = stat
        self._samples: list[MachineTimes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="machine-sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self._samples.append(snapshot(self._stat))
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._samples.append(snapshot(self._stat))

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self._samples.append(snapshot(self._stat))

    def between(self, start: float, end: float) -> MachineShares:
        """The shares over [`start`, `end`] (UNIX times), from the last sample at or before `start`
        to the first at or after `end` (the samples nearest them where the window runs past them)."""
        samples = list(self._samples)
        if len(samples) < 2:
            raise ValueError("the sampler has not run")
        times = [s.at for s in samples]
        first = max(bisect.bisect_right(times, start) - 1, 0)
        last = min(bisect.bisect_left(times, end), len(samples) - 1)
        return over(samples[first], samples[max(last, first)])
