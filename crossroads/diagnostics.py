"""Memory diagnostics of a long-running process (the core), off unless the environment asks.

    CROSSROADS_MEMORY_DUMP=FILE       append one JSON line per snapshot to FILE: on SIGUSR1, every
                                      CROSSROADS_MEMORY_INTERVAL seconds (if set), and at exit
    CROSSROADS_TRACEMALLOC=N          also trace Python allocations, N frames each (0 or unset: off;
                                      it costs the process CPU), and list in each snapshot the
                                      CROSSROADS_MEMORY_TOP (default 25) source lines that grew most
                                      since the first snapshot

A snapshot separates where resident memory can be: Python objects (tracemalloc, object counts
per type: what the garbage collector tracks), SQLite's own allocations (page caches,
statements: `sqlite3_memory_used`), and glibc malloc's view of the whole process (bytes in use
and bytes free but kept: fragmentation), beside the RSS. gRPC's C core allocates with malloc
and is seen only in malloc's total: what malloc holds beyond Python and SQLite is gRPC's, or
free memory the allocator keeps.

`install_from_env()` is the one call a process makes (crossroads/server.py, once serving);
it does nothing when CROSSROADS_MEMORY_DUMP is unset. Linux and glibc are assumed for RSS and
malloc figures; elsewhere those fields are None.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import ctypes
import gc
import json
import os
import signal
import sys
import threading
import time
import tracemalloc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_TOP",
    "DUMP_ENV",
    "INTERVAL_ENV",
    "TOP_ENV",
    "TRACEMALLOC_ENV",
    "MemoryDiagnostics",
    "install_from_env",
    "malloc_info",
    "read_dump",
    "rss_mb",
    "sqlite_memory_mb",
    "summarise_dump",
]

DUMP_ENV = "CROSSROADS_MEMORY_DUMP"
INTERVAL_ENV = "CROSSROADS_MEMORY_INTERVAL"
TRACEMALLOC_ENV = "CROSSROADS_TRACEMALLOC"
TOP_ENV = "CROSSROADS_MEMORY_TOP"
DEFAULT_TOP = 25
_MB = 2**20


class _MallInfo2(ctypes.Structure):
    """glibc's `struct mallinfo2` (glibc >= 2.33): every field a size_t."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                     "keepcost")
    ]  # fmt: skip


def rss_mb() -> float | None:
    """This process's resident memory (MB), from /proc; None where there is none."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / _MB


def sqlite_memory_mb() -> float | None:
    """What SQLite has allocated in this process (MB): page caches, schemas, statements, all connections."""
    try:
        import _sqlite3

        used = ctypes.CDLL(_sqlite3.__file__).sqlite3_memory_used
    except (ImportError, OSError, AttributeError):
        return None
    used.restype = ctypes.c_int64
    return int(used()) / _MB


def malloc_info() -> dict[str, float] | None:
    """glibc malloc over all arenas (MB): `in_use` (allocated, incl. large mmapped blocks), `free`
    (freed but kept by the allocator) and `mmapped`; None without glibc's mallinfo2."""
    try:
        call = ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):
        return None
    call.restype = _MallInfo2
    info = call()
    return {
        "in_use": (info.uordblks + info.hblkhd) / _MB,
        "free": info.fordblks / _MB,
        "mmapped": info.hblkhd / _MB,
        "arena": info.arena / _MB,
    }


def _type_counts() -> collections.Counter[str]:
    return collections.Counter(type(o).__qualname__ for o in gc.get_objects())


