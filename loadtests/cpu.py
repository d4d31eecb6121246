"""CPU time per process and per thread, read from /proc (Linux), over a window.

`snapshot(pids)` reads, for each named process, /proc/PID/stat and /proc/PID/task/TID/stat of
each of its threads: user + system time (utime + stime, in clock ticks: SC_CLK_TCK, 10 ms here)
and the thread's kernel name (comm). `usage(before, after)` gives, per process, the CPU seconds
spent between two snapshots and the utilisation (CPU seconds per second of the window: the
share of one core, 2.0 = both cores of this machine), in all and per thread name:
- the main thread (thread id = process id) is MAIN_THREAD ("main": the core's asyncio event
  loop, a host's too), whatever its comm;
- other threads by their comm: gRPC's C threads name themselves (event_engine, grpc_global_tim,
  lifeguard, ...); Python threads show their process's name ("python") unless the process named
  them (crossroads.thread_names: the core's audit-writer, gRPC's grpc-poller);
- threads that started in the window count from zero; threads that ended in it are gone from
  the second snapshot, their time is the process's total less its threads' (EXITED).
Periodic sampling is a list of snapshots, and `usage` between each one and the next.

Read by hand rather than with psutil: psutil gives per-thread times but not thread names, and
one stat file holds both, read at once.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "EXITED",
    "MAIN_THREAD",
    "ProcessTimes",
    "ProcessUsage",
    "Snapshot",
    "ThreadTimes",
    "ThreadUsage",
    "Usage",
    "cpu_seconds",
    "process_times",
    "snapshot",
    "usage",
]

MAIN_THREAD = "main"
EXITED = "(exited)"
_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class ThreadTimes:
    """One thread's CPU seconds so far, and its name (MAIN_THREAD for the main thread)."""

    tid: int
    name: str
    cpu_s: float


@dataclass(frozen=True, slots=True)
class ProcessTimes:
    """One process's CPU seconds so far (its threads', those gone included), and its live threads'."""

    pid: int
    cpu_s: float
    threads: tuple[ThreadTimes, ...]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The CPU times of named processes at one instant (time.monotonic()); None: the process was gone."""

    at: float
    processes: Mapping[str, ProcessTimes | None]


@dataclass(frozen=True, slots=True)
class Usage:
    """CPU over a window: seconds, and their share of one core (seconds per second of the window)."""

    cpu_s: float
    utilisation: float

    def _rounded(self) -> dict[str, Any]:
        return {"cpu_s": round(self.cpu_s, 3), "utilisation": round(self.utilisation, 4)}


@dataclass(frozen=True, slots=True)
class ThreadUsage(Usage):
    """The CPU of the threads of one name over a window, and how many threads they were."""

    threads: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: {"cpu_s", "utilisation", "threads"}."""
        return self._rounded() | {"threads": self.threads}


@dataclass(frozen=True, slots=True)
class ProcessUsage(Usage):
    """The CPU of one process over a window, in all and per thread name."""

    threads: Mapping[str, ThreadUsage]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: {"cpu_s", "utilisation", "threads": {name: ThreadUsage.as_dict()}}."""
        return self._rounded() | {"threads": {name: t.as_dict() for name, t in self.threads.items()}}


def _stat(path: Path) -> tuple[str, float]:
    """(comm, utime + stime in seconds) from a /proc stat file; the comm may hold spaces and parentheses."""
    text = path.read_text()
    comm = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    return comm, (int(fields[11]) + int(fields[12])) * _TICK_S  # fields 14 and 15 of proc(5)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far, all its threads (/proc/PID/stat).
    FileNotFoundError (an OSError) if there is no such process."""
    return _stat(Path(f"/proc/{pid}/stat"))[1]


def process_times(pid: int) -> ProcessTimes:
    """The CPU times of process `pid` and of each of its live threads. OSError if it is gone."""
    threads = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            comm, seconds = _stat(task / "stat")
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended while we looked
        tid = int(task.name)
        threads.append(ThreadTimes(tid, MAIN_THREAD if tid == pid else comm, seconds))
    return ProcessTimes(pid, cpu_seconds(pid), tuple(sorted(threads, key=lambda t: t.tid)))


def snapshot(pids: Mapping[str, int]) -> Snapshot:
    """The CPU times of each process of `pids` (name -> pid) now; None for a process that is gone."""
    processes: dict[str, ProcessTimes | None] = {}
    for name, pid in pids.items():
        try:
            processes[name] = process_times(pid)
        except OSError:
            processes[name] = None
    return Snapshot(time.monotonic(), processes)


def _process_usage(before: ProcessTimes, after: ProcessTimes, seconds: float) -> ProcessUsage:
    earlier = {t.tid: t.cpu_s for t in before.threads}
    spent: dict[str, list[float]] = {}
    for t in after.threads:
        spent.setdefault(t.name, []).append(t.cpu_s - earlier.get(t.tid, 0.0))
    total = after.cpu_s - before.cpu_s
    gone = total - sum(sum(v) for v in spent.values())
    if gone > len(after.threads) * _TICK_S:  # beyond a tick of rounding per thread: threads that ended
        spent[EXITED] = [gone]
    threads = {name: ThreadUsage(sum(v), sum(v) / seconds, len(v)) for name, v in sorted(spent.items())}
    return ProcessUsage(total, total / seconds, threads)


def usage(before: Snapshot, after: Snapshot) -> dict[str, ProcessUsage | None]:
    """The CPU each process spent between two snapshots of the same processes, per process name;
    None for a process missing from either, or another process (a new pid) in the second."""
    seconds = after.at - before.at
    if seconds <= 0:
        raise ValueError(f"the second snapshot must be later than the first ({seconds:+.6f} s)")
    result: dict[str, ProcessUsage | None] = {}
    for name, first in before.processes.items():
        second = after.processes.get(name)
        same = first is not None and second is not None and first.pid == second.pid
        result[name] = _process_usage(first, second, seconds) if same and first and second else None
    return result
