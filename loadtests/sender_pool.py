"""Several open-loop senders, one per child process, started together and collected by their parent.

One Python process sends a few thousand gRPC calls per second at most; a level beyond that is
sent by K sender processes (loadtests.sender), each with its sub-schedule. They are this
process's own children (multiprocessing, "spawn"), not programs started through
testbed.processes: the load generator sits on floor 4 and cannot reach that floor-5 owner, and
the house's one-owner rule is about programs, not about a generator's own workers; "spawn",
not "fork", because gRPC objects must be created after any fork and the parent (a test, or a
benchmark running a level in-process) may hold gRPC state already.

The handshake: each child connects its channels, says "ready" on a queue and waits; once all
are ready, the parent sets one start instant (time.monotonic(), which is system-wide on Linux)
and releases them; each child sends its records and CPU time back on the queue and ends. A child
that fails says why on the queue; a child that dies says nothing and is noticed by its exit
code. Children are daemonic and terminated on any failure: none outlives the level.
"""

from __future__ import annotations

import multiprocessing
import queue
import time
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.context import SpawnProcess
from typing import Any

import numpy as np
from numpy.typing import NDArray

from loadtests.sender import CONNECT_TIMEOUT_S, LoadgenError, SenderPart, send_part

__all__ = ["STARTUP_S", "START_LEAD_S", "send_in_processes"]

START_LEAD_S = 0.1  # from "all ready" to the first due send: every child is waiting by then
STARTUP_S = 60.0  # for a child to import, connect and say it is ready
_POLL_S = 0.2
_EXIT_GRACE_S = 2.0

Sent = tuple[NDArray[np.void], float]


def _child(part: SenderPart, messages: Any, start: Any, t0: Any) -> None:
    """A sender process: connect, wait for the common start, send, report (see the module doc)."""

    def start_at() -> float:
        messages.put(("ready", part.k))
        start.wait()
        return float(t0.value)

    try:
        records, cpu = send_part(part, start_at)
    except BaseException:
        messages.put(("failed", part.k, traceback.format_exc(limit=5)))
        raise
    messages.put(("done", part.k, records, cpu))


def send_in_processes(parts: Sequence[SenderPart], on_start: Callable[[float], None] | None = None) -> list[Sent]:
    """Send every part from a child process of its own, all starting together; their records
    and CPU seconds, in the order of `parts`. LoadgenError if a child fails, dies, or is late.
    `on_start`, if given, is called with the time.monotonic() instant their schedules start at,
    as soon as it is fixed (before they start)."""
    ctx = multiprocessing.get_context("spawn")
    messages, start, t0 = ctx.Queue(), ctx.Event(), ctx.Value("d", 0.0)
    children = [
        ctx.Process(target=_child, args=(p, messages, start, t0), name=f"loadgen-{p.k}", daemon=True) for p in parts
    ]
    try:
        for child in children:
            child.start()
        _await(messages, children, "ready", time.monotonic() + STARTUP_S + CONNECT_TIMEOUT_S)
        t0.value = time.monotonic() + START_LEAD_S
        if on_start is not None:
            on_start(t0.value)
        start.set()
        level = parts[0].level
        until = t0.value + level.warmup_s + level.seconds + level.timeout_s + STARTUP_S
        done = _await(messages, children, "done", until)
        for child in children:
            child.join(_POLL_S * 10)
        return [(done[p.k][0], done[p.k][1]) for p in parts]
    finally:
        for child in children:
            if child.is_alive():
                child.terminate()
                child.join()


def _await(messages: Any, children: Sequence[SpawnProcess], what: str, until: float) -> dict[int, tuple[Any, ...]]:
    """Collect one `what` message from every child before time.monotonic() passes `until`."""
    got: dict[int, tuple[Any, ...]] = {}
    gone: dict[int, float] = {}  # child -> when it was first seen exited without its message
    while len(got) < len(children):
        try:
            message = messages.get(timeout=_POLL_S)
        except queue.Empty:
            _check(children, got, gone, what, until)
            continue
        if message[0] == "failed":
            raise LoadgenError(f"load generator process {message[1]} failed:\n{message[2]}")
        if message[0] == what:
            got[message[1]] = message[2:]
    return got


def _check(
    children: Sequence[SpawnProcess], got: dict[int, tuple[Any, ...]], gone: dict[int, float], what: str, until: float
) -> None:
    now = time.monotonic()
    for k, child in enumerate(children):
        # a child that exited: its last message may still be on its way, give it a moment
        if k not in got and child.exitcode is not None and now - gone.setdefault(k, now) > _EXIT_GRACE_S:
            raise LoadgenError(f"load generator process {k} exited with code {child.exitcode}, not {what}")
    if now > until:
        missing = sorted(set(range(len(children))) - set(got))
        raise LoadgenError(f"load generator processes {missing} not {what} in time")