@dataclass
class MemoryDiagnostics:
    """Writes snapshots to `path` (JSON lines). `frames` > 0 starts tracemalloc with that many frames."""

    path: Path
    frames: int = 0
    top: int = DEFAULT_TOP
    _started: float = field(default_factory=time.monotonic)
    _first_trace: tracemalloc.Snapshot | None = None
    _first_types: collections.Counter[str] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        """Begin tracing (if asked) and take the baseline snapshot every later one is compared with."""
        if self.frames > 0 and not tracemalloc.is_tracing():
            tracemalloc.start(self.frames)
        self.dump("start")

    def dump(self, why: str) -> dict[str, Any]:
        """Take one snapshot, append it to the file, and return it. Safe from any thread."""
        with self._lock:
            record = self._snapshot(why)
            with open(self.path, "a", encoding="utf-8") as out:
                out.write(json.dumps(record) + "\n")
        return record

    def _snapshot(self, why: str) -> dict[str, Any]:
        record: dict[str, Any] = {
            "why": why,
            "pid": os.getpid(),
            "t": time.time(),
            "uptime_s": round(time.monotonic() - self._started, 3),
            "rss_mb": rss_mb(),
            "sqlite_mb": sqlite_memory_mb(),
            "malloc_mb": malloc_info(),
            "gc_counts": list(gc.get_count()),
            "gc_frozen": gc.get_freeze_count(),
        }
        types = _type_counts()
        self._first_types = self._first_types or types
        record["objects"] = sum(types.values())
        record["object_growth"] = dict((types - self._first_types).most_common(self.top))
        if tracemalloc.is_tracing():
            record |= self._traces()
        return record

    def _traces(self) -> dict[str, Any]:
        snapshot = tracemalloc.take_snapshot().filter_traces(
            (tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, __file__))
        )
        self._first_trace = self._first_trace or snapshot
        current, peak = tracemalloc.get_traced_memory()
        growth = snapshot.compare_to(self._first_trace, "lineno")[: self.top]
        return {"traced_mb": current / _MB, "traced_peak_mb": peak / _MB, "top_growth": [_stat(s) for s in growth]}

    def every(self, interval_s: float) -> None:
        """Dump every `interval_s` seconds from a daemon thread, until `close`."""

        def run() -> None:
            while not self._stop.wait(interval_s):
                self.dump("interval")

        threading.Thread(target=run, name="memory-diagnostics", daemon=True).start()

    def close(self) -> None:
        """The last snapshot ("exit"); stops the periodic thread."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self.dump("exit")


def _stat(s: tracemalloc.StatisticDiff) -> dict[str, Any]:
    return {
        "where": str(s.traceback[0]),
        "kb": round(s.size / 1024, 1),
        "growth_kb": round(s.size_diff / 1024, 1),
        "count": s.count,
        "count_growth": s.count_diff,
    }


def _settings(env: Mapping[str, str]) -> tuple[Path, int, int, float | None] | None:
    path = env.get(DUMP_ENV)
    if not path:
        return None
    try:
        frames = int(env.get(TRACEMALLOC_ENV) or 0)
        top = int(env.get(TOP_ENV) or DEFAULT_TOP)
        interval = float(env[INTERVAL_ENV]) if env.get(INTERVAL_ENV) else None
    except ValueError as exc:
        raise ValueError(f"memory diagnostics: {TRACEMALLOC_ENV} and {TOP_ENV} take integers, "
                         f"{INTERVAL_ENV} seconds: {exc}") from exc  # fmt: skip
    return Path(path), frames, top, interval


def install_from_env(env: Mapping[str, str] | None = None) -> MemoryDiagnostics | None:
    """Start the diagnostics the environment asks for (see the module doc); None when not asked.

    Must be called from the main thread (it sets the SIGUSR1 handler). The handler runs between
    the main thread's bytecodes, so on an event loop a snapshot pauses the loop while it is taken.
    """
    settings = _settings(os.environ if env is None else env)
    if settings is None:
        return None
    path, frames, top, interval = settings
    diagnostics = MemoryDiagnostics(path, frames=frames, top=top)
    diagnostics.start()
    signal.signal(signal.SIGUSR1, lambda _sig, _frame: diagnostics.dump("SIGUSR1"))
    atexit.register(diagnostics.close)
    if interval:
        diagnostics.every(interval)
    print(f"memory diagnostics: writing snapshots to {path}", file=sys.stderr, flush=True)
    return diagnostics


def read_dump(path: Path) -> list[dict[str, Any]]:
    """The snapshots of a dump file, in order."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _growth(first: Mapping[str, Any], last: Mapping[str, Any], key: str, sub: str | None = None) -> float | None:
    a, b = first.get(key), last.get(key)
    if sub is not None:
        a, b = (a or {}).get(sub), (b or {}).get(sub)
    return None if a is None or b is None else round(float(b) - float(a), 2)


def summarise_dump(snapshots: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """Where the memory went between the first snapshot and the last one taken while serving (the
    "exit" one is left out: by then the stores are closed): growth in MB of the RSS, of SQLite, of
    malloc's bytes in use and free-but-kept, of Python's traced bytes, and the objects and source
    lines that grew most. None with fewer than two such snapshots.
    """
    serving = [s for s in snapshots if s.get("why") != "exit"]
    if len(serving) < 2:
        return None
    first, last = serving[0], serving[-1]
    return {
        "from_s": first["uptime_s"],
        "until_s": last["uptime_s"],
        "snapshots": len(serving),
        "rss_mb": _growth(first, last, "rss_mb"),
        "sqlite_mb": _growth(first, last, "sqlite_mb"),
        "malloc_in_use_mb": _growth(first, last, "malloc_mb", "in_use"),
        "malloc_free_mb": _growth(first, last, "malloc_mb", "free"),
        "python_traced_mb": _growth(first, last, "traced_mb"),
        "objects": last["objects"] - first["objects"],
        "object_growth": last.get("object_growth", {}),
        "top_growth": last.get("top_growth", []),
    }
