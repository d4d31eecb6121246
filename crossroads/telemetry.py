"""Where the running core's time goes, measured by the core itself, off unless its environment asks.

    CROSSROADS_TELEMETRY=FILE         append one JSON line to FILE every
                                      CROSSROADS_TELEMETRY_EVERY seconds (default 1) while the core
                                      serves, and one when it stops

Each line covers the interval since the previous one (`t`: UNIX time at its end):
- "exchanges": how many routed exchanges ended in it, and per exchange, in milliseconds, the
  quantiles (p50/p90/p99) and mean of: "handle" (from the moment the core's handler took the
  call to its answer), "forward" (waiting for the agency hosts: the forward round trips),
  "commit" (waiting for the audit record to be durable: the commit before it, its own, and fsync),
  "own" (the rest: parsing, validation, routing, exactly-once, records, reply: the core's Python);
- "commits": the audit writer's group commits (crossroads.audit_writer.CommitStats): count,
  records, mean batch, the mean time a commit took, the histogram of batch sizes, the time
  its commits spent taking the store from the outbox's writer (`store_wait_s`, crossroads/write_gate.py)
  and in their COMMIT statements, where SQLite writes the WAL and fsyncs it (`sync_s`; per commit,
  `mean_sync_ms`).
What the handler cannot see is gRPC's: the transport and queueing before the handler runs and
after it answers, which is the client's latency less "handle".

When on, the core's forwarder and audit log are wrapped (`timed_ports`) and its Exchange service
times each call: a few clock reads per exchange. When off nothing is wrapped, nothing is timed.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from crossroads.audit_writer import CommitStats
from crossroads.statistics import mean, percentiles

__all__ = [
    "EVERY_ENV",
    "PER_COMMIT_FIGURES",
    "TELEMETRY_ENV",
    "Telemetry",
    "TimedAudit",
    "TimedForwarder",
    "commit_figures",
    "over",
    "read_telemetry",
]

TELEMETRY_ENV = "CROSSROADS_TELEMETRY"
EVERY_ENV = "CROSSROADS_TELEMETRY_EVERY"
DEFAULT_EVERY_S = 1.0
_STAGES = ("handle", "forward", "commit", "own")
# what a line's "commits" holds of CommitStats (a line written before 2026-12-07 also has "wait_s",
# the writer's wait for announced appends, and every line the figures `commit_figures` adds: not read)
_COMMIT_FIELDS = frozenset(f.name for f in fields(CommitStats))
# the means per commit a line's "commits" adds: name -> (CommitStats counter, scale, digits)
_PER_COMMIT = {
    "mean_batch": ("records", 1, 3),
    "mean_commit_ms": ("commit_s", 1000, 4),
    "mean_sync_ms": ("sync_s", 1000, 4),
}
PER_COMMIT_FIGURES = tuple(_PER_COMMIT)
# the call being timed: [forward seconds, commit seconds], added to by the wrapped ports
_CURRENT: contextvars.ContextVar[list[float] | None] = contextvars.ContextVar("crossroads_telemetry", default=None)


class Telemetry:
    """The core's measurements of itself (see the module doc): `timed(handle)` around each call."""

    def __init__(self, path: Path, every_s: float, commits: Callable[[], CommitStats]) -> None:
        self.path = path
        self.every_s = every_s
        self._commits = commits
        self._last = commits()
        self._rows: list[tuple[float, float, float]] = []  # (handle, forward, commit) seconds
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_env(cls, commits: Callable[[], CommitStats]) -> Telemetry | None:
        """The telemetry the environment asks for (CROSSROADS_TELEMETRY), or None."""
        path = os.environ.get(TELEMETRY_ENV)
        if not path:
            return None
        return cls(Path(path), float(os.environ.get(EVERY_ENV, DEFAULT_EVERY_S)), commits)

    def start_call(self) -> tuple[float, list[float], contextvars.Token[list[float] | None]]:
        """Begin timing one call (in its own task): what `end_call` needs."""
        waits = [0.0, 0.0]
        return time.perf_counter(), waits, _CURRENT.set(waits)

    def end_call(self, started: tuple[float, list[float], contextvars.Token[list[float] | None]]) -> None:
        at, waits, token = started
        _CURRENT.reset(token)
        self._rows.append((time.perf_counter() - at, waits[0], waits[1]))

    def start(self) -> None:
        """Write a line every `every_s` seconds from the running event loop until `stop`."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop writing, and write the last interval's line."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.write_line()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            self.write_line()

    def write_line(self) -> None:
        """Append the line of the interval since the last one to the file."""
        rows, self._rows = self._rows, []
        now = self._commits()
        commits, self._last = now.since(self._last), now
        line = {"t": time.time(), "exchanges": _exchanges(rows), "commits": commit_figures(commits)}
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")


def _ms(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p90": None, "p99": None, "mean": None}
    p50, p90, p99 = percentiles(values, (50, 90, 99))
    return {k: round(v * 1000, 4) for k, v in (("p50", p50), ("p90", p90), ("p99", p99), ("mean", mean(values)))}


def _exchanges(rows: Sequence[tuple[float, float, float]]) -> dict[str, Any]:
    own = [h - f - c for h, f, c in rows]
    columns = dict(zip(_STAGES, ([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], own), strict=True))
    return {"count": len(rows), **{f"{stage}_ms": _ms(values) for stage, values in columns.items()}}


def commit_figures(c: CommitStats) -> dict[str, Any]:
    """A telemetry line's "commits": the counters of `c`, and the means per commit (PER_COMMIT_FIGURES)."""
    figures = asdict(c)
    for name, (counter, scale, digits) in _PER_COMMIT.items():
        figures[name] = round(getattr(c, counter) / c.commits * scale, digits) if c.commits else None
    return figures


class TimedForwarder:
    """A forwarder whose forwards add their time to the call being timed ("forward")."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def deliver_raw(self, destination: Any, data: bytes, timeout: float) -> Any:
        waits = _CURRENT.get()
        at = time.perf_counter()
        try:
            return await self._inner.deliver_raw(destination, data, timeout)
        finally:
            if waits is not None:
                waits[0] += time.perf_counter() - at


class TimedAudit:
    """An audit log whose appends add their wait for durability to the call being timed ("commit")."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def append(self, record: Any, journal: Any = None) -> int:
        waits = _CURRENT.get()
        at = time.perf_counter()
        try:
            index: int = await self._inner.append(record, journal)
            return index
        finally:
            if waits is not None:
                waits[1] += time.perf_counter() - at


def read_telemetry(path: Path) -> list[dict[str, Any]]:
    """The lines a core wrote to `path` (none if it wrote none)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def over(lines: Sequence[dict[str, Any]], start: float, end: float) -> dict[str, Any]:
    """The lines whose interval ended within [start, end] (UNIX times) taken together: exchanges
    and the mean of each stage (weighted by each line's count), and the commits summed."""
    chosen = [line for line in lines if start <= line["t"] <= end]
    count = sum(line["exchanges"]["count"] for line in chosen)
    means: dict[str, float | None] = {}
    for stage in _STAGES:
        weighted = [(line["exchanges"][f"{stage}_ms"]["mean"], line["exchanges"]["count"]) for line in chosen]
        total = sum(m * n for m, n in weighted if m is not None)
        means[f"{stage}_ms"] = round(total / count, 4) if count else None
    total = CommitStats()
    for line in chosen:
        total = total.plus(CommitStats(**{k: v for k, v in line["commits"].items() if k in _COMMIT_FIELDS}))
    return {"exchanges": count, "mean": means, "commits": commit_figures(total)}
