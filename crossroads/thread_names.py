"""Kernel names for Python threads, so that per-thread CPU time read from /proc says whose it is.

Python 3.11 does not pass a thread's name to the kernel: every Python thread of a process shows
the process's name in /proc/PID/task/TID/comm (the core's audit writer and gRPC's completion-queue
poller both read "python"), while gRPC's C threads name themselves (event_engine,
grpc_global_tim, ...). `name_native_threads()` gives each Python thread of this process its
Python name as its kernel name (truncated to the kernel's 15 bytes), and gRPC's poller the name
"grpc-poller"; it leaves the main thread alone (its name is the process's, which `ps` and psutil
show: a reader of /proc tells the main thread by its id, the process id).
`name_native_thread(name)` names the calling thread.
Call the first once the threads of interest exist (a server: once it serves), the second at the
start of a thread's run. Linux only: elsewhere, and where /proc refuses, nothing is named.
"""

from __future__ import annotations

import contextlib
import re
import threading
from pathlib import Path

__all__ = ["COMM_BYTES", "name_native_thread", "name_native_threads", "native_name"]

COMM_BYTES = 15  # the kernel keeps 16 bytes, the last a NUL
# Python's default name for a thread with a target is "Thread-N (target)": known targets
_TARGETS = {"_poll_wrapper": "grpc-poller"}  # grpc.aio's completion-queue poller (grpc 1.75)
_DEFAULT = re.compile(r"^Thread-\d+ \((?P<target>\w+)\)$")


def native_name(thread: threading.Thread) -> str:
    """The kernel name `name_native_threads` gives `thread`: a known target's name, else its own."""
    default = _DEFAULT.match(thread.name)
    name = _TARGETS.get(default["target"], thread.name) if default else thread.name
    return name.encode()[:COMM_BYTES].decode(errors="ignore")


def _write_comm(native_id: int | None, name: str) -> bool:
    if native_id is None:
        return False
    with contextlib.suppress(OSError):
        Path(f"/proc/self/task/{native_id}/comm").write_text(name)
        return True
    return False


def name_native_thread(name: str) -> bool:
    """Give the calling thread the kernel name `name` (its first 15 bytes); whether it took."""
    return _write_comm(threading.get_native_id(), name.encode()[:COMM_BYTES].decode(errors="ignore"))


def name_native_threads() -> dict[int, str]:
    """Give every live Python thread but the main one its `native_name`; the native ids named."""
    named = {}
    for thread in threading.enumerate():
        if thread is threading.main_thread():
            continue
        name = native_name(thread)
        if _write_comm(thread.native_id, name):
            named[thread.native_id or 0] = name
    return named
